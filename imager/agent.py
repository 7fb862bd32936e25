"""The boot-environment agent: read the task → execute it → report the outcome.

This is what ``python -m imager`` runs inside the initramfs.  Whatever
happens, the server hears the outcome and the console shows a message a
technician can read; the machine then reboots (or powers off).
"""
from __future__ import annotations

import collections
import contextlib
import importlib
import logging
import sys
import time
import traceback
from typing import Any, Callable, Iterator

from imager import bootclock, bootenv, cmdline, imagestore
from imager.api import TaskClient
from imager.errors import DiskTestFailed, ImagerError, InternalError, InvalidTask, NotBootEnvironment
from imager.ops.context import OpContext
from imager.ops.register import register
from imager.pinning import pin_server
from imager.progress import Progress, console_sink
from imager.ui import console as ui_console
from imager.ui import progress_screen
from contract.task import TRANSPORTS, Task, deploys_over_http

log = logging.getLogger("imager")
NOT_BOOT_ENVIRONMENT_STATUS = 3   # the agent refused: not imager's boot image


class LogTail(logging.Handler):
    """Keeps the last lines of the log, sent to the server with a failure."""

    def __init__(self, size: int = 40) -> None:
        super().__init__()
        self.lines: collections.deque[str] = collections.deque(maxlen=size)
        self.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def text(self) -> str:
        return "\n".join(self.lines)


def setup_logging(debug: bool) -> LogTail:
    tail = LogTail()
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(logging.Formatter("[imager] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [console, tail]
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    tail.setLevel(logging.DEBUG)
    return tail


# --- the ops a task can ask for -------------------------------------------------

Op = Callable[[OpContext], dict[str, Any]]


def op_from(module: str, name: str) -> Op:
    """An op whose module is imported when a task of its type runs: a boot imports only the op it runs,
    and the others' imports stay off the way to check-in (docs/boot-time.md)."""
    def run(ctx: OpContext) -> dict[str, Any]:
        op: Op = getattr(importlib.import_module(module), name)
        return op(ctx)
    run.__name__ = name
    return run


disktest = op_from("imager.ops.disktest", "disktest")


def run_disktest(ctx: OpContext) -> dict[str, Any]:
    result = disktest(ctx)
    if result["verdict"] != "pass":  # the task fails, visibly; the whole result is in the error's details
        raise DiskTestFailed(f"{result['disk']} failed the disk test: {'; '.join(result['reasons'])}", **result)
    return result


OPS: dict[str, Op] = {
    "capture": op_from("imager.ops.capture", "capture"),
    "deploy": op_from("imager.ops.deploy", "deploy"),
    "multicast": op_from("imager.ops.multicast", "multicast_deploy"),
    # the result carries the inventory; the server stores it with "done"
    "inventory": op_from("imager.ops.inventory", "inventory"),
    "wipe": op_from("imager.ops.wipe", "wipe"), "disktest": run_disktest,  # the service ops (issue 5)
    "debug": op_from("imager.ops.debug", "debug"),
}
ON_STORAGE = {"capture", "deploy", "multicast"}  # the ops that read or write images on the storage node


@contextlib.contextmanager
def task_storage(task: Task) -> Iterator[str | None]:
    """The task's storage node, mounted for the op and unmounted whatever happens (None: the op needs none)."""
    storage = task.get("storage")
    if task["type"] not in ON_STORAGE or not storage or deploys_over_http(task):
        yield None  # an HTTP deploy mounts nothing (imager/httpstore.py)
        return
    root = bootenv.mount_storage(storage["export"], storage.get("options", "vers=4.1"))
    try:
        yield root
    finally:
        bootenv.unmount_storage(root)


def validate_task(task: Task, task_id: int) -> None:
    if task.get("id") != task_id:
        raise InvalidTask(f"the server sent task {task.get('id')}, this machine booted for task {task_id}")
    if task.get("type") not in OPS:
        raise InvalidTask(f"task type {task.get('type')!r} is not one this boot image can run")
    if task["type"] in ON_STORAGE:  # an inventory task names no image and no storage
        image, storage = task.get("image"), task.get("storage")
        if storage and storage.get("transport", "nfs") not in TRANSPORTS:
            raise InvalidTask(f"the task's storage transport {storage.get('transport')!r} is not one of "
                              f"{', '.join(TRANSPORTS)}: is the boot image older than the server?")
        if not image or not image.get("name") or not storage or not (storage.get("url") if deploys_over_http(task)
                                                                      else storage.get("export")):
            raise InvalidTask("the task names no image or no storage node")
        try:
            imagestore.check_name(image["name"])
        except ImagerError as exc:  # the server sent it: the task is wrong, not an image
            raise InvalidTask(exc.message) from None
    if task["type"] == "multicast" and not isinstance(task.get("multicast"), dict):
        raise InvalidTask("a multicast task needs its session")


# --- the loop ---------------------------------------------------------------------

def main() -> int:
    reason = bootenv.not_boot_environment()
    if reason:  # an ordinary machine: say why at once, never count down, never reboot
        error = NotBootEnvironment(f"imager agent refuses to run here: {reason}")
        print(f"imager: error ({error.code}): {error.message}\nimager: {error.hint}", file=sys.stderr)
        return NOT_BOOT_ENVIRONMENT_STATUS
    bootclock.mark("python")  # imported: /init started us while udev's coldplug runs
    tail = setup_logging(debug=False)
    bootenv.wait_for_devices()
    bootclock.mark("devices")
    try:
        params = cmdline.read()
    except ImagerError as exc:
        show_failure(exc)
        wait_then(120, "reboot")
        return 1
    if params.debug:
        logging.getLogger().setLevel(logging.DEBUG)
    ui_console.setup()  # TERM and an 80×24 size for a serial console, before any screen is drawn
    pin_server(params.server, params.server_fp)  # every API call of this boot, task or registration
    if params.mode != "task":
        return main_without_task(params, tail)
    assert params.task is not None and params.claim is not None  # cmdline.parse requires them in task mode
    def network() -> None:
        bootenv.bring_up_network(params.mac)
        bootclock.mark("network")
    result = execute(params.server, params.task, None, tail, params.fail_wait, claim=params.claim, before=network)
    return 0 if result is not None else 1


def execute(server: str, task_id: int, token: str | None, tail: LogTail, fail_wait: int, *,
            claim: str | None = None, before: Callable[[], object] | None = None,
            power_after: bool = True) -> dict[str, Any] | None:
    """Check in, run the task, report it: the same path for an unattended boot and a menu choice.
    Returns the result; a failure is shown, reported, and ends in a reboot after ``fail_wait`` s (None).
    ``power_after`` False: the menu gets the result back and carries on (inventory, disk test).
    An unattended boot gives its ``claim`` (exchanged at checkin), the menu the ``token`` it got."""
    client = TaskClient(server, task_id, claim=claim) if claim is not None else TaskClient(server, task_id, token)
    after = "reboot"
    job: progress_screen.Job | None = None
    try:
        if before is not None:
            before()
        task = client.checkin()
        boot = booted_for_task() if claim is not None else {}  # an unattended boot: how long it took
        validate_task(task, task_id)
        after = task.get("after", "reboot")
        image = task.get("image")
        log.info("task %d: %s of image %r", task["id"], task["type"], image["name"] if image else None)
        job = describe_job(task)
        with screen_for(task, job) as screen, task_storage(task) as root:
            ctx = OpContext(task, Progress([screen or console_sink, client.progress]), client, root)
            result = OPS[task["type"]](ctx)
        if boot:
            result = {**result, "boot": boot}
        client.done(result)
    except Exception as exc:  # every failure is reported, whatever raised it
        error = exc if isinstance(exc, ImagerError) else InternalError(f"internal error: {exc!r}")
        if not isinstance(exc, ImagerError):
            log.error("%s", traceback.format_exc())
        log.error("task failed (%s): %s", error.code, error.message)  # so the log sent to the server ends with it
        try:
            client.failed(error.to_dict(), tail.text(), attempts=4)
            reported = "The server has the reason and the log."
        except ImagerError as report_error:
            log.error("could not report the failure to the server: %s", report_error.message)
            reported = "The server could not be told."
        show_failure(error, job, f"{reported} The machine reboots in {fail_wait} s.")
        wait_then(fail_wait, "reboot")
        return None
    log.info("task %d done: %s", task_id, result)
    print("\n*** imager: task finished successfully ***\n", flush=True)
    if power_after:
        bootenv.power(after)
    return result


def booted_for_task() -> dict[str, float]:
    """The boot's stage timings up to this check-in (docs/boot-time.md), on the console and in the result."""
    bootclock.mark("checkin")
    durations = bootclock.stages(bootclock.marks())
    if durations:
        log.info("%s", bootclock.summary(durations))
    return durations


def describe_job(task: Task) -> progress_screen.Job:
    image = task.get("image")
    options: dict[str, Any] = task.get("options") or {}
    op = task["type"] + (f" ({options['mode']})" if options.get("mode") else "")
    host = task.get("host")
    return progress_screen.Job(op=op, image=f"{image['name']} ({image.get('type', 'resizable')})" if image else "",
                               disk=task.get("disk") or "the only fixed disk", task=task.get("id"),
                               host=host.get("name", "") if host else "")


@contextlib.contextmanager
def screen_for(task: Task, job: progress_screen.Job) -> Iterator[progress_screen.ProgressScreen | None]:
    """The progress screen on a terminal; plain log lines otherwise (and for the debug shell's own terminal)."""
    if task["type"] == "debug" or not ui_console.is_terminal():
        yield None
        return
    with progress_screen.ProgressScreen(job) as screen:
        yield screen


def main_without_task(params: cmdline.BootParams, tail: LogTail | None = None) -> int:
    """An unknown machine chose (or the server chose for it) registration, or the imager menu."""
    try:
        if params.mode == "menu":
            from imager.ui.menu import run_menu  # dialog is only needed here
            return run_menu(params, tail or LogTail())
        bootenv.bring_up_network(params.mac)
        host = register(params.server, params.mac)
    except Exception as exc:  # nobody to report to: the screen is the only witness
        error = exc if isinstance(exc, ImagerError) else InternalError(f"internal error: {exc!r}")
        if not isinstance(exc, ImagerError):
            log.error("%s", traceback.format_exc())
        show_failure(error)
        wait_then(params.fail_wait, "reboot")
        return 1
    print(f"\n*** imager: registered as {host['name']} ({host['registered']} registration); rebooting ***\n",
          flush=True)
    bootenv.power("reboot")
    return 0


def show_failure(error: ImagerError, job: progress_screen.Job | None = None, footer: str = "") -> None:
    """On a terminal the failure fills the screen and stays; otherwise (a log, a pipe) plain lines."""
    if ui_console.is_terminal():
        progress_screen.show_failure_screen(error.code, error.message, error.hint, job, footer)
        return
    bar = "*" * 72
    print(f"\n{bar}\n*** imager: TASK FAILED ({error.code})\n*** {error.message}", flush=True)
    if error.hint:
        print(f"*** What to do: {error.hint}", flush=True)
    print(bar, flush=True)


def wait_then(seconds: int, action: str) -> None:
    if not ui_console.is_terminal():  # the failure screen says it already
        print(f"*** The machine will {action} in {seconds} s.", flush=True)
    time.sleep(max(0, seconds))
    bootenv.power(action)
