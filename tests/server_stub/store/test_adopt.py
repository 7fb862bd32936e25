"""A FOG /images or Clonezilla /home/partimag tree on a master node becomes image definitions: which entries,
their types, sizes and capture times, what is skipped and why, refusals, and a second run adopting nothing."""
import os

import pytest

from server_stub.errors import Conflict, NotFound
from server_stub.store import Store


def files(path, **named):
    """A directory holding files of these names (underscores stand for dots) and sizes."""
    path.mkdir(parents=True)
    for name, size in named.items():
        (path / name.replace("__", "-").replace("_", ".")).write_bytes(b"x" * size)
    return path


def foreign_tree(root):
    """What an admin's FOG or Clonezilla server holds, and what must not become an image."""
    files(root / "win10", d1_partitions=10, d1_mbr=512, d1p1_img=1000, d1p2_img=3000)         # FOG multipart
    files(root / "lab", d1_partitions=10, d1_minimum_partitions=10, d1p1_img=100)          # FOG resizable
    files(root / "servers", d1_mbr=512, d2_mbr=512, d1p1_img=100, d2p1_img=100)            # FOG all disks
    files(root / "kiosk", kiosk_000=700, kiosk_001=300)                                    # FOG raw
    files(root / "ubuntu-2024", **{"clonezilla-img": 5, "sda__pt_sf": 20, "sda1_ext4-ptcl-img_zst_aa": 50})
    files(root / "twodisks", **{"sda__pt_sf": 20, "sdb__pt_sf": 20})                       # Clonezilla two disks
    files(root / "bad name!", d1_partitions=10, d1p1_img=10)                               # invalid image name
    files(root / "old", d1_partitions=10, d1p1_img=10)                                     # defined already
    files(root / "random", notes_txt=10)                                                   # not an image
    files(root / ".hidden", d1_partitions=10)
    files(root / ".images" / "x@1", d1_partitions=10)
    files(root / "ours@20260101T000000-aaaaaa", **{"manifest.json": 2})                    # imager's own format
    (root / "linked").symlink_to("win10")                                                  # a link: never adopted
    (root / "loose-file.img").write_bytes(b"x")
    os.utime(root / "win10", (1_700_000_000, 1_700_000_000))
    return root


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "db.sqlite3"))
    s.add_group("fog")
    s.add_storage("fogserver", "10.0.0.5:/images", group="fog", rsync_target=str(foreign_tree(tmp_path / "images")))
    s.add_image("old", group="fog", description="made by hand")
    yield s
    s.close()


def test_every_foreign_image_is_adopted_with_its_type_size_and_time(store, tmp_path):
    done = store.adopt_images("fog")
    adopted = {i["name"]: i for i in done["adopted"]}
    assert sorted(adopted) == ["kiosk", "lab", "servers", "twodisks", "ubuntu-2024", "win10"]
    assert {n: i["type"] for n, i in adopted.items()} == {
        "win10": "multipart", "lab": "resizable", "servers": "alldisks", "kiosk": "raw", "ubuntu-2024": "multipart",
        "twodisks": "alldisks"}
    win10 = adopted["win10"]
    assert win10["description"] == f"FOG image adopted from {tmp_path / 'images' / 'win10'}"
    assert adopted["ubuntu-2024"]["description"].startswith("Clonezilla image adopted from ")
    assert win10["stored_bytes"] == 10 + 512 + 1000 + 3000 and adopted["kiosk"]["stored_bytes"] == 1000
    assert win10["captured"] == 1_700_000_000
    assert (win10["group_name"], win10["storage"]) == ("fog", "fogserver")
    assert done["skipped"] == [
        {"name": "bad name!", "reason": "not a valid image name (1-100 letters, digits, '.', '_' or '-', starting "
                                        "with a letter or digit): rename it"},
        {"name": "old", "reason": "an image of this name exists already (group fog)"}]
    assert store.image("old")["description"] == "made by hand" and store.image("old")["captured"] is None


def test_an_adopted_image_is_served_by_the_master(store):
    assert store.image("old")["replicas"] == []  # never captured: no node serves it
    store.adopt_images("fog")
    assert store.image("win10")["replicas"] == ["fogserver"]
    store.add_host("52:54:00:00:00:01", "pc1")
    task = store.start_task(store.add_task("pc1", "deploy", "win10")["id"])
    assert store.task(task["id"])["storage"] == "fogserver"


def test_a_second_run_adopts_nothing(store):
    first = store.adopt_images("fog")
    again = store.adopt_images("fog")
    assert again["adopted"] == []
    assert {s["name"] for s in again["skipped"]} == {"bad name!", "old"} | {i["name"] for i in first["adopted"]}
    assert len(store.images()) == 7


def test_a_master_without_a_local_directory_is_refused(store, tmp_path):
    store.add_group("remote")
    store.add_storage("far", "10.0.0.6:/images", group="remote", rsync_target="backup@far:/images")
    with pytest.raises(Conflict, match="node far, has no directory on this server .*--rsync-target DIR"):
        store.adopt_images("remote")
    store.add_group("unset")
    store.add_storage("plain", "10.0.0.7:/images", group="unset")
    with pytest.raises(Conflict, match="its rsync target is not set"):
        store.adopt_images("unset")
    store.add_group("gone")
    store.add_storage("g", "10.0.0.8:/images", group="gone", rsync_target=str(tmp_path / "nowhere"))
    with pytest.raises(Conflict, match="is not a directory this server reaches"):
        store.adopt_images("gone")
    store.add_group("empty")
    with pytest.raises(Conflict, match="has no node yet"):
        store.adopt_images("empty")
    with pytest.raises(NotFound, match="no storage group 'nope'"):
        store.adopt_images("nope")
    assert len(store.images()) == 1


def test_the_master_not_other_nodes_is_scanned(store, tmp_path):
    other = tmp_path / "other"
    files(other / "elsewhere", d1_partitions=1, d1p1_img=1)
    store.add_storage("second", "10.0.0.9:/images", group="fog", rsync_target=str(other))
    assert "elsewhere" not in {i["name"] for i in store.adopt_images("fog")["adopted"]}
    store.set_storage("second", master=True)
    assert [i["name"] for i in store.adopt_images("fog")["adopted"]] == ["elsewhere"]
    assert store.image("elsewhere")["storage"] == "second"


def test_an_adopted_image_is_not_replicated_but_named(store):
    store.add_storage("second", "10.0.0.6:/images", group="fog", rsync_target="/nonexistent")
    store.adopt_images("fog")
    with pytest.raises(Conflict, match="fog image adopted as it lies .* replication copies images imager captured"):
        store.queue_replication("win10")
    assert store.replication_jobs("win10") == []
