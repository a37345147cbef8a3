"""CAM report generator: explain a cat-vs-dog classifier with Class Activation Maps as a static website."""

__version__ = "0.1.0"
