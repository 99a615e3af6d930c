"""aidetect.watcher"""
