"""What a site's own services need for imager, as text to paste: DHCP (dnsmasq, ISC dhcpd, Kea, Windows DHCP),
the images' NFS export (kernel NFS server, nfs-ganesha) and the firewall (nftables, ufw).

Pure functions of a `Site`; ``imager-server init`` prints them (docs/install.md). The boot files per client
architecture (DHCP option 93) are the lab's (tests/qemu/lab.py) and docs/secure-boot.md's:
  BIOS (0)                → undionly.kpxe over TFTP (iPXE), which asks DHCP again as user class iPXE
  UEFI x64 PXE (7, 9)     → snponly.efi over TFTP (iPXE), or shimx64.efi with --secure-boot (shim → signed GRUB)
  UEFI x64 HTTP (16)      → http://SERVER/files/snponly.efi (or shimx64.efi), with vendor class HTTPClient
  iPXE (user class iPXE)  → http://SERVER/boot.ipxe
"""
from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass

BIOS_LOADER = "undionly.kpxe"
UEFI_LOADER = "snponly.efi"        # iPXE using the firmware's network driver: works on every UEFI NIC
SECURE_BOOT_LOADER = "shimx64.efi"  # Microsoft-signed shim, then Debian's signed GRUB (docs/secure-boot.md)
NFS_PORT = 2049
TFTP_PORT = 69
HTTPS_PORT = 8443
MULTICAST_PORTS = (9000, 58999)  # store/multicast.py: PORTBASE … PORTBASE + PORTS_PER_SESSION * SLOTS - 1
GANESHA_PSEUDO = "/images"
SECTIONS = ("dnsmasq", "isc-dhcpd", "kea", "windows-dhcp", "exports", "ganesha", "nftables", "ufw")


@dataclass(frozen=True)
class Site:
    server_ip: ipaddress.IPv4Address
    clients: ipaddress.IPv4Network   # who may boot, mount the images and join multicast sessions
    http_port: int
    images_dir: str                  # the directory the NFS export serves (the storage node's --rsync-target)
    uid: int                         # the server's user: NFS clients' writes are mapped to it (all_squash)
    gid: int
    secure_boot: bool = False

    @property
    def http_base(self) -> str:
        return f"http://{self.server_ip}" + ("" if self.http_port == 80 else f":{self.http_port}")

    @property
    def uefi_loader(self) -> str:
        return SECURE_BOOT_LOADER if self.secure_boot else UEFI_LOADER

    @property
    def ipxe_script_url(self) -> str:
        return f"{self.http_base}/boot.ipxe"

    @property
    def http_boot_url(self) -> str:
        return f"{self.http_base}/files/{self.uefi_loader}"


def dnsmasq(site: Site) -> str:
    ip = site.server_ip
    return f"""\
# imager: boot files per client architecture (option 93), for /etc/dnsmasq.d/imager.conf
dhcp-match=set:ipxe,175
dhcp-match=set:efi64,option:client-arch,7
dhcp-match=set:efi64,option:client-arch,9
dhcp-match=set:efihttp,option:client-arch,16
dhcp-boot=tag:ipxe,{site.ipxe_script_url}
# iPXE's no-pxedhcp (175.176 = 1): no 2-3 s wait for a ProxyDHCP offer (docs/boot-time.md)
dhcp-option=tag:ipxe,175,b0:01:01
dhcp-option-force=tag:efihttp,60,HTTPClient
dhcp-boot=tag:efihttp,tag:!ipxe,{site.http_boot_url}
dhcp-boot=tag:efi64,tag:!ipxe,{site.uefi_loader},,{ip}
dhcp-boot=tag:!efi64,tag:!efihttp,tag:!ipxe,{BIOS_LOADER},,{ip}
"""


def isc_dhcpd(site: Site) -> str:
    # "option arch = 00:07", a data literal: dhcpd compares option data, and "= 7" never matches (seen in
    # tests/server_stub/test_siteinit_dhcp.py: a UEFI client got undionly.kpxe).
    ip = site.server_ip
    return f"""\
# imager: in /etc/dhcp/dhcpd.conf, at the top level (before the subnet declarations)
option arch code 93 = unsigned integer 16;
option space ipxe;
option ipxe-encap-opts code 175 = encapsulate ipxe;
option ipxe.no-pxedhcp code 176 = unsigned integer 8;
class "imager-httpclients" {{
  match if substring (option vendor-class-identifier, 0, 10) = "HTTPClient";
  option vendor-class-identifier "HTTPClient";
  filename "{site.http_boot_url}";
}}
if exists user-class and option user-class = "iPXE" {{
  option ipxe.no-pxedhcp 1;      # no 2-3 s wait for a ProxyDHCP offer (docs/boot-time.md)
  filename "{site.ipxe_script_url}";
}} elsif option arch = 00:07 or option arch = 00:09 {{
  next-server {ip};
  option tftp-server-name "{ip}";
  filename "{site.uefi_loader}";
}} else {{
  next-server {ip};
  option tftp-server-name "{ip}";
  filename "{BIOS_LOADER}";
}}
"""


def kea(site: Site) -> str:
    ip = str(site.server_ip)
    # Classes are tried in order and a field comes from the first class that sets it; iPXE (which also sends
    # architecture 7 on UEFI) is named first and excluded from the others.
    classes = [
        {"name": "imager-ipxe", "test": "option[77].hex == 'iPXE'", "boot-file-name": site.ipxe_script_url},
        {"name": "imager-efi-http", "test": "substring(option[60].hex,0,10) == 'HTTPClient' and not member('imager-ipxe')",
         "option-data": [{"name": "vendor-class-identifier", "data": "HTTPClient"}],
         "boot-file-name": site.http_boot_url},
        {"name": "imager-efi-x64",
         "test": "(option[93].hex == 0x0007 or option[93].hex == 0x0009) and not member('imager-ipxe')",
         "next-server": ip, "option-data": [{"name": "tftp-server-name", "data": ip}],
         "boot-file-name": site.uefi_loader},
        {"name": "imager-bios", "test": "option[93].hex == 0x0000 and not member('imager-ipxe')",
         "next-server": ip, "option-data": [{"name": "tftp-server-name", "data": ip}],
         "boot-file-name": BIOS_LOADER},
    ]
    body = json.dumps({"Dhcp4": {"client-classes": classes}}, indent=2)
    return "// imager: merge \"client-classes\" into the Dhcp4 object of /etc/kea/kea-dhcp4.conf\n" + body + "\n"


def windows_dhcp(site: Site) -> str:
    ip = site.server_ip
    lines = [
        "# imager: Windows Server DHCP, in an elevated PowerShell on the DHCP server (DhcpServer module)",
        "# Option 60 is not predefined on Windows DHCP; UEFI HTTP boot needs it in the answer.",
        'Add-DhcpServerv4OptionDefinition -OptionId 60 -Name "Vendor class (HTTPClient)" -Type String',
        'Add-DhcpServerv4Class -Name "imager BIOS" -Type Vendor -Data "PXEClient:Arch:00000"',
        'Add-DhcpServerv4Class -Name "imager UEFI x64" -Type Vendor -Data "PXEClient:Arch:00007"',
        'Add-DhcpServerv4Class -Name "imager UEFI x64 (9)" -Type Vendor -Data "PXEClient:Arch:00009"',
        'Add-DhcpServerv4Class -Name "imager UEFI HTTP" -Type Vendor -Data "HTTPClient:Arch:00016"',
        'Add-DhcpServerv4Class -Name "imager iPXE" -Type User -Data "iPXE"',
        "# Policies are tried by -ProcessingOrder: iPXE first (it also announces a PXEClient architecture).",
        'Add-DhcpServerv4Policy -Name "imager iPXE" -Condition OR -UserClass EQ,"imager iPXE" -ProcessingOrder 1',
        f'Set-DhcpServerv4OptionValue -PolicyName "imager iPXE" -OptionId 67 -Value "{site.ipxe_script_url}"',
        'Add-DhcpServerv4Policy -Name "imager UEFI HTTP" -Condition OR -VendorClass EQ,"imager UEFI HTTP*" '
        "-ProcessingOrder 2",
        'Set-DhcpServerv4OptionValue -PolicyName "imager UEFI HTTP" -OptionId 60 -Value "HTTPClient"',
        f'Set-DhcpServerv4OptionValue -PolicyName "imager UEFI HTTP" -OptionId 67 -Value "{site.http_boot_url}"',
        'Add-DhcpServerv4Policy -Name "imager UEFI x64" -Condition OR -VendorClass EQ,"imager UEFI x64*",'
        'EQ,"imager UEFI x64 (9)*" -ProcessingOrder 3',
        f'Set-DhcpServerv4OptionValue -PolicyName "imager UEFI x64" -OptionId 66 -Value "{ip}"',
        f'Set-DhcpServerv4OptionValue -PolicyName "imager UEFI x64" -OptionId 67 -Value "{site.uefi_loader}"',
        'Add-DhcpServerv4Policy -Name "imager BIOS" -Condition OR -VendorClass EQ,"imager BIOS*" -ProcessingOrder 4',
        f'Set-DhcpServerv4OptionValue -PolicyName "imager BIOS" -OptionId 66 -Value "{ip}"',
        f'Set-DhcpServerv4OptionValue -PolicyName "imager BIOS" -OptionId 67 -Value "{BIOS_LOADER}"',
    ]
    return "\n".join(lines) + "\n"


def _squash_options(site: Site) -> str:
    # all_squash: the clients write as root; the files must belong to the server's user, which prunes old
    # versions, replicates and multicasts them. sync: a client's fsync means the bytes are on the server's disk.
    return f"rw,sync,no_subtree_check,all_squash,anonuid={site.uid},anongid={site.gid}"


def exports(site: Site) -> str:
    return (f"# imager: /etc/exports (kernel NFS server: apt install nfs-kernel-server; then exportfs -ra)\n"
            f"{site.images_dir} {site.clients}({_squash_options(site)})\n"
            f"# the storage node: imager-server storage add main {site.server_ip}:{site.images_dir} "
            f"--rsync-target {site.images_dir}\n")


def ganesha(site: Site) -> str:
    return f"""\
# imager: /etc/ganesha/ganesha.conf (nfs-ganesha with nfs-ganesha-vfs; NFSv4 only, as the clients mount 4.1:
# no NLM, RQUOTA or UDP, so no rpcbind)
NFS_CORE_PARAM {{ Protocols = 4; Enable_NLM = false; Enable_RQUOTA = false; Enable_UDP = false; }}
EXPORT {{
    Export_Id = 1; Path = "{site.images_dir}"; Pseudo = {GANESHA_PSEUDO}; Protocols = 4; Transports = TCP;
    Access_Type = None; SecType = sys;
    Squash = All_Squash; Anonymous_Uid = {site.uid}; Anonymous_Gid = {site.gid};
    CLIENT {{ Clients = {site.clients}; Access_Type = RW; Protocols = 4; }}
    FSAL {{ Name = VFS; }}
}}
# the storage node: imager-server storage add main {site.server_ip}:{GANESHA_PSEUDO} --rsync-target {site.images_dir}
"""


def ports(site: Site) -> list[tuple[str, str, str]]:
    """(protocol, port(s), what) a client of the boot network reaches on the server."""
    low, high = MULTICAST_PORTS
    return [("udp", str(TFTP_PORT), "TFTP: iPXE, shim, GRUB, pxelinux and their files"),
            ("tcp", str(site.http_port), "HTTP: boot scripts, kernel and initrd, API, web console"),
            ("tcp", str(HTTPS_PORT), "HTTPS API (only with serve --tls-cert)"),
            ("tcp", str(NFS_PORT), "NFSv4: the images (no rpcbind or mountd with NFSv4)"),
            ("udp", f"{low}-{high}", "multicast sessions: the receivers' answers to udp-sender")]


def nftables(site: Site) -> str:
    rules = [f'ip saddr {site.clients} {proto} dport {port} accept comment "imager: {what.split(":")[0]}"'
             for proto, port, what in ports(site)]
    return ("# imager: inside the input chain of /etc/nftables.conf (table inet filter), before a drop;\n"
            "# TFTP's data comes from a new port of the server: the client's answers are 'established'.\n"
            "ct state established,related accept\n" + "\n".join(rules) + "\n")


def ufw(site: Site) -> str:
    return "".join(f"ufw allow proto {proto} from {site.clients} to any port {port.replace('-', ':')}\n"
                   for proto, port, _ in ports(site))


RENDERERS = {"dnsmasq": dnsmasq, "isc-dhcpd": isc_dhcpd, "kea": kea, "windows-dhcp": windows_dhcp,
             "exports": exports, "ganesha": ganesha, "nftables": nftables, "ufw": ufw}
TITLES = {"dnsmasq": "DHCP: dnsmasq", "isc-dhcpd": "DHCP: ISC dhcpd", "kea": "DHCP: Kea",
          "windows-dhcp": "DHCP: Windows Server", "exports": "NFS: kernel NFS server (/etc/exports)",
          "ganesha": "NFS: nfs-ganesha", "nftables": "Firewall: nftables", "ufw": "Firewall: ufw"}


def section_header(name: str) -> str:
    return f"===== {name}: {TITLES[name]} ====="


def as_json(site: Site) -> dict[str, object]:
    """The site and every section: GET /api/setup's answer, and init --json's."""
    return {"server_ip": str(site.server_ip), "clients": str(site.clients), "http_port": site.http_port,
            "images_dir": site.images_dir, "secure_boot": site.secure_boot,
            "ports": [{"protocol": proto, "port": port, "what": what} for proto, port, what in ports(site)],
            "sections": [{"name": name, "title": TITLES[name], "text": RENDERERS[name](site)} for name in SECTIONS]}


def render_all(site: Site) -> str:
    return "\n".join(f"{section_header(name)}\n{RENDERERS[name](site)}" for name in SECTIONS)
