"""The human CLI: help on every option, --version, and asking before overwriting (real loop devices, a pty)."""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys

import pexpect
import pytest

import imager
from imager import cli
from tests.disktools import attached

MiB = 1024 * 1024
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLI = [sys.executable, "-m", "imager.cli"]


def _parsers(parser: argparse.ArgumentParser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def test_every_option_and_argument_has_help():
    missing = [f"{parser.prog}: {'/'.join(action.option_strings) or action.dest}"
               for parser in _parsers(cli.build_parser()) for action in parser._actions
               if not isinstance(action, argparse._SubParsersAction) and not action.help]
    assert missing == []


def test_deploy_help_says_what_verify_first_costs(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["deploy", "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--verify-first" in text and "Costs one more full read of the image" in text


def test_version_names_imager_and_the_manifest_format(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"imager {imager.__version__} (image manifest imager-image version 1)"


def resizable_image(path, fs_bytes: int | None) -> str:
    """A resizable image's manifest (256 MiB GPT disk: p1 40 MiB, p2 200 MiB captured with ``fs_bytes``)."""
    path.mkdir()
    files = {}
    for name in ("d1.sfdisk", "d1p1.pcl.zst", "d1p2.pcl.zst"):
        (path / name).write_bytes(name.encode())
        files[name] = {"size": len(name), "sha256": hashlib.sha256(name.encode()).hexdigest()}
    layout = {"label": "gpt", "sector_size": 512, "disk_sectors": 524288,
              "partitions": [{"number": 1, "start": 2048, "sectors": 81920, "kind": "normal"},
                             {"number": 2, "start": 83968, "sectors": 409600, "kind": "normal"}]}
    parts = [{"number": 1, "fstype": "vfat", "tool": "fat", "file": "d1p1.pcl.zst", "raw_bytes": 1, "stored_bytes": 1},
             {"number": 2, "fstype": "ext4", "tool": "extfs", "file": "d1p2.pcl.zst", "raw_bytes": 1,
              "stored_bytes": 1, "fs_bytes": fs_bytes}]
    image = {"format": "imager-image", "version": 1, "name": "r", "created": "2026-12-05T19:00:00Z",
             "image_type": "resizable", "compression": {}, "tools": {}, "source": {}, "files": files,
             "disks": [{"index": 1, "mode": "partitions", "layout": layout, "table_files": {"sfdisk": "d1.sfdisk"},
                        "partitions": parts}]}
    (path / "manifest.json").write_text(json.dumps(image))
    return str(path)


def test_info_shows_the_smallest_disk_a_resizable_image_fits(tmp_path, capsys):
    """p2 (200 MiB) holds a 50 MiB filesystem: the disk can be 150 MiB smaller than the source's 256 MiB."""
    assert cli.main(["info", resizable_image(tmp_path / "r", 50 * MiB)]) == 0
    assert "fits any disk of at least 106.0 MiB (111149056 bytes)" in capsys.readouterr().out
    from imager import manifest, resize
    entry = manifest.load(str(tmp_path / "r"))["disks"][0]
    layout = manifest.Layout.from_dict(entry["layout"])
    resize.plan(layout, {2: 50 * MiB}, 111149056 // 512)          # deploy's own plan: that size fits …
    with pytest.raises(resize.DiskTooSmall):
        resize.plan(layout, {2: 50 * MiB}, 111149056 // 512 - 1)  # … one sector less does not


def test_info_of_a_resizable_image_without_a_shrunk_filesystem_needs_its_layout(tmp_path, capsys):
    assert cli.main(["info", resizable_image(tmp_path / "r", None)]) == 0
    assert f"fits any disk of at least 241.0 MiB ({(83968 + 409600) * 512 + 33 * 512} bytes)" in capsys.readouterr().out


# --- asking before overwriting: real disks (loop devices), a real terminal (pty) ---------------------------

def sh(*argv: str, **kwargs) -> None:
    subprocess.run(argv, check=True, capture_output=True, **kwargs)


def partitioned_disk(path, mib: int = 100) -> str:
    """Two ext4 partitions."""
    with open(path, "wb") as f:
        f.truncate(mib * MiB)
    subprocess.run(["sfdisk", "--quiet", str(path)], input=b"label: gpt\n,30M,L\n,,L\n", check=True)
    with attached(path) as dev:
        for n in ("1", "2"):
            sh("mkfs.ext4", "-q", "-F", f"{dev}p{n}")
    return str(path)


def digest(path) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def run_in_pty(args: list[str], answer: str | None, expect: str) -> tuple[int, str]:
    """``imager ARGS`` on a terminal: waits for ``expect``, types ``answer``; returns the exit status and output."""
    child = pexpect.spawn(CLI[0], CLI[1:] + args, cwd=REPO, encoding="utf-8", timeout=120)
    try:
        child.expect(expect)
        if answer is not None:
            child.sendline(answer)
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    return child.exitstatus, (child.before or "")


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> str:
    """A captured multipart image of a partitioned disk (captured once for the module)."""
    base = tmp_path_factory.mktemp("cli")
    source = partitioned_disk(base / "source.img")
    (base / "store").mkdir()
    with attached(source) as dev:
        sh(*CLI, "capture", "--format", "stream", "--type", "multipart", dev, str(base / "store" / "img"), cwd=REPO)
    return str(base / "store" / "img")


@pytest.mark.root
def test_deploy_onto_a_partitioned_disk_asks_and_no_writes_nothing(tmp_path, image):
    target = partitioned_disk(tmp_path / "target.img")
    before = digest(target)
    with attached(target) as dev:
        status, _ = run_in_pty(["deploy", image, dev], "n", r"holds partitions \(.*p1 30\.0 MiB, .*p2 .*\): overwrite\? \[y/N\] ")
    assert status == cli.NOT_CONFIRMED
    assert digest(target) == before


@pytest.mark.root
def test_deploy_without_a_terminal_refuses_unless_told_yes(tmp_path, image):
    target = partitioned_disk(tmp_path / "target.img")
    before = digest(target)
    with attached(target) as dev:
        refused = subprocess.run(CLI + ["deploy", image, dev], capture_output=True, text=True, cwd=REPO,
                                 stdin=subprocess.DEVNULL)
        assert refused.returncode == cli.NOT_CONFIRMED
        assert "holds partitions" in refused.stderr and "pass --yes" in refused.stderr
        assert "Traceback" not in refused.stderr
        assert digest(target) == before
        done = subprocess.run(CLI + ["deploy", "--yes", image, dev], capture_output=True, text=True, cwd=REPO,
                              stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout.splitlines()[-1])["partitions"] == 2
        assert "overall" in done.stderr    # the progress lines carry the overall figure
    assert digest(target) != before


@pytest.mark.root
def test_deploy_onto_a_blank_disk_asks_nothing(tmp_path, image):
    target = tmp_path / "blank.img"
    with open(target, "wb") as f:
        f.truncate(100 * MiB)
    with attached(target) as dev:
        done = subprocess.run(CLI + ["deploy", image, dev], capture_output=True, text=True, cwd=REPO,
                              stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr


@pytest.mark.root
def test_capture_over_an_existing_image_asks_before_replacing(tmp_path, image):
    store = tmp_path / "store"
    store.mkdir()
    link = store / "img"
    os.symlink(os.path.realpath(image), link)  # a published image (its version directory lives elsewhere)
    source = partitioned_disk(tmp_path / "source.img")
    with attached(source) as dev:
        status, _ = run_in_pty(["capture", dev, str(link)], "n", r"image .*img exists, created .* and would be "
                                                                 r"replaced: overwrite\? \[y/N\] ")
        assert status == cli.NOT_CONFIRMED
        assert os.readlink(link) == os.path.realpath(image) and not (store / ".images").exists()
        refused = subprocess.run(CLI + ["capture", dev, str(link)], capture_output=True, text=True, cwd=REPO,
                                 stdin=subprocess.DEVNULL)
        assert refused.returncode == cli.NOT_CONFIRMED and "pass --yes" in refused.stderr
        assert os.readlink(link) == os.path.realpath(image)
        status, output = run_in_pty(["capture", dev, str(link)], "y", r"overwrite\? \[y/N\] ")
    assert status == 0, output
    assert os.readlink(link).startswith(".images/img@")   # replaced by the new capture


@pytest.mark.root
def test_verify_first_refuses_a_damaged_image_before_the_first_write(tmp_path, image):
    """Without --verify-first, the damaged second stream is found after the table and partition 1 are written."""
    damaged = tmp_path / "damaged"
    sh("cp", "-a", os.path.realpath(image), str(damaged))
    stream = damaged / "d1p2.pcl.zst"
    with open(stream, "r+b") as f:
        f.seek(os.path.getsize(stream) // 2)
        f.write(b"\0\1\2\3")
    target = partitioned_disk(tmp_path / "target.img")
    before = digest(target)
    with attached(target) as dev:
        result = subprocess.run(CLI + ["deploy", "--verify-first", "--yes", str(damaged), dev], capture_output=True,
                                text=True, cwd=REPO, stdin=subprocess.DEVNULL)
    assert result.returncode == 1
    assert "ok   d1p1.pcl.zst" in result.stdout and "BAD  d1p2.pcl.zst" in result.stdout
    assert "error (checksum_mismatch)" in result.stderr and "Nothing was written" in result.stderr
    assert digest(target) == before
