"""An image version's name: ``<name>@<stamp>``, the directory ``.images/<name>@<stamp>`` on a storage node.

The client makes versions when it captures; the server pins them for multicast and replication.
"""
from __future__ import annotations

import re
import secrets
import time

IMAGE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
STAMP = r"[A-Za-z0-9-]+"
VERSION = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]{0,99})@(" + STAMP + r")$")
VERSIONS_DIR = ".images"


def is_image_name(name: object) -> bool:
    return isinstance(name, str) and bool(IMAGE_NAME.match(name)) and name not in (".", "..")


def new_version(name: str, now: float | None = None) -> str:
    """A fresh version name: UTC time to the second, then random hex so two captures never collide."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + "-" + secrets.token_hex(3)
    return f"{name}@{stamp}"


def is_version(text: object, name: str | None = None) -> bool:
    """``text`` is a version name (of image ``name``, when given)."""
    if not isinstance(text, str):
        return False
    match = VERSION.match(text)
    return match is not None and (name is None or match.group(1) == name)


def version_of_link(name: str, link_target: str) -> str | None:
    """The version a published ``<root>/<name>`` symlink names (``.images/<version>``), or None if it is not ours."""
    prefix = VERSIONS_DIR + "/"
    if not link_target.startswith(prefix):
        return None
    version = link_target[len(prefix):]
    return version if is_version(version, name) else None
