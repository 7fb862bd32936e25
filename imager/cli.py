"""``imager``: the same ops from a shell, outside the boot environment too.

    imager capture DISK IMAGE_DIR     save DISK as the image IMAGE_DIR (published atomically)
    imager deploy IMAGE_DIR DISK      lay the image onto DISK (--partition N: only that partition)
    imager verify IMAGE_DIR           decompress every stream, check every file against the manifest (no disk)
    imager info IMAGE_DIR             what the image holds, and the smallest disk it fits
(IMAGE_DIR may also be a FOG or Clonezilla image directory: deploy, verify and info read them as they are.)
    imager agent                      the boot-environment agent (what the initramfs runs)

Overwriting a disk that holds partitions, or replacing an image, asks first on a terminal;
scripts say --yes. Exit status 0 only on success, 1 on an error (its reason and what to do),
2 when nothing was done because it was not confirmed (or on a usage error).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any, Callable

import imager
from imager import foreign, imagestore, manifest, resize, verify
from imager.foreign import check as foreign_check
from imager.errors import ImagerError
from imager.manifest import DiskEntry
from imager.progress import Progress, console_sink, human, partition_bytes

from contract.manifest import FORMAT, VERSION
from contract.vocabulary import IMAGE_TYPES
from contract.task import DEFAULT_IMAGE_FORMAT, IMAGE_FORMATS

NOT_CONFIRMED = 2


class NotConfirmed(Exception):
    """The user said no, or could not be asked: nothing was written."""


def confirm(question: str, assume_yes: bool, ask: Callable[[str], str] = input) -> None:
    """Go on only if ``--yes`` was given or a person at a terminal answers yes."""
    if assume_yes:
        return
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise NotConfirmed(f"{question}: not on a terminal, so nobody can be asked; pass --yes to go on")
    try:
        answer = ask(f"{question}: overwrite? [y/N] ")
    except (EOFError, KeyboardInterrupt):
        answer = ""
    if answer.strip().lower() not in ("y", "yes"):
        raise NotConfirmed(f"{question}: not confirmed")


def disk_holdings(disk_path: str) -> list[str]:
    """The partitions the kernel shows on a disk ("sdb1 40.0 MiB"), or ["a partition table"] when only
    its signature is there (MBR 0x55AA, GPT "EFI PART")."""
    name = os.path.basename(os.path.realpath(disk_path))
    sys_dir = f"/sys/class/block/{name}"
    found = []
    for entry in sorted(os.listdir(sys_dir)) if os.path.isdir(sys_dir) else []:
        try:
            if entry.startswith(name) and os.path.exists(os.path.join(sys_dir, entry, "partition")):
                with open(os.path.join(sys_dir, entry, "size")) as f:
                    found.append(f"{entry} {human(int(f.read()) * 512)}")
        except (OSError, ValueError):
            continue
    if found:
        return found
    try:
        with open(disk_path, "rb") as f:
            head = f.read(4096 + 8)
    except OSError:
        return []
    gpt = head[512:520] == b"EFI PART" or head[4096:4104] == b"EFI PART"
    return ["a partition table"] if gpt or head[510:512] == b"\x55\xaa" else []


def _cmd_capture(args: argparse.Namespace) -> dict[str, Any]:
    from imager.ops.capture import capture_image
    target = os.path.abspath(args.image_dir)
    imagestore.require_store(os.path.dirname(target))  # a mistyped path is refused, not created
    if os.path.islink(target):
        created = ""
        try:
            created = f", created {manifest.load(target)['created']}"
        except ImagerError:
            pass
        confirm(f"image {target} exists{created} and would be replaced", args.yes)
    progress = Progress([console_sink])
    sources = args.disk.split(",") if args.type == "alldisks" else [args.disk]
    progress.expect(sum(partition_bytes(s) for s in sources if s.startswith("/dev/")))  # refined as it goes
    return capture_image(args.disk, os.path.dirname(target), os.path.basename(target), progress,
                         image_type=args.type, image_format=args.format)


def _cmd_deploy(args: argparse.Namespace) -> dict[str, Any]:
    from imager.ops.deploy import deploy_image, targets_for
    image_dir = imagestore.resolve_path(args.image_dir)
    ours = os.path.exists(os.path.join(image_dir, manifest.MANIFEST))
    image = manifest.load(image_dir) if ours else None
    other = foreign.load(image_dir) if _is_foreign(image_dir) else None
    wanted = len(image["disks"]) if image else len(other.disks) if other else 1
    several = image is not None and image.get("image_type") == "alldisks"
    for target in targets_for(wanted, args.disk, several):
        holdings = disk_holdings(target.path)
        if args.partition is not None:
            confirm(f"partition {args.partition} of {target.path} would be overwritten", args.yes)
        elif holdings:
            confirm(f"{target.path} holds partitions ({', '.join(holdings)})", args.yes)
    progress = Progress([console_sink])
    if args.verify_first and (image or other):
        checked = foreign_check.require_intact(other, progress, _print_check) if other else \
            verify.require_intact(image_dir, progress, _print_check)
        logging.getLogger(__name__).info("all %d checks of the image passed: deploying", checked)
    if image is not None:
        progress.expect(verify.stream_bytes(image, args.partition))
    return deploy_image(image_dir, args.disk, progress, partition=args.partition, hostname=args.hostname)


def _print_check(check: verify.FileCheck) -> None:
    print(f"{'ok ' if check.ok else 'BAD'}  {check.name}  {human(check.stored_bytes)}"
          + ("" if check.ok else f"  ({check.reason})"), flush=True)


def _cmd_verify(args: argparse.Namespace) -> dict[str, Any]:
    """Every stream decompressed and every file checked against the manifest; no disk needed."""
    image_dir = imagestore.resolve_path(args.image_dir)
    if _is_foreign(image_dir):
        return {"verified_files": foreign_check.require_intact(foreign.load(image_dir), None, _print_check)}
    _print_leftovers(args.image_dir)
    return {"verified_files": verify.require_intact(image_dir, None, _print_check)}


def _is_foreign(image_dir: str) -> bool:
    return foreign.detect(image_dir) is not None   # an image with manifest.json is ours


def _print_leftovers(image_path: str) -> None:
    for leftover in imagestore.leftovers_beside(image_path):
        print(f"  unfinished capture left behind: {leftover} (the next capture of this name removes it)")


def _cmd_info(args: argparse.Namespace) -> dict[str, Any]:
    image_dir = imagestore.resolve_path(args.image_dir)
    if _is_foreign(image_dir):
        print("\n".join(foreign_check.describe(foreign.load(image_dir))))
        return {}
    image = manifest.load(image_dir)
    print(f"image {image['name']} ({image.get('image_type')})  created {image['created']}")
    _print_leftovers(args.image_dir)
    for disk in image["disks"]:
        if disk.get("mode") == "raw":
            print(f"  disk {disk['index']}: raw, {human(disk['size_bytes'])}  {disk['file']}")
            continue
        layout = disk["layout"]
        if image.get("image_type") == "resizable":
            smallest = minimum_disk_bytes(disk)
            needs = f"fits any disk of at least {human(smallest)} ({smallest} bytes)"
        else:
            needs = f"needs {human(manifest.Layout.from_dict(layout).required_bytes)}"
        print(f"  disk {disk['index']}: table {layout['label']}  sector {layout['sector_size']}  {needs}")
        for part in disk["partitions"]:
            print(f"    p{part['number']}: {part['fstype'] or 'raw':11} {human(part['raw_bytes']):>10} → "
                  f"{human(part['stored_bytes']):>10}  {part['file'] or part['tool']}")
            group = part.get("lvm")
            vg = group["vg"] if group else ""
            for vol in group["volumes"] if group else []:
                print(f"      {vg}/{vol['name']}: {vol['fstype'] or 'raw':6} "
                      f"{human(vol['raw_bytes']):>10} → {human(vol['stored_bytes']):>10}  {vol['file'] or vol['tool']}")
    return {}


def minimum_disk_bytes(entry: DiskEntry) -> int:
    """The smallest disk a resizable image's disk deploys onto: the one deploy's own plan accepts."""
    from imager.ops.deploy import shrunk_sizes
    return resize.smallest_disk_bytes(manifest.Layout.from_dict(entry["layout"]), shrunk_sizes(entry))


def version_text() -> str:
    return f"imager {imager.__version__} (image manifest {FORMAT} version {VERSION})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imager", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--version", action="version", version=version_text(),
                        help="print imager's version and the image manifest format it reads and writes")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every command run and its output")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("capture", help="save a disk into an image")
    p.add_argument("--type", default="resizable", choices=IMAGE_TYPES,
                   help="resizable (default): filesystems shrunk for capture, then grown back; the image fits any "
                        "disk its data fits. multipart: the exact layout. alldisks: several disks (DISK is "
                        "/dev/sda,/dev/sdb), each with its exact layout. raw: every byte of the disk")
    p.add_argument("--format", default=DEFAULT_IMAGE_FORMAT, choices=IMAGE_FORMATS,
                   help="chunked (default): content-addressed chunks in DIR/.chunks, "
                        "shared by every image there; a later capture stores only what changed, and a deploy onto a "
                        "disk holding an earlier version writes only what differs. stream: one zstd file a partition "
                        "(docs/image-format.md)")
    p.add_argument("-y", "--yes", action="store_true",
                   help="replace an existing image of that name without asking (needed when not on a terminal)")
    p.add_argument("disk", help="/dev/… or serial=…, wwn=…, size=…, model=…; alldisks: a comma-separated list")
    p.add_argument("image_dir", help="the image to create or replace, e.g. /srv/images/lab1")
    p.set_defaults(func=_cmd_capture)
    p = sub.add_parser("deploy", help="lay an image onto a disk")
    p.add_argument("--partition", type=int, default=None,
                   help="restore only this partition into the disk's existing partition of that number")
    p.add_argument("--hostname", default=None,
                   help="the deployed system's name: Linux /etc/hostname, Windows ComputerName in the SYSTEM hive")
    p.add_argument("--verify-first", action="store_true",
                   help="before the first write, read and decompress every stream of the image and check it "
                        "against the manifest (what 'imager verify' does; FOG and Clonezilla images: their "
                        "checksum files and partclone's own checks). Costs one more full read of the image "
                        "and its decompression, about as long again as the deploy's own reading (an image of "
                        "20 GiB over 1 Gbit/s NFS: about 3 more minutes); without it, the streams are checked "
                        "while they are written and a damaged one fails the deploy midway")
    p.add_argument("-y", "--yes", action="store_true",
                   help="overwrite a disk that holds partitions without asking (needed when not on a terminal)")
    p.add_argument("image_dir", help="the image directory (or its published name's path)")
    p.add_argument("disk", help="/dev/… or serial=…, wwn=…, size=…, model=…; alldisks: a comma-separated list")
    p.set_defaults(func=_cmd_deploy)
    p = sub.add_parser("verify", help="decompress every stream of an image and check each file against its manifest")
    p.add_argument("image_dir", help="the image directory; nothing is written, no disk is needed")
    p.set_defaults(func=_cmd_verify)
    p = sub.add_parser("info", help="show what an image holds")
    p.add_argument("image_dir", help="the image directory")
    p.set_defaults(func=_cmd_info)
    sub.add_parser("agent", help="run the boot-environment agent (reads /proc/cmdline)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "agent":
        from imager.agent import main as agent_main
        return agent_main()
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    try:
        result = args.func(args)
    except NotConfirmed as exc:
        print(f"imager: {exc}; nothing was written", file=sys.stderr)
        return NOT_CONFIRMED
    except ImagerError as exc:
        print(f"imager: error ({exc.code}): {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"imager: {exc.hint}", file=sys.stderr)
        return getattr(exc, "exit_status", 1)  # Interrupted: 128 + the signal, as a shell reports it
    if result:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
