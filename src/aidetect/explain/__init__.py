"""aidetect.explain"""
