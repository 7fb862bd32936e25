"""buildroot/board/imager/check_imports.py: the boot images' import check (post-build.sh and
initramfs/build.py run it), against trees laid out as the boot images lay out site-packages."""
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHECK = REPO / "buildroot" / "board" / "imager" / "check_imports.py"


def _tree(tmp_path: Path, *packages: str) -> Path:
    site = tmp_path / "usr" / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    for package in packages:
        shutil.copytree(REPO / package, site / package, ignore=shutil.ignore_patterns("__pycache__"))
    return site


def _check(site: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(CHECK), str(site), *extra], capture_output=True, text=True, timeout=60)


def test_what_the_boot_images_ship_passes(tmp_path):
    done = _check(_tree(tmp_path, "imager", "contract"))
    assert done.returncode == 0 and done.stderr == ""


def test_without_the_contract_package_the_build_fails_naming_the_imports(tmp_path):
    # What imager.mk shipped before: imager/ alone.
    done = _check(_tree(tmp_path, "imager"))
    assert done.returncode == 1
    assert "contract/ is not in" in done.stderr
    assert "imager/agent.py" in done.stderr or "imager/ops/" in done.stderr
    assert "imports contract." in done.stderr and "missing from the image" in done.stderr


def test_an_import_of_server_code_fails_even_when_the_server_is_in_the_tree(tmp_path):
    site = _tree(tmp_path, "imager", "contract", "server_stub")
    agent = site / "imager" / "agent.py"
    agent.write_text(agent.read_text() + "\nfrom server_stub import udpcast\n")
    done = _check(site)
    assert done.returncode == 1
    assert "imager/agent.py" in done.stderr and "imports server_stub, which the boot image does not carry" in done.stderr


def test_a_missing_module_of_ours_is_named(tmp_path):
    site = _tree(tmp_path, "imager", "contract")
    (site / "contract" / "udpcast.py").unlink()
    done = _check(site)
    assert done.returncode == 1 and "imports contract.udpcast, missing from the image" in done.stderr


def test_the_list_names_every_agent_module(tmp_path):
    site = _tree(tmp_path, "imager", "contract")
    names = _check(site, "--list").stdout.split()
    assert "imager.agent" in names and "imager.ops.multicast" in names and "contract.udpcast" in names
    assert not any(name.startswith("server_stub") or name.endswith("__main__") for name in names)
