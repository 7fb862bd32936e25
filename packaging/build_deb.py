"""``make deb``: build/deb/imager-server_<version>_<arch>.deb from this checkout (docs/install.md).

The package holds the server (``server_stub``, ``contract``, the console's templates and static files, the
API description), a launcher ``/usr/bin/imager-server``, the systemd unit, ``/etc/default/imager-server`` and
the maintainer scripts in packaging/debian/. Its code lives in /usr/lib/imager-server, outside every Python
path, so it never mixes with a checkout's venv or Debian's python3-* modules.

Python libraries: Debian 12's python3-aiohttp (3.8) lacks what the server uses (``web.AppKey``, 3.9), so the
aiohttp the tests ran against and its requirements are copied from this venv into /usr/lib/imager-server/vendor
(with C extensions for this Python: the package is for this architecture and Python 3.11). A requirement
that the venv takes from Debian's dist-packages becomes a Depends on its Debian package instead.

    .venv/bin/python packaging/build_deb.py [--out build/deb]
"""
from __future__ import annotations

import argparse
import importlib.metadata
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parent.parent
HERE = REPO / "packaging"
PACKAGE = "imager-server"
LIB = Path("usr/lib/imager-server")
VENDORED_ROOTS = ("aiohttp",)  # what the server imports that Debian 12 has too old
# Debian packages the server runs (python3-jinja2, python3-argon2: the console) or serves (boot binaries).
DEPENDS = ["python3 (>= 3.11)", "python3 (<< 3.12)", "python3-jinja2", "python3-argon2", "adduser",
           "init-system-helpers", "ipxe", "shim-signed", "grub-efi-amd64-signed", "pxelinux", "syslinux-common",
           "udpcast", "rsync"]
RECOMMENDS = ["openssh-client", "nfs-kernel-server | nfs-ganesha-vfs"]
CODE = ("server_stub", "contract")
SKIP = re.compile(r"(^|/)__pycache__(/|$)|\.py[co]$")


def version() -> str:
    text = (REPO / "pyproject.toml").read_text()
    match = re.search(r'^version = "([^"]+)"', text, re.MULTILINE)
    if not match:
        sys.exit("build_deb: no version in pyproject.toml")
    commits = subprocess.run(["git", "rev-list", "--count", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return f"{match.group(1)}+git{commits.stdout.strip()}" if commits.returncode == 0 else match.group(1)


def copy_tree(source: Path, target: Path) -> None:
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source).as_posix()
        if path.is_file() and not SKIP.search(relative):
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination)
            destination.chmod(0o644)


def requirement_closure(roots: tuple[str, ...]) -> list[importlib.metadata.Distribution]:
    environment = default_environment()
    seen: dict[str, importlib.metadata.Distribution] = {}
    pending = list(roots)
    while pending:
        name = pending.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in seen:
            continue
        dist = importlib.metadata.distribution(name)
        seen[key] = dist
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({**environment, "extra": ""}):
                pending.append(requirement.name)
    return sorted(seen.values(), key=lambda d: d.metadata["Name"].lower())


def debian_package_of(dist: importlib.metadata.Distribution) -> str:
    root = Path(str(dist.locate_file("")))
    tops = (dist.read_text("top_level.txt") or dist.metadata["Name"].replace("-", "_")).split()
    paths = [p for top in tops for p in (root / top, root / f"{top}.py") if p.exists()]
    if not paths:
        sys.exit(f"build_deb: cannot find the files of {dist.metadata['Name']} in {root}")
    owner = subprocess.run(["dpkg-query", "-S", str(paths[0])], capture_output=True, text=True)
    if owner.returncode != 0:
        sys.exit(f"build_deb: no Debian package owns {paths[0]}")
    return owner.stdout.split(":")[0]


def vendor(target: Path) -> list[str]:
    """Copies the venv's own distributions; returns the Debian packages of the others."""
    venv_site = Path(sysconfig.get_paths()["purelib"]).resolve()
    debian: list[str] = []
    for dist in requirement_closure(VENDORED_ROOTS):
        root = Path(str(dist.locate_file(""))).resolve()
        if root != venv_site:
            debian.append(debian_package_of(dist))
            continue
        for file in dist.files or []:
            source = Path(str(dist.locate_file(file))).resolve()
            relative = str(file)
            if relative.startswith("..") or SKIP.search(relative) or not source.is_file():
                continue  # console scripts in ../../bin, caches
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, destination)
            destination.chmod(0o644)
    return debian


def architecture() -> str:
    return subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True).stdout.strip()


def installed_size_kib(stage: Path) -> int:
    return sum(p.stat().st_size for p in stage.rglob("*") if p.is_file()) // 1024 + 1


def stage_package(stage: Path, ver: str, arch: str) -> None:
    for name in CODE:
        copy_tree(REPO / name, stage / LIB / name)
    (stage / LIB / "docs").mkdir(parents=True)
    shutil.copyfile(REPO / "docs" / "openapi.yaml", stage / LIB / "docs" / "openapi.yaml")  # served by apidoc.py
    extra_depends = vendor(stage / LIB / "vendor")
    files = {HERE / "imager-server": ("usr/bin/imager-server", 0o755),
             HERE / "imager-server.service": ("lib/systemd/system/imager-server.service", 0o644),
             HERE / "imager-server.default": ("etc/default/imager-server", 0o644),
             REPO / "docs" / "install.md": ("usr/share/doc/imager-server/install.md", 0o644),
             HERE / "debian" / "copyright": ("usr/share/doc/imager-server/copyright", 0o644)}
    for source, (target, mode) in files.items():
        (stage / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, stage / target)
        (stage / target).chmod(mode)
    control = stage / "DEBIAN"
    control.mkdir()
    for script in ("postinst", "prerm", "postrm"):
        shutil.copyfile(HERE / "debian" / script, control / script)
        (control / script).chmod(0o755)
    (control / "conffiles").write_text("/etc/default/imager-server\n")
    depends = ", ".join(DEPENDS + sorted(set(extra_depends)))
    (control / "control").write_text(
        f"Package: {PACKAGE}\nVersion: {ver}\nArchitecture: {arch}\nMaintainer: imager <root@localhost>\n"
        f"Installed-Size: {installed_size_kib(stage)}\nDepends: {depends}\nRecommends: {', '.join(RECOMMENDS)}\n"
        "Section: admin\nPriority: optional\nHomepage: https://localhost/imager\n"
        "Description: network disk imaging server (PXE boot, tasks, web console)\n"
        " imager-server boots machines over the network (TFTP, HTTP, iPXE, shim and GRUB), hands\n"
        " them capture and deploy tasks, runs multicast sessions and replication, and serves the\n"
        " web console and HTTP API. It runs as the systemd service imager-server, user imager,\n"
        " with its data in /var/lib/imager. First steps: imager-server init (docs/install.md).\n")


def main() -> int:
    parser = argparse.ArgumentParser(description="build the imager-server .deb")
    parser.add_argument("--out", default=str(REPO / "build" / "deb"))
    args = parser.parse_args()
    out = Path(args.out)
    stage = out / "stage"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    ver, arch = version(), architecture()
    stage_package(stage, ver, arch)
    deb = out / f"{PACKAGE}_{ver}_{arch}.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", str(stage), str(deb)], check=True,
                   stdout=subprocess.DEVNULL)
    shutil.rmtree(stage)
    print(deb)
    return 0


if __name__ == "__main__":
    sys.exit(main())
