import pytest

from server_stub.errors import Invalid
from server_stub.store import validate


def test_macs_are_normalized():
    assert validate.normalize_mac(" 52-54-00-AA-BB-01 ") == "52:54:00:aa:bb:01"


@pytest.mark.parametrize("call", [
    lambda: validate.normalize_mac("52:54:00:aa:bb"),
    lambda: validate.normalize_mac(None),
    lambda: validate.check_name("../up", "image"),
    lambda: validate.check_name(7, "host"),
    lambda: validate.check_export("no-colon"),
    lambda: validate.check_mount_options("vers=4;rm"),
    lambda: validate.check_max_clients(True),
    lambda: validate.check_max_clients(0),
    lambda: validate.check_rsync_target("/srv/../etc"),
    lambda: validate.check_rsync_target("rsync://host/"),
    lambda: validate.check_disk_selector("; rm -rf /"),
    lambda: validate.check_partition("capture", 1),
    lambda: validate.check_task_options("wipe", {"mode": "slow"}),
    lambda: validate.check_task_options("deploy", {"mode": "fast"}),
    lambda: validate.check_task_type("multicast"),
    lambda: validate.check_after("halt"),
    lambda: validate.check_origin("robot"),
])
def test_bad_values_are_refused_with_a_message(call):
    with pytest.raises(Invalid) as refused:
        call()
    assert refused.value.message and refused.value.status == 400


def test_good_values_pass_and_targets_gain_one_trailing_slash():
    assert validate.check_rsync_target("/srv/images//") == "/srv/images/"
    assert validate.check_rsync_target("rsync://backup:873/images/x") == "rsync://backup:873/images/x/"
    assert validate.check_rsync_target("user@host:/srv") == "user@host:/srv/"
    assert validate.check_task_options("wipe", {"mode": "fast"}) == '{"mode": "fast"}'
    assert validate.check_task_options("deploy", {}) is None
    assert validate.check_disk_selector("serial=ABC 1") == "serial=ABC 1"
