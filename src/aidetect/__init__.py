"""aidetect: tell AI-generated images from real photographs, and show why."""

__version__ = "0.1.0"
