import os

import pytest


def pytest_collection_modifyitems(config, items):
    # Tests that need root (loop devices, namespaces, mounts) say so; as non-root they skip with a reason.
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="needs root: loop devices, network namespaces, mounts")
        for item in items:
            if "root" in item.keywords:
                item.add_marker(skip)
