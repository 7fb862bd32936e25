"""The lab: a private network namespace where QEMU clients PXE-boot against the real server.

    netns imagerlab-<pid>
      br0 10.231.0.1/24 ── tap per VM ── QEMU (SeaBIOS + iPXE ROM, virtio disk)
      dnsmasq      DHCP only; boot file boot.ipxe from next-server 10.231.0.1
      imager-server HTTP :8080, TFTP :69, SQLite in the lab's directory
      ganesha.nfsd NFSv4.1 export /images → <lab>/images (userspace: this host has no nfsd)

Everything is started by this module and stopped by PID on exit, failures included.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.disktools import _run, attached, file_sha256, mounted, tree_checksums  # noqa: F401 (used by tests)

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
BOOT_DIR = REPO / "build" / "boot"
SERVER_IP = "10.231.0.1"
HTTP_PORT = 8080
SERVER_URL = f"http://{SERVER_IP}:{HTTP_PORT}"
EXPORT = f"{SERVER_IP}:/images"
OVMF = "/usr/share/ovmf/OVMF.fd"
# Secure Boot enforced, Microsoft's keys enrolled (Debian's ovmf): code read-only, variables copied per VM.
OVMF_SB_CODE, OVMF_SB_VARS = "/usr/share/OVMF/OVMF_CODE_4M.ms.fd", "/usr/share/OVMF/OVMF_VARS_4M.ms.fd"
# For debugging a scenario: e.g. IMAGER_LAB_KERNEL_ARGS=imager.debug=1 logs every command and its stderr.
LAB_KERNEL_ARGS = os.environ.get("IMAGER_LAB_KERNEL_ARGS", "")
# A dual-stack site, as most are: router advertisements (no default route, a private prefix inside the lab's
# namespace). iPXE's "Configuring" waits for its IPv6 autoconfiguration too, about 13 s on a network that
# never answers its router solicitations (docs/boot-time.md).
LAB_IPV6_PREFIX = "fd23:1::"
SITE_DHCP = ["--no-ping",  # ISC dhcpd, Kea and Windows offer at once; dnsmasq's ping check costs 3 s per new lease
             # iPXE's no-pxedhcp (175.176 = 1): this offer is the whole answer, don't wait 2-3 s for a ProxyDHCP one
             "--dhcp-option=tag:ipxe,175,b0:01:01",
             # default RA interval, router lifetime 0: a prefix to configure, no IPv6 route through the lab's server
             "--enable-ra", f"--dhcp-range={LAB_IPV6_PREFIX},ra-only,64,1h", "--ra-param=br0,0,0"]


class LabError(RuntimeError):
    pass


class VM:
    """One QEMU client; its serial console goes to a file, or (interactive=True) to a unix socket that
    ``terminal()`` drives with pexpect, like a technician at a serial terminal (copied to the file too)."""

    def __init__(self, lab: "Lab", name: str, mac: str, disk: Path, memory: int = 768, firmware: str = "bios",
                 disk_serial: str | None = None, smbios: str | None = None, interactive: bool = False,
                 nvme: bool = False) -> None:
        self.name, self.mac, self.disk = name, mac, disk
        self.console = lab.dir / f"{name}.console.log"
        self.socket = lab.dir / f"{name}.serial.sock" if interactive else None
        self._terminal = None
        tap = f"tap{len(lab.vms)}"
        lab.netns("ip", "tuntap", "add", tap, "mode", "tap")
        lab.netns("ip", "link", "set", tap, "master", "br0", "up")
        self.started = time.monotonic()
        self.started_wall = time.time()  # the server's log lines are in wall time (tests/qemu/boottime.py)
        # UEFI: no iPXE option ROM, so OVMF's own PXE client (DHCP client architecture 7) fetches
        # snponly.efi from our TFTP, and that iPXE runs our script.
        firmware_args = ["-bios", OVMF] if firmware == "uefi" else ["-boot", "n"]
        if firmware == "uefi-http":  # OVMF without its PXE boot options: it goes straight to HTTP boot
            firmware_args = ["-bios", OVMF, "-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=no",
                             "-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=no"]
        if firmware == "uefi-sb":  # SMM guards the variable store, as on real Secure Boot hardware
            variables = lab.dir / f"{name}.OVMF_VARS.fd"
            shutil.copyfile(OVMF_SB_VARS, variables)
            firmware_args = ["-machine", "q35,smm=on", "-global", "driver=cfi.pflash01,property=secure,value=on",
                             "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_SB_CODE}",
                             "-drive", f"if=pflash,format=raw,unit=1,file={variables}"]
        rom = ",romfile=" if firmware.startswith("uefi") else ""
        # A disk serial (what inventory and serial= selectors see) needs the -device form of the disk.
        # Secure Boot VMs: OVMF connects only the devices in QEMU's boot order, so the disk gets a bootindex
        # (else GRUB's local boot finds no disk).
        device_options = (f",serial={disk_serial}" if disk_serial else "") + (
            ",bootindex=2" if firmware == "uefi-sb" else "")
        drive = (["-drive", f"file={disk},format=raw,if=none,id=d0,cache=unsafe",
                  "-device", f"virtio-blk-pci,drive=d0{device_options}"] if device_options else
                 ["-drive", f"file={disk},format=raw,if=virtio,cache=unsafe"])
        if nvme:  # an NVMe controller with one namespace (nvme-cli's format, SMART health log)
            drive = ["-drive", f"file={disk},format=raw,if=none,id=d0,cache=unsafe",
                     "-device", f"nvme,drive=d0,serial={disk_serial or 'LABNVME0'}"]
        identity = ["-smbios", smbios] if smbios else []  # e.g. type=1,manufacturer=…,product=…,serial=…
        self.proc = lab.spawn([
            "qemu-system-x86_64", "-m", str(memory), "-smp", "1", "-nographic", "-no-reboot", *firmware_args,
            "-monitor", "none",
            "-serial", f"unix:{self.socket},server=on,wait=off" if self.socket else f"file:{self.console}",
            "-netdev", f"tap,id=n0,ifname={tap},script=no,downscript=no",
            "-device", f"virtio-net-pci,netdev=n0,mac={mac},bootindex=1{rom}",
            *drive, *identity,
        ], log=lab.dir / f"{name}.qemu.log")

    def terminal(self, timeout: float = 120):
        """The serial console as a pexpect child (fdpexpect on the socket); what it reads goes to the
        console file as well. Connected at once: QEMU drops serial output while no one is connected."""
        if self._terminal is None:
            import socket

            from pexpect import fdpexpect
            deadline = time.monotonic() + 30
            while not self.socket.exists():
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise LabError(f"VM {self.name}: QEMU made no serial socket")
                time.sleep(0.05)
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._sock.connect(str(self.socket))
            self._terminal = fdpexpect.fdspawn(self._sock.fileno(), encoding="utf-8", codec_errors="replace",
                                               timeout=timeout)
            self._terminal.logfile_read = open(self.console, "a")
        return self._terminal

    def console_text(self) -> str:
        try:
            return self.console.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_exit(self, timeout: float) -> int:
        if self._terminal is not None:  # keep reading: an unread serial socket stalls the guest's console
            import pexpect
            deadline = time.monotonic() + timeout
            while self.proc.poll() is None and time.monotonic() < deadline:
                self._terminal.expect([pexpect.EOF, pexpect.TIMEOUT], timeout=1)
                if not self._terminal.isalive():
                    break
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise LabError(f"VM {self.name} still running after {timeout:.0f} s; console tail:\n"
                           + "\n".join(self.console_text().splitlines()[-25:])) from None

    def wait_console(self, text: str, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.console_text():
                return time.monotonic() - self.started
            if self.proc.poll() is not None:
                break
            time.sleep(0.5)
        raise LabError(f"VM {self.name}: {text!r} never appeared on the console; tail:\n"
                       + "\n".join(self.console_text().splitlines()[-25:]))

    def stop(self) -> None:
        if self._terminal is not None:
            self._terminal.logfile_read.close()
            self._sock.close()
            self._terminal = None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Lab:
    def __init__(self, workdir: str | None = None, fail_wait: int = 5, dhcp: str = "pxe",
                 unknown_hosts: str | None = None, pxelinux_macs: tuple[str, ...] = (),
                 menu_timeout: int | None = None, shim_macs: tuple[str, ...] = (), nfs: bool = True) -> None:
        """dhcp="pxe": one dnsmasq hands out addresses and boot files. dhcp="proxy": a plain DHCP server
        that knows nothing about PXE runs on another host (namespace), and our dnsmasq only answers
        PXE clients as a proxyDHCP server, as a site with its own DHCP server would run it.
        dhcp="http": UEFI HTTP boot only (boot files as URLs) and the server's TFTP off port 69, so a
        client that tried TFTP would find nothing.
        nfs=False: no NFS server at all; the node 'lab' deploys over HTTP from the server's image route."""
        self.nfs = nfs
        self.dhcp_mode = dhcp
        self.unknown_hosts = unknown_hosts  # imager-server serve --unknown-hosts; None: the server's default (menu)
        self.menu_timeout = menu_timeout    # serve --menu-timeout; None: the server's default (3 s)
        self.pxelinux_macs = pxelinux_macs  # these get pxelinux.0 as boot file (syslinux clients), dhcp="pxe" only
        self.shim_macs = shim_macs  # these get shimx64.efi (the Secure Boot chain: shim, GRUB), dhcp="pxe" only
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="imager-lab-"))
        self.ns = f"imagerlab-{os.getpid()}"
        self.site_ns = f"{self.ns}-site"
        self.images = self.dir / "images"
        self.fail_wait = fail_wait
        self.procs: list[subprocess.Popen] = []
        self.vms: list[VM] = []

    # --- plumbing -------------------------------------------------------------
    def netns(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        return _run("ip", "netns", "exec", self.ns, *argv, check=check)

    def spawn(self, argv: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
        with open(log, "ab") as out:
            proc = subprocess.Popen(["ip", "netns", "exec", self.ns, *argv], stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})
        self.procs.append(proc)
        return proc

    def __enter__(self) -> "Lab":
        if not (BOOT_DIR / "vmlinuz").exists() or not (BOOT_DIR / "initrd.img").exists():
            raise LabError("boot files missing: run 'make initramfs'")
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self) -> None:
        _run("ip", "netns", "add", self.ns)
        self.netns("ip", "link", "set", "lo", "up")
        self.netns("ip", "link", "add", "br0", "type", "bridge")
        self.netns("ip", "addr", "add", f"{SERVER_IP}/24", "dev", "br0")
        self.netns("ip", "-6", "addr", "add", f"{LAB_IPV6_PREFIX}1/64", "dev", "br0", "nodad")
        self.netns("ip", "link", "set", "br0", "up")
        self.images.mkdir(parents=True, exist_ok=True)
        if self.nfs:
            self._start_nfs()
        self._start_server()
        self._start_dhcp()

    def _start_nfs(self) -> None:
        state = self.dir / "ganesha"
        (state / "recovery").mkdir(parents=True, exist_ok=True)
        conf = state / "ganesha.conf"
        conf.write_text(f"""
NFS_CORE_PARAM {{ Protocols = 4; Enable_NLM = false; Enable_RQUOTA = false; Enable_UDP = false; }}
NFSv4 {{ Graceless = true; Only_Numeric_Owners = true; RecoveryRoot = "{state}/recovery"; }}
NFS_KRB5 {{ Active_krb5 = false; CCacheDir = "{state}/ccache"; }}
EXPORT {{
    Export_Id = 1; Path = "{self.images}"; Pseudo = /images; Protocols = 4; Transports = TCP;
    Access_Type = RW; Squash = No_Root_Squash; SecType = sys; FSAL {{ Name = VFS; }}
}}
""")
        self.spawn(["env", f"BLKID_FILE={state}/blkid.tab", "ganesha.nfsd", "-F", "-f", str(conf),
                    "-L", str(state / "ganesha.log"), "-p", str(state / "ganesha.pid")], log=state / "stdout.log")
        self._wait_port(2049, "nfs-ganesha", state / "ganesha.log")

    def _start_server(self) -> None:
        self.server_log = self.dir / "server.log"
        self.spawn([str(VENV_BIN / "imager-server"), "serve", "--bind", SERVER_IP, "--http-port", str(HTTP_PORT),
                    "--tftp-port", "6969" if self.dhcp_mode == "http" else "69",
                    "--data-dir", str(self.dir / "server"), "--boot-dir", str(BOOT_DIR),
                    "--kernel-args", f"console=ttyS0,115200n8 imager.fail_wait={self.fail_wait} {LAB_KERNEL_ARGS}".strip()]
                   + (["--unknown-hosts", self.unknown_hosts] if self.unknown_hosts else [])
                   + (["--menu-timeout", str(self.menu_timeout)] if self.menu_timeout else []),
                   log=self.server_log)
        self._wait_port(HTTP_PORT, "imager-server", self.server_log)
        self.cli("storage", "add", "lab", EXPORT,
                 *([] if self.nfs else ["--rsync-target", str(self.images), "--http-url", "server"]))

    def _start_dhcp(self) -> None:
        if self.dhcp_mode == "proxy":
            self._start_site_dhcp()
            self._start_proxy_dhcp()
            return
        log = self.dir / "dnsmasq.log"
        if self.dhcp_mode == "http":
            self._start_http_dhcp(log)
            return
        self.spawn(["dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--user=root",
                    "--interface=br0", "--bind-interfaces", "--dhcp-range=10.231.0.100,10.231.0.199,255.255.255.0,1h",
                    f"--dhcp-leasefile={self.dir / 'dnsmasq.leases'}", f"--pid-file={self.dir / 'dnsmasq.pid'}",
                    # iPXE (option 175) gets our script; plain PXE ROMs get iPXE first: BIOS undionly.kpxe,
                    # x86-64 UEFI (client architecture 7 or 9) snponly.efi.
                    "--dhcp-match=set:ipxe,175", "--dhcp-match=set:efi64,option:client-arch,7",
                    "--dhcp-match=set:efi64,option:client-arch,9",
                    *self._pxelinux_args(), *self._shim_args(), *SITE_DHCP,
                    f"--dhcp-boot=tag:!pxelinux,tag:!shim,tag:ipxe,boot.ipxe,,{SERVER_IP}",
                    f"--dhcp-boot=tag:!pxelinux,tag:!shim,tag:!ipxe,tag:efi64,snponly.efi,,{SERVER_IP}",
                    f"--dhcp-boot=tag:!pxelinux,tag:!shim,tag:!ipxe,tag:!efi64,undionly.kpxe,,{SERVER_IP}",
                    "--log-dhcp"],
                   log=log)

    def _pxelinux_args(self) -> list[str]:
        # The iPXE ROM runs pxelinux.0 like any PXE program; pxelinux then fetches everything over TFTP.
        return [*(f"--dhcp-host={mac},set:pxelinux" for mac in self.pxelinux_macs),
                f"--dhcp-boot=tag:pxelinux,pxelinux.0,,{SERVER_IP}"]

    def _start_http_dhcp(self, log: Path) -> None:
        """UEFI HTTP boot (vendor class HTTPClient): a URL to iPXE, then iPXE's script over HTTP; nothing
        for plain PXE clients, so OVMF's PXE attempt finds no boot file and it goes on to HTTP."""
        self.spawn(["dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--user=root",
                    "--interface=br0", "--bind-interfaces", "--dhcp-range=10.231.0.100,10.231.0.199,255.255.255.0,1h",
                    f"--dhcp-leasefile={self.dir / 'dnsmasq.leases'}", f"--pid-file={self.dir / 'dnsmasq.pid'}",
                    "--dhcp-match=set:ipxe,175", "--dhcp-vendorclass=set:http,HTTPClient",
                    "--dhcp-option-force=tag:http,60,HTTPClient", *SITE_DHCP,
                    f"--dhcp-boot=tag:ipxe,{SERVER_URL}/boot.ipxe",
                    f"--dhcp-boot=tag:http,tag:!ipxe,{SERVER_URL}/files/snponly.efi", "--log-dhcp"], log=log)

    def _shim_args(self) -> list[str]:
        # OVMF's own PXE client fetches shim over TFTP; shim then GRUB fetch the rest (docs/secure-boot.md).
        return [*(f"--dhcp-host={mac},set:shim" for mac in self.shim_macs),
                f"--dhcp-boot=tag:shim,shimx64.efi,,{SERVER_IP}"]

    def _start_site_dhcp(self) -> None:
        """The site's DHCP server on its own host: addresses and a router, no PXE options at all."""
        _run("ip", "netns", "add", self.site_ns)
        _run("ip", "link", "add", "site0", "netns", self.site_ns, "type", "veth", "peer", "name", "site1",
             "netns", self.ns)
        self.netns("ip", "link", "set", "site1", "master", "br0", "up")
        _run("ip", "-n", self.site_ns, "addr", "add", "10.231.0.2/24", "dev", "site0")
        _run("ip", "-n", self.site_ns, "link", "set", "site0", "up")
        _run("ip", "-n", self.site_ns, "link", "set", "lo", "up")
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.site_ns, "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0",
             "--user=root", "--interface=site0", "--bind-interfaces",
             "--dhcp-range=10.231.0.100,10.231.0.199,255.255.255.0,1h", "--dhcp-option=option:router,10.231.0.2",
             f"--dhcp-leasefile={self.dir / 'site-dhcp.leases'}", f"--pid-file={self.dir / 'site-dhcp.pid'}",
             "--log-dhcp"], stdout=open(self.dir / "site-dhcp.log", "ab"), stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)
        self.procs.append(proc)

    def _start_proxy_dhcp(self) -> None:
        """Our proxyDHCP: no addresses, only boot information for PXE clients (docs/lab.md)."""
        self.spawn(["dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--user=root",
                    "--interface=br0", "--bind-interfaces", "--dhcp-range=10.231.0.0,proxy,255.255.255.0",
                    f"--pid-file={self.dir / 'proxy-dhcp.pid'}", "--dhcp-match=set:ipxe,175",
                    f"--pxe-service=tag:ipxe,x86PC,imager,boot.ipxe,{SERVER_IP}",
                    f"--pxe-service=tag:!ipxe,x86PC,iPXE,undionly.kpxe,{SERVER_IP}",
                    f"--pxe-service=tag:!ipxe,X86-64_EFI,iPXE,snponly.efi,{SERVER_IP}", "--log-dhcp"],
                   log=self.dir / "proxy-dhcp.log")

    def _wait_port(self, port: int, what: str, log: Path, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if f":{port} " in self.netns("ss", "-ltnH", check=False).stdout:
                return
            if any(p.poll() is not None for p in self.procs):
                break
            time.sleep(0.2)
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise LabError(f"{what} did not start listening on port {port}:\n{tail}")

    def close(self) -> None:
        for vm in self.vms:
            vm.stop()
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        _run("ip", "netns", "delete", self.ns, check=False)
        _run("ip", "netns", "delete", self.site_ns, check=False)

    # --- what tests do ----------------------------------------------------------
    def cli(self, *args: str) -> str:
        result = self.netns(str(VENV_BIN / "imager-server"), "--server", SERVER_URL,
                            "--token-file", str(self.dir / "server" / "admin.token"), *args, check=False)
        if result.returncode != 0:
            raise LabError(f"imager-server {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def cli_json(self, *args: str):
        return json.loads(self.cli("--json", *args))  # the API's answer, not the table

    def http_get(self, path: str) -> tuple[int, str]:
        result = self.netns("curl", "-s", "-o", "-", "-w", "\n%{http_code}", f"{SERVER_URL}{path}", check=False)
        body, _, code = result.stdout.rpartition("\n")
        return int(code or 0), body

    def client_call(self, task_id: int, token: str, what: str, body: dict | None = None) -> dict:
        """A machine's call (checkin, progress, done, failed) with its task token, from inside the lab."""
        result = self.netns("curl", "-s", "-X", "POST", "-H", f"Authorization: Bearer {token}",
                            "-H", "Content-Type: application/json", "-d", json.dumps(body or {}),
                            f"{SERVER_URL}/api/tasks/{task_id}/{what}", check=False)
        return json.loads(result.stdout or "{}")

    def task_token(self, mac: str) -> str:
        """The token the server puts in this MAC's boot script."""
        _, script = self.http_get(f"/boot/{mac}.ipxe")
        words = dict(w.split("=", 1) for w in script.split() if w.startswith(("imager.task=", "imager.claim=")))
        result = self.netns("curl", "-s", "-X", "POST", "-H", "Content-Type: application/json",
                            "-d", json.dumps({"claim": words["imager.claim"]}),
                            f"{SERVER_URL}/api/tasks/{words['imager.task']}/claim", check=False)
        return str(json.loads(result.stdout)["token"])

    def task(self, task_id: int) -> dict:
        return self.cli_json("task", "show", str(task_id))

    def wait_task(self, task_id: int, states: tuple[str, ...], timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            task = self.task(task_id)
            if task["state"] in states:
                return task
            time.sleep(2)
        raise LabError(f"task {task_id} is still {task['state']} after {timeout:.0f} s")

    def boot(self, name: str, mac: str, disk: Path, firmware: str = "bios", **options) -> VM:
        """options: disk_serial=…, smbios="type=1,product=…" (see VM)."""
        vm = VM(self, name, mac, disk, firmware=firmware, **options)
        self.vms.append(vm)
        return vm


# --- disks on the host ------------------------------------------------------------

def make_source_disk(path: Path, size_mib: int = 1024) -> dict[str, dict[str, str]]:
    """A GPT disk: an ext4 'boot' partition and an ext4 'data' partition with known files.

    Returns {partition number: {file: sha256}} as written.
    """
    with open(path, "wb") as f:
        f.truncate(size_mib * 1024 * 1024)
    _run("sgdisk", "-n1:2048:+64M", "-t1:8300", "-c1:boot", "-n2:0:0", "-t2:8300", "-c2:data", str(path))
    written: dict[str, dict[str, str]] = {}
    with attached(path) as device:
        for number, label in ((1, "boot"), (2, "data")):
            part = f"{device}p{number}"
            _run("mkfs.ext4", "-q", "-F", "-L", label, part)
            with mounted(part, readonly=False) as root:
                if number == 1:
                    (root / "hello.txt").write_text("imager lab: boot partition\n")
                    shutil.copytree("/usr/share/common-licenses", root / "licenses")
                else:
                    shutil.copytree(REPO / "imager", root / "src" / "imager",
                                    ignore=shutil.ignore_patterns("__pycache__"))
                    (root / "random.bin").write_bytes(os.urandom(24 * 1024 * 1024))
                    (root / "zeros.bin").write_bytes(bytes(8 * 1024 * 1024))
                written[str(number)] = tree_checksums(root)
    return written


def read_disk(path: Path) -> tuple[str, dict[str, dict[str, str]]]:
    """(partition table dump without device names, {partition: {file: sha256}}) of a disk image."""
    with attached(path) as device:
        table = _run("sfdisk", "--dump", device).stdout
        table = "\n".join(line.replace(device, "") for line in table.splitlines() if not line.startswith("device:"))
        files = {}
        for number in ("1", "2"):
            if os.path.exists(f"{device}p{number}"):
                with mounted(f"{device}p{number}") as root:
                    files[number] = tree_checksums(root)
    return table, files
