"""Every error code a client may report when a task fails; the server refuses any other.

The client's exception classes (imager/errors.py) each carry one of these codes; a test
checks both lists agree. The server stores the code and shows the message and hint.
"""
from __future__ import annotations

from typing import Any, TypedDict


class ErrorReport(TypedDict):
    """``error`` in ``POST /api/tasks/{id}/failed``."""

    code: str
    message: str
    hint: str
    details: dict[str, Any]


ERROR_CODES: dict[str, str] = {
    "imager_error": "an error without a more precise code",
    "internal": "a bug in imager: the client hit an exception it did not expect",
    "boot_parameter": "the kernel command line is wrong",
    "network": "no network, DHCP or route to the server",
    "server": "the server refused or did not answer",
    "server_identity": "the server's TLS certificate is not the trusted one",
    "registration_refused": "the server refused the registration",
    "task_canceled": "the task was canceled on the server",
    "invalid_task": "the task is not one this client can run",
    "storage": "the storage node's export is unreachable or full",
    "disk_not_found": "no disk matches the task",
    "disk_too_small": "the target disk cannot hold the image",
    "sector_size_mismatch": "512-byte and 4K-native disks differ",
    "unsupported_disk": "a disk layout imager does not handle",
    "image_not_found": "no such image on the storage node",
    "invalid_image": "the image is incomplete or damaged",
    "checksum_mismatch": "a stream does not match its SHA-256",
    "command_failed": "a tool the op runs failed",
    "windows_registry": "the deployed Windows' SYSTEM hive is damaged",
    "multicast": "this machine's part of a multicast session failed",
    "login_refused": "the technician's password was wrong",
    "disk_test_failed": "the disk failed its test",
    "no_network_interface": "the machine has no usable network interface",
    "sanitize_failed": "the disk's own erase (sanitize/format) failed",
    "interrupted": "the client was stopped by a signal (SIGINT, SIGTERM, SIGHUP) and cleaned up",
    "storage_full": "the image store ran out of space (ENOSPC)",
    "not_boot_environment": "the agent was started outside imager's PXE boot environment and refused",
    "postdeploy_script": "a post-deploy script with the fail policy failed, timed out, or did not match its SHA-256",
}


def is_known(code: object) -> bool:
    return isinstance(code, str) and code in ERROR_CODES
