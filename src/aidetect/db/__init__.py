"""aidetect.db"""
