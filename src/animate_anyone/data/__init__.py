"""Data I/O: images and videos, datasets."""
