"""The NVMe side of a full wipe: which erase a drive's ``nvme id-ctrl`` allows, and the sanitize that follows.

This host has no NVMe drive, so the sanitize branch runs against a stand-in ``nvme`` program on PATH: it
records its argv and answers with JSON shaped like Debian 12's nvme-cli 2.3 prints. Wiping real disks
(write passes on loop devices) is in test_wipe_disktest_debug_on_loop_devices.py.
"""
from __future__ import annotations

import json
import os
import sys

import pytest

from imager import process
from imager.errors import SanitizeFailed
from imager.ops import wipe
from imager.progress import Progress

_REAL_POPEN = process._popen  # taken before conftest's no_shelling_out replaces it: the stand-in must run

# `nvme id-ctrl /dev/nvme0 -o json` of a data-centre drive, trimmed to the fields around the ones wipe reads
ID_CTRL = {"vid": 5197, "ssvid": 5197, "sn": "S64FNE0R812345      ", "mn": "SAMSUNG MZQL2960HCJR-00A07             ",
           "fr": "GDC5602Q", "rab": 2, "ieee": 9528, "cmic": 0, "mdts": 9, "cntlid": 6, "ver": 66560,
           "oacs": 95, "acl": 7, "aerl": 3, "frmw": 23, "lpa": 14, "elpe": 255, "npss": 1, "avscc": 1,
           "wctemp": 353, "cctemp": 356, "sanicap": 1610612739, "oncs": 95, "fna": 4, "vwc": 6, "nn": 32,
           "subnqn": "nqn.1994-11.com.samsung:nvme:PM9A3:2.5-inch:S64FNE0R812345      ",
           "psds": [{"max_power": 2500, "flags": 0, "entry_lat": 0, "exit_lat": 0, "read_tput": 0,
                     "read_lat": 0, "write_tput": 0, "write_lat": 0, "idle_power": 0, "idle_scale": 0,
                     "active_power": 0, "active_power_work": 0, "active_scale": 0}]}


def id_ctrl(**fields):
    return {**ID_CTRL, **fields}


@pytest.mark.parametrize("fields, command, what, argv", [
    # SANICAP 0x60000003: crypto and block erase (bits 31:29 are NODMMAS/NDI, not erase methods)
    ({}, "sanitize", "crypto erase", ["nvme", "sanitize", "/dev/nvme0", "--sanact=4"]),
    ({"sanicap": 0x2}, "sanitize", "block erase", ["nvme", "sanitize", "/dev/nvme0", "--sanact=2"]),
    ({"sanicap": 0x4}, "sanitize", "overwrite", ["nvme", "sanitize", "/dev/nvme0", "--sanact=3"]),
    # no sanitize; OACS bit 1 (Format NVM) with FNA bit 2: the format's secure erase can be cryptographic
    ({"sanicap": 0}, "format", "crypto erase", ["nvme", "format", "/dev/nvme0n1", "--ses=2", "--force"]),
    ({"sanicap": 0, "fna": 0}, "format", "user data erase", ["nvme", "format", "/dev/nvme0n1", "--ses=1", "--force"]),
])
def test_the_strongest_erase_the_drive_offers_is_chosen(fields, command, what, argv):
    plan = wipe.choose_nvme_erase(id_ctrl(**fields), "/dev/nvme0", "/dev/nvme0n1")
    assert plan == {"command": command, "what": what, "argv": argv,
                    "device": "/dev/nvme0" if command == "sanitize" else "/dev/nvme0n1"}


def test_a_drive_that_can_neither_sanitize_nor_format_gets_write_passes():
    # OACS 0x15: security send/receive, firmware download, namespace management, but no Format NVM
    assert wipe.choose_nvme_erase(id_ctrl(sanicap=0, oacs=0x15), "/dev/nvme0", "/dev/nvme0n1") is None


STAND_IN = """#!{python}
# Stand-in for nvme-cli (no NVMe here): logs argv, answers from files the test wrote.
import json, os, sys
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "argv.log"), "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
if sys.argv[1] == "id-ctrl":
    answer = os.path.join(here, "id-ctrl.json")
    if not os.path.exists(answer):
        sys.exit("NVMe status: Invalid Field in Command(0x2)")
    sys.stdout.write(open(answer).read())
elif sys.argv[1] in ("sanitize", "format") and os.path.exists(os.path.join(here, "refuse")):
    sys.exit(open(os.path.join(here, "refuse")).read())
elif sys.argv[1] == "sanitize-log":
    answers = sorted(name for name in os.listdir(here) if name.startswith("sanitize-log."))
    sys.stdout.write(open(os.path.join(here, answers[0])).read())
    if len(answers) > 1:
        os.unlink(os.path.join(here, answers[0]))
"""


def sanitize_log(status, sprog, text):
    """nvme-cli 2.3's sanitize-log JSON: keyed by device, SSTAT as an object with "(n) text"."""
    return json.dumps({"nvme0": {"sprog": sprog, "sstat": {"global_erased": 0, "no_cmplted_passes": 0,
                                                           "status": f"({status}) {text}"},
                                 "cdw10_info": 4, "time_over_write": 4294967295, "time_block_erase": 60,
                                 "time_crypto_erase": 2}})


IN_PROGRESS = "Sanitize in Progress."
DONE = "Most Recent Sanitize Command Completed Successfully."
FAILED = "Most Recent Sanitize Command Failed."


@pytest.fixture
def nvme(tmp_path, monkeypatch):
    """A directory with the stand-in ``nvme`` first on the PATH imager's subprocesses get."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    program = bin_dir / "nvme"
    program.write_text(STAND_IN.format(python=sys.executable))
    program.chmod(0o755)
    monkeypatch.setattr(process, "_popen", _REAL_POPEN)
    monkeypatch.setitem(process._ENV, "PATH", f"{bin_dir}{os.pathsep}{process._ENV.get('PATH', '')}")
    monkeypatch.setattr(wipe, "SANITIZE_POLL_S", 0)
    return bin_dir


def calls(bin_dir):
    return [json.loads(line) for line in (bin_dir / "argv.log").read_text().splitlines()]


class Percentages(Progress):
    def __init__(self):
        super().__init__(interval=0)
        self.seen = []
        self.sinks = [lambda snap: self.seen.append((snap["stage"], snap["percent"]))]


def test_sanitize_follows_the_drive_log_until_it_completes(nvme):
    (nvme / "id-ctrl.json").write_text(json.dumps(ID_CTRL))
    (nvme / "sanitize-log.1").write_text(sanitize_log(2, 0, IN_PROGRESS))
    (nvme / "sanitize-log.2").write_text(sanitize_log(2, 32768, IN_PROGRESS))
    (nvme / "sanitize-log.3").write_text(sanitize_log(1, 65535, DONE))
    plan = wipe.nvme_erase_plan("/dev/nvme0n1")
    progress = Percentages()
    wipe.nvme_erase("/dev/nvme0n1", plan, progress)
    assert calls(nvme) == [["id-ctrl", "/dev/nvme0", "-o", "json"], ["sanitize", "/dev/nvme0", "--sanact=4"]] + \
        [["sanitize-log", "/dev/nvme0", "-o", "json"]] * 3
    stage = "NVMe sanitize: crypto erase"
    assert [p for s, p in progress.seen if s == stage] == [0.0, 0.0, 50.0, 100.0, 100.0]


def test_a_sanitize_the_drive_reports_failed_fails_the_wipe(nvme):
    (nvme / "id-ctrl.json").write_text(json.dumps(id_ctrl(sanicap=0x2)))
    (nvme / "sanitize-log.1").write_text(sanitize_log(2, 1000, IN_PROGRESS))
    (nvme / "sanitize-log.2").write_text(sanitize_log(3, 0, FAILED))
    plan = wipe.nvme_erase_plan("/dev/nvme0n1")
    with pytest.raises(SanitizeFailed, match="sanitize of /dev/nvme0n1 failed") as failure:
        wipe.nvme_erase("/dev/nvme0n1", plan, Progress())
    assert failure.value.to_dict()["code"] == "sanitize_failed"
    assert calls(nvme)[1] == ["sanitize", "/dev/nvme0", "--sanact=2"]


@pytest.mark.parametrize("sanicap", [0x1, 0])
def test_a_drive_that_refuses_the_erase_command_fails_the_wipe(nvme, sanicap):
    (nvme / "id-ctrl.json").write_text(json.dumps(id_ctrl(sanicap=sanicap)))
    (nvme / "refuse").write_text("NVMe status: Sanitize Prohibited While Persistent Memory Region is Enabled(0x123)")
    plan = wipe.nvme_erase_plan("/dev/nvme0n1")
    with pytest.raises(SanitizeFailed, match="exit status 1: NVMe status: Sanitize Prohibited"):
        wipe.nvme_erase("/dev/nvme0n1", plan, Progress())
    assert [argv[0] for argv in calls(nvme)] == ["id-ctrl", plan["command"]]  # no log read after a refusal


def test_a_format_needs_no_log_to_follow(nvme):
    (nvme / "id-ctrl.json").write_text(json.dumps(id_ctrl(sanicap=0)))
    plan = wipe.nvme_erase_plan("/dev/nvme0n1")
    progress = Percentages()
    wipe.nvme_erase("/dev/nvme0n1", plan, progress)
    assert calls(nvme)[1:] == [["format", "/dev/nvme0n1", "--ses=2", "--force"]]
    assert progress.seen[-1] == ("NVMe format: crypto erase", 100.0)


def test_a_drive_that_refuses_id_ctrl_is_wiped_by_writing(nvme):
    assert wipe.nvme_erase_plan("/dev/nvme0n1") is None  # no id-ctrl.json: the stand-in exits 1
    assert calls(nvme) == [["id-ctrl", "/dev/nvme0", "-o", "json"]]


@pytest.mark.parametrize("text, status", [
    (sanitize_log(2, 16384, IN_PROGRESS), (2, 16384 / 65535)),
    (sanitize_log(4, 65535, "Most Recent Sanitize Command (No-Deallocate After Sanitize) Completed Successfully."),
     (4, 1.0)),
    (json.dumps({"sprog": 65535, "sstat": 0x101}), (1, 1.0)),  # nvme-cli 1.x: flat, SSTAT a number
])
def test_the_sanitize_log_is_read_in_both_nvme_cli_spellings(text, status):
    assert wipe.sanitize_status(text) == status


def test_a_sanitize_whose_log_never_completes_fails_at_the_limit(nvme, monkeypatch):
    (nvme / "id-ctrl.json").write_text(json.dumps(ID_CTRL))
    (nvme / "sanitize-log.1").write_text(sanitize_log(0, 0, "Never sanitized"))  # the only answer, forever
    monkeypatch.setattr(wipe, "SANITIZE_LIMIT_S", 0)
    plan = wipe.nvme_erase_plan("/dev/nvme0n1")
    with pytest.raises(SanitizeFailed, match="did not finish") as failure:
        wipe.nvme_erase("/dev/nvme0n1", plan, Percentages())
    assert failure.value.code == "sanitize_failed"
