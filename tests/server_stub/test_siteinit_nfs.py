"""The nfs-ganesha section ``imager-server init`` prints, run by ganesha.nfsd in a network namespace of this test:
it parses without a configuration warning and serves NFSv4 on 2049 without rpcbind (the clients mount 4.1)."""
import re
import secrets
import shutil
import subprocess
import sys
import time

import pytest

from tests.server_stub.cliproc import REPO, clean_env

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(not shutil.which("ganesha.nfsd"), reason="nfs-ganesha: make setup")]


def listening(ns, port):
    out = subprocess.run(["ip", "netns", "exec", ns, "ss", "-Hltn", f"sport = :{port}"], capture_output=True,
                         text=True, timeout=30).stdout
    return bool(out.strip())


def test_ganesha_runs_the_printed_export(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
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
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True, timeout=30)
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
    finally:
        if process is not None:
            process.terminate()  # ours, by its PID
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
