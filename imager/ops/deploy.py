"""Deploy: lay an image onto a disk.

The recipe: open the image and check its manifest, pick the target disk, check
its sector size and plan the layout for its size (resizable images grow or
shrink their last resizable partition) — all before a single byte is written —
then restore the partition table and boot area, stream each partition back
through zstd and partclone verifying checksums as we go, and grow the
filesystems that were captured shrunk.

``restore_disk`` is the one restore engine: its streams come from a source, the
image's files here (``ImageFiles``), udp-receiver in a multicast deploy.

A deploy that fails or is stopped (SIGINT/SIGTERM/SIGHUP) after its first write
leaves the disk blank (``BlankOnFailure``: no partition table), never a disk
that looks whole; before the first write it leaves the disk untouched.
"""
from __future__ import annotations

import logging
import os
import tempfile
import time
from typing import Any, Mapping, Protocol
from urllib.parse import urlsplit

from imager import datapath, disks, filesystems, foreign, imagestore, lvm, manifest, partclone, postdeploy, process, resize
from imager import incremental, postscripts
from imager.chunkpath import Transfer
from imager.chunkstore import ChunkReader, LocalChunks, store_root
from imager.errors import CommandFailed, DiskNotFound, InvalidTask, DiskTooSmall, Interrupted, InvalidImage, SectorSizeMismatch
from imager.manifest import DiskEntry, FileEntry, Manifest
from imager.ops.capture import refuse_if_mounted
from imager.ops.context import OpContext
from imager.partitions import Layout, probe_filesystem, restore_table, write_table
from imager.progress import Progress, human
from imager.winhostname import set_windows_hostname
from contract.manifest import PartitionEntry
from contract.task import deploys_over_http

log = logging.getLogger(__name__)


def deploy(ctx: OpContext) -> dict[str, Any]:
    """The deploy task: the image it names, from its storage node, onto its disk."""
    if deploys_over_http(ctx.task):  # no mount: the files over HTTP (issue 17)
        return postscripts.after_deploy(ctx, deploy_over_http(ctx))
    image_dir = imagestore.resolve(ctx.storage_root, ctx.image_name)
    result = deploy_image(image_dir, ctx.task.get("disk"), ctx.progress, partition=ctx.task.get("partition"),
                          hostname=ctx.task.get("hostname"))
    return postscripts.after_deploy(ctx, result)  # the task's post-deploy scripts, on the deployed disks


def deploy_over_http(ctx: OpContext) -> dict[str, Any]:
    """The manifest, tables and chunk indexes fetched into a temporary directory, the streams and chunks fetched
    as they are restored (imager/httpstore.py)."""
    from imager import httpchunks, httpstore

    storage = ctx.task.get("storage")
    url = storage.get("url") if storage else None
    if not storage or not url:
        raise InvalidTask("the task's storage says http but gives no url")
    client = ctx.client
    remote = httpstore.remote_for(url, client.server if client else None,
                                  str(client.session.headers.get("Authorization", "")) if client else None)
    log.info("deploying image %r over HTTP from %s", ctx.image_name,
             remote.base if urlsplit(url).scheme else f"the imager server ({url})")
    with tempfile.TemporaryDirectory(prefix="imager-http-") as local:
        chunks_url = storage.get("chunks_url")
        chunks = httpchunks.chunks_for(remote, chunks_url, storage.get("chunks_batch_url")) if chunks_url else None
        image = httpstore.fetch_image(remote, local, chunks)
        return deploy_image(local, ctx.task.get("disk"), ctx.progress, partition=ctx.task.get("partition"),
                            hostname=ctx.task.get("hostname"), remote=image)


INTERRUPTED_HINT = ("The deploy was stopped: the disk it had begun to write was left blank (no partition table), "
                    "not half-written. Deploy again.")


class BlankOnFailure:
    """The devices a deploy began to write; if it fails, each is left blank (its signatures wiped)."""

    def __init__(self) -> None:
        self.devices: list[str] = []

    def writing(self, device: str) -> None:
        """Called just before the first write to ``device``."""
        self.devices.append(device)

    def __enter__(self) -> BlankOnFailure:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if kind is None or not self.devices:
            return
        with process.uninterrupted():
            for device in self.devices:
                blank(device)


def blank(device: str) -> None:
    """Wipe ``device``'s table (or filesystem) signatures, primary and backup, and drop its partitions from the kernel."""
    log.warning("the deploy did not finish: wiping the signatures of %s so it reads as blank", device)
    result = process.run(["wipefs", "--all", "--force", device], check=False)
    if result.returncode != 0:
        log.error("could not blank %s: %s", device, result.stderr.decode(errors="replace").strip())
    if not os.path.exists(f"/sys/class/block/{os.path.basename(os.path.realpath(device))}/partition"):
        try:  # a whole disk: the kernel forgets its partitions
            process.run(["partx", "-d", device], check=False)
        except CommandFailed as exc:  # the failure that brought us here is the one to report
            log.error("could not drop %s's partitions: %s", device, exc.message)


def deploy_image(image_dir: str, disk_spec: str | None, progress: Progress, partition: int | None = None,
                 hostname: str | None = None, remote: RemoteSource | None = None) -> dict[str, Any]:
    """The image at ``image_dir`` onto the disk ``disk_spec`` names; on failure after the first write, blank.
    ``remote``: the streams come from there (HTTP), ``image_dir`` holds the manifest and small files only."""
    with process.interruptible(), BlankOnFailure() as written:
        try:
            return _deploy_image(image_dir, disk_spec, progress, partition, hostname, written, remote)
        except Interrupted as exc:
            exc.hint = INTERRUPTED_HINT if written.devices else "Stopped before anything was written. Deploy again."
            raise


def _deploy_image(image_dir: str, disk_spec: str | None, progress: Progress, partition: int | None,
                  hostname: str | None, written: BlankOnFailure, remote: RemoteSource | None = None) -> dict[str, Any]:
    if not os.path.exists(os.path.join(image_dir, manifest.MANIFEST)) and foreign.detect(image_dir):
        from imager.ops.deploy_foreign import deploy_foreign
        return deploy_foreign(image_dir, disk_spec, progress, written, hostname)
    started = time.monotonic()
    if hostname:
        postdeploy.check_hostname(hostname)  # a wrong name fails the task before anything is written
    image = manifest.load(image_dir, remote.size_of if remote else None)
    entries = image["disks"]
    targets = select_targets(image, disk_spec)
    source: StreamSource = remote or ImageFiles(image_dir, image["files"])
    transfer = Transfer()  # chunked images: reused, fetched, wrote
    if chunked(image):
        progress.figures = transfer.figures
    if entries[0].get("mode") == "raw":
        check_raw_target(entries[0], targets[0])
        refuse_if_mounted(targets[0].path)
        written.writing(targets[0].path)
        restore_raw_disk(entries[0], targets[0], source, progress)
        return {"image": image.get("name"), "disk": targets[0].path, "raw_bytes": entries[0]["raw_bytes"],
                "seconds": round(time.monotonic() - started, 1), "partitions": 0}
    if partition is not None:
        layout = Layout.from_dict(entries[0]["layout"])
        manifest.check_sector_size(layout, targets[0].logical_sector_size, targets[0].path)
        return deploy_one_partition(image_dir, image, targets[0], partition, progress, written, source)
    # Every disk is checked and planned before the first byte is written to any of them.
    plans = [plan_disk(image, entry, target) for entry, target in zip(entries, targets)]
    for target in targets:
        refuse_if_mounted(target.path)
    for entry in entries:  # a damaged table file of any disk refuses the image before the first write
        manifest.verify_small_files(image_dir, image["files"], manifest.small_files(entry))
    for entry, target, planned in zip(entries, targets, plans):
        reuse = chunked_disk(entry) and incremental.reuse_disk(target.path, planned)
        written.writing(target.path)
        write_disk_table(image_dir, image, entry, target, planned)
        restore_disk(image_dir, entry, target, planned, source, progress, transfer, reuse)
    renamed = set_hostname(targets, entries, hostname)
    process.run(["sync"], check=False)
    elapsed = time.monotonic() - started
    parts = [p for entry in entries for p in entry["partitions"]]
    raw = sum(p["raw_bytes"] for p in parts)
    where = ", ".join(t.path for t in targets)
    log.info("image %r deployed onto %s: %s in %.1f s", image.get("name"), where, human(raw), elapsed)
    result = {"image": image.get("name"), "disk": where, "raw_bytes": raw, "seconds": round(elapsed, 1),
              "partitions": len(parts), "disks": len(targets), "hostname_set": renamed}
    if chunked(image):
        result.update(transfer.figures())
        log.info("reused %s, fetched %s, wrote %s", human(transfer.reused), human(transfer.fetched), human(transfer.wrote))
    return result


class StreamSource(Protocol):
    """Where an image's streams come from: its files on the storage node, or a multicast receiver."""

    label: str   # in front of the progress stage ("" or "multicast: ")

    def restore(self, file: str, tool: str, device: str, progress: Progress, shrunk: bool = False) -> None:
        """Stream ``file`` (stored bytes, checked against the manifest) through partclone onto ``device``."""

    def restore_chunks(self, image_dir: str, file: str, tool: str, device: str, progress: Progress,
                       transfer: Transfer, reuse: bool = False, shrunk: bool = False) -> None:
        """A chunked partition (its index ``file``) onto ``device``, counted in ``transfer``; ``reuse``: the
        target's own blocks may be kept where they match."""


class RemoteSource(StreamSource, Protocol):
    """Streams read from elsewhere (HTTP: imager/httpstore.py), with the sizes the manifest is checked against."""

    def size_of(self, file: str) -> int | None:
        """The file's size there; None: it is not there."""


class ImageFiles(incremental.FromChunkStore):
    """The image's files, read from the storage node."""

    label = ""

    def __init__(self, image_dir: str, files: Mapping[str, FileEntry]) -> None:
        self.image_dir = image_dir
        self.files = files
        self._chunks: LocalChunks | None = None

    def restore(self, file: str, tool: str, device: str, progress: Progress, shrunk: bool = False) -> None:
        meta = self.files[file]
        with open(os.path.join(self.image_dir, file), "rb") as src:
            datapath.restore_stream(src, file, tool, device, expected_sha256=meta.get("sha256"),
                                    expected_size=meta.get("size"), on_progress=progress.add,
                                    on_stored=progress.add_stored, shrunk=shrunk)

    def chunk_reader(self) -> ChunkReader:
        if self._chunks is None:  # the node's store: the image directory is <root>/.images/<version>
            self._chunks = LocalChunks(store_root(self.image_dir))
        return self._chunks


def select_targets(image: Manifest, disk_spec: str | None) -> list[disks.Disk]:
    """The disk (or, for an all-disks image, the disks in order) the image goes to."""
    several = image.get("image_type") == "alldisks"
    return targets_for(len(image["disks"]) if several else 1, disk_spec, several)


def targets_for(wanted: int, disk_spec: str | None, several: bool = False) -> list[disks.Disk]:
    """``wanted`` target disks: the one ``disk_spec`` names, or (several) the ones it lists, default every fixed disk."""
    if not several and wanted == 1:
        return [disks.select(disk_spec)]
    targets = disks.select_all(disk_spec)
    if len(targets) < wanted:
        raise DiskNotFound(f"the image holds {wanted} disks, this machine offers {len(targets)} "
                           f"({', '.join(t.path for t in targets)})", hint="Add disks, or name them in the task's disk field.")
    if len(targets) > wanted:
        log.info("the image holds %d disks: %s left untouched", wanted, ", ".join(t.path for t in targets[wanted:]))
    return targets[:wanted]


def plan_disk(image: Manifest, entry: DiskEntry, target: disks.Disk) -> Layout:
    """The layout this disk will get; refuses a target that cannot take it."""
    layout = Layout.from_dict(entry["layout"])
    manifest.check_sector_size(layout, target.logical_sector_size, target.path)
    if image.get("image_type") == "resizable":
        return resize.plan(layout, shrunk_sizes(entry), target.size_bytes // layout.sector_size)
    manifest.check_target(entry, target.size_bytes, target.logical_sector_size, target.path)
    return layout


def shrunk_sizes(entry: DiskEntry) -> dict[int, int]:
    """Partitions captured with their filesystem shrunk, and that size."""
    sizes = {p["number"]: p.get("fs_bytes") for p in entry.get("partitions", [])}
    return {number: size for number, size in sizes.items() if size}


def write_disk_table(image_dir: str, image: Manifest, entry: DiskEntry, target: disks.Disk,
                     planned: Layout) -> None:
    """The table and boot area (checked against the manifest first), and the kernel told of the partitions."""
    layout = Layout.from_dict(entry["layout"])
    log.info("deploying image %r disk %d (%d partitions) onto %s (%s)", image.get("name"), entry["index"],
             len(layout.partitions), target.path, human(target.size_bytes))
    manifest.verify_small_files(image_dir, image["files"], manifest.small_files(entry))
    restore_table(target.path, layout, image_dir, entry["table_files"], target.size_bytes, planned)
    disks.reread_partitions(target.path, [p.number for p in layout.partitions])


def restore_disk(image_dir: str, entry: DiskEntry, target: disks.Disk, planned: Layout, source: StreamSource,
                 progress: Progress, transfer: Transfer | None = None, reuse: bool = False) -> None:
    """Each partition (or logical volume) from ``source``, then grow what was captured shrunk."""
    parts = entry["partitions"]
    shrunk = shrunk_sizes(entry)
    original = {p.number: p.sectors for p in Layout.from_dict(entry["layout"]).partitions}
    # xfs/btrfs were captured at full size: they only need growing when their partition grew.
    for p in planned.partitions:
        if p.fstype in filesystems.GROW_ONLY and p.sectors <= original[p.number]:
            shrunk.pop(p.number, None)
    for i, part in enumerate(parts, 1):
        device = disks.partition_path(target.path, part["number"])
        stage = f"{source.label}{'disk %d, ' % entry['index'] if entry['index'] > 1 else ''}partition {i}/{len(parts)}"
        if part["tool"] == filesystems.SWAP:
            filesystems.recreate_swap(device, part.get("uuid") or "", part.get("label") or "")
        elif part["tool"] == lvm.TOOL:
            restore_volume_group(image_dir, part, device, source, progress, stage)
        elif part["tool"] != filesystems.CONTAINER:
            restore_partition(part, target.path, source, progress, stage, image_dir, transfer, reuse)
    # Grown only once every stream is in: a multicast receiver that stopped to grow between two streams
    # would come late for the next one, which the others' sender does not wait for forever.
    for part in parts:
        if part["number"] in shrunk:  # captured shrunk: fill the partition again
            filesystems.grow(disks.partition_path(target.path, part["number"]), part["fstype"] or "")


def check_raw_target(entry: DiskEntry, target: disks.Disk) -> None:
    """A raw image needs a disk at least as large, with the same sector size."""
    if entry["sector_size"] != target.logical_sector_size:
        raise SectorSizeMismatch(f"the image has {entry['sector_size']}-byte sectors, {target.path} has "
                                 f"{target.logical_sector_size}-byte sectors")
    if target.size_bytes < entry["size_bytes"]:
        raise DiskTooSmall(f"{target.path} holds {target.size_bytes} bytes, the raw image is {entry['size_bytes']}")


def restore_raw_disk(entry: DiskEntry, target: disks.Disk, source: StreamSource, progress: Progress) -> None:
    """A raw image: every byte back."""
    progress.set_stage(f"{source.label}whole disk {target.path}", total=entry["raw_bytes"])
    source.restore(entry["file"], partclone.RAW, target.path, progress)
    progress.flush()
    process.run(["partprobe", target.path], check=False)


def set_hostname(targets: list[disks.Disk], entries: list[DiskEntry], hostname: str | None) -> dict[str, list[str]]:
    """The task's hostname on every Linux root and Windows system deployed: the partitions changed."""
    if not hostname:
        return {}
    renamed: dict[str, list[str]] = {"linux": [], "windows": []}
    for target, entry in zip(targets, entries):
        on_disk = [dict(p) for p in entry.get("partitions", [])]
        renamed["linux"] += postdeploy.set_linux_hostname(target.path, on_disk, hostname)
        renamed["windows"] += set_windows_hostname(target.path, on_disk, hostname)
    return renamed


def deploy_one_partition(image_dir: str, image: Manifest, target: disks.Disk, number: int,
                         progress: Progress, written: BlankOnFailure,
                         source: StreamSource | None = None) -> dict[str, Any]:
    """Only partition ``number`` (FOG's imgPartitionType=N): the target's table is left as it is."""
    entry = image["disks"][0]
    part = next((p for p in entry["partitions"] if p["number"] == number), None)
    if part is None or not (part.get("file") or part.get("lvm")):
        raise InvalidImage(f"the image has no data for partition {number}")
    device = disks.partition_path(target.path, number)  # DiskNotFound if the target lacks it
    sector_size = entry["layout"]["sector_size"]
    original = next(p for p in entry["layout"]["partitions"] if p["number"] == number)
    needed = part.get("fs_bytes") or original["sectors"] * sector_size
    with open(device, "rb") as f:
        have = f.seek(0, os.SEEK_END)
    if have < needed:
        raise DiskTooSmall(f"{device} holds {have} bytes, partition {number} of the image needs {needed}")
    refuse_if_mounted(target.path)
    started = time.monotonic()
    source = source or ImageFiles(image_dir, image["files"])
    if part["tool"] == lvm.TOOL:
        manifest.verify_small_files(image_dir, image["files"], manifest.small_files({"partitions": [part]}))
    written.writing(device)  # only this partition: the rest of the disk and its table stay
    if part["tool"] == lvm.TOOL:
        restore_volume_group(image_dir, part, device, source, progress, f"partition {number}")
    else:
        restore_partition(part, target.path, source, progress, f"partition {number}", image_dir, Transfer())
    if part.get("fs_bytes") and (part["fstype"] in filesystems.SHRINKABLE or have > original["sectors"] * sector_size):
        filesystems.grow(device, part["fstype"] or "")  # captured shrunk, or xfs/btrfs in a larger partition
    return {"image": image.get("name"), "disk": target.path, "raw_bytes": part["raw_bytes"],
            "seconds": round(time.monotonic() - started, 1), "partitions": 1}


def restore_partition(part: PartitionEntry, disk_path: str, source: StreamSource, progress: Progress,
                      stage: str, image_dir: str, transfer: Transfer | None = None, reuse: bool = False) -> None:
    device = disks.partition_path(disk_path, part["number"])
    progress.set_stage(f"{stage}: {os.path.basename(device)} ({part.get('fstype') or 'raw'})",
                       total=part["raw_bytes"])
    assert part["file"] is not None  # a partition with a tool to stream has its file (manifest.validate)
    shrunk = part.get("fs_bytes") is not None and part.get("fstype") in filesystems.SHRINKABLE
    if part.get("chunks"):
        source.restore_chunks(image_dir, part["file"], part["tool"], device, progress, transfer or Transfer(), reuse,
                              shrunk)
    else:
        source.restore(part["file"], part["tool"], device, progress, shrunk=shrunk)
    progress.flush()


def restore_volume_group(image_dir: str, part: PartitionEntry, device: str, source: StreamSource,
                         progress: Progress, stage: str) -> None:
    """An LVM physical volume: the PV and its group's exact layout first, then each logical volume."""
    group = part["lvm"]
    if group is None:
        raise InvalidImage(f"partition {part['number']} is an LVM volume without its group")
    lvm.recreate(device, group["vg"], group["pv_uuid"], os.path.join(image_dir, group["metadata"]))
    with lvm.activated(group["vg"]):
        for vol in group["volumes"]:
            lv_device = lvm.volume_device(group["vg"], vol["name"])
            if vol["tool"] == filesystems.SWAP:
                filesystems.recreate_swap(lv_device, vol["fs_uuid"] or "", vol["label"] or "")
                continue
            progress.set_stage(f"{stage}: {group['vg']}/{vol['name']} ({vol['fstype'] or 'raw'})",
                               total=vol["raw_bytes"])
            file = vol.get("file")
            if not file:
                raise InvalidImage(f"volume {group['vg']}/{vol['name']} has no stream")
            source.restore(file, vol["tool"], lv_device, progress)
            progress.flush()


def chunked_disk(entry: DiskEntry) -> bool:
    return any(p.get("chunks") for p in entry.get("partitions", []))


def chunked(image: Manifest) -> bool:
    return any(chunked_disk(entry) for entry in image["disks"])
