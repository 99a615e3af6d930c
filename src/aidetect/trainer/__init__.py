"""aidetect.trainer"""
