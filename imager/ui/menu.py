"""The imager menu: what a technician at the machine can do, each choice a real task on the server.

Reached with ``imager.mode=menu`` (the "Imager menu" entry of an unknown machine's PXE menu). Like
FOG's FOS menu: registration needs no credential; everything that creates a task (deploy, capture,
inventory, wipe, disk test, debug) and the server's lists first ask for the technician password (or
the admin token), which the server exchanges for a short-lived session. A task created here is
checked in, run, reported and ended by the same code as an unattended boot (``agent.execute``), so
the server's record is the same; it says ``origin: menu``.
"""
from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any, Callable

from imager import bootenv, cmdline, disks
from imager.errors import ImagerError, LoginRefused
from imager.menuapi import MenuClient, Refused
from imager.progress import human
from imager.ui.screens import Screens

from contract.vocabulary import IMAGE_TYPE_HELP, WIPE_MODE_HELP

if TYPE_CHECKING:
    from imager.agent import LogTail  # the agent imports this module: only for the type

log = logging.getLogger(__name__)

COUNTDOWN_S = 10
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
IMAGE_TYPES = tuple((str(kind), text) for kind, text in IMAGE_TYPE_HELP.items())
WIPE_MODES = tuple((str(mode), text) for mode, text in WIPE_MODE_HELP.items())
END = "end"  # an action that ends the menu (the machine reboots or already did)


class Menu:
    def __init__(self, screens: Screens, client: MenuClient, *,
                 register: Callable[..., dict[str, Any]],
                 run_task: Callable[[int, str, bool], dict[str, Any] | None],
                 local_disks: Callable[[], list[disks.Disk]],
                 power: Callable[[str], None], countdown: int = COUNTDOWN_S) -> None:
        self.s, self.client = screens, client
        self.register_fn, self.run_task, self.local_disks, self.power = register, run_task, local_disks, power
        self.countdown_s = countdown
        self.host: dict[str, Any] | None = None
        self.actions: dict[str, tuple[str, Callable[[], str | None]]] = {
            "1": ("Quick registration and inventory", self.quick_registration),
            "2": ("Full registration: host name, image, group", self.full_registration),
            "3": ("Deploy an image to this machine", self.deploy),
            "4": ("Capture this machine to an image", self.capture),
            "5": ("Inventory: send this machine's hardware to the server", self.inventory),
            "6": ("Wipe a disk", self.wipe),
            "7": ("Disk test: SMART and a read surface scan", self.disktest),
            "8": ("Debug shell", self.debug),
            "9": ("Reboot", self.reboot),
            "0": ("Boot the local disk", self.local_disk),
        }

    # --- the loop ---------------------------------------------------------------------
    def items(self) -> list[tuple[str, str]]:
        hidden = {"1", "2"} if self.host else set()  # a registered machine registers once
        return [(tag, label) for tag, (label, _) in self.actions.items() if tag not in hidden]

    def run(self) -> None:
        last = None
        while True:
            who = (f"This machine is {self.host['name']} ({self.client.mac})." if self.host else
                   f"This machine ({self.client.mac}) is not registered on the server.")
            tag = self.s.choose("imager menu", f"{who}\nServer: {self.client.server}\nChoose:", self.items(), last)
            if tag is None:
                if self.s.confirm("Leave the menu", "Reboot the machine?"):
                    self.power("reboot")
                    return
                continue
            last = tag
            try:
                if self.actions[tag][1]() == END:
                    return
            except LoginRefused as exc:
                self.s.message("Login", f"{exc.message}\n\n{exc.hint}")
            except Refused as exc:
                self.s.message("The server refused", exc.message)
            except ImagerError as exc:
                self.s.message(f"Error ({exc.code})", f"{exc.message}\n\n{exc.hint}")

    # --- helpers ----------------------------------------------------------------------
    def need_host(self) -> bool:
        if self.host is None:
            self.s.message("Not registered", "Register this machine first (quick or full registration): "
                                             "a task belongs to a host.")
        return self.host is not None

    def login(self) -> bool:
        """The technician's credential, once per session (asked again when the session expires)."""
        for _ in range(3):
            if self.client.logged_in:
                return True
            password = self.s.secret("Technician login", "Technician password (or the server's admin token):")
            if password is None:
                return False
            try:
                host = self.client.login(password)
            except LoginRefused as exc:
                self.s.message("Login", exc.message)
                continue
            self.host = host or self.host
            return True
        return False

    def pick_disk(self, purpose: str, always: bool = False) -> str | None | bool:
        """A disk path; None for "the only fixed disk" (the task's default); False when backed out."""
        found = self.local_disks()
        fixed = [d for d in found if not d.removable and d.bus != "usb"]
        if len(fixed) == 1 and not always:
            return None
        if not found:
            self.s.message("No disk", "This machine shows no disk.")
            return False
        tag = self.s.choose(purpose, "Which disk?",
                            [(d.path, f"{human(d.size_bytes)}  {d.model or '-'}  serial {d.serial or '-'}"
                              + ("  (USB/removable)" if d.removable or d.bus == "usb" else "")) for d in found])
        return tag if tag is not None else False

    def _run(self, type_: str, stay: bool = False, **fields: Any) -> str | None:
        task_id, token = self.client.create_task(type_, **fields)
        log.info("menu: task %d (%s) created", task_id, type_)
        result = self.run_task(task_id, token, stay)
        if result is None or not stay:
            return END  # the machine reboots (after the task, or after the failure screen)
        return result  # type: ignore[return-value]

    # --- the actions ------------------------------------------------------------------
    def quick_registration(self) -> str | None:
        self.s.info("Registration", "Registering this machine with its inventory ...")
        self.host = self.register_fn()
        self.s.message("Registered", f"Registered as {self.host['name']} (quick registration).")
        return None

    def full_registration(self) -> str | None:
        if not self.login():
            return None
        lists = self.client.lists()
        name = self.s.ask("Full registration", "Host name:")
        if not name:
            return None
        if not _NAME.match(name):
            self.s.message("Full registration", f"{name!r}: use letters, digits, '.', '_' or '-' (1-100).")
            return None
        images = [("-", "(no image)")] + [(i["name"], f"{i['type']}{'' if i['captured'] else ', not captured yet'}")
                                          for i in lists["images"]]
        image = self.s.choose("Full registration", f"Image for {name}:", images)
        if image is None:
            return None
        groups = [("-", "(no group)"), ("+", "(a new group ...)")] + [(g, "") for g in lists["host_groups"]]
        group = self.s.choose("Full registration", f"Group of {name}:", groups)
        if group == "+":
            group = self.s.ask("Full registration", "New group name:")
        if group is None:
            return None
        self.s.info("Registration", f"Registering {name} ...")
        self.host = self.register_fn(hostname=name, image=None if image == "-" else image,
                                     group=None if group in ("-", "") else group)
        text = f"Registered as {self.host['name']} (full registration)."
        if image != "-" and any(i["name"] == image and i["captured"] for i in lists["images"]):
            if self.s.confirm("Registered", f"{text}\n\nDeploy image {image} to this machine now?"):
                return self.deploy(image)
        else:
            self.s.message("Registered", text)
        return None

    def deploy(self, image: str | None = None) -> str | None:
        if not self.login() or not self.need_host():
            return None
        if image is None:
            captured = [i for i in self.client.lists()["images"] if i["captured"]]
            if not captured:
                self.s.message("Deploy", "The server has no captured image yet.")
                return None
            image = self.s.choose("Deploy", "Image to deploy:", [(i["name"], i["type"]) for i in captured])
            if image is None:
                return None
        disk = self.pick_disk("Deploy")
        if disk is False:
            return None
        if not self.s.confirm("Deploy", f"Deploy image {image} onto {disk or 'the disk of this machine'}?\n\n"
                                        "Everything on that disk is replaced."):
            return None
        return self._run("deploy", image=image, disk=disk)

    def capture(self) -> str | None:
        if not self.login() or not self.need_host():
            return None
        images = self.client.lists()["images"]
        image = self.s.choose("Capture", "Capture this machine into:",
                              [("+", "(a new image ...)")] + [(i["name"], i["type"]) for i in images])
        if image is None:
            return None
        if image == "+":
            image = self.s.ask("Capture", "Name of the new image:")
            if not image:
                return None
            type_ = self.s.choose("Capture", f"Type of image {image}:", IMAGE_TYPES)
            if type_ is None:
                return None
            self.client.add_image(image, type_)
        elif not self.s.confirm("Capture", f"Replace image {image} with this machine's disk?"):
            return None
        disk = self.pick_disk("Capture")
        if disk is False:
            return None
        return self._run("capture", image=image, disk=disk)

    def inventory(self) -> str | None:
        if not self.login() or not self.need_host():
            return None
        result = self._run("inventory", stay=True)
        if isinstance(result, dict):
            self.s.message("Inventory", f"Sent to the server: {result.get('disks')} disk(s), "
                                        f"{result.get('nics')} network card(s).")
            return None
        return result

    def wipe(self) -> str | None:
        if not self.login() or not self.need_host():
            return None
        disk = self.pick_disk("Wipe", always=True)
        if not disk:
            return None
        mode = self.s.choose("Wipe", f"How to wipe {disk}:", WIPE_MODES)
        if mode is None:
            return None
        name = self.host["name"] if self.host else ""
        typed = self.s.ask("Wipe: confirm", f"Everything on {disk} will be erased ({mode} wipe).\n"
                                            f"Type the host name ({name}) or WIPE to go on:")
        if typed not in (name, "WIPE") or not typed:
            self.s.message("Wipe", "Not confirmed: nothing was erased.")
            return None
        if not self.s.countdown("Wipe", f"Wiping {disk} ({mode}) in {self.countdown_s} s.\n"
                                        "Stop now to keep the disk as it is.", self.countdown_s):
            self.s.message("Wipe", "Stopped: nothing was erased.")
            return None
        return self._run("wipe", disk=disk, options={"mode": mode})

    def disktest(self) -> str | None:
        if not self.login() or not self.need_host():
            return None
        disk = self.pick_disk("Disk test")
        if disk is False:
            return None
        result = self._run("disktest", stay=True, disk=disk)
        if isinstance(result, dict):
            surface, smart = result["surface"], result["smart"]
            self.s.message("Disk test: passed", f"{result['disk']}: {human(surface['bytes_read'])} read, "
                                                f"{surface['bad_sectors']} unreadable sectors.\n"
                                                f"SMART: {smart.get('summary', 'not available')}")
            return None
        return result

    def debug(self) -> str | None:
        if not self.login() or not self.need_host():
            return None
        return self._run("debug")

    def reboot(self) -> str:
        self.power("reboot")
        return END

    def local_disk(self) -> str:
        # From Linux there is no going back to the firmware's disk boot: reboot, and the server's boot
        # policy hands the machine to its disk (a registered machine at once, an unknown one after its
        # menu's timeout).
        self.s.info("Local disk", "Rebooting; the machine then boots its local disk.")
        self.power("reboot")
        return END


def run_menu(params: cmdline.BootParams, tail: LogTail) -> int:
    """imager.mode=menu: the console, the network, then the menu until a choice ends it."""
    from imager import agent
    from imager.ops.register import register
    from imager.ui import console
    from imager.ui.screens import DialogScreens

    console.setup()
    print("imager: starting the network for the menu ...", flush=True)
    interface = bootenv.bring_up_network(params.mac)
    mac = params.mac or open(f"/sys/class/net/{interface}/address").read().strip()
    menu = Menu(DialogScreens(), MenuClient(params.server, mac),
                register=lambda **chosen: register(params.server, mac, **chosen),
                run_task=lambda task_id, token, stay: agent.execute(params.server, task_id, token, tail,
                                                                     params.fail_wait, power_after=not stay),
                local_disks=disks.all_disks, power=bootenv.power)
    menu.run()
    return 0
