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
