"""The shape of an image's manifest.json and the order its streams are restored (and multicast) in.

The client writes and validates manifests (imager/manifest.py); the server reads one to plan a
multicast session. Both take the stream order from ``multicast_streams``.
"""
from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

FORMAT = "imager-image"
VERSION = 1
MANIFEST = "manifest.json"


class FileEntry(TypedDict):
    size: int          # bytes stored (compressed)
    sha256: str        # of the stored bytes


class VolumeEntry(TypedDict):
    """One LVM logical volume of a physical-volume partition."""

    index: int
    name: str
    uuid: str
    size_bytes: int
    fstype: str | None
    fs_uuid: str | None
    label: str | None
    tool: str
    file: NotRequired[str | None]
    raw_bytes: NotRequired[int]
    stored_bytes: NotRequired[int]


class LvmEntry(TypedDict):
    vg: str
    vg_uuid: str
    pv_uuid: str
    metadata: str
    volumes: list[VolumeEntry]


class ChunksEntry(TypedDict):
    """A chunked stream (docs/image-format.md): ``file`` is its index (``.cidx``), the chunks are in the node's store."""

    grid_blocks: int
    count: int           # chunks the index names
    new_bytes: int       # stored bytes this capture added to the store (the rest it shared)


class PartitionEntry(TypedDict):
    number: int
    fstype: str | None
    tool: str
    file: str | None   # None: nothing to stream (swap, extended, empty, or LVM: see lvm)
    uuid: NotRequired[str | None]
    label: NotRequired[str | None]
    raw_bytes: NotRequired[int]
    stored_bytes: NotRequired[int]
    fs_bytes: NotRequired[int | None]   # None: captured at its full size (not shrunk)
    lvm: NotRequired[LvmEntry | None]
    chunks: NotRequired[ChunksEntry]    # present: ``file`` is a chunk index, not a zstd stream


class DiskEntry(TypedDict):
    index: int
    mode: Literal["partitions", "raw"]
    # mode "partitions"
    source: NotRequired[dict[str, Any]]
    layout: NotRequired[dict[str, Any]]
    table_files: NotRequired[dict[str, str]]
    partitions: NotRequired[list[PartitionEntry]]
    # mode "raw"
    file: NotRequired[str]
    size_bytes: NotRequired[int]
    sector_size: NotRequired[int]
    raw_bytes: NotRequired[int]


class Manifest(TypedDict):
    format: str
    version: int
    name: str
    created: str
    image_type: str
    compression: dict[str, Any]
    tools: dict[str, str]
    source: dict[str, Any]
    disks: list[DiskEntry]
    files: dict[str, FileEntry]


class NotMulticastable(ValueError):
    """The image cannot be sent by multicast (each side turns this into its own error)."""


def multicast_streams(manifest: Manifest | dict[str, Any]) -> list[str]:
    """The files a multicast session sends, in the order the client restores them: disk by disk,
    partition by partition (a raw disk: its one file; a chunked partition: its index, ``dNpM.cidx``, for
    which the server sends the header, bitmap and chunks the index names). LVM images deploy by unicast only."""
    files: list[str] = []
    for disk in manifest["disks"]:
        if disk.get("mode") == "raw":
            files.append(disk["file"])
            continue
        for part in disk.get("partitions", []):
            if part.get("lvm") is not None:
                raise NotMulticastable("images with LVM volumes deploy by unicast only (multicast: not yet)")
            file = part.get("file")
            if file:
                files.append(file)
    if not files:
        raise NotMulticastable("the image holds no partition stream to send")
    return files
