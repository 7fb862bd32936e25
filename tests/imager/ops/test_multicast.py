"""imager/ops/multicast.py: the pure parts (no program is started here; the lab scenario runs the rest)."""
import pytest

from imager.errors import InvalidImage, InvalidTask, MulticastFailed
from imager.ops import multicast
from imager.progress import Progress


def test_streams_follow_the_restore_order():
    image = {"disks": [{"partitions": [{"number": 1, "file": "d1p1.pcl.zst"}, {"number": 2, "tool": "swap"},
                                       {"number": 5, "file": "d1p5.pcl.zst"}]},
                       {"partitions": [{"number": 1, "file": "d2p1.pcl.zst"}]}]}
    assert multicast.streams(image) == ["d1p1.pcl.zst", "d1p5.pcl.zst", "d2p1.pcl.zst"]
    assert multicast.streams({"disks": [{"mode": "raw", "file": "d1.img.zst"}]}) == ["d1.img.zst"]
    with pytest.raises(InvalidTask, match="LVM"):
        multicast.streams({"disks": [{"partitions": [{"number": 1, "lvm": {}}]}]})


def test_the_pinned_version_is_used_and_checked(tmp_path):
    (tmp_path / ".images" / "img@20260101T000000-abcdef").mkdir(parents=True)
    assert multicast.pinned_version(str(tmp_path), {"version": "img@20260101T000000-abcdef"}).endswith(
        ".images/img@20260101T000000-abcdef")
    with pytest.raises(InvalidImage):
        multicast.pinned_version(str(tmp_path), {"version": "img@20270101T000000-abcdef"})
    for bad in ("../etc", "img", "img@x/../../y", ""):
        with pytest.raises(InvalidTask):
            multicast.pinned_version(str(tmp_path), {"version": bad})


def test_waiting_ends_with_join_or_fallback(monkeypatch):
    monkeypatch.setattr(multicast.time, "sleep", lambda s: None)
    answers = iter([{"state": "waiting", "session": 1}, {"state": "waiting", "session": 1},
                    {"state": "sending", "session": 1, "join": True}])
    assert multicast.wait_for_start(lambda: next(answers), Progress())["join"] is True
    late = {"state": "sending", "session": 1, "fallback": True, "reason": "too late"}
    assert multicast.wait_for_start(lambda: late, Progress())["fallback"] is True
    with pytest.raises(MulticastFailed, match="canceled"):
        multicast.wait_for_start(lambda: {"state": "canceled", "session": 1}, Progress())


def test_a_raw_target_is_refused_as_a_deploy_refuses_it():
    """One check for both paths: too small is disk_too_small, another sector size sector_size_mismatch."""
    from imager.disks import Disk
    from imager.errors import DiskTooSmall, SectorSizeMismatch
    entry = {"mode": "raw", "file": "d1.img.zst", "size_bytes": 100 * 2**20, "sector_size": 512, "raw_bytes": 1}
    disk = Disk(path="/dev/vdb", name="vdb", size_bytes=100 * 2**20, logical_sector_size=512, removable=False,
                bus="virtio", model="", serial="")
    multicast.unicast.check_raw_target(entry, disk)
    with pytest.raises(DiskTooSmall) as small:
        multicast.unicast.check_raw_target(entry, Disk(**{**disk.__dict__, "size_bytes": 99 * 2**20}))
    with pytest.raises(SectorSizeMismatch) as sectors:
        multicast.unicast.check_raw_target(entry, Disk(**{**disk.__dict__, "logical_sector_size": 4096}))
    assert (small.value.code, sectors.value.code) == ("disk_too_small", "sector_size_mismatch")


def test_a_multicast_task_without_its_session_or_server_is_invalid():
    from imager.ops.context import OpContext
    with pytest.raises(InvalidTask, match="its session and the server"):
        multicast.multicast_deploy(OpContext({"id": 1, "type": "multicast", "multicast": {"session": 1}}))
    with pytest.raises(InvalidTask, match="its session and the server"):
        multicast.multicast_deploy(OpContext({"id": 1, "type": "multicast"}, client=object()))


def test_a_bad_hostname_fails_either_deploy_before_anything_is_read_or_written(tmp_path):
    from imager.ops.context import OpContext
    from imager.ops.deploy import deploy_image
    with pytest.raises(InvalidTask, match="not a valid hostname") as unicast:
        deploy_image(str(tmp_path), "/dev/null", Progress(), hostname="pc_42!")
    task = {"id": 1, "type": "multicast", "hostname": "pc_42!", "multicast": {"session": 1, "version": "x"}}
    with pytest.raises(InvalidTask, match="not a valid hostname") as by_multicast:
        multicast.multicast_deploy(OpContext(task, client=object(), storage=str(tmp_path)))
    assert unicast.value.code == by_multicast.value.code == "invalid_task"
