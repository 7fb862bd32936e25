import pytest

from imager.cmdline import parse
from imager.errors import BootParameterError

BASE = "BOOT_IMAGE=vmlinuz console=ttyS0 imager.server=http://10.0.0.1:8080/ imager.task=7 imager.claim=s3cret"


def test_parses_the_required_parameters():
    params = parse(BASE)
    assert params.server == "http://10.0.0.1:8080"
    assert params.task == 7 and params.claim == "s3cret"
    assert params.mac is None and params.debug is False and params.fail_wait == 120


def test_mac_from_imager_mac_or_pxelinux_bootif():
    assert parse(BASE + " imager.mac=52:54:00:AA:BB:CC").mac == "52:54:00:aa:bb:cc"
    assert parse(BASE + " BOOTIF=01-52-54-00-aa-bb-cc").mac == "52:54:00:aa:bb:cc"


@pytest.mark.parametrize("extra, message", [
    (" imager.tsak=1", "unknown kernel parameter imager.tsak"),
    (" imager.mac=zz:54:00:aa:bb:cc", "not a MAC"),
    (" imager.task=seven", "must be numbers"),
])
def test_bad_values_are_refused_with_a_reason(extra, message):
    with pytest.raises(BootParameterError, match=message):
        parse(BASE + extra)


def test_missing_claim_is_an_error():
    with pytest.raises(BootParameterError, match="imager.claim"):
        parse("imager.server=http://x imager.task=1")


def test_values_are_never_evaluated():
    params = parse(BASE.replace("s3cret", "'$(reboot)'"))
    assert params.claim == "$(reboot)"


def test_server_must_be_http():
    with pytest.raises(BootParameterError, match="not an http"):
        parse(BASE.replace("http://10.0.0.1:8080/", "ftp://x"))


def test_registration_and_menu_modes_need_no_task():
    params = parse("imager.server=http://10.0.0.1:8080 imager.mode=register imager.mac=52:54:00:00:00:99")
    assert params.mode == "register" and params.task is None and params.claim is None
    assert parse("imager.server=http://x imager.mode=menu").mode == "menu"
    assert parse(BASE).mode == "task"


@pytest.mark.parametrize("text, message", [
    ("imager.server=http://x imager.mode=format", "not one of task, register, menu"),
    ("imager.server=http://x imager.mode=register imager.task=1 imager.claim=t", "do not belong"),
    ("imager.mode=register", "imager.server"),
    ("imager.server=http://x imager.mode=task", "imager.task"),
])
def test_modes_are_checked(text, message):
    with pytest.raises(BootParameterError, match=message):
        parse(text)
