"""The menu's logic with scripted answers: which questions, in which order, and which task it creates."""
from __future__ import annotations

import pytest

from imager.disks import Disk
from imager.errors import LoginRefused
from imager.menuapi import Refused
from imager.ui.menu import END, Menu

VDA = Disk("/dev/vda", "vda", 1 << 30, 512, False, "", "QEMU", "SER-A")
VDB = Disk("/dev/vdb", "vdb", 2 << 30, 512, False, "", "QEMU", "SER-B")
USB = Disk("/dev/sda", "sda", 8 << 30, 512, True, "usb", "Stick", "U1")


class Script:
    """Screens that answer from a script of (kind, text the question must contain, answer)."""

    def __init__(self, *steps):
        self.steps = list(steps)
        self.seen: list[tuple[str, str]] = []

    def _next(self, kind, text, items=None):
        self.seen.append((kind, text))
        assert self.steps, f"unexpected {kind}: {text!r}"
        want_kind, want_text, answer = self.steps.pop(0)
        assert kind == want_kind and want_text in text, f"expected {want_kind} {want_text!r}, got {kind} {text!r}"
        if items is not None and answer is not None:
            assert answer in [tag for tag, _ in items], f"{answer!r} is not offered: {items}"
        return answer

    def choose(self, title, text, items, default=None):
        self.items = items
        return self._next("choose", f"{title}: {text}", items)

    def ask(self, title, text, init=""):
        return self._next("ask", f"{title}: {text}")

    def secret(self, title, text):
        return self._next("secret", f"{title}: {text}")

    def confirm(self, title, text):
        return self._next("confirm", f"{title}: {text}")

    def message(self, title, text):
        self._next("message", f"{title}: {text}")

    def info(self, title, text):
        self.seen.append(("info", text))

    def countdown(self, title, text, seconds):
        return self._next("countdown", f"{title}: {text}")


class Server:
    """The menu API as MenuClient presents it, with the server's rules that matter to the menu."""
    mac, server = "52:54:00:00:05:55", "http://10.0.0.1:8080"

    def __init__(self, host=None, images=None):
        self.host = host
        self.token = None
        self.images = images if images is not None else [
            {"name": "win10", "type": "resizable", "captured": True, "description": "", "group": "default"},
            {"name": "empty", "type": "raw", "captured": False, "description": "", "group": "default"}]
        self.tasks: list[tuple[str, dict]] = []
        self.added: list[tuple[str, str]] = []

    @property
    def logged_in(self):
        return self.token is not None

    def login(self, password):
        if password != "right-pass":
            raise LoginRefused("the server refused the login: wrong password")
        self.token = "session"
        return self.host

    def lists(self):
        assert self.logged_in
        return {"images": self.images, "host_groups": ["room-1"], "storage_groups": ["default"], "host": self.host}

    def add_image(self, name, type_, group=None):
        assert self.logged_in
        self.added.append((name, type_))
        self.images.append({"name": name, "type": type_, "captured": False, "description": "", "group": "default"})
        return {"name": name}

    def create_task(self, type_, **fields):
        assert self.logged_in
        if self.host is None:
            raise Refused("MAC is not registered: register this machine first")
        self.tasks.append((type_, {k: v for k, v in fields.items() if v is not None}))
        return len(self.tasks), f"token-{len(self.tasks)}"


def menu(script, server, disks=(VDA,), result=None):
    runs, powered, registered = [], [], []

    def register(**chosen):
        registered.append(chosen)
        server.host = {"name": chosen.get("hostname") or "mac525400000555", "registered": "full" if chosen else "quick"}
        return server.host

    def run_task(task_id, token, stay):
        runs.append((task_id, token, stay))
        return result if result is not None else {"ok": True}

    m = Menu(script, server, register=register, run_task=run_task, local_disks=lambda: list(disks),
             power=powered.append, countdown=3)
    m.host = server.host if server.logged_in else None  # as a login earlier in the session left it
    return m, runs, powered, registered


def test_unknown_machine_full_registration_then_deploy_from_the_list():
    server = Server()
    script = Script(
        ("choose", "is not registered", "3"),                     # deploy before registering: refused kindly
        ("secret", "Technician password", "wrong"),
        ("message", "wrong password", None),
        ("secret", "Technician password", "right-pass"),
        ("message", "Register this machine first", None),
        ("choose", "is not registered", "2"),                     # full registration: logged in already
        ("ask", "Host name", "lab-pc-1"),
        ("choose", "Image for lab-pc-1", "win10"),
        ("choose", "Group of lab-pc-1", "+"),
        ("ask", "New group name", "room-2"),
        ("confirm", "Deploy image win10 to this machine now?", False),
        ("choose", "This machine is lab-pc-1", "3"),              # deploy, from the main menu
        ("choose", "Image to deploy", "win10"),                   # only captured images are offered
        ("confirm", "Deploy image win10 onto the disk of this machine?", True),
    )
    m, runs, powered, registered = menu(script, server)
    m.run()
    assert registered == [{"hostname": "lab-pc-1", "image": "win10", "group": "room-2"}]
    assert server.tasks == [("deploy", {"image": "win10"})]  # one fixed disk: the task's default rule picks it
    assert runs == [(1, "token-1", False)] and powered == []   # the agent's run powers the machine itself
    assert [tag for tag, _ in script.items] == ["win10"]
    assert not script.steps


def test_the_main_menu_hides_registration_once_registered():
    server = Server(host={"name": "pc-9"})
    server.token = "session"
    script = Script(("choose", "This machine", "9"))
    m, _, powered, _ = menu(script, server)
    assert [tag for tag, _ in m.items()] == ["3", "4", "5", "6", "7", "8", "9", "0"]
    m.run()
    assert powered == ["reboot"]


def test_wipe_needs_the_typed_name_and_survives_a_stopped_countdown():
    server = Server(host={"name": "pc-7"})
    server.token = "session"
    script = Script(
        ("choose", "This machine", "6"),
        ("choose", "Which disk?", "/dev/vdb"),
        ("choose", "How to wipe /dev/vdb", "fast"),
        ("ask", "Type the host name (pc-7) or WIPE", "pc-8"),
        ("message", "Not confirmed: nothing was erased", None),
        ("choose", "This machine", "6"),
        ("choose", "Which disk?", "/dev/vdb"),
        ("choose", "How to wipe /dev/vdb", "full"),
        ("ask", "Type the host name", "WIPE"),
        ("countdown", "Wiping /dev/vdb (full) in 3 s", False),
        ("message", "Stopped: nothing was erased", None),
        ("choose", "This machine", "6"),
        ("choose", "Which disk?", "/dev/vda"),
        ("choose", "How to wipe /dev/vda", "normal"),
        ("ask", "Type the host name", "pc-7"),
        ("countdown", "Wiping /dev/vda (normal)", True),
    )
    m, runs, _, _ = menu(script, server, disks=(VDA, VDB, USB))
    m.run()
    assert server.tasks == [("wipe", {"disk": "/dev/vda", "options": {"mode": "normal"}})]
    assert runs == [(1, "token-1", False)]


def test_inventory_and_disk_test_come_back_to_the_menu_with_their_result():
    server = Server(host={"name": "pc-5"})
    server.token = "session"
    result = {"disks": 2, "nics": 1, "disk": "/dev/vdb", "surface": {"bytes_read": 2 << 30, "bad_sectors": 0},
              "smart": {"summary": "PASSED"}}
    script = Script(
        ("choose", "This machine", "5"),
        ("message", "Sent to the server: 2 disk(s), 1 network card(s)", None),
        ("choose", "This machine", "7"),
        ("choose", "Which disk?", "/dev/vdb"),
        ("message", "/dev/vdb: 2.0 GiB read, 0 unreadable sectors.\nSMART: PASSED", None),
        ("choose", "This machine", None),                          # Esc
        ("confirm", "Reboot the machine?", True),
    )
    m, runs, powered, _ = menu(script, server, disks=(VDA, VDB), result=result)
    m.run()
    assert server.tasks == [("inventory", {}), ("disktest", {"disk": "/dev/vdb"})]
    assert [stay for _, _, stay in runs] == [True, True] and powered == ["reboot"]


def test_capture_into_a_new_image_and_a_server_refusal_is_shown():
    server = Server(host={"name": "pc-3"})
    server.token = "session"
    script = Script(
        ("choose", "This machine", "4"),
        ("choose", "Capture this machine into", "+"),
        ("ask", "Name of the new image", "golden-2026"),
        ("choose", "Type of image golden-2026", "multipart"),
        ("choose", "Which disk?", "/dev/vdb"),
    )
    m, runs, _, _ = menu(script, server, disks=(VDA, VDB))
    assert m.run() is None
    assert server.added == [("golden-2026", "multipart")]
    assert server.tasks == [("capture", {"image": "golden-2026", "disk": "/dev/vdb"})]

    refusing = Server(host={"name": "pc-3"})
    refusing.token = "session"

    def busy(type_, **fields):
        raise Refused("host pc-3 has an active task already; cancel it first")
    refusing.create_task = busy
    script = Script(("choose", "This machine", "8"),
                    ("message", "active task already", None),
                    ("choose", "This machine", "0"))
    m, _, powered, _ = menu(script, refusing)
    m.run()
    assert powered == ["reboot"]  # "boot the local disk": reboot; the server's boot policy does the rest


def test_three_wrong_passwords_lead_back_to_the_menu():
    server = Server(host={"name": "pc-1"})
    script = Script(("choose", "not registered", "8"),
                    *[step for _ in range(3) for step in (("secret", "Technician password", "nope"),
                                                          ("message", "wrong password", None))],
                    ("choose", "not registered", "9"))
    m, runs, powered, _ = menu(script, server)
    m.run()
    assert runs == [] and server.tasks == [] and powered == ["reboot"]


@pytest.mark.parametrize("name", ["bad name", "../x", ""])
def test_a_bad_host_name_registers_nothing(name):
    server = Server()
    server.token = "session"
    steps = [("choose", "not registered", "2"), ("ask", "Host name", name)]
    if name:
        steps.append(("message", "use letters, digits", None))
    script = Script(*steps, ("choose", "not registered", "9"))
    m, _, _, registered = menu(script, server)
    m.run()
    assert registered == []
