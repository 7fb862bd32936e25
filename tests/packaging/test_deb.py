"""``make deb`` end to end on this machine: build the package, install it (apt-get on the local file, as an admin
would), check what it put where, run the installed server as its user with only the unit's capability in a
namespace of the test, remove it, purge it, and check the machine is as before.

Safe beside a checkout: the package's code lives in /usr/lib/imager-server, outside every Python path, so the
venv keeps importing the checkout (checked). It refuses to run where an imager installation already exists
(its purge would delete /var/lib/imager), and purges on every path."""
import os
import pwd
import secrets
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV_PYTHON = REPO / ".venv" / "bin" / "python"
UNIT = "imager-server.service"
WANTS = Path("/etc/systemd/system/multi-user.target.wants") / UNIT
LEFT_BY_AN_INSTALL = [Path("/usr/lib/imager-server"), Path("/usr/bin/imager-server"),
                      Path("/lib/systemd/system") / UNIT, WANTS, Path("/etc/default/imager-server"),
                      Path("/var/lib/imager"), Path("/usr/share/doc/imager-server"),
                      Path("/var/lib/systemd/deb-systemd-helper-enabled") / f"{UNIT}.dsh-also",
                      Path("/var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants") / UNIT]
# The unit's capabilities (AmbientCapabilities=, CapabilityBoundingSet=CAP_NET_BIND_SERVICE) for setpriv.
UNIT_CAPS = ("--bounding-set=-all,+net_bind_service", "--inh-caps=-all,+net_bind_service",
             "--ambient-caps=-all,+net_bind_service")
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("IMAGER_")}
APT = ["apt-get", "-o", "DPkg::Lock::Timeout=600", "-y", "--no-install-recommends"]

pytestmark = [pytest.mark.root, pytest.mark.timeout(900),
              pytest.mark.skipif(not shutil.which("dpkg-deb"), reason="dpkg-deb (Debian)")]


def run(*argv, check=True, **kwargs):
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}, **kwargs)
    assert not check or result.returncode == 0, f"{argv}: {result.stdout}{result.stderr}"
    return result


def package_installed():
    status = run("dpkg-query", "-W", "-f=${Status}", "imager-server", check=False)
    return status.returncode == 0 and "not-installed" not in status.stdout


def user_exists(name):
    return run("getent", "passwd", name, check=False).returncode == 0


def group_exists(name):
    return run("getent", "group", name, check=False).returncode == 0


def leftovers():
    return [str(p) for p in LEFT_BY_AN_INSTALL if p.exists() or p.is_symlink()] + \
        (["package imager-server"] if package_installed() else []) + \
        (["user imager"] if user_exists("imager") else []) + (["group imager"] if group_exists("imager") else [])


@pytest.fixture
def deb(tmp_path):
    if leftovers():
        pytest.skip(f"this machine has an imager installation ({leftovers()}): not touched")
    run(str(VENV_PYTHON), str(REPO / "packaging" / "build_deb.py"), "--out", str(tmp_path), cwd=REPO)  # = make deb
    built = list(tmp_path.glob("imager-server_*.deb"))
    assert len(built) == 1, built
    try:
        yield built[0]
    finally:
        run(*APT, "purge", "imager-server", check=False)


def serve_in_namespace(ns, *setpriv_caps):
    """The installed server as user imager on ports 69 and 80 of ``ns``'s loopback, with ``setpriv_caps``."""
    return subprocess.Popen(
        ["ip", "netns", "exec", ns, "setpriv", "--reuid", "imager", "--regid", "imager", "--init-groups",
         "--no-new-privs", *setpriv_caps, "/usr/bin/imager-server", "serve", "--bind", "127.0.0.1",
         "--http-port", "80", "--tftp-port", "69"],  # typed by hand: the service's directories by default
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd="/", env=CLEAN_ENV)


def get_in_namespace(ns, path):
    result = run("ip", "netns", "exec", ns, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                 f"http://127.0.0.1:80{path}", check=False)
    return result.stdout


def stop(process):
    process.terminate()  # ours, by its PID
    try:
        return process.communicate(timeout=15)[0]
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()[0]


def check_the_installed_server_runs_with_the_units_capability_only():
    ns = f"i16deb{secrets.token_hex(3)}"
    run("ip", "netns", "add", ns)
    try:
        run("ip", "-n", ns, "link", "set", "lo", "up")
        # Without CAP_NET_BIND_SERVICE the user cannot take port 80: it says so and ends.
        bare = serve_in_namespace(ns, "--bounding-set=-all", "--inh-caps=-all")
        output = bare.communicate(timeout=60)[0]
        assert bare.returncode != 0 and "a port below 1024 needs root" in output, output
        # With the unit's set (ambient CAP_NET_BIND_SERVICE, bounding set reduced to it), it serves.
        server = serve_in_namespace(ns, *UNIT_CAPS)
        try:
            for _ in range(100):
                if get_in_namespace(ns, "/api/openapi.yaml") == "200":
                    break
                assert server.poll() is None, server.stdout.read() if server.stdout else ""
                time.sleep(0.2)
            assert get_in_namespace(ns, "/api/openapi.yaml") == "200"  # docs/openapi.yaml shipped beside the code
            assert get_in_namespace(ns, "/signin") == "200"            # the console's templates
            fetched = run("ip", "netns", "exec", ns, "curl", "-s", "-o", "/dev/null", "-w", "%{size_download}",
                          "tftp://127.0.0.1:69/undionly.kpxe")   # TFTP on port 69, iPXE copied from Debian's
            assert int(fetched.stdout) == Path("/usr/lib/ipxe/undionly.kpxe").stat().st_size > 0
            # Wake-on-LAN out of a named interface (server_stub/wol.py) needs no more: SO_BINDTODEVICE is
            # allowed without CAP_NET_RAW since Linux 5.7.
            woke = run("ip", "netns", "exec", ns, "setpriv", "--reuid", "imager", "--regid", "imager",
                       "--init-groups", "--no-new-privs", *UNIT_CAPS, "/usr/bin/python3", "-c",
                       "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
                       "s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1); "
                       "s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b'lo'); "
                       "s.sendto(bytes(6) + bytes.fromhex('525400123456') * 16, ('127.255.255.255', 9))",
                       check=False, cwd="/")
            assert woke.returncode == 0, woke.stderr
        finally:
            log = stop(server)
        assert "TFTP on 127.0.0.1 port 69" in log, log
        assert "/var/lib/imager/boot has no vmlinuz or initrd.img" in log and "data in /var/lib/imager" in log
        token = Path("/var/lib/imager/admin.token")
        assert token.stat().st_uid == pwd.getpwnam("imager").pw_uid and token.stat().st_mode & 0o077 == 0
        token.unlink()  # admin commands elsewhere on this machine look in /var/lib/imager too
    finally:
        run("ip", "netns", "del", ns, check=False)


def test_the_package_installs_runs_and_goes_away_cleanly(deb):
    info = run("dpkg-deb", "-I", str(deb)).stdout
    for dependency in ("python3-jinja2", "python3-argon2", "ipxe", "shim-signed", "udpcast", "adduser"):
        assert dependency in info
    contents = run("dpkg-deb", "-c", str(deb)).stdout
    assert "__pycache__" not in contents and ".pyc" not in contents
    for path in ("./usr/lib/imager-server/server_stub/cli.py", "./usr/lib/imager-server/contract/vocabulary.py",
                 "./usr/lib/imager-server/server_stub/console/templates/base.html",
                 "./usr/lib/imager-server/vendor/aiohttp/web.py", "./lib/systemd/system/imager-server.service"):
        assert path in contents, path
    assert "./usr/lib/imager-server/imager/" not in contents  # the client is not the server's

    run(*APT, "install", str(deb))
    entry = pwd.getpwnam("imager")
    assert entry.pw_uid < 1000 and entry.pw_dir == "/var/lib/imager" and entry.pw_shell == "/usr/sbin/nologin"
    data = Path("/var/lib/imager").stat()
    assert (data.st_uid, data.st_mode & 0o777) == (entry.pw_uid, 0o750)
    assert WANTS.is_symlink() and os.readlink(WANTS) == f"/lib/systemd/system/{UNIT}"  # enabled at boot
    verify = run("systemd-analyze", "verify", f"/lib/systemd/system/{UNIT}", check=False)
    assert verify.returncode == 0 and verify.stderr.strip() == "", verify.stderr
    helped = run("/usr/bin/imager-server", "--help", cwd="/")
    assert "imager-server" in helped.stdout and "init" in helped.stdout
    settings = run("/usr/bin/imager-server", "init", "--server-ip", "10.0.0.1", "--only", "dnsmasq", cwd="/")
    assert "undionly.kpxe,,10.0.0.1" in settings.stdout  # init from the package, with the package's user
    check_the_installed_server_runs_with_the_units_capability_only()
    venv = run(str(VENV_PYTHON), "-c", "import server_stub, aiohttp; print(server_stub.__file__)", cwd="/")
    assert venv.stdout.strip() == str(REPO / "server_stub" / "__init__.py")  # the checkout's venv is untouched

    run(*APT, "remove", "imager-server")
    for gone in ("/usr/lib/imager-server", "/usr/bin/imager-server", f"/lib/systemd/system/{UNIT}"):
        assert not Path(gone).exists(), gone
    assert not WANTS.is_symlink()  # disabled
    assert Path("/var/lib/imager/imager.sqlite3").exists() and user_exists("imager")  # remove keeps the data
    assert Path("/etc/default/imager-server").exists()

    run(*APT, "purge", "imager-server")
    assert leftovers() == []
