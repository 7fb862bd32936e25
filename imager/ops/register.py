"""Registration: an unknown machine introduces itself to the server.

The recipe: take down the machine's inventory (its MACs come with it), send it with the
MAC it booted from; the server creates the host — named after the MAC (quick registration),
or as the technician chose, with an image and a group (full registration) — and from then on
the machine can be given tasks.  No task exists yet, so there is no token: the server only
accepts MACs it does not know (docs/task-json.md).
"""
from __future__ import annotations

import logging
from typing import Any

from imager import api
from imager.errors import NoNetworkInterface
from imager.ops.inventory import collect, summary

log = logging.getLogger(__name__)


def register(server: str, mac: str | None, hostname: str | None = None, image: str | None = None,
             group: str | None = None) -> dict[str, Any]:
    """Register this machine; returns the server's record of it ({"name", "mac", "registered", …})."""
    found = collect()
    for line in summary(found):
        log.info("%s", line)
    boot_mac = mac or (found["nics"][0]["mac"] if found["nics"] else None)
    if not boot_mac:
        raise NoNetworkInterface("this machine has no network card with a MAC to register")
    body: dict[str, Any] = {"mac": boot_mac, "inventory": found}
    for key, value in (("hostname", hostname), ("image", image), ("group", group)):
        if value is not None:  # full registration: what the technician chose
            body[key] = value
    host = api.register(server, body)["host"]
    log.info("registered as %s (%s registration)", host["name"], host["registered"])
    return host
