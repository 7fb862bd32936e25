"""server_stub.udpcast: the argv builders (pure), SenderProcess against stand-in programs, and one real
multicast to two receivers in network namespaces this test creates (root)."""
import dataclasses
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from server_stub.udpcast import (Mode, ReceiverOptions, SenderOptions, SenderProcess, UdpcastError, receiver_argv,
                                 sender_argv)


def flag(argv, name):
    """The value after ``name`` in argv, or True for a bare flag, or None."""
    if name not in argv:
        return None
    i = argv.index(name)
    return argv[i + 1] if i + 1 < len(argv) and not argv[i + 1].startswith("--") else True


# --- sender argv ---------------------------------------------------------------------------------------

def test_sender_defaults_are_the_documented_mode():
    argv = sender_argv(SenderOptions(min_receivers=4, max_wait=60, interface="eth1"), Path("/images/a/d1p2.img"))
    assert argv[0] == "udp-sender"
    assert flag(argv, "--nokbd") is True
    assert flag(argv, "--file") == "/images/a/d1p2.img"
    assert flag(argv, "--interface") == "eth1"
    assert flag(argv, "--portbase") == "9000"
    assert flag(argv, "--full-duplex") is True and "--half-duplex" not in argv and "--async" not in argv
    assert flag(argv, "--fec") == "8x8/128"
    assert flag(argv, "--default-slice-size") == "1024"
    assert flag(argv, "--min-receivers") == "4"
    assert flag(argv, "--min-wait") == "2"
    assert flag(argv, "--max-wait") == "60"
    assert flag(argv, "--retries-until-drop") == "30"
    assert flag(argv, "--ttl") == "1"
    assert flag(argv, "--nopointopoint") is True
    assert flag(argv, "--rexmit-hello-interval") == "500"
    assert "--log" not in argv            # it would divert the messages SenderProcess reads from stderr
    assert "--max-bitrate" not in argv    # acknowledgements pace the sender


def test_sender_reads_stdin_without_a_file():
    argv = sender_argv(SenderOptions(min_receivers=1))
    assert "--file" not in argv


def test_sender_every_option_lands_on_its_flag():
    o = SenderOptions(portbase=9010, interface="br0", min_receivers=3, min_wait=5, max_wait=90, start_timeout=300,
                      mode=Mode.HALF_DUPLEX, slice_size=512, blocksize=1400, max_bitrate=800_000_000, fec=None,
                      ttl=4, mcast_data_address="239.1.2.3", mcast_rdv_address="10.0.0.1", retries_until_drop=50,
                      rexmit_hello_interval=250, progress=False)
    argv = sender_argv(o, Path("x.img"))
    assert flag(argv, "--portbase") == "9010"
    assert flag(argv, "--half-duplex") is True and "--full-duplex" not in argv
    assert "--fec" not in argv
    assert flag(argv, "--default-slice-size") == "512"
    assert flag(argv, "--blocksize") == "1400"
    assert flag(argv, "--max-bitrate") == "800000000"
    assert flag(argv, "--start-timeout") == "300"
    assert flag(argv, "--min-wait") == "5" and flag(argv, "--max-wait") == "90"
    assert flag(argv, "--ttl") == "4"
    assert flag(argv, "--mcast-data-address") == "239.1.2.3"
    assert flag(argv, "--mcast-rdv-address") == "10.0.0.1"
    assert flag(argv, "--retries-until-drop") == "50"
    assert flag(argv, "--rexmit-hello-interval") == "250"
    assert flag(argv, "--no-progress") is True


def test_sender_waits_only_count_with_min_receivers():
    argv = sender_argv(SenderOptions(autostart=5, min_wait=3, max_wait=30))
    assert flag(argv, "--autostart") == "5"
    assert "--min-wait" not in argv and "--max-wait" not in argv


def test_sender_async_needs_bitrate_fec_and_autostart():
    ok = SenderOptions(mode=Mode.ASYNC, max_bitrate=90_000_000, fec="8x8/128", autostart=4, slice_size=None)
    argv = sender_argv(ok)
    assert flag(argv, "--async") is True and flag(argv, "--max-bitrate") == "90000000"
    assert "--retries-until-drop" not in argv          # nobody answers in async mode
    with pytest.raises(UdpcastError, match="max_bitrate"):
        sender_argv(dataclasses.replace(ok, max_bitrate=None))
    with pytest.raises(UdpcastError, match="fec"):
        sender_argv(dataclasses.replace(ok, fec=None))
    with pytest.raises(UdpcastError, match="autostart"):
        sender_argv(dataclasses.replace(ok, autostart=None, min_receivers=3))


def test_sender_point_to_point_and_broadcast():
    assert flag(sender_argv(SenderOptions(min_receivers=1, pointopoint=True)), "--pointopoint") is True
    argv = sender_argv(SenderOptions(min_receivers=2, broadcast=True))
    assert flag(argv, "--broadcast") is True and "--nopointopoint" not in argv
    with pytest.raises(UdpcastError):
        sender_argv(SenderOptions(min_receivers=2, broadcast=True, pointopoint=True))


@pytest.mark.parametrize("bad", [
    dict(portbase=9001), dict(portbase=80), dict(portbase=65536),
    dict(interface="eth0; rm -rf /"), dict(interface="a-name-much-too-long"), dict(interface=""),
    dict(min_receivers=0), dict(min_wait=-1), dict(max_wait=1.5), dict(min_wait=10, max_wait=5),
    dict(start_timeout=0), dict(slice_size=2048), dict(blocksize=1500), dict(max_bitrate=0),
    dict(ttl=0), dict(ttl=256), dict(mcast_data_address="10.0.0.1"), dict(mcast_data_address="not-an-ip"),
    dict(mcast_rdv_address="::1"), dict(fec="8x8/200"), dict(fec="eight"), dict(retries_until_drop=0),
    dict(min_receivers=None), dict(min_wait=True),
])
def test_sender_rejects_what_udpcast_would_misread(bad):
    options = {"min_receivers": 2, **bad}
    with pytest.raises(UdpcastError):
        sender_argv(SenderOptions(**options))


# --- receiver argv -------------------------------------------------------------------------------------

def test_receiver_to_stdout_and_to_a_file():
    o = ReceiverOptions(portbase=9010, interface="eth0", mcast_rdv_address="10.0.0.1", start_timeout=600,
                        receive_timeout=60, rcvbuf=4 << 20, exit_wait=1000, ttl=1, progress=False)
    argv = receiver_argv(o)
    assert argv[0] == "udp-receiver" and flag(argv, "--nokbd") is True
    assert "--file" not in argv
    assert flag(argv, "--portbase") == "9010"
    assert flag(argv, "--interface") == "eth0"
    assert flag(argv, "--mcast-rdv-address") == "10.0.0.1"
    assert flag(argv, "--start-timeout") == "600"
    assert flag(argv, "--receive-timeout") == "60"
    assert flag(argv, "--rcvbuf") == str(4 << 20)
    assert flag(argv, "--exit-wait") == "1000"
    assert flag(argv, "--ttl") == "1"
    assert flag(argv, "--no-progress") is True
    assert flag(receiver_argv(ReceiverOptions(), Path("/dev/sda2")), "--file") == "/dev/sda2"


def test_receiver_minimal():
    assert receiver_argv(ReceiverOptions()) == ["udp-receiver", "--nokbd", "--portbase", "9000"]


@pytest.mark.parametrize("bad", [dict(portbase=9003), dict(start_timeout=0), dict(receive_timeout=-5),
                                 dict(rcvbuf=0), dict(mcast_rdv_address="host.example"), dict(interface="a b")])
def test_receiver_rejects(bad):
    with pytest.raises(UdpcastError):
        receiver_argv(ReceiverOptions(**bad))


# --- SenderProcess against stand-ins (no root, no network) ----------------------------------------------

def fake_sender(script: str) -> list[str]:
    return [sys.executable, "-c", script]


SUCCESS = r"""
import sys, time
w = sys.stderr.write
w("Udp-sender 20120424\nUsing full duplex mode\nUDP sender for x at 10.0.0.1 on eth0 \n")
w("New connection from 10.0.0.5  (#0) 00000009\nNew connection from 10.0.0.6  (#1) 00000009\n")
w("Starting transfer: 00000009\n")
for n in ("    163 072", "  1 048 576", "  4 194 304"):
    w("bytes=%s  re-xmits=0000012 (  0.1%%) slice=1024 -   0\r" % n); sys.stderr.flush(); time.sleep(0.05)
w("Dropping client #1 because of timeout\n")
w("\nTransfer complete.\nDisconnecting #0 (10.0.0.5)\n")
"""


def test_sender_process_reads_the_session_from_stderr():
    with SenderProcess(fake_sender(SUCCESS)) as s:
        result = s.wait(10)
    assert result.returncode == 0 and result.ok and not result.stopped
    assert result.started and result.completed
    assert result.receivers == {0: "10.0.0.5", 1: "10.0.0.6"}
    assert result.dropped == ["10.0.0.6"]
    assert result.bytes_sent == 4_194_304 and result.retransmits == 12
    assert result.status == "complete to 1 of 2 receivers (exit 0)"
    assert "Transfer complete." in result.stderr_tail
    assert result.stderr_tail.count("bytes=") == 1      # progress lines overwrite each other


def test_exit_zero_without_transfer_is_not_success():
    # udp-sender 20120424 exits 0 when --start-timeout passes with nobody there
    quiet = "import sys; sys.stderr.write('Udp-sender 20120424\\nBroadcasting control to 10.0.255.255\\n')"
    with SenderProcess(fake_sender(quiet)) as s:
        result = s.wait(10)
    assert result.returncode == 0 and not result.ok
    assert result.status.startswith("no transfer")


def test_every_receiver_dropped_is_not_success():
    script = ("import sys; sys.stderr.write('New connection from 10.0.0.5  (#0) 00000009\\nStarting transfer: 9\\n"
              "Dropping client #0 because of timeout\\nTransfer complete.\\n')")
    with SenderProcess(fake_sender(script)) as s:
        assert not s.wait(10).ok


def test_stop_escalates_to_sigkill_when_sigterm_is_ignored(tmp_path):
    # like udp-sender mid-transfer: SIGTERM does nothing
    stubborn = ("import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                "sys.stderr.write('Starting transfer: 9\\n'); sys.stderr.flush(); time.sleep(60)")
    log = tmp_path / "stderr.log"
    s = SenderProcess(fake_sender(stubborn), stderr_log=log, term_timeout=0.5).start()
    deadline = time.monotonic() + 10
    while not s.result().started and time.monotonic() < deadline:
        time.sleep(0.02)
    pid = s.pid
    began = time.monotonic()
    result = s.stop()
    assert time.monotonic() - began < 5
    assert result.stopped and result.returncode == -signal.SIGKILL
    assert result.status == "stopped (killed by SIGKILL)"
    assert not Path(f"/proc/{pid}").exists()
    assert "Starting transfer" in log.read_text()


def test_context_manager_stops_on_an_exception():
    with pytest.raises(RuntimeError):
        with SenderProcess(fake_sender("import time; time.sleep(60)")) as s:
            pid = s.pid
            raise RuntimeError("the deploy was cancelled")
    assert s.result().stopped and s.result().returncode == -signal.SIGTERM
    assert not Path(f"/proc/{pid}").exists()


def test_stop_after_the_end_signals_nobody():
    with SenderProcess(fake_sender("pass")) as s:
        s.wait(10)
    result = s.stop()
    assert not result.stopped and result.returncode == 0


def test_wrapper_goes_in_front():
    s = SenderProcess(["true"], wrapper=["env", "LC_ALL=C"])
    assert s.argv == ["env", "LC_ALL=C", "true"]


# --- the real thing, as root: a sender and two receivers in namespaces ---------------------------------

NEEDS = [t for t in ("udp-sender", "udp-receiver", "ip") if not shutil.which(t)]


@pytest.fixture
def lan():
    """Namespaces imgmc-<pid>-t{sw,s,r1,r2}: a bridge and three hosts on 10.232.0.0/16, nothing else."""
    prefix = f"imgmc-{os.getpid()}-t"
    created, procs = [], []

    def sh(*argv):
        subprocess.run(argv, check=True, capture_output=True)

    def netns(name):
        sh("ip", "netns", "add", name)
        created.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")

    try:
        switch = prefix + "sw"
        netns(switch)
        sh("ip", "-n", switch, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
        sh("ip", "-n", switch, "link", "set", "br0", "up")
        hosts = {}
        for port, ip in (("s", "10.232.0.1"), ("r1", "10.232.1.1"), ("r2", "10.232.1.2")):
            ns = prefix + port
            netns(ns)
            sh("ip", "-n", switch, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "-n", switch, "link", "set", port, "master", "br0", "up")
            sh("ip", "-n", ns, "addr", "add", f"{ip}/16", "brd", "+", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            hosts[port] = ["ip", "netns", "exec", ns]

        def spawn(argv, **kw):
            proc = subprocess.Popen(argv, start_new_session=True, **kw)
            procs.append(proc)
            return proc

        yield hosts, spawn
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        for name in reversed(created):
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)


def receivers(lan, out_dir: Path, **options):
    hosts, spawn = lan
    opts = ReceiverOptions(interface="eth0", start_timeout=20, receive_timeout=5, **options)
    r1 = spawn(hosts["r1"] + receiver_argv(opts, out_dir / "r1.img"), stdout=subprocess.DEVNULL,
               stderr=subprocess.PIPE)                                      # to a file
    r2 = spawn(hosts["r2"] + receiver_argv(opts), stdout=open(out_dir / "r2.img", "wb"),
               stderr=subprocess.PIPE)                                      # to stdout
    return r1, r2


@pytest.mark.root
@pytest.mark.timeout(60)
@pytest.mark.skipif(bool(NEEDS), reason=f"missing {NEEDS}")
def test_multicast_to_two_receivers_byte_exact(lan, tmp_path):
    hosts, _ = lan
    image = tmp_path / "image.bin"
    image.write_bytes(os.urandom(3 << 20) + bytes(1 << 20) + b"imager" * 100_000)
    r1, r2 = receivers(lan, tmp_path)
    options = SenderOptions(interface="eth0", min_receivers=2, max_wait=10, start_timeout=20)
    with SenderProcess(sender_argv(options, image), wrapper=hosts["s"]) as sender:
        result = sender.wait(40)
    assert result.ok, result.stderr_tail
    assert sorted(result.receivers.values()) == ["10.232.1.1", "10.232.1.2"] and not result.dropped
    assert result.bytes_sent == image.stat().st_size
    for proc in (r1, r2):
        assert proc.wait(20) == 0, proc.stderr.read().decode(errors="replace")[-500:]
    want = hashlib.sha256(image.read_bytes()).hexdigest()
    assert hashlib.sha256((tmp_path / "r1.img").read_bytes()).hexdigest() == want
    assert hashlib.sha256((tmp_path / "r2.img").read_bytes()).hexdigest() == want


@pytest.mark.root
@pytest.mark.timeout(60)
@pytest.mark.skipif(bool(NEEDS), reason=f"missing {NEEDS}")
def test_stopping_a_sender_mid_transfer_leaves_no_udp_sender(lan, tmp_path):
    hosts, _ = lan
    image = tmp_path / "image.bin"
    image.write_bytes(os.urandom(8 << 20))
    r1, r2 = receivers(lan, tmp_path)
    # 8 MiB at 8 Mbit/s would take 8 s: we stop it one second in
    options = SenderOptions(interface="eth0", min_receivers=2, max_wait=10, start_timeout=20, max_bitrate=8_000_000)
    with SenderProcess(sender_argv(options, image), wrapper=hosts["s"]) as sender:
        pid = sender.pid
        deadline = time.monotonic() + 30
        while not sender.result().started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sender.result().started, sender.result().stderr_tail
        assert Path(f"/proc/{pid}/comm").read_text().strip() == "udp-sender"   # the wrapper exec'd: our PID
        time.sleep(1)
        began = time.monotonic()
        result = sender.stop()
        stopped_in = time.monotonic() - began
    assert result.stopped and not result.ok
    assert result.returncode in (-signal.SIGTERM, -signal.SIGKILL)
    assert 0 < result.bytes_sent < image.stat().st_size
    assert stopped_in < 5
    assert not Path(f"/proc/{pid}").exists(), "udp-sender survived stop()"
    # the receivers notice the silence (--receive-timeout 5) and fail: a deploy never ends "complete" here
    for proc in (r1, r2):
        assert proc.wait(20) != 0


@pytest.mark.root
@pytest.mark.timeout(90)
@pytest.mark.skipif(bool(NEEDS) or not shutil.which("nft"), reason=f"missing {NEEDS} or nft")
def test_real_udp_sender_reports_retransmits_and_a_dropped_receiver(lan, tmp_path):
    """The parser against udp-sender's own words: r1 loses 10 % of its UDP packets (nftables; this kernel has
    no netem), so slices are sent again; r2 is frozen (SIGSTOP) mid-transfer and dropped after 3 unanswered
    requests, while r1 still gets every byte."""
    hosts, _ = lan
    subprocess.run(hosts["r1"] + ["nft", "-f", "-"], check=True, capture_output=True, text=True, input=(
        "table netdev lossy {\n  chain ingress {\n    type filter hook ingress device eth0 priority 0;\n"
        "    meta l4proto udp numgen random mod 100 < 10 drop\n  }\n}\n"))
    image = tmp_path / "image.bin"
    image.write_bytes(os.urandom(8 << 20))
    r1, r2 = receivers(lan, tmp_path)
    raw = tmp_path / "sender.stderr"
    # 8 MiB at 16 Mbit/s: about 4 s, time to freeze r2 one second in
    options = SenderOptions(interface="eth0", min_receivers=2, max_wait=10, start_timeout=20,
                            max_bitrate=16_000_000, retries_until_drop=3)
    with SenderProcess(sender_argv(options, image), wrapper=hosts["s"], stderr_log=raw) as sender:
        deadline = time.monotonic() + 30
        while not sender.result().started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sender.result().started, sender.result().stderr_tail
        time.sleep(1)
        r2.send_signal(signal.SIGSTOP)
        result = sender.wait(60)
    said = raw.read_text(errors="replace")
    frozen = next(n for n, address in result.receivers.items() if address == "10.232.1.2")
    assert f"Dropping client #{frozen} because of timeout" in said
    assert result.dropped == ["10.232.1.2"]
    assert sorted(result.receivers.values()) == ["10.232.1.1", "10.232.1.2"]
    assert result.ok and result.completed and result.status == "complete to 1 of 2 receivers (exit 0)"
    last_progress = [line for line in said.replace("\r", "\n").splitlines() if line.startswith("bytes=")][-1]
    assert f"re-xmits={result.retransmits:07d}" in last_progress and result.retransmits > 0, last_progress
    assert result.bytes_sent == image.stat().st_size
    assert r1.wait(20) == 0, r1.stderr.read().decode(errors="replace")[-500:]
    assert hashlib.sha256((tmp_path / "r1.img").read_bytes()).digest() == hashlib.sha256(image.read_bytes()).digest()
