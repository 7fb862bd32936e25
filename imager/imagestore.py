"""Where images live in a directory (an NFS export, or any local folder).

    <root>/<name>                     symlink → .images/<name>@<stamp>  (the published image)
    <root>/.images/<name>@<stamp>/    one complete version; manifest.json is written last

A capture fills a fresh version directory that nothing points to (the staging
area), then publishes it with one atomic rename of a new symlink over
``<root>/<name>``.  Until that rename, readers keep seeing the previous image,
whole; a failed capture leaves it untouched.  A deploy resolves the symlink
once, so a capture finishing meanwhile cannot mix two versions under it.
"""
from __future__ import annotations

import os
import shutil

from contract.versions import VERSIONS_DIR, is_image_name, new_version
from imager.errors import ImageNotFound, InvalidImage, StorageError

VERSIONS = VERSIONS_DIR


def check_name(name: str) -> str:
    if not is_image_name(name):
        raise InvalidImage(f"{name!r} is not a valid image name (letters, digits, . _ - ; at most 100)")
    return name


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Staging:
    """A version directory being filled by a capture."""

    def __init__(self, root: str, name: str) -> None:
        self.root = root
        self.name = check_name(name)
        link = os.path.join(root, name)
        if os.path.exists(link) and not os.path.islink(link):
            raise StorageError(f"{link} exists and is not an image published by imager; remove it or pick another name")
        self.version = new_version(name)
        self.path = os.path.join(root, VERSIONS, self.version)
        try:
            os.makedirs(self.path)
        except OSError as exc:
            raise StorageError(f"cannot create {self.path}: {exc}") from exc

    def publish(self) -> str:
        """Point ``<root>/<name>`` at this version with one rename; drop the version it replaces."""
        link = os.path.join(self.root, self.name)
        previous = os.path.realpath(link) if os.path.islink(link) else None
        _fsync_dir(self.path)
        tmp_link = os.path.join(self.root, f".{self.version}.link")
        os.symlink(os.path.join(VERSIONS, self.version), tmp_link)
        os.rename(tmp_link, link)
        _fsync_dir(self.root)
        if previous and os.path.isdir(previous) and previous != os.path.realpath(self.path):
            shutil.rmtree(previous, ignore_errors=True)
        return link

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def resolve(root: str, name: str) -> str:
    """The directory of the published image ``name``, pinned for the whole deploy."""
    link = os.path.join(root, check_name(name))
    if not os.path.exists(link):
        raise ImageNotFound(f"image {name!r} does not exist in {root}")
    return os.path.realpath(link)


def resolve_path(image_dir: str) -> str:
    """The same for a path given on the command line."""
    if not os.path.isdir(image_dir):
        raise ImageNotFound(f"{image_dir} is not an image directory")
    return os.path.realpath(image_dir)
