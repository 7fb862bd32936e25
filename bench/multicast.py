"""Benchmark of the multicast transfer layer (udp-sender → N udp-receivers), no VMs.

    python3 bench/multicast.py                 (as root; about 11 minutes on the 2-core build machine)
    python3 bench/multicast.py --quick         (64 MiB, N = 1 and 4: a smoke run)
    python3 bench/multicast.py --drop-stalls   (only how long a dead receiver stalls the others, per
                                                --retries-until-drop 10, 30, 200: about 5 minutes)

A private switched LAN made of network namespaces, all named imgmc-<pid>-*:

    imgmc-<pid>-s (sender, eth0 10.232.0.1/16) ─veth─┐
    imgmc-<pid>-r1 (eth0 10.232.1.1/16)        ─veth─┤ br0 in imgmc-<pid>-sw (the "switch")
    …                                                │
    imgmc-<pid>-r32 (eth0 10.232.1.32/16)      ─veth─┘

Every veth is shaped with tbf to the same rate, in both directions (default 50 Mbit/s, --rate).  The rate
is what this 2-core machine can switch for 32 receivers without the CPU becoming the bottleneck: at 100 and
200 Mbit/s, 32 receivers got the same ~8.8 MiB/s (≈ 280 MiB/s delivered in all, the host's limit while
another engineer's tests share it), so those rates measure the host, not udpcast (docs/multicast.md).
Receivers not in a run have their switch port down.  Each receiver's stdout is piped into
`openssl dgst -sha256` (SHA-NI; coreutils' sha256sum is 4× slower), so nothing touches a disk.
The default 200 MiB file takes ~38 s per transfer; the whole run takes ~11 minutes.

It prints time(N) and time(N)/time(1) for N = 1, 4, 16, 32 (goal: time(32) ≤ 1.2 × time(1)), then the
same with 2 % random loss on every receiver's ingress (nftables `numgen random mod 100 < 2 drop` on
udp in each receiver's namespace), then the evidence behind docs/multicast.md: udpcast's modes side by
side, a slow receiver, and a receiver that dies mid-transfer.  Multicast never leaves the namespaces.
Everything — processes (by PID), namespaces, the test file on /dev/shm — is removed on every exit path.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from server_stub.udpcast import (Mode, ReceiverOptions, SenderOptions, SenderProcess,  # noqa: E402
                                 receiver_argv, sender_argv)

PREFIX = f"imgmc-{os.getpid()}-"
SENDER_IP = "10.232.0.1"
PORTBASE = 9000
DATA_GROUP = "239.232.0.1"      # administratively scoped; and TTL 1 keeps it on this LAN


class Interrupted(Exception):
    pass


def _on_signal(signum, _frame):
    raise Interrupted(signal.Signals(signum).name)


def run(*argv: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True, input=input)
    if check and result.returncode:
        raise RuntimeError(f"{' '.join(argv)}: exit {result.returncode}: {result.stderr.strip()}")
    return result


# --- processes we start, so that every one of them is stopped by its PID ------------------------------

_children: dict[int, subprocess.Popen] = {}


def spawn(argv: list[str], **kw) -> subprocess.Popen:
    proc = subprocess.Popen(argv, start_new_session=True, **kw)
    _children[proc.pid] = proc
    return proc


def stop_children() -> None:
    for proc in list(_children.values()):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 3
    for proc in list(_children.values()):
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    _children.clear()


# --- the lab ------------------------------------------------------------------------------------------

class Lab:
    """One switch namespace with a bridge, one sender namespace and ``receivers`` receiver namespaces."""

    def __init__(self, receivers: int, rate_mbit: int, prefix: str = PREFIX, shape_downlinks: bool = True) -> None:
        self.receivers = receivers
        self.rate_mbit = rate_mbit
        self.shape_downlinks = shape_downlinks
        self.prefix = prefix
        self.switch = prefix + "sw"
        self.sender = prefix + "s"
        self.created: list[str] = []

    def rx(self, i: int) -> str:
        return f"{self.prefix}r{i}"

    def exec(self, ns: str) -> list[str]:
        return ["ip", "netns", "exec", ns]

    def _netns(self, name: str) -> None:
        run("ip", "netns", "add", name)
        self.created.append(name)
        run("ip", "-n", name, "link", "set", "lo", "up")

    def _shape(self, ns: str, dev: str, mbit: int) -> None:
        # burst ≥ rate/HZ with room; a 100 ms queue at most, so a burst waits instead of being dropped
        burst = max(32 * 1024, mbit * 1_000_000 // 8 // 250)
        run("tc", "-n", ns, "qdisc", "replace", "dev", dev, "root", "tbf", "rate", f"{mbit}mbit",
            "burst", str(burst), "latency", "100ms")

    def up(self) -> None:
        self._netns(self.switch)
        run("ip", "-n", self.switch, "link", "add", "br0", "type", "bridge", "stp_state", "0", "mcast_snooping", "0")
        run("ip", "-n", self.switch, "link", "set", "br0", "up")
        hosts = [(self.sender, "s", SENDER_IP)] + [(self.rx(i), f"r{i}", f"10.232.1.{i}")
                                                   for i in range(1, self.receivers + 1)]
        for ns, port, ip in hosts:
            self._netns(ns)
            run("ip", "-n", self.switch, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
            run("ip", "-n", self.switch, "link", "set", port, "master", "br0", "up")
            # brd +: udpcast's rendezvous goes to the interface's broadcast address
            run("ip", "-n", ns, "addr", "add", f"{ip}/16", "brd", "+", "dev", "eth0")
            run("ip", "-n", ns, "link", "set", "eth0", "up")
            self._shape(ns, "eth0", self.rate_mbit)              # uplink: host → switch
            if ns == self.sender or self.shape_downlinks:
                self._shape(self.switch, port, self.rate_mbit)   # downlink: switch → host

    def active(self, n: int) -> None:
        """Switch ports of receivers 1..n up, the others down (the bridge floods only to live ports)."""
        for i in range(1, self.receivers + 1):
            run("ip", "-n", self.switch, "link", "set", f"r{i}", "up" if i <= n else "down")

    def downlink(self, i: int, mbit: int | None) -> None:
        """Receiver i's switch port at ``mbit``; None: back to how up() left it."""
        if mbit is not None:
            self._shape(self.switch, f"r{i}", mbit)
        elif self.shape_downlinks:
            self._shape(self.switch, f"r{i}", self.rate_mbit)
        else:
            run("tc", "-n", self.switch, "qdisc", "del", "dev", f"r{i}", "root", check=False)

    def loss(self, percent: int) -> None:
        """Random loss of ``percent`` % of the UDP packets entering each receiver (0: none)."""
        for i in range(1, self.receivers + 1):
            ns = self.rx(i)
            if shutil.which("nft"):
                run(*self.exec(ns), "nft", "delete", "table", "netdev", "imgmc", check=False)
                if percent:
                    run(*self.exec(ns), "nft", "-f", "-", input=(
                        "table netdev imgmc {\n"
                        "  chain ingress {\n"
                        "    type filter hook ingress device eth0 priority 0; policy accept;\n"
                        f"    meta l4proto udp numgen random mod 100 < {percent} drop\n"
                        "  }\n"
                        "}\n"))
            else:
                run(*self.exec(ns), "iptables", "-F", "INPUT", check=False)
                if percent:
                    run(*self.exec(ns), "iptables", "-A", "INPUT", "-p", "udp", "-m", "statistic", "--mode",
                        "random", "--probability", f"{percent / 100:.4f}", "-j", "DROP")

    def down(self) -> None:
        for ns in reversed(self.created):
            run("ip", "netns", "delete", ns, check=False)
        self.created.clear()


def remove_stale_runs() -> None:
    """What an earlier run of this benchmark that was SIGKILLed left: its namespaces, the processes still
    inside them (found with `ip netns pids`, stopped by PID) and its directory on /dev/shm."""
    def dead(name: str) -> bool:
        parts = name.split("-")
        return len(parts) >= 3 and parts[0] == "imgmc" and parts[1].isdigit() and not Path(f"/proc/{parts[1]}").exists()

    for name in run("ip", "netns", "list", check=False).stdout.split():
        if dead(name):
            for pid in run("ip", "netns", "pids", name, check=False).stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            run("ip", "netns", "delete", name, check=False)
    shm = Path("/dev/shm")
    if shm.is_dir():
        for entry in shm.glob("imgmc-*-*"):
            if entry.is_dir() and dead(entry.name):
                shutil.rmtree(entry, ignore_errors=True)


# --- one transfer -------------------------------------------------------------------------------------

@dataclasses.dataclass
class Result:
    n: int
    transfer_s: float           # "Starting transfer" → last receiver's hash done
    total_s: float              # sender started → last receiver's hash done
    exact: int                  # receivers whose sha256 matched
    failed: list[str]           # what went wrong for the others
    retransmits: int
    blocks: int
    sender_status: str
    dropped: list[str]


def make_payload(path: Path, mib: int) -> str:
    """Mixed data: random blocks, zeros, and repetitive text, like a disk's content. Returns the sha256."""
    h = hashlib.sha256()
    text = b"".join(b"imager multicast %08d\n" % i for i in range(40000))[: 1 << 20]
    with open(path, "wb") as f:
        for i in range(mib):
            chunk = os.urandom(1 << 20) if i % 4 in (0, 1) else (bytes(1 << 20) if i % 4 == 2 else text)
            f.write(chunk)
            h.update(chunk)
    return h.hexdigest()


def transfer(lab: Lab, n: int, payload: Path, expected: str, sender_opts: SenderOptions,
             receiver_opts: ReceiverOptions, kill_receiver_after: float | None = None,
             timeout: float = 600) -> Result:
    """Starts n receivers (each piped into openssl), then the sender; waits for all; checks every hash."""
    lab.active(n)
    workdir = payload.parent
    receivers: list[tuple[subprocess.Popen, subprocess.Popen, Path, Path]] = []
    done_at: dict[int, float] = {}
    try:
        for i in range(1, n + 1):
            err = workdir / f"r{i}.err"
            out = workdir / f"r{i}.sha"
            with open(err, "wb") as ferr:
                rcv = spawn(lab.exec(lab.rx(i)) + receiver_argv(receiver_opts), stdout=subprocess.PIPE, stderr=ferr)
            with open(out, "wb") as fout:
                dgst = spawn(["openssl", "dgst", "-sha256", "-r"], stdin=rcv.stdout, stdout=fout)
            rcv.stdout.close()
            receivers.append((rcv, dgst, out, err))

        def waiter(i: int, proc: subprocess.Popen) -> None:
            proc.wait()
            done_at[i] = time.monotonic()

        threads = [threading.Thread(target=waiter, args=(i, d), daemon=True) for i, (_, d, _, _) in enumerate(receivers)]
        for t in threads:
            t.start()
        if sender_opts.mode is Mode.ASYNC:     # async receivers never connect: start after 4 HELLOs
            opts = dataclasses.replace(sender_opts, min_receivers=None, autostart=4)
        else:
            opts = dataclasses.replace(sender_opts, min_receivers=n)
        with SenderProcess(sender_argv(opts, payload), wrapper=lab.exec(lab.sender)) as sender:
            if kill_receiver_after is not None:
                while sender.transfer_started_at is None and sender.running():
                    time.sleep(0.02)
                time.sleep(kill_receiver_after)
                victim = receivers[-1][0]
                victim.send_signal(signal.SIGKILL)       # a receiver that crashes (or is powered off)
            try:
                result = sender.wait(timeout)
            except subprocess.TimeoutExpired:
                result = sender.stop()
            deadline = time.monotonic() + 30
            for t in threads:
                t.join(max(0.1, deadline - time.monotonic()))
        exact, failed, exact_ends = 0, [], []
        for i, (rcv, dgst, out, err) in enumerate(receivers, 1):
            if rcv.poll() is None:
                rcv.kill()
            rc = rcv.wait()
            digest = out.read_text().split(" ")[0] if out.exists() else ""
            if rc == 0 and digest == expected:
                exact += 1
                exact_ends.append(done_at.get(i - 1, time.monotonic()))
            else:
                last = err.read_bytes().replace(b"\r", b"\n").decode(errors="replace").strip().splitlines()[-1:]
                failed.append(f"r{i}: exit {rc}, {'sha256 ok' if digest == expected else 'sha256 WRONG'}"
                              f"{': ' + last[0] if last else ''}")
        # the session ends when the last receiver that got everything has it hashed
        end = max(exact_ends) if exact_ends else max(done_at.values(), default=time.monotonic())
        started = sender.transfer_started_at or sender.started_at
        return Result(n=n, transfer_s=end - started, total_s=end - sender.started_at, exact=exact, failed=failed,
                      retransmits=result.retransmits, blocks=max(1, result.bytes_sent // 1456),
                      sender_status=result.status, dropped=result.dropped)
    finally:
        for rcv, dgst, _, _ in receivers:
            for proc in (rcv, dgst):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(3)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
                _children.pop(proc.pid, None)


# --- the report ---------------------------------------------------------------------------------------

def table(title: str, results: list[Result], size_mib: int, rate: int) -> None:
    base = results[0].transfer_s
    print(f"\n{title}")
    print(f"{'N':>3} {'time(N) s':>10} {'/time(1)':>9} {'total s':>8} {'MiB/s':>6} {'wire use':>8} "
          f"{'rexmit':>7} {'exact':>6}  sender")
    for r in results:
        mibs = size_mib / r.transfer_s
        use = mibs * 1048576 * 8 / 1e6 / rate
        print(f"{r.n:>3} {r.transfer_s:>10.2f} {r.transfer_s / base:>9.3f} {r.total_s:>8.2f} {mibs:>6.1f} "
              f"{use:>7.0%} {r.retransmits / r.blocks:>7.1%} {r.exact:>3}/{r.n:<2}  {r.sender_status}")
        for f in r.failed:
            print(f"      {f}")
    sys.stdout.flush()


def best_of(runs: int, fn) -> Result:
    results = [fn() for _ in range(runs)]
    good = [r for r in results if r.exact == r.n] or results
    return min(good, key=lambda r: r.transfer_s)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=int, default=50, help="Mbit/s of every link (default 50, see the docstring)")
    ap.add_argument("--size", type=int, default=200, help="MiB in the test file (default 200)")
    ap.add_argument("--counts", default="1,4,16,32", help="receiver counts (default 1,4,16,32)")
    ap.add_argument("--runs", type=int, default=1, help="runs per point, the best one counts (default 1)")
    ap.add_argument("--loss", type=int, default=2, help="percent random loss for the second table (default 2)")
    ap.add_argument("--no-downlink-shaping", action="store_true",
                    help="no tbf on the switch → receiver ports (they only carry what the shaped sender uplink emits)")
    ap.add_argument("--extras-size", type=int, default=64, help="MiB for the mode comparison and failure cases")
    ap.add_argument("--no-extras", action="store_true", help="skip the mode comparison and the failure cases")
    ap.add_argument("--quick", action="store_true", help="64 MiB, N = 1,4, no extras")
    ap.add_argument("--drop-stalls", action="store_true",
                    help="only the stall a receiver killed mid-transfer causes, per --drop-retries (extras size)")
    ap.add_argument("--drop-retries", default="10,30,200", help="--retries-until-drop values (default 10,30,200)")
    args = ap.parse_args()
    if args.quick:
        args.size, args.counts, args.no_extras = 64, "1,4", True
    if args.drop_stalls:
        args.size, args.counts = args.extras_size, "4"
    counts = [int(c) for c in args.counts.split(",")]

    if os.geteuid() != 0:
        print("bench/multicast.py needs root (network namespaces, tc, nftables)", file=sys.stderr)
        return 2
    missing = [t for t in ("udp-sender", "udp-receiver", "ip", "tc", "openssl") if not shutil.which(t)]
    if not (shutil.which("nft") or shutil.which("iptables")):
        missing.append("nft (apt-get install nftables)")
    if missing:
        print(f"missing: {', '.join(missing)}", file=sys.stderr)
        return 2

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    remove_stale_runs()
    began = time.monotonic()
    lab = Lab(max(counts + [4]), args.rate, shape_downlinks=not args.no_downlink_shaping)
    tmp = Path(tempfile.mkdtemp(prefix=PREFIX, dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    try:
        payload = tmp / "payload.img"
        expected = make_payload(payload, args.size)
        lab.up()
        version = run("dpkg-query", "-W", "-f", "${Version}", "udpcast", check=False).stdout or "?"
        print(f"multicast bench: {args.size} MiB mixed data; every link tbf {args.rate} Mbit/s "
              f"({'both directions' if not args.no_downlink_shaping else 'not the switch → receiver ports'}); "
              f"udpcast {version}; {os.cpu_count()} cores; receivers hash on the fly with openssl sha256", flush=True)

        rcv = ReceiverOptions(portbase=PORTBASE, interface="eth0", start_timeout=60, receive_timeout=30,
                              rcvbuf=4 << 20)
        snd = SenderOptions(portbase=PORTBASE, interface="eth0", max_wait=30, start_timeout=60,
                            mcast_data_address=DATA_GROUP)
        print("sender:   " + " ".join(sender_argv(dataclasses.replace(snd, min_receivers=counts[-1]), payload)))
        print("receiver: " + " ".join(receiver_argv(rcv)) + " | openssl dgst -sha256", flush=True)

        if args.drop_stalls:
            drop_stalls(lab, payload, expected, snd, rcv, [int(r) for r in args.drop_retries.split(",")])
            print(f"bench took {time.monotonic() - began:.0f} s")
            return 0
        results = [best_of(args.runs, lambda n=n: transfer(lab, n, payload, expected, snd, rcv)) for n in counts]
        table(f"no loss ({args.size} MiB, {args.rate} Mbit/s links)", results, args.size, args.rate)
        lossy: list[Result] = []
        if args.loss:
            lab.loss(args.loss)
            lossy = [best_of(args.runs, lambda n=n: transfer(lab, n, payload, expected, snd, rcv)) for n in counts]
            lab.loss(0)
            table(f"{args.loss} % random loss on every receiver's ingress ({args.size} MiB, {args.rate} Mbit/s links)",
                  lossy, args.size, args.rate)

        if not args.no_extras:
            small = tmp / "small.img"
            extras(lab, small, make_payload(small, args.extras_size), snd, rcv, args)

        ok = all(r.exact == r.n for r in results + lossy)
        ratio = results[-1].transfer_s / results[0].transfer_s
        print(f"\ngoal time({counts[-1]}) ≤ 1.2 × time({counts[0]}): {ratio:.3f} → {'met' if ratio <= 1.2 else 'NOT met'}; "
              f"every receiver byte-exact in both tables: {'yes' if ok else 'NO'}; "
              f"bench took {time.monotonic() - began:.0f} s")
        return 0 if ok else 1
    except Interrupted as e:
        print(f"\ninterrupted by {e}; cleaning up", file=sys.stderr)
        return 130
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)     # the cleanup itself must not be cut short
        stop_children()
        lab.down()
        shutil.rmtree(tmp, ignore_errors=True)


def extras(lab: Lab, payload: Path, expected: str, snd: SenderOptions, rcv: ReceiverOptions, args) -> None:
    """The measurements docs/multicast.md bases the choice of mode on."""
    n = lab.receivers
    rate, size = args.rate, args.extras_size
    modes = [
        ("full duplex, slice 1024, FEC 8x8/128 (ours)", snd),
        ("full duplex, slice 1024, no FEC", dataclasses.replace(snd, fec=None)),
        ("full duplex, slice 112 (udpcast's), no FEC", dataclasses.replace(snd, fec=None, slice_size=None)),
        ("half duplex, slice 1024, no FEC", dataclasses.replace(snd, mode=Mode.HALF_DUPLEX, fec=None)),
        ("async, FEC 8x8/128, 90 % of the link", dataclasses.replace(snd, mode=Mode.ASYNC, fec="8x8/128",
                                                                   max_bitrate=rate * 900_000, slice_size=None)),
    ]
    print(f"\nmodes side by side ({size} MiB, N = {n})")
    print(f"{'mode':<42} {'loss':>4} {'time s':>7} {'rexmit':>7} {'exact':>6}  sender")
    for label, opts in modes:
        for loss in (0, args.loss):
            lab.loss(loss)
            r = transfer(lab, n, payload, expected, opts, rcv, timeout=300)
            print(f"{label:<42} {loss:>3}% {r.transfer_s:>7.2f} {r.retransmits / r.blocks:>7.1%} "
                  f"{r.exact:>3}/{r.n:<2}  {r.sender_status}", flush=True)
            for f in r.failed[:2]:
                print(f"      {f}")
            if len(r.failed) > 2:
                print(f"      … and {len(r.failed) - 2} more")
    lab.loss(0)

    print(f"\nfailure cases ({size} MiB, N = 4)")
    base = transfer(lab, 4, payload, expected, snd, rcv)
    print(f"all four on {rate} Mbit/s links: {base.transfer_s:.2f} s, {base.exact}/4 exact")
    lab.downlink(4, rate // 4)
    try:
        r = transfer(lab, 4, payload, expected, snd, rcv)
    finally:
        lab.downlink(4, None)
    print(f"one receiver on a {rate // 4} Mbit/s link: {r.transfer_s:.2f} s, {r.exact}/4 exact, "
          f"retransmissions {r.retransmits / r.blocks:.0%}, {r.sender_status}"
          + "".join(f"\n      {f}" for f in r.failed), flush=True)
    r = transfer(lab, 4, payload, expected, snd, rcv, kill_receiver_after=base.transfer_s / 3)
    print(f"one receiver killed (SIGKILL) a third of the way: {r.transfer_s:.2f} s, {r.exact}/4 exact, "
          f"dropped {r.dropped} (--retries-until-drop {snd.retries_until_drop}), {r.sender_status}"
          + "".join(f"\n      {f}" for f in r.failed), flush=True)



def drop_stalls(lab: Lab, payload: Path, expected: str, snd: SenderOptions, rcv: ReceiverOptions,
                retries: list[int]) -> None:
    """How long one receiver of 4, SIGKILLed a third of the way, holds the other three up until udp-sender
    drops it: the transfer's time with the kill minus its time without (docs/multicast.md's table)."""
    size = round(payload.stat().st_size / 2**20)
    print(f"\na receiver killed (SIGKILL) a third of the way ({size} MiB, N = 4): stall = time(kill) - time(no kill)")
    base = transfer(lab, 4, payload, expected, snd, rcv)
    print(f"no kill: {base.transfer_s:.2f} s, {base.exact}/4 exact", flush=True)
    for n in retries:
        opts = dataclasses.replace(snd, retries_until_drop=n)
        r = transfer(lab, 4, payload, expected, opts, rcv, kill_receiver_after=base.transfer_s / 3, timeout=900)
        print(f"--retries-until-drop {n:>3}: stall {r.transfer_s - base.transfer_s:6.1f} s ({r.transfer_s:.2f} s), "
              f"{r.exact}/3 exact, dropped {r.dropped}, {r.sender_status}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
