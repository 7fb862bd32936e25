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


def test_menu_mode_shows_the_machine_and_registers_nothing(monkeypatch, capsys):
    from imager import agent
    actions = []
    monkeypatch.setattr(agent, "collect", lambda: {"dmi": {"product_name": "LabPC"}, "disks": [], "nics": []})
    monkeypatch.setattr(agent, "register", lambda *a, **k: actions.append("register"))
    monkeypatch.setattr(agent, "wait_then", lambda seconds, action: actions.append(action))
    assert agent.main_without_task(_params("menu")) == 0
    assert actions == ["reboot"]
    out = capsys.readouterr().out
    assert "imager menu is not built yet" in out and "LabPC" in out


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
