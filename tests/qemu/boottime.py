"""Power-on → task running, stage by stage, for one lab client (docs/boot-time.md).

Two clocks meet here. Before the kernel runs, the server's log says when each boot file was served (TFTP
"sent" lines, HTTP access lines, in wall time, against the VM's power-on). From the kernel on, the agent's
own marks (imager/bootclock.py, seconds since kernel start, reported as the task result's ``boot``) say how
long each stage took; the check-in's access line ties the two: the kernel started ``boot["total"]`` seconds
before it.
"""
from __future__ import annotations

import dataclasses
import datetime
import re
from pathlib import Path
from urllib.parse import quote

_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")
_TFTP_SENT = re.compile(r"TFTP (\S+): sent (\S+)")
_HTTP = re.compile(r'http\.access INFO (\S+) \[[^]]*\] "(\w+) (\S+) HTTP')
_BOOT_FILE = re.compile(r"^/(boot|files|grub)/")
GUEST_STAGES = ["kernel to /init", "udev start", "python start", "udev settle", "network", "check-in"]


@dataclasses.dataclass
class Breakdown:
    stages: dict[str, float]   # label → seconds, in boot order; they add up to total
    total: float               # power-on → the task's check-in answered

    def lines(self, title: str) -> list[str]:
        width = max(len(label) for label in self.stages)
        out = [f"{title}: power-on → task running {self.total:.1f} s"]
        out += [f"  {label:<{width}}  {seconds:5.1f} s" for label, seconds in self.stages.items()]
        return out


def _events(server_log: Path) -> list[tuple[float, str]]:
    events = []
    for line in server_log.read_text(errors="replace").splitlines():
        found = _LOG_TIME.match(line)
        if found:
            stamp = datetime.datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            events.append((stamp, line[found.end():]))
    return events


def _client_address(events: list[tuple[float, str]], mac: str) -> str:
    """The address the client's boot requests came from: the first line naming its MAC with an address."""
    names = (mac, quote(mac, safe=""))
    for _, text in events:
        if any(name in text for name in names):
            for pattern in (_TFTP_SENT, _HTTP):
                found = pattern.search(text)
                if found:
                    return found.group(1)
    raise ValueError(f"the server log has no boot request from {mac}")


def breakdown(server_log: Path, mac: str, task_id: int, powered_on: float, boot: dict[str, float]) -> Breakdown:
    """``powered_on``: wall time QEMU started; ``boot``: the task result's ``boot`` (the agent's stages)."""
    events = _events(server_log)
    address = _client_address(events, mac)
    tftp = [t for t, text in events if (m := _TFTP_SENT.search(text)) and m.group(1) == address]
    http = [t for t, text in events if (m := _HTTP.search(text)) and m.group(1) == address
            and m.group(2) == "GET" and _BOOT_FILE.match(m.group(3))]
    checkin = [t for t, text in events if (m := _HTTP.search(text)) and m.group(1) == address
               and m.group(3) == f"/api/tasks/{task_id}/checkin"]
    if not (tftp or http) or not checkin or "total" not in boot:
        raise ValueError(f"incomplete boot record for {mac}: tftp {len(tftp)}, http {len(http)}, "
                         f"checkin {len(checkin)}, agent stages {sorted(boot)}")
    first_file = min(tftp + http)
    last_tftp = max(tftp, default=first_file)
    last_file = max(tftp + http)
    kernel_started = checkin[0] - boot["total"]
    stages = {
        "firmware + DHCP": first_file - powered_on,
        "TFTP": last_tftp - first_file,
        "HTTP": last_file - last_tftp,
        "kernel load": kernel_started - last_file,   # the loader starts it; the kernel unpacks itself
    }
    stages.update({label: boot[label] for label in GUEST_STAGES if label in boot})
    stages = {label: round(max(0.0, seconds), 2) for label, seconds in stages.items()}
    return Breakdown(stages, round(checkin[0] - powered_on, 2))
