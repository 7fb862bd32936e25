"""The agent runs only in imager's boot environment; elsewhere it refuses at once and never reboots."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from imager import bootenv
from imager.errors import NotBootEnvironment

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def fake_root(tmp_path, marker: bool, cmdline: str):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "cmdline").write_text(cmdline + "\n")
    if marker:
        (tmp_path / "etc").mkdir()
        (tmp_path / "etc" / "imager-boot-environment").write_text("imager boot image\n")
    return str(tmp_path)


def test_the_boot_image_with_imager_parameters_is_the_boot_environment(tmp_path):
    root = fake_root(tmp_path, True, "initrd=initrd.img imager.server=http://10.0.0.1:8080 imager.task=4")
    assert bootenv.not_boot_environment(root) is None


def test_without_the_marker_file_it_is_not(tmp_path):
    root = fake_root(tmp_path, False, "imager.server=http://10.0.0.1:8080 imager.task=4")
    assert "/etc/imager-boot-environment is missing" in bootenv.not_boot_environment(root)


def test_without_imager_parameters_it_is_not(tmp_path):
    root = fake_root(tmp_path, True, "BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro quiet")
    assert "no imager.* parameter" in bootenv.not_boot_environment(root)


def test_power_refuses_outside_the_boot_environment(monkeypatch):
    monkeypatch.setattr(bootenv, "not_boot_environment", lambda root="/": "a test machine")
    ran = []
    monkeypatch.setattr(bootenv.process, "run", lambda argv, **kw: ran.append(argv))
    with pytest.raises(NotBootEnvironment, match="a test machine"):
        bootenv.power("reboot")
    assert ran == []


@pytest.mark.skipif(os.path.exists(bootenv.MARKER), reason="this machine is an imager boot image")
@pytest.mark.parametrize("argv", [["-m", "imager"], ["-m", "imager.cli", "agent"]])
def test_the_agent_on_an_ordinary_machine_refuses_quickly_with_a_reason(argv):
    started = time.monotonic()
    done = subprocess.run([sys.executable, *argv], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 3
    assert "imager: error (not_boot_environment): imager agent refuses to run here" in done.stderr
    assert "/etc/imager-boot-environment is missing" in done.stderr
    assert "reboot in" not in done.stdout + done.stderr and "Traceback" not in done.stderr
    assert time.monotonic() - started < 30  # no countdown
