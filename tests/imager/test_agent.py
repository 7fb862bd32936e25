import pytest

from imager.agent import validate_task
from imager.errors import InvalidTask

TASK = {"id": 3, "type": "deploy", "image": {"name": "win10"}, "storage": {"export": "10.0.0.1:/images"}}


def test_a_complete_task_passes():
    validate_task(dict(TASK), 3)


@pytest.mark.parametrize("change, message", [
    ({"id": 4}, "booted for task 3"),
    ({"type": "format-c"}, "not one this boot image can run"),
    ({"image": {}}, "names no image"),
    ({"image": {"name": "../x"}}, "not a valid image name"),
])
def test_a_task_that_does_not_add_up_is_refused(change, message):
    with pytest.raises(Exception, match=message) as info:
        validate_task({**TASK, **change}, 3)
    assert isinstance(info.value, InvalidTask) or "image name" in message


def test_an_inventory_task_needs_no_image_or_storage():
    validate_task({"id": 5, "type": "inventory", "image": None, "storage": None}, 5)


def _params(mode):
    from imager.cmdline import parse
    return parse(f"imager.server=http://10.0.0.1:8080 imager.mode={mode} imager.mac=52:54:00:00:00:99 "
                 "imager.fail_wait=0")


def test_menu_mode_runs_the_technicians_menu_and_registers_nothing_by_itself(monkeypatch):
    from imager import agent
    from imager.ui import menu
    calls = []
    monkeypatch.setattr(agent, "register", lambda *a, **k: calls.append("register"))
    monkeypatch.setattr(menu, "run_menu", lambda params, tail: calls.append(("menu", params.mac)) or 0)
    assert agent.main_without_task(_params("menu")) == 0
    assert calls == [("menu", "52:54:00:00:00:99")]


def test_a_failed_task_is_reported_shown_and_ends_in_a_reboot(monkeypatch, capsys):
    """agent.execute, the path of unattended boots and menu choices alike."""
    from imager import agent
    from imager.errors import DiskNotFound
    calls = []

    class Client:
        def __init__(self, server, task_id, token):
            calls.append(("client", task_id, token))

        def checkin(self):
            return {"id": 9, "type": "wipe", "options": {"mode": "fast"}, "disk": "serial=X", "image": None,
                    "storage": None, "host": {"name": "pc-9"}}

        def progress(self, snap):
            pass

        def failed(self, error, log, attempts=None):
            calls.append(("failed", error["code"]))

        def done(self, result):
            calls.append(("done", result))

    def no_disk(task, progress):
        raise DiskNotFound("no disk has serial=X")
    monkeypatch.setattr(agent, "TaskClient", Client)
    monkeypatch.setitem(agent.OPS, "wipe", no_disk)
    monkeypatch.setattr(agent, "wait_then", lambda seconds, action: calls.append((action, seconds)))
    assert agent.execute("http://s", 9, "tok", agent.LogTail(), 7) is None
    assert calls == [("client", 9, "tok"), ("failed", "disk_not_found"), ("reboot", 7)]
    out = capsys.readouterr().out
    assert "TASK FAILED (disk_not_found)" in out and "no disk has serial=X" in out

    calls.clear()
    monkeypatch.setitem(agent.OPS, "wipe", lambda task, progress: {"wiped": task["options"]["mode"]})
    assert agent.execute("http://s", 9, "tok", agent.LogTail(), 7, power_after=False) == {"wiped": "fast"}
    assert calls == [("client", 9, "tok"), ("done", {"wiped": "fast"})]


def test_a_refused_registration_is_shown_then_the_machine_reboots(monkeypatch, capsys):
    from imager import agent
    from imager.errors import RegistrationRefused
    actions = []

    def refuse(server, mac):
        raise RegistrationRefused("the server refused the registration: HTTP 409 MAC 52:54:00:00:00:99 "
                                  "is registered already")
    monkeypatch.setattr(agent.bootenv, "bring_up_network", lambda mac: "eth0")
    monkeypatch.setattr(agent, "register", refuse)
    monkeypatch.setattr(agent, "wait_then", lambda seconds, action: actions.append(action))
    assert agent.main_without_task(_params("register")) == 1
    assert actions == ["reboot"]
    assert "TASK FAILED (registration_refused)" in capsys.readouterr().out
