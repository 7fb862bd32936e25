"""``imager``: the same ops from a shell, outside the boot environment too.

    imager capture DISK IMAGE_DIR     save DISK as the image IMAGE_DIR (published atomically)
    imager deploy IMAGE_DIR DISK      lay the image onto DISK (--partition N: only that partition)
    imager verify IMAGE_DIR           check every stored file against the manifest (offline, no disk)
    imager info IMAGE_DIR             what the image holds
    imager agent                      the boot-environment agent (what the initramfs runs)

Exit status 0 only on success; errors print their reason and what to do.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any

from imager import datapath, imagestore, manifest
from imager.errors import ChecksumMismatch, ImagerError
from imager.progress import Progress, console_sink, human

from contract.vocabulary import IMAGE_TYPES


def _cmd_capture(args: argparse.Namespace) -> dict[str, Any]:
    from imager.ops.capture import capture_image
    target = os.path.abspath(args.image_dir)
    return capture_image(args.disk, os.path.dirname(target), os.path.basename(target), Progress([console_sink]),
                         image_type=args.type)


def _cmd_deploy(args: argparse.Namespace) -> dict[str, Any]:
    from imager.ops.deploy import deploy_image
    return deploy_image(imagestore.resolve_path(args.image_dir), args.disk, Progress([console_sink]),
                        partition=args.partition, hostname=args.hostname)


def _cmd_verify(args: argparse.Namespace) -> dict[str, Any]:
    """Every stored file against the manifest's size and SHA-256; no disk needed."""
    image_dir = imagestore.resolve_path(args.image_dir)
    image = manifest.load(image_dir)
    bad = []
    for name, meta in sorted(image["files"].items()):
        size, sha = datapath.hash_file(os.path.join(image_dir, name))
        ok = size == meta["size"] and sha == meta["sha256"]
        print(f"{'ok ' if ok else 'BAD'}  {name}  {human(size)}")
        if not ok:
            bad.append(name)
    if bad:
        raise ChecksumMismatch(f"{len(bad)} file(s) do not match the manifest: {', '.join(bad)}")
    return {"verified_files": len(image["files"])}


def _cmd_info(args: argparse.Namespace) -> dict[str, Any]:
    image = manifest.load(imagestore.resolve_path(args.image_dir))
    print(f"image {image['name']} ({image.get('image_type')})  created {image['created']}")
    for disk in image["disks"]:
        if disk.get("mode") == "raw":
            print(f"  disk {disk['index']}: raw, {human(disk['size_bytes'])}  {disk['file']}")
            continue
        layout = disk["layout"]
        print(f"  disk {disk['index']}: table {layout['label']}  sector {layout['sector_size']}  "
              f"needs {human(manifest.Layout.from_dict(layout).required_bytes)}")
        for part in disk["partitions"]:
            print(f"    p{part['number']}: {part['fstype'] or 'raw':11} {human(part['raw_bytes']):>10} → "
                  f"{human(part['stored_bytes']):>10}  {part['file'] or part['tool']}")
            group = part.get("lvm")
            vg = group["vg"] if group else ""
            for vol in group["volumes"] if group else []:
                print(f"      {vg}/{vol['name']}: {vol['fstype'] or 'raw':6} "
                      f"{human(vol['raw_bytes']):>10} → {human(vol['stored_bytes']):>10}  {vol['file'] or vol['tool']}")
    return {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imager", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("capture", help="save a disk into an image")
    p.add_argument("--type", default="resizable", choices=IMAGE_TYPES,
                   help="resizable (default): filesystems shrunk for capture, then grown back; the image fits any "
                        "disk its data fits. multipart: the exact layout. alldisks: several disks (DISK is "
                        "/dev/sda,/dev/sdb), each with its exact layout. raw: every byte of the disk")
    p.add_argument("disk", help="/dev/… or serial=…, wwn=…, size=…, model=…; alldisks: a comma-separated list")
    p.add_argument("image_dir")
    p.set_defaults(func=_cmd_capture)
    p = sub.add_parser("deploy", help="lay an image onto a disk")
    p.add_argument("--partition", type=int, default=None,
                   help="restore only this partition into the disk's existing partition of that number")
    p.add_argument("--hostname", default=None, help="the deployed system's name: Linux /etc/hostname, Windows ComputerName in the SYSTEM hive")
    p.add_argument("image_dir")
    p.add_argument("disk")
    p.set_defaults(func=_cmd_deploy)
    p = sub.add_parser("verify", help="check every file of an image against its manifest")
    p.add_argument("image_dir")
    p.set_defaults(func=_cmd_verify)
    p = sub.add_parser("info", help="show what an image holds")
    p.add_argument("image_dir")
    p.set_defaults(func=_cmd_info)
    sub.add_parser("agent", help="run the boot-environment agent (reads /proc/cmdline)")
    args = parser.parse_args(argv)
    if args.command == "agent":
        from imager.agent import main as agent_main
        return agent_main()
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    try:
        result = args.func(args)
    except ImagerError as exc:
        print(f"imager: error ({exc.code}): {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"imager: {exc.hint}", file=sys.stderr)
        return 1
    if result:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
