import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load_check_config():
    # kernel-config/ is not a package (its name has a dash): load the script by path.
    path = REPO / "kernel-config" / "check_config.py"
    spec = importlib.util.spec_from_file_location("check_config", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def check_config():
    return _load_check_config()


def load_script(directory: str, name: str):
    """A module of a directory that is not a package (initramfs/), by path; its siblings import too."""
    path = REPO / directory / f"{name}.py"
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
