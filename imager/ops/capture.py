"""Capture: save a whole disk into a new image.

The recipe a technician would follow: pick the disk, make sure nothing on it
is mounted, save its partition table and boot area, (resizable images) shrink
the filesystems that can be shrunk, stream each partition's used blocks
through partclone and zstd, grow the filesystems back, write the manifest
last, publish.

Stopped by SIGINT/SIGTERM/SIGHUP (``process.interruptible``), a full store or
any error, it grows the source's filesystems back, removes the staging version
and keeps the previous image (docs/safety.md).
"""
from __future__ import annotations

import errno
import logging
import os
import time
from contextlib import AbstractContextManager, nullcontext
from typing import Any, cast

import imager
from contract import chunkindex
from contract.task import DEFAULT_IMAGE_FORMAT, IMAGE_FORMATS
from imager import chunkpath, datapath, disks, filesystems, imagestore, lvm, manifest, partclone, process, resize
from imager.chunkstore import LocalChunks
from imager.errors import Interrupted, InvalidTask, StorageError, UnsupportedDisk
from imager.manifest import DiskEntry, FileEntry, Manifest
from imager.ops.context import OpContext
from imager.partitions import Partition, probe_filesystem, read_layout, save_table
from imager.progress import Progress
from contract.manifest import PartitionEntry, VolumeEntry
from contract.vocabulary import IMAGE_TYPES

log = logging.getLogger(__name__)
Files = dict[str, FileEntry]   # the image's files and their checksums, as the manifest lists them


# FOG's types: 1 single disk resizable, 2 multiple partitions single disk (exact layout),
# 3 multiple partitions on every disk of the machine (exact layouts), 4 raw whole disk.


def capture(ctx: OpContext) -> dict[str, Any]:
    """The capture task: its disk into the image it names, on its storage node (the group's master)."""
    image = ctx.task.get("image")
    return capture_image(ctx.task.get("disk"), ctx.storage_root, ctx.image_name, ctx.progress,
                         image_type=(image.get("type") if image else None) or "resizable",
                         image_format=(image.get("format") if image else None) or DEFAULT_IMAGE_FORMAT)


INTERRUPTED_HINT = ("The source disk's filesystems are back at their size and the previous image, if any, is "
                    "unchanged; the unfinished version was removed. Run the capture again.")


def capture_image(disk_spec: str | None, root: str, name: str, progress: Progress,
                  image_type: str = "resizable", image_format: str = "stream") -> dict[str, Any]:
    """``disk_spec`` into the image ``name`` under ``root`` (an existing directory); published only when whole.
    ``image_format`` chunked: partitions as chunks in ``root``'s chunk store (docs/image-format.md)."""
    with process.interruptible():
        try:
            return _capture_image(disk_spec, root, name, progress, image_type, image_format)
        except Interrupted as exc:
            exc.hint = INTERRUPTED_HINT
            raise
        except OSError as exc:  # the store's own failures as a message; anything else is a bug, shown as such
            if exc.errno in (errno.ENOSPC, errno.EDQUOT) or str(exc.filename or "").startswith(root):
                log.debug("capture failed on the store", exc_info=True)  # -v: where it happened
                raise imagestore.storage_error(exc, f"capture of {name!r} into {root} failed") from exc
            raise


def _capture_image(disk_spec: str | None, root: str, name: str, progress: Progress,
                   image_type: str, image_format: str) -> dict[str, Any]:
    if image_type not in IMAGE_TYPES:
        raise UnsupportedDisk(f"image type {image_type!r} is not one of {', '.join(IMAGE_TYPES)}")
    if image_format not in IMAGE_FORMATS:
        raise InvalidTask(f"image format {image_format!r} is not one of {', '.join(IMAGE_FORMATS)}")
    chunks = LocalChunks(root) if image_format == "chunked" else None
    started = time.monotonic()
    sources = disks.select_all(disk_spec) if image_type == "alldisks" else [disks.select(disk_spec)]
    for disk in sources:
        log.info("capturing %s (%s) into image %r", disk.path, _size(disk.size_bytes), name)
        refuse_if_mounted(disk.path)
    if image_type == "raw":
        return capture_raw_disk(sources[0], root, name, progress)

    staging = imagestore.Staging(root, name)
    try:
        entries: list[DiskEntry] = []
        files: Files = {}
        for index, disk in enumerate(sources, 1):
            entry, disk_files = capture_disk(disk, index, staging.path, progress, resizable=image_type == "resizable",
                                             chunks=chunks)
            files.update(disk_files)
            entries.append(entry)
        if chunks is not None:
            require_chunks(chunks, staging.path, files)
        image = build_manifest(name, image_type, sources[0], entries, files)
        manifest.write(staging.path, image)
        link = staging.publish()
    except BaseException:
        staging.discard()
        raise
    elapsed = time.monotonic() - started
    parts = [p for entry in entries for p in entry.get("partitions", [])]
    raw = sum(p["raw_bytes"] for p in parts)
    stored = sum(p.get("stored_bytes", 0) for p in parts) + sum(
        meta["size"] for file, meta in files.items() if not file.endswith(".pcl.zst"))
    log.info("image %s published: %s of partclone data stored in %s, %.1f s", link, _size(raw), _size(stored), elapsed)
    result = {"image": name, "version": staging.version, "raw_bytes": raw, "stored_bytes": stored,
              "seconds": round(elapsed, 1), "partitions": len(parts), "disks": len(entries)}
    if chunks is not None:  # what this version added to the store shared with the others
        result["new_bytes"] = sum(p["chunks"]["new_bytes"] if "chunks" in p else p.get("stored_bytes", 0) for p in parts)
    return result


def capture_disk(disk: disks.Disk, index: int, image_dir: str, progress: Progress,
                 resizable: bool, chunks: LocalChunks | None = None) -> tuple[DiskEntry, Files]:
    """One disk of the image (``d<index>.*`` files): its table, boot area and every partition."""
    layout = read_layout(disk.path)
    disks.reread_partitions(disk.path, [p.number for p in layout.partitions])  # nodes exist even without udev
    for part in layout.partitions:
        part.__dict__.update(probe_filesystem(disks.partition_path(disk.path, part.number)))
    prefix = f"d{index}"
    table_files = save_table(disk.path, layout, image_dir, prefix=prefix)
    files = {f: _file_entry(image_dir, f) for f in table_files.values()}
    parts: list[PartitionEntry] = []
    shrinking: AbstractContextManager[dict[int, int]] = (
        resize.shrunk_filesystems(disk.path, layout) if resizable else nullcontext({}))
    # resizable: filesystems at their minimum until the end of this block, grown back whole whatever signal comes
    with process.exits_uninterrupted(shrinking) as fs_bytes:
        for i, part in enumerate(layout.partitions, 1):
            tool = filesystems.tool_for(part.fstype, part.kind)
            if tool in (filesystems.SWAP, filesystems.CONTAINER):  # recreated at deploy, nothing to copy
                parts.append({"number": part.number, "fstype": part.fstype, "tool": tool, "file": None,
                              "uuid": part.uuid, "label": part.label, "raw_bytes": 0, "stored_bytes": 0})
                continue
            stage = f"{'disk %d, ' % index if index > 1 else ''}partition {i}/{len(layout.partitions)}"
            group = volume_group_to_split(disk.path, part)
            if group:
                entry, part_files = capture_volume_group(disk.path, part, group, image_dir, progress, stage, prefix)
            else:
                entry, part_files = capture_partition(disk.path, part, tool, image_dir, progress, stage, prefix,
                                                      chunks if tool != partclone.RAW else None)
                entry["fs_bytes"] = fs_bytes.get(part.number)  # None: not shrunk
                if resizable and part.fstype in filesystems.GROW_ONLY:  # needs its whole partition, may grow
                    entry["fs_bytes"] = part.sectors * layout.sector_size
            files.update(part_files)
            parts.append(entry)
    return {"index": index, "mode": "partitions", "source": disk.to_dict(), "layout": layout.to_dict(),
            "table_files": table_files, "partitions": parts}, files


def capture_raw_disk(disk: disks.Disk, root: str, name: str, progress: Progress) -> dict[str, Any]:
    """Every byte of the disk, whatever is on it (FOG's raw image): for layouts nothing else reads."""
    started = time.monotonic()
    staging = imagestore.Staging(root, name)
    try:
        progress.set_stage(f"whole disk {disk.path}", total=disk.size_bytes)
        result = stream_device_to_file(disk.path, partclone.RAW, os.path.join(staging.path, "d1.raw.zst"), progress)
        files: Files = {"d1.raw.zst": {"size": result.stored_bytes, "sha256": result.sha256}}
        entry: DiskEntry = {"index": 1, "mode": "raw", "file": "d1.raw.zst", "size_bytes": disk.size_bytes,
                 "sector_size": disk.logical_sector_size, "raw_bytes": result.raw_bytes}
        image = build_manifest(name, "raw", disk, [entry], files)
        manifest.write(staging.path, image)
        staging.publish()
    except BaseException:
        staging.discard()
        raise
    return {"image": name, "version": staging.version, "raw_bytes": result.raw_bytes,
            "stored_bytes": result.stored_bytes, "seconds": round(time.monotonic() - started, 1), "partitions": 0}


def capture_partition(disk_path: str, part: Partition, tool: str, image_dir: str,
                      progress: Progress, stage: str, prefix: str = "d1",
                      chunks: LocalChunks | None = None) -> tuple[PartitionEntry, Files]:
    device = disks.partition_path(disk_path, part.number)
    fstype = part.fstype
    progress.set_stage(f"{stage}: {os.path.basename(device)} ({fstype or 'raw'})", total=_device_bytes(device))
    if chunks is not None:
        return capture_chunked_partition(device, part, tool, image_dir, progress, prefix, chunks)
    filename = f"{prefix}p{part.number}.pcl.zst"
    result = stream_device_to_file(device, tool, os.path.join(image_dir, filename), progress)
    progress.flush()
    log.info("%s: %s → %s (%s)", device, _size(result.raw_bytes), filename, _size(result.stored_bytes))
    return ({"number": part.number, "fstype": fstype, "tool": tool, "file": filename, "uuid": part.uuid,
             "label": part.label, "raw_bytes": result.raw_bytes, "stored_bytes": result.stored_bytes},
            {filename: {"size": result.stored_bytes, "sha256": result.sha256}})


def capture_chunked_partition(device: str, part: Partition, tool: str, image_dir: str, progress: Progress,
                              prefix: str, chunks: LocalChunks) -> tuple[PartitionEntry, Files]:
    """partclone's stream of one partition into the chunk store, and its index into the version."""
    filename = f"{prefix}p{part.number}{chunkindex.INDEX_SUFFIX}"
    reader = process.spawn(partclone.clone_argv(tool, device), stdout=process.PIPE)
    datapath.widen_pipe(reader.stdout)
    try:
        result = chunkpath.capture_stream(cast(datapath.Readable, reader.stdout), chunks,
                                          os.path.join(image_dir, filename), progress)
    except BaseException:
        reader.kill()
        raise
    reader.wait()
    progress.flush()
    log.info("%s: %s → %d chunks (%s, %s new to the store)", device, _size(result.raw_bytes), result.count,
             _size(result.stored_bytes), _size(result.new_bytes))
    return ({"number": part.number, "fstype": part.fstype, "tool": tool, "file": filename, "uuid": part.uuid,
             "label": part.label, "raw_bytes": result.raw_bytes, "stored_bytes": result.stored_bytes,
             "chunks": {"grid_blocks": result.grid_blocks, "count": result.count, "new_bytes": result.new_bytes}},
            {filename: _file_entry(image_dir, filename)})


def require_chunks(chunks: LocalChunks, image_dir: str, files: Files) -> None:
    """Every chunk the version names is in the store (any the collector quarantined taken back), or no publishing."""
    for file in files:
        if file.endswith(chunkindex.INDEX_SUFFIX):
            lost = chunks.missing(list(chunkindex.names_in(os.path.join(image_dir, file))))
            if lost:
                raise StorageError(f"{len(lost)} chunk(s) of {file} vanished from {chunks.dir} during the capture "
                                   f"(first: {lost[0]})", hint="Run the capture again.")


def volume_group_to_split(disk_path: str, part: Partition) -> lvm.VolumeGroup | None:
    """The LVM group on this partition when its volumes can travel one by one; None means copy it as it is."""
    if part.fstype != lvm.PV_TYPE:
        return None
    group = lvm.volume_group_on(disks.partition_path(disk_path, part.number))
    reason = group.why_not_per_volume() if group else "the physical volume belongs to no volume group"
    if reason:
        log.warning("partition %d is copied raw: %s", part.number, reason)
        return None
    return group


def capture_volume_group(disk_path: str, part: Partition, group: lvm.VolumeGroup, image_dir: str,
                         progress: Progress, stage: str, prefix: str = "d1") -> tuple[PartitionEntry, Files]:
    """An LVM physical volume: the group's metadata, then each logical volume through its own partclone."""
    metadata = f"{prefix}p{part.number}.lvm"
    lvm.save_metadata(group, os.path.join(image_dir, metadata))
    files = {metadata: _file_entry(image_dir, metadata)}
    with lvm.activated(group.name):
        volumes = cast(list[VolumeEntry], lvm.probe_volumes(group))
        for vol in volumes:
            vol["file"], vol["raw_bytes"], vol["stored_bytes"] = None, 0, 0
            if vol["tool"] == filesystems.SWAP:  # recreated at deploy, like a swap partition
                continue
            file = vol["file"] = f"{prefix}p{part.number}.lv{vol['index']}.pcl.zst"
            device = group.device_of(vol["name"])
            progress.set_stage(f"{stage}: {group.name}/{vol['name']} ({vol['fstype'] or 'raw'})", total=vol["size_bytes"])
            result = stream_device_to_file(device, vol["tool"], os.path.join(image_dir, file), progress)
            progress.flush()
            vol["raw_bytes"], vol["stored_bytes"] = result.raw_bytes, result.stored_bytes
            files[file] = {"size": result.stored_bytes, "sha256": result.sha256}
            log.info("%s/%s: %s → %s (%s)", group.name, vol["name"], _size(result.raw_bytes), file,
                     _size(result.stored_bytes))
    return {"number": part.number, "fstype": part.fstype, "tool": lvm.TOOL, "file": None, "uuid": part.uuid,
            "label": part.label, "raw_bytes": sum(v.get("raw_bytes", 0) for v in volumes),
            "stored_bytes": sum(v.get("stored_bytes", 0) for v in volumes),
            "lvm": {"vg": group.name, "vg_uuid": group.uuid, "pv_uuid": group.pv_uuid, "metadata": metadata,
                    "volumes": volumes}}, files


def stream_device_to_file(device: str, tool: str, dest: str, progress: Progress) -> datapath.StreamResult:
    """partclone's used-block stream of ``device`` → zstd → ``dest``."""
    reader = process.spawn(partclone.clone_argv(tool, device), stdout=process.PIPE)
    datapath.widen_pipe(reader.stdout)

    def on_head(head: bytes) -> None:
        header = partclone.parse_header(head)
        if header:  # used blocks only: that is what will flow
            progress.total = header.stream_size

    try:
        result = datapath.compress_to_file(cast(datapath.Readable, reader.stdout), dest, on_progress=progress.add, on_head=on_head,
                                            on_stored=progress.add_stored)
    except BaseException:
        reader.kill()
        raise
    reader.wait()
    return result


def build_manifest(name: str, image_type: str, disk: disks.Disk, disk_entries: list[DiskEntry],
                   files: Files) -> Manifest:
    return {
        "format": manifest.FORMAT,
        "version": manifest.VERSION,
        "name": name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "image_type": image_type,
        "compression": {"algorithm": "zstd", "level": datapath.DEFAULT_LEVEL},
        "tools": tool_versions(),
        "source": disk.to_dict(),
        "disks": disk_entries,
        "files": files,
    }


def refuse_if_mounted(disk_path: str) -> None:
    """A mounted filesystem changes under partclone; its image would be inconsistent."""
    name = os.path.basename(os.path.realpath(disk_path))
    with open("/proc/mounts") as mounts:
        for line in mounts:
            source = os.path.basename(line.split()[0])
            if source == name or (source.startswith(name) and source[len(name):].lstrip("p").isdigit()):
                raise UnsupportedDisk(f"{line.split()[0]} is mounted on {line.split()[1]}; unmount it first")


def tool_versions() -> dict[str, str]:
    import zstandard
    first_line = lambda argv: process.run(argv, check=False).text.strip().splitlines()[:1]  # noqa: E731
    return {
        "imager": imager.__version__,
        "partclone": " ".join(first_line(["partclone.restore", "-v"])),
        "zstd": ".".join(map(str, zstandard.ZSTD_VERSION)),
        "sfdisk": " ".join(first_line(["sfdisk", "--version"])),
        "sgdisk": " ".join(first_line(["sgdisk", "--version"])),
    }


def _file_entry(image_dir: str, filename: str) -> FileEntry:
    size, sha = datapath.hash_file(os.path.join(image_dir, filename))
    return {"size": size, "sha256": sha}


def _device_bytes(device: str) -> int:
    with open(device, "rb") as f:
        return f.seek(0, os.SEEK_END)


def _size(n: int) -> str:
    from imager.progress import human
    return human(n)
