"""The nfs-ganesha section ``imager-server init`` prints, run by ganesha.nfsd in a network namespace of this test:
it parses without a configuration warning, serves NFSv4 on 2049 without rpcbind (the clients mount 4.1), and a
file a client writes as root (libnfs's nfs-cp, uid 0) belongs to the service's user on the server (all_squash),
so the service can prune, replicate and multicast it."""
import re
import secrets
import shutil
import subprocess
import sys
import time

import os
import pwd

import pytest

from tests.server_stub.cliproc import REPO, clean_env

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(not (shutil.which("ganesha.nfsd") and shutil.which("nfs-cp")),
                                 reason="nfs-ganesha, libnfs-utils: make setup")]


def listening(ns, port):
    out = subprocess.run(["ip", "netns", "exec", ns, "ss", "-Hltn", f"sport = :{port}"], capture_output=True,
                         text=True, timeout=30).stdout
    return bool(out.strip())


def test_ganesha_runs_the_printed_export(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    nobody = pwd.getpwnam("nobody")
    os.chown(images, nobody.pw_uid, nobody.pw_gid)  # as init leaves it for --user nobody
    printed = subprocess.run([sys.executable, "-m", "server_stub", "init", "--server-ip", "10.99.0.1", "--clients",
                              "10.99.0.0/24", "--user", "nobody", "--images-dir", str(images), "--only", "ganesha"],
                             capture_output=True, text=True, env=clean_env(), cwd=REPO, timeout=30)
    assert printed.returncode == 0, printed.stderr
    (tmp_path / "recovery").mkdir()
    conf = tmp_path / "ganesha.conf"
    # What a Debian server's own ganesha.conf has around it: where NFSv4 keeps its state; no Kerberos here.
    conf.write_text(f'NFSv4 {{ Graceless = true; RecoveryRoot = "{tmp_path}/recovery"; }}\n'
                    "NFS_KRB5 { Active_krb5 = false; }\n" + printed.stdout)
    log = tmp_path / "ganesha.log"
    ns = f"i16n{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", ns], check=True, timeout=30)
    process = None
    try:
        for command in (["link", "set", "lo", "up"], ["link", "add", "va", "type", "veth", "peer", "name", "vb"],
                        ["addr", "add", "10.99.0.1/24", "dev", "va"], ["link", "set", "va", "up"],
                        ["link", "set", "vb", "up"]):
            subprocess.run(["ip", "-n", ns, *command], check=True, timeout=30)
        process = subprocess.Popen(["ip", "netns", "exec", ns, "env", f"BLKID_FILE={tmp_path}/blkid.tab",
                                    "ganesha.nfsd", "-F", "-f", str(conf), "-L", str(log), "-p",
                                    str(tmp_path / "ganesha.pid")], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while not listening(ns, 2049):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text() if log.exists() else ""
            time.sleep(0.3)
        text = log.read_text()
        assert "Configuration file successfully parsed" in text
        # every configuration complaint but the optional RADOS library's
        complaints = [line for line in text.splitlines()
                      if re.search(r":CONFIG :(WARN|CRIT|MAJ|FATAL)", line) and "RADOS" not in line]
        assert complaints == [], complaints
        source = tmp_path / "capture.bin"
        source.write_bytes(b"image bytes")
        copied = subprocess.run(["ip", "netns", "exec", ns, "nfs-cp", str(source),
                                 "nfs://10.99.0.1/images/capture.bin?version=4&uid=0&gid=0"],
                                capture_output=True, text=True, timeout=60)
        assert copied.returncode == 0, copied.stdout + copied.stderr
        written = (images / "capture.bin").stat()
        assert (written.st_uid, written.st_gid) == (nobody.pw_uid, nobody.pw_gid)  # root squashed to --user
        assert (images / "capture.bin").read_bytes() == b"image bytes"
    finally:
        if process is not None:
            process.terminate()  # ours, by its PID
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
