import os

import pytest

from imager import imagestore
from imager.errors import ImageNotFound, InvalidImage, StorageError


def capture_into(root, name, content):
    staging = imagestore.Staging(str(root), name)
    (open(os.path.join(staging.path, "data"), "w")).write(content)
    return staging


def test_publish_replaces_the_previous_version_in_one_step(tmp_path):
    capture_into(tmp_path, "win10", "v1").publish()
    first = imagestore.resolve(str(tmp_path), "win10")
    second = capture_into(tmp_path, "win10", "v2")
    # Until publish, readers still see v1, whole.
    assert open(os.path.join(imagestore.resolve(str(tmp_path), "win10"), "data")).read() == "v1"
    second.publish()
    now = imagestore.resolve(str(tmp_path), "win10")
    assert open(os.path.join(now, "data")).read() == "v2"
    assert not os.path.exists(first), "the replaced version is removed"
    assert os.listdir(tmp_path / ".images") == [os.path.basename(now)]


def test_a_discarded_capture_leaves_the_old_image_intact(tmp_path):
    capture_into(tmp_path, "win10", "v1").publish()
    capture_into(tmp_path, "win10", "half").discard()
    assert open(os.path.join(imagestore.resolve(str(tmp_path), "win10"), "data")).read() == "v1"
    assert len(os.listdir(tmp_path / ".images")) == 1


@pytest.mark.parametrize("name", ["../etc", "a/b", "", ".hidden", "x" * 101, "spa ce"])
def test_bad_names_are_refused(tmp_path, name):
    with pytest.raises(InvalidImage):
        imagestore.Staging(str(tmp_path), name)


def test_a_foreign_directory_is_not_overwritten(tmp_path):
    (tmp_path / "mine").mkdir()
    with pytest.raises(StorageError):
        imagestore.Staging(str(tmp_path), "mine")


def test_missing_image(tmp_path):
    with pytest.raises(ImageNotFound):
        imagestore.resolve(str(tmp_path), "nothing")


def test_a_store_that_does_not_exist_is_refused(tmp_path):
    with pytest.raises(StorageError, match="is not an existing directory") as info:
        imagestore.require_store(str(tmp_path / "typo" / "store"))
    assert "Check the path" in info.value.hint
    assert os.listdir(tmp_path) == []
    assert imagestore.require_store(str(tmp_path)) == str(tmp_path)


def test_a_version_left_by_a_killed_capture_is_named_and_removed_by_the_next_capture(tmp_path):
    published = capture_into(tmp_path, "win10", "v1")
    open(os.path.join(published.path, "manifest.json"), "w").write("{}")
    published.publish()
    killed = imagestore.Staging(str(tmp_path), "win10")  # SIGKILL: no discard, no manifest
    other = imagestore.Staging(str(tmp_path), "other")    # another image's capture is not touched
    assert imagestore.leftover_versions(str(tmp_path), "win10") == [killed.path]
    assert imagestore.leftovers_beside(str(tmp_path / "win10")) == [killed.path]
    nxt = capture_into(tmp_path, "win10", "v2")
    assert not os.path.exists(killed.path)
    assert os.path.isdir(other.path) and os.path.isdir(published.path)
    nxt.publish()
    assert imagestore.leftover_versions(str(tmp_path), "win10") == []


def test_discard_after_publish_keeps_the_published_image(tmp_path):
    staging = capture_into(tmp_path, "win10", "v1")
    staging.publish()
    staging.discard()  # a signal right after the rename: the capture is done, nothing is removed
    assert open(os.path.join(imagestore.resolve(str(tmp_path), "win10"), "data")).read() == "v1"


def test_publish_never_removes_a_directory_outside_the_store(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "data").write_text("someone's")
    (tmp_path / "store").mkdir()
    os.symlink(elsewhere, tmp_path / "store" / "win10")  # a link not made by imager
    capture_into(tmp_path / "store", "win10", "v1").publish()
    assert (elsewhere / "data").read_text() == "someone's"
    assert open(os.path.join(imagestore.resolve(str(tmp_path / "store"), "win10"), "data")).read() == "v1"
