"""imager: network disk imaging from a PXE-booted Python environment."""
__version__ = "0.1.0"
