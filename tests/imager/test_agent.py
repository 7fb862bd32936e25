import pytest

from imager.agent import validate_task
from imager.errors import InvalidTask

TASK = {"id": 3, "type": "deploy", "image": {"name": "win10"}, "storage": {"export": "10.0.0.1:/images"}}


def test_a_complete_task_passes_and_the_same_task_without_its_storage_does_not():
    validate_task(dict(TASK), 3)
    with pytest.raises(InvalidTask, match="no storage node"):
        validate_task({**TASK, "storage": None}, 3)


@pytest.mark.parametrize("change, message", [
    ({"id": 4}, "booted for task 3"),
    ({"type": "format-c"}, "not one this boot image can run"),
    ({"image": {}}, "names no image"),
    ({"image": {"name": "../x"}}, "not a valid image name"),
])
def test_a_task_that_does_not_add_up_is_refused(change, message):
    with pytest.raises(InvalidTask, match=message):
        validate_task({**TASK, **change}, 3)


class FakeClient:
    """The server's side of agent.execute, recorded (the agent's own logic is what is tested)."""

    def __init__(self, task, calls):
        self.task, self.calls = task, calls

    def __call__(self, server, task_id, token):
        self.calls.append(("client", task_id, token))
        return self

    def checkin(self):
        return self.task

    def progress(self, snap):
        pass

    def failed(self, error, log, attempts=None):
        self.calls.append(("failed", error["code"]))

    def done(self, result):
        self.calls.append(("done", result))


@pytest.mark.parametrize("task, mounted", [
    ({"id": 5, "type": "inventory", "image": None, "storage": {"export": "10.0.0.1:/images"}}, None),
    ({**TASK, "id": 5}, "/images"),
])
def test_every_op_gets_one_context_and_only_image_ops_get_the_storage_node(monkeypatch, task, mounted):
    from imager import agent
    calls, seen = [], []
    monkeypatch.setattr(agent, "TaskClient", FakeClient(task, calls))
    monkeypatch.setattr(agent.bootenv, "mount_storage", lambda export, options: calls.append(("mount", export))
                        or "/images")
    monkeypatch.setattr(agent.bootenv, "unmount_storage", lambda root: calls.append(("unmount", root)))
    monkeypatch.setitem(agent.OPS, task["type"], lambda ctx: seen.append(ctx) or {"ok": ctx.storage})
    assert agent.execute("http://s", 5, "tok", agent.LogTail(), 0, power_after=False) == {"ok": mounted}
    assert [ctx.task for ctx in seen] == [task] and seen[0].client is not None
    mount = [("mount", "10.0.0.1:/images"), ("unmount", "/images")] if mounted else []
    assert calls == [("client", 5, "tok"), *mount[:1], *mount[1:], ("done", {"ok": mounted})]


def test_an_unexpected_exception_is_reported_as_internal(monkeypatch, capsys):
    from imager import agent
    calls = []
    task = {"id": 9, "type": "inventory", "image": None, "storage": None, "host": {"name": "pc-9"}}
    monkeypatch.setattr(agent, "TaskClient", FakeClient(task, calls))
    monkeypatch.setitem(agent.OPS, "inventory", lambda ctx: {}["missing"])
    monkeypatch.setattr(agent, "wait_then", lambda seconds, action: calls.append(action))
    assert agent.execute("http://s", 9, "tok", agent.LogTail(), 0) is None
    assert calls == [("client", 9, "tok"), ("failed", "internal"), "reboot"]
    assert "TASK FAILED (internal)" in capsys.readouterr().out


def test_every_error_code_the_client_can_report_is_registered():
    import imager.menuapi  # noqa: F401  (its Refused is an ImagerError too)
    from contract.errorcodes import ERROR_CODES
    from imager.errors import ImagerError

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)
    codes = {cls.__name__: cls.code for cls in [ImagerError, *subclasses(ImagerError)]}
    assert len(codes) > 20
    assert {name: code for name, code in codes.items() if code not in ERROR_CODES} == {}


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

    def no_disk(ctx):
        raise DiskNotFound("no disk has serial=X")
    monkeypatch.setattr(agent, "TaskClient", Client)
    monkeypatch.setitem(agent.OPS, "wipe", no_disk)
    monkeypatch.setattr(agent, "wait_then", lambda seconds, action: calls.append((action, seconds)))
    assert agent.execute("http://s", 9, "tok", agent.LogTail(), 7) is None
    assert calls == [("client", 9, "tok"), ("failed", "disk_not_found"), ("reboot", 7)]
    out = capsys.readouterr().out
    assert "TASK FAILED (disk_not_found)" in out and "no disk has serial=X" in out

    calls.clear()
    monkeypatch.setitem(agent.OPS, "wipe", lambda ctx: {"wiped": ctx.option("mode")})
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
