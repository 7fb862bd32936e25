"""imager-server: boot, task and image server."""
