"""FOG and Clonezilla image directories told apart by their file names alone.

The client reads them (imager/foreign); the server adopts a tree of them as image definitions. Both
decide what a directory is here, from names only: nothing is opened.
"""
from __future__ import annotations

import os
import re

FOG = "fog"
CLONEZILLA = "clonezilla"

_FOG_TABLES = re.compile(r"^d1\.(partitions|original\.partitions|mbr|size)$")
_FOG_STREAM = re.compile(r"^d1p\d+\.img(\.\d{3})?$")
_CLONEZILLA = re.compile(r"^(clonezilla-img|.+-pt\.sf)$")


def detect_format(image_dir: str) -> str | None:
    """FOG, CLONEZILLA, or None (an imager image has manifest.json; anything else is not an image)."""
    try:
        names = os.listdir(image_dir)
    except OSError:
        return None
    if "manifest.json" in names:
        return None
    if any(_FOG_TABLES.match(n) or _FOG_STREAM.match(n) for n in names):
        return FOG
    if any(_CLONEZILLA.match(n) for n in names):
        return CLONEZILLA
    raw = re.compile(re.escape(os.path.basename(os.path.normpath(image_dir))) + r"\.\d{3}$")
    if any(raw.match(n) for n in names):
        return FOG   # FOG's raw type: <name>.000, .001 …
    return None


def image_type(image_dir: str, fmt: str) -> str:
    """The imager image type closest to the directory's: resizable, multipart, alldisks or raw."""
    names = set(os.listdir(image_dir))
    if fmt == FOG:
        if "d1.minimum.partitions" in names:
            return "resizable"
        if "d2.partitions" in names or "d2.mbr" in names:
            return "alldisks"
        if not {"d1.partitions", "d1.mbr", "d1.original.partitions"} & names:
            return "raw"
        return "multipart"
    disks = [n for n in names if n.endswith("-pt.sf")]
    return "alldisks" if len(disks) > 1 else "multipart"
