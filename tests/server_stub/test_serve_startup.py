"""What serve writes at start (server_stub/startup.py): atomic, and checked at the next start."""
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from server_stub import startup

UNDIONLY = Path("/usr/lib/ipxe/undionly.kpxe")


def test_a_truncated_boot_binary_is_written_again_and_a_custom_one_kept(tmp_path, caplog):
    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(100_000))
    custom = tmp_path / "custom-source.bin"
    custom.write_bytes(b"debian's")
    (tmp_path / "truncated.bin").write_bytes(source.read_bytes()[:4096])  # an interrupted copy
    (tmp_path / "custom.bin").write_bytes(b"an admin's own build")
    (tmp_path / "empty.bin").write_bytes(b"")
    written = startup.install_boot_binaries(tmp_path, {"truncated.bin": str(source), "custom.bin": str(custom),
                                                       "empty.bin": str(source), "new.bin": str(source),
                                                       "absent.bin": str(tmp_path / "not-installed")})
    assert sorted(written) == ["empty.bin", "new.bin", "truncated.bin"]
    for name in written:
        assert (tmp_path / name).read_bytes() == source.read_bytes()
    assert (tmp_path / "custom.bin").read_bytes() == b"an admin's own build"
    assert not (tmp_path / "absent.bin").exists()
    assert "truncated.bin holds 4096 of" in caplog.text and "an interrupted copy" in caplog.text
    assert startup.install_boot_binaries(tmp_path, {"truncated.bin": str(source)}) == []  # whole now: left alone
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_an_empty_admin_token_is_replaced_and_a_good_one_kept(tmp_path, caplog):
    token_file = tmp_path / "admin.token"
    token_file.write_text("\n")
    token = startup.ensure_admin_token(token_file)
    assert len(token) >= 40 and token_file.read_text() == token + "\n"
    assert oct(token_file.stat().st_mode & 0o777) == "0o600"
    assert "was empty" in caplog.text
    assert startup.ensure_admin_token(token_file) == token


@pytest.fixture
def tiny_disk(tmp_path):
    mount = tmp_path / "tiny"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_write_that_fails_on_a_full_disk_leaves_the_old_file_and_no_temporary(tiny_disk):
    target = tiny_disk / "undionly.kpxe"
    target.write_bytes(b"old")
    with pytest.raises(OSError) as full:
        startup.write_atomically(target, os.urandom(200_000))
    assert full.value.errno == 28  # ENOSPC
    assert target.read_bytes() == b"old" and os.listdir(tiny_disk) == ["undionly.kpxe"]


def test_a_real_server_started_over_a_failed_first_start_serves_whole_files(server):
    tftp_root, token_file = server["data"] / "tftp", server["data"] / "admin.token"
    (tftp_root / "undionly.kpxe").write_bytes(UNDIONLY.read_bytes()[:1000])  # what a failed first start left
    token_file.write_text("")
    server["restart"]()
    got = subprocess.run(["curl", "-s", "--max-time", "20", f"tftp://127.0.0.1:{server['tftp_port']}/undionly.kpxe"],
                         capture_output=True)
    assert got.returncode == 0 and got.stdout == UNDIONLY.read_bytes()
    assert len(token_file.read_text().strip()) >= 40


def _serve(tmp_path: Path, http_port: int, tftp_port: int) -> subprocess.CompletedProcess:
    (tmp_path / "boot").mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-m", "server_stub", "serve", "--bind", "127.0.0.1",
                           "--http-port", str(http_port), "--tftp-port", str(tftp_port),
                           "--data-dir", str(tmp_path / "data"), "--boot-dir", str(tmp_path / "boot")],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("taken", ["http", "tftp"])
def test_a_port_in_use_stops_serve_with_one_line_and_says_the_boot_files_are_missing(tmp_path, taken):
    kind = socket.SOCK_STREAM if taken == "http" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as holder:
        holder.bind(("127.0.0.1", 0))
        if taken == "http":
            holder.listen()
        port = holder.getsockname()[1]
        done = _serve(tmp_path, port if taken == "http" else 0, port if taken == "tftp" else 0)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"imager-server: cannot listen for {taken.upper()} on 127.0.0.1 port {port}:")
    # Said at start, before the first machine finds out (the boot dir given is empty).
    assert "has no vmlinuz or initrd.img" in done.stderr
