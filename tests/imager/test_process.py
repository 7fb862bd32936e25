"""process.py with real programs: children die with imager, and signals become Interrupted after a run() ends."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from imager import process
from imager.errors import Interrupted

pytestmark = pytest.mark.root  # real processes (the autouse fixture lets these run programs)
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_spawned_program_dies_when_imager_is_killed():
    script = textwrap.dedent("""
        import sys, time
        from imager import process
        child = process.spawn(["sleep", "600"])
        print(child.proc.pid, flush=True)
        time.sleep(600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert alive(child)
        parent.kill()  # SIGKILL: nothing in imager runs, only the kernel's PR_SET_PDEATHSIG
        parent.wait()
        deadline = time.monotonic() + 5
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(child), "the child outlived the killed imager"
    finally:
        parent.kill()
        parent.wait()


def test_programs_run_in_their_own_process_group_so_a_terminal_ctrl_c_reaches_imager_alone():
    child = process.spawn(["sleep", "30"])
    try:
        assert os.getpgid(child.proc.pid) == child.proc.pid != os.getpgrp()
    finally:
        child.kill()


def send_later(signum: int, delay: float) -> threading.Timer:
    timer = threading.Timer(delay, os.kill, (os.getpid(), signum))
    timer.start()
    return timer


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_becomes_interrupted_with_the_shell_exit_status(signum):
    with pytest.raises(Interrupted) as info, process.interruptible():
        send_later(signum, 0.1)
        time.sleep(5)
    assert info.value.code == "interrupted" and info.value.exit_status == 128 + signum


def test_a_running_program_finishes_before_the_signal_is_raised():
    started = time.monotonic()
    with pytest.raises(Interrupted), process.interruptible():
        send_later(signal.SIGTERM, 0.2)
        process.run(["sleep", "1"])  # resize2fs stands here: cutting it in half could break the filesystem
    assert time.monotonic() - started >= 0.95


def test_after_the_first_signal_the_cleanup_runs_to_its_end():
    cleaned = []
    with pytest.raises(Interrupted), process.interruptible():
        try:
            send_later(signal.SIGTERM, 0.1)
            time.sleep(5)
        finally:
            send_later(signal.SIGHUP, 0.1)  # an impatient second signal is ignored
            time.sleep(0.4)
            cleaned.append(True)
    assert cleaned == [True]


def test_signal_handlers_are_restored_afterwards():
    before = {sig: signal.getsignal(sig) for sig in process.INTERRUPTING}
    with process.interruptible():
        assert signal.getsignal(signal.SIGTERM) == process._on_signal
    assert {sig: signal.getsignal(sig) for sig in process.INTERRUPTING} == before


def test_a_failure_names_the_programs_own_reason_not_its_last_words():
    said = ("done!\nFile system:  NTFS\nBlock size:   4096 Byte\nCRC error, block_id=14206...\n"
            " Partclone fail, please check /var/log/partclone.log !")
    assert process.cause(said, "tail") == "CRC error, block_id=14206..."
    assert process.cause("done!\nall went well", "the tail") == "the tail"
    glued = "Elapsed: 00:00:01, Remaining: 00:01:39, Completed:   1.00%,   0.00byte/min,CRC error, block_id=11218..."
    assert process.cause(glued + "\nPartclone fail, please check /var/log/partclone.log !", "") == \
        "CRC error, block_id=11218..."
