"""Where images live in a directory (an NFS export, or any local folder).

    <root>/<name>                     symlink → .images/<name>@<stamp>  (the published image)
    <root>/.images/<name>@<stamp>/    one complete version; manifest.json is written last

A capture fills a fresh version directory that nothing points to (the staging
area), then publishes it with one atomic rename of a new symlink over
``<root>/<name>``.  Until that rename, readers keep seeing the previous image,
whole; a failed capture leaves it untouched.  A deploy resolves the symlink
once, so a capture finishing meanwhile cannot mix two versions under it.

A version without manifest.json that the link does not name is a capture's
leftover (SIGKILL, power loss): the next capture of that name removes it and
``leftover_versions`` lets ``imager info`` name it.  ``imager capture`` checks
with ``require_store`` that the store exists: a mistyped path is refused, not created.
"""
from __future__ import annotations

import errno
import logging
import os
import shutil

from contract.versions import VERSIONS_DIR, is_image_name, is_version, new_version
from imager import process
from imager.errors import ImageNotFound, InvalidImage, StorageError, StorageFull

log = logging.getLogger(__name__)

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
        self.published = False
        link = os.path.join(root, name)
        if os.path.exists(link) and not os.path.islink(link):
            raise StorageError(f"{link} exists and is not an image published by imager; remove it or pick another name",
                               hint="Remove or rename that file or directory, or capture under another image name.")
        for leftover in leftover_versions(root, name):
            log.info("removing %s, left by a capture that never finished", leftover)
            shutil.rmtree(leftover, ignore_errors=True)
        self.version = new_version(name)
        self.path = os.path.join(root, VERSIONS, self.version)
        try:
            os.makedirs(self.path)
        except OSError as exc:
            raise storage_error(exc, f"cannot create {self.path}") from exc

    def publish(self) -> str:
        """Point ``<root>/<name>`` at this version with one rename; drop the version it replaces."""
        link = os.path.join(self.root, self.name)
        previous = os.path.realpath(link) if os.path.islink(link) else None
        _fsync_dir(self.path)
        tmp_link = os.path.join(self.root, f".{self.version}.link")
        with process.uninterrupted():  # a signal after the rename must not discard what is now published
            os.symlink(os.path.join(VERSIONS, self.version), tmp_link)
            os.rename(tmp_link, link)
            self.published = True
            _fsync_dir(self.root)
            ours = os.path.realpath(os.path.join(self.root, VERSIONS))
            # only a version of this store: a link someone pointed elsewhere must not cost that directory
            if previous and os.path.isdir(previous) and os.path.dirname(previous) == ours \
                    and previous != os.path.realpath(self.path):
                with_manifest = os.path.join(previous, "manifest.json")
                if os.path.exists(with_manifest):  # first, so a half-removed version reads as a leftover
                    os.unlink(with_manifest)
                shutil.rmtree(previous, ignore_errors=True)
        return link

    def discard(self) -> None:
        """Remove the unpublished version (a failed or interrupted capture); the published image stays."""
        if not self.published:
            shutil.rmtree(self.path, ignore_errors=True)


def require_store(root: str) -> str:
    """The directory a capture from the command line goes into must exist: a typo must not fill another disk."""
    if not os.path.isdir(root):
        raise StorageError(f"{root} is not an existing directory; nothing was created",
                           hint="Check the path (a typo would fill another disk), or create the directory first.")
    return root


def storage_error(exc: OSError, what: str) -> StorageError:
    """An OSError on the store as a message: a full store says so."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFull(f"{what}: the image store is full ({exc.strerror})")
    return StorageError(f"{what}: {exc.strerror or exc}")


def leftovers_beside(image_path: str) -> list[str]:
    """``leftover_versions`` of an image given as its path (``<root>/<name>``)."""
    path = os.path.abspath(image_path).rstrip("/")
    name = os.path.basename(path)
    return leftover_versions(os.path.dirname(path), name) if is_image_name(name) else []


def leftover_versions(root: str, name: str) -> list[str]:
    """Versions of ``name`` a capture left unfinished: no manifest.json, not the published one."""
    versions = os.path.join(root, VERSIONS)
    link = os.path.join(root, name)
    current = os.path.realpath(link) if os.path.islink(link) else None
    try:
        entries = sorted(os.listdir(versions))
    except OSError:
        return []
    found = []
    for entry in entries:
        path = os.path.join(versions, entry)
        if (is_version(entry, name) and os.path.isdir(path) and os.path.realpath(path) != current
                and not os.path.exists(os.path.join(path, "manifest.json"))):
            found.append(path)
    return found


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
