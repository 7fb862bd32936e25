"""The buildroot external tree (issue 7), checked without a buildroot tree; with BUILDROOT_DIR set in the
environment, the real `buildroot-check` (imager_defconfig, symbol survival, check-package) runs too."""
import ast
import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXTERNAL = REPO / "buildroot"
DEFCONFIG = EXTERNAL / "configs" / "imager_defconfig"


def _make(*args: str, **extra_env: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("BUILDROOT_DIR", "ALLOW_NO_BUILDROOT", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    env.update(extra_env)
    return subprocess.run(["make", "--no-print-directory", "-f", "mk/bootimage.mk", *args], cwd=REPO, env=env,
                          text=True, capture_output=True)


def test_external_tree_layout():
    assert re.search(r"^name: IMAGER$", (EXTERNAL / "external.desc").read_text(), re.M)
    assert "package/*/*.mk" in (EXTERNAL / "external.mk").read_text()
    sourced = re.findall(r'^source "\$BR2_EXTERNAL_IMAGER_PATH/package/([^/]+)/Config.in"$',
                         (EXTERNAL / "Config.in").read_text(), re.M)
    packages = sorted(p.name for p in (EXTERNAL / "package").iterdir() if p.is_dir())
    assert sorted(sourced) == packages
    assert {"imager", "partclone", "python-blessed", "python-zstandard"} <= set(packages)
    for name in packages:
        assert (EXTERNAL / "package" / name / "Config.in").is_file()
        assert (EXTERNAL / "package" / name / f"{name}.mk").is_file()
        if name != "imager":  # a local package downloads nothing
            assert (EXTERNAL / "package" / name / f"{name}.hash").is_file()


def test_defconfig_paths_exist_and_use_the_repository_kernel_config():
    text = DEFCONFIG.read_text()
    paths = re.findall(r'"\$\(BR2_EXTERNAL_IMAGER_PATH\)/([^"]+)"', text)
    assert paths
    for relative in paths:
        assert (EXTERNAL / relative).exists(), relative
    assert '"$(BR2_EXTERNAL_IMAGER_PATH)/../kernel-config/imager.fragment"' in text
    assert "BR2_TARGET_ROOTFS_CPIO_ZSTD=y" in text and "BR2_DOWNLOAD_FORCE_CHECK_HASHES=y" in text
    for package in ("IMAGER", "PARTCLONE", "PYTHON_BLESSED", "PYTHON_ZSTANDARD", "PYTHON_PYUDEV", "PYTHON_PYPARTED",
                    "PYTHON_REQUESTS", "PYTHON_DIALOG3", "UDPCAST", "NFS_UTILS", "ZSTD", "PARTED", "GPTFDISK",
                    "NTFS_3G", "E2FSPROGS", "DOSFSTOOLS", "EUDEV"):
        assert f"BR2_PACKAGE_{package}=y" in text, package


def test_one_init_for_both_builds():
    """The buildroot image gets initramfs/init itself, not a copy kept in buildroot/."""
    post_build = (EXTERNAL / "board" / "imager" / "post-build.sh").read_text()
    assert '"${REPO_DIR}/initramfs/init" "${TARGET_DIR}/init"' in post_build
    assert '"${REPO_DIR}/initramfs/udhcpc.script"' in post_build
    assert not [p for p in EXTERNAL.rglob("init") if p.is_file()]
    assert (REPO / "initramfs" / "init").is_file()


def test_buildroot_image_has_the_programs_of_the_debian_build():
    """Every program initramfs/build.py ships is one the buildroot post-build script insists on."""
    tree = ast.parse((REPO / "initramfs" / "build.py").read_text())
    debian = next(ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
                  and any(isinstance(t, ast.Name) and t.id == "PROGRAMS" for t in node.targets))
    # Debian-only: the versioned interpreter name, module tools (nothing is a module), ldconfig (buildroot's
    # pyudev finds libudev without ld.so.cache).
    renamed = {"python3.11": "python3", "kmod": None, "ldconfig": None}
    post_build = (EXTERNAL / "board" / "imager" / "post-build.sh").read_text()
    listed = set(re.search(r"for program in (.*?); do", post_build, re.S).group(1).replace("\\", " ").split())
    wanted = {renamed.get(p, p) for p in debian} - {None}
    assert not wanted - listed, f"in the Debian build, not checked in the buildroot image: {sorted(wanted - listed)}"


def test_buildroot_check_says_clearly_when_there_is_no_tree():
    result = _make("buildroot-check")
    assert result.returncode != 0
    assert "no buildroot tree: set BUILDROOT_DIR=" in result.stdout
    result = _make("buildroot-check", ALLOW_NO_BUILDROOT="1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no buildroot tree" in result.stdout and "skipped" in result.stdout


@pytest.mark.skipif(not os.environ.get("BUILDROOT_DIR"), reason="set BUILDROOT_DIR to a buildroot tree to run")
@pytest.mark.timeout(600)
def test_buildroot_check_against_a_real_tree():
    result = _make("buildroot-check", BUILDROOT_DIR=os.environ["BUILDROOT_DIR"],
                   BR_CHECK_OUT="build/buildroot-check-test")
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert "buildroot-check: passed" in result.stdout
    assert "0 warnings generated" in result.stderr
