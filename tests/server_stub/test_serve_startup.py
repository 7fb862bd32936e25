"""What serve writes at start (server_stub/startup.py): atomic, and checked at the next start."""
import os
import subprocess
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
