"""labelgen: occlusion pseudo-labels for web-face images (structure via consensus)."""

__version__ = "0.1.0"
