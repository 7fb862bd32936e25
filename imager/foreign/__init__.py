"""Images captured by FOG or Clonezilla, read as they are, so sites can switch without recapturing.

``load(image_dir)`` gives a ``ForeignImage`` (model.py) that ``imager deploy``, ``imager info`` and
``imager verify`` work from; the layouts are described in docs/image-format.md and docs/migration.md.
"""
from __future__ import annotations

from contract.foreign import CLONEZILLA, FOG, detect_format
from imager.errors import InvalidImage
from imager.foreign import clonezilla, fog
from imager.foreign.model import ForeignImage


def detect(image_dir: str) -> str | None:
    """"fog", "clonezilla", or None for anything else (our own images have manifest.json)."""
    return detect_format(image_dir)


def load(image_dir: str) -> ForeignImage:
    kind = detect(image_dir)
    if kind == FOG:
        return fog.load(image_dir)
    if kind == CLONEZILLA:
        return clonezilla.load(image_dir)
    raise InvalidImage(f"{image_dir} is neither an imager, a FOG nor a Clonezilla image")
