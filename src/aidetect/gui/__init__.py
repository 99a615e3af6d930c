"""aidetect.gui"""
