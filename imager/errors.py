"""Every error imager raises on purpose.

Each error carries a stable ``code`` so the server, the console and scripts can
tell failures apart without parsing prose; ``to_dict()`` is what the client
reports to the server when a task fails.
"""
from __future__ import annotations

from typing import Any

from contract.errorcodes import ErrorReport


class ImagerError(Exception):
    """Base class: a failure we understand and can explain to a technician."""

    code = "imager_error"
    # What the technician should do next; shown under the message on the console.
    hint = ""

    def __init__(self, message: str, *, hint: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint
        self.details = details

    def to_dict(self) -> ErrorReport:
        return {"code": self.code, "message": self.message, "hint": self.hint, "details": self.details}


class BootParameterError(ImagerError):
    code = "boot_parameter"
    hint = "Check the kernel command line the server generated (imager.* parameters)."


class NetworkError(ImagerError):
    code = "network"
    hint = "Check the cable, the DHCP server and that the imaging server is reachable."


class NoNetworkInterface(NetworkError):
    code = "no_network_interface"
    hint = "The NIC driver may be missing from the boot image."


class InternalError(ImagerError):
    """An exception imager did not expect: a bug, reported with its repr and the log."""

    code = "internal"
    hint = "This is a bug in imager: the log sent to the server shows where it happened."


class ServerError(ImagerError):
    code = "server"
    hint = "Check that the imaging server is running and the task still exists."


class ServerIdentityError(ImagerError):
    code = "server_identity"
    hint = ("The server's TLS certificate is not the one this boot trusts (imager.server_fp, or the CAs): "
            "a wrong server, or its certificate changed; boot again to get the current fingerprint.")


class RegistrationRefused(ImagerError):
    code = "registration_refused"
    hint = ("A machine registers once; if it is known already, give it a task on the server "
            "(imager-server task …). Otherwise see the server's reason above.")


class TaskCanceled(ImagerError):
    code = "task_canceled"
    hint = "The task was canceled on the server; nothing more will be written."


class InvalidTask(ImagerError):
    code = "invalid_task"
    hint = "Recreate the task on the server."


class SanitizeFailed(ImagerError):
    code = "sanitize_failed"
    hint = ("The disk's own erase (sanitize or format) failed; see the tool's message above. Run a normal wipe, "
            "or replace the disk.")


class StorageError(ImagerError):
    code = "storage"
    hint = "Check the storage node's NFS export and its free space."


class DiskNotFound(ImagerError):
    code = "disk_not_found"
    hint = "Check that the disk is connected, or name it in the task."


class DiskTooSmall(ImagerError):
    code = "disk_too_small"
    hint = "Deploy onto a disk at least as large as the image needs."


class SectorSizeMismatch(ImagerError):
    code = "sector_size_mismatch"
    hint = "512-byte and 4K-native disks are not interchangeable; capture an image from a disk like this one."


class UnsupportedDisk(ImagerError):
    code = "unsupported_disk"
    hint = "This disk layout is not supported yet."


class ImageNotFound(ImagerError):
    code = "image_not_found"
    hint = "Check the image name, or capture it first."


class InvalidImage(ImagerError):
    code = "invalid_image"
    hint = "The image is incomplete or damaged; capture it again."


class ChecksumMismatch(InvalidImage):
    code = "checksum_mismatch"
    # Raised by `imager verify` (nothing written) and by a deploy (which then leaves its disk blank).
    hint = ("The image's stored file is damaged; capture it again. No disk is left half-written: a deploy that "
            "had begun writing leaves its disk blank.")


class CommandFailed(ImagerError):
    code = "command_failed"
    hint = "See the log lines above for the tool's own message."


class RegistryError(ImagerError):
    code = "windows_registry"
    hint = ("The deployed Windows' registry (SYSTEM hive) is damaged or not what Windows writes; the disk holds "
            "the image otherwise intact. Check the image's Windows, or deploy it without a hostname.")


class MulticastFailed(ImagerError):
    code = "multicast"
    hint = ("This machine's part of the multicast session failed (receiver error, dropped, or the session "
            "ended); the disk is incomplete. Deploy it again, by unicast or in a new session.")


class LoginRefused(ImagerError):
    code = "login_refused"
    hint = ("Type the technician password (imager-server technician password) or the admin token "
            "(<data-dir>/admin.token on the server).")


class DiskTestFailed(ImagerError):
    code = "disk_test_failed"
    hint = "Replace the disk, or back up what it holds while it still reads; details are on the task."


class Interrupted(ImagerError):
    """SIGINT, SIGTERM or SIGHUP during an op: its cleanup ran, the exit status says which signal (128 + n)."""

    code = "interrupted"
    hint = ("Stopped on request: a capture's source is back at its size and the previous image is kept; "
            "a deploy's target is left blank (no partition table). Run it again.")

    def __init__(self, signum: int) -> None:
        import signal
        name = signal.Signals(signum).name
        super().__init__(f"stopped by {name}", signal=name)
        self.exit_status = 128 + signum


class StorageFull(StorageError):
    code = "storage_full"
    hint = "Free space on the image store (old images, other files), or capture to another store."


class NotBootEnvironment(ImagerError):
    code = "not_boot_environment"
    hint = ("`imager agent` only runs in the boot image the imaging server PXE-boots; it would reboot this "
            "machine. On an ordinary system use `imager capture`, `imager deploy`, `imager info`.")


class PostDeployScriptFailed(ImagerError):
    code = "postdeploy_script"
    hint = ("The image is on the disk; a post-deploy script attached with the fail policy did not succeed. Its "
            "output is in the task's log: fix the script (or attach it with --policy warn) and deploy again.")
