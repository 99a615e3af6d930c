"""aidetect.worker"""
