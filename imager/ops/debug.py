"""Debug: a shell on the console for the technician, with the imaging tools at hand.

The recipe: show what this task is (its parameters as the server sent them), a short help text with
the commands that matter, then a root shell (PATH holds partclone, sfdisk, sgdisk, smartctl, nvme,
zstd, mount.nfs, the imager CLI …).  Leaving the shell (exit or Ctrl-D) ends the task; the machine
then reboots.  The task's parameters are also in /tmp/task.json for scripts.
"""
from __future__ import annotations

import json
import logging
import os
import sys
from typing import IO, Any

from imager import process
from imager.ops.context import OpContext

log = logging.getLogger(__name__)

TASK_FILE = "/tmp/task.json"
HELP = """\
Tools: lsblk, blkid, sfdisk -d /dev/X, sgdisk -p /dev/X, smartctl -a /dev/X, nvme list,
       partclone.<fs>, zstd, wipefs, mount.nfs SERVER:/images /images, ip addr, udhcpc
imager: imager info /images/NAME   imager capture|deploy|verify ...   (python3 -m imager.cli --help)
Log of this boot: dmesg | tail.  Leave the shell with 'exit' (or Ctrl-D): the machine reboots."""


def banner(task: dict[str, Any]) -> list[str]:
    """What the technician reads before the prompt: the task's parameters, then the help."""
    shown = {k: v for k, v in task.items() if k != "token"}
    lines = ["", "=" * 78, f" imager debug shell - task {task.get('id')} for {(task.get('host') or {}).get('name')}",
             "=" * 78, " Task parameters:"]
    lines += [f"   {key:<10} {json.dumps(value) if isinstance(value, (dict, list)) else value}"
              for key, value in shown.items()]
    return lines + ["", *HELP.splitlines(), ""]


def debug(ctx: OpContext, out: IO[str] | None = None, shell: list[str] | None = None) -> dict[str, Any]:
    task, out = dict(ctx.task), out or sys.stdout
    with open(TASK_FILE, "w") as f:
        json.dump({k: v for k, v in task.items() if k != "token"}, f, indent=2)
    out.write("\n".join(banner(task)) + "\n")
    out.flush()
    # setsid + cttyhack: the shell gets the console as its controlling terminal, so Ctrl-C works in it.
    argv = shell or ["setsid", "cttyhack", "sh", "-l"]
    log.info("debug shell started")
    status = process.interactive(argv, env={"PS1": "imager-debug# ", "IMAGER_TASK": TASK_FILE,
                                           "HOME": os.environ.get("HOME", "/root")})
    log.info("debug shell ended (exit status %d)", status)
    return {"shell_exit_status": status}
