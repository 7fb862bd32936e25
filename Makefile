# imager — two commands for a newcomer: `make demo` and `make test` (both as root on Debian 12).
SHELL := /bin/bash
PYTHON := /usr/bin/python3
VENV := .venv
BOOT := build/boot

# Everything the tools, the boot image and the lab need, from Debian's archive.
APT_PACKAGES := \
	python3 python3-venv python3-pip \
	python3-pyudev python3-parted python3-zstandard python3-requests python3-urllib3 python3-idna \
	python3-certifi python3-chardet python3-charset-normalizer python3-dialog python3-blessed \
	python3-wcwidth python3-six python3-hivex libhivex-bin python3-yaml \
	partclone zstd lz4 fdisk gdisk parted util-linux e2fsprogs nfs-common udev kmod busybox-static \
	dialog udpcast nftables cpio ncurses-base libtirpc-common netbase \
	ntfs-3g dosfstools xfsprogs btrfs-progs mtools pigz lvm2 \
	qemu-system-x86 ipxe ipxe-qemu ovmf dnsmasq-base nfs-ganesha nfs-ganesha-vfs iproute2 curl atftp rsync pxelinux syslinux-common shim-signed grub-efi-amd64-signed grub-common \
	smartmontools nvme-cli python3-pexpect clonezilla partimage casync strace \
	python3-jinja2 python3-argon2 chromium chromium-driver python3-selenium fonts-dejavu-core python3-hypothesis \
	isc-dhcp-server kea-dhcp4-server libnfs-utils libfuse2 nginx-light libfuse-dev libnfs-dev pkg-config gcc libc6-dev

.PHONY: setup initramfs typecheck test unit demo bench bench-server clean

setup: $(VENV)/.installed

build/.apt-installed: Makefile
	@mkdir -p build
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(APT_PACKAGES)
	@touch $@

$(VENV)/.installed: build/.apt-installed pyproject.toml
	$(PYTHON) -m venv --system-site-packages $(VENV)
	$(VENV)/bin/pip install --quiet -e '.[server,test]'
	@touch $@

initramfs: $(BOOT)/initrd.img

# FIRMWARE_DIR=/path (a /lib/firmware tree): the firmware files the image's drivers name go into its /lib/firmware
# (docs/hardware.md); given, it rebuilds.
$(BOOT)/initrd.img: build/.apt-installed initramfs/build.py initramfs/hardware.py initramfs/firmware.py initramfs/init initramfs/udhcpc.script $(shell find imager contract -name '*.py') buildroot/board/imager/check_imports.py $(if $(FIRMWARE_DIR),.firmware-dir-given)
	$(PYTHON) initramfs/build.py --out $(BOOT) $(if $(FIRMWARE_DIR),--firmware '$(FIRMWARE_DIR)')

.PHONY: .firmware-dir-given hardware-report
# Share of Debian's PCI/USB NIC and storage-controller IDs the built boot image covers; fails below 95 %.
hardware-report: initramfs
	$(PYTHON) initramfs/hardware_report.py $(BOOT)/initrd.img

# The type gate (configured in pyproject.toml) runs before the tests.
typecheck: setup
	$(VENV)/bin/mypy

unit: typecheck build/nfsfuse
	$(VENV)/bin/pytest -m "not qemu" tests

test: typecheck initramfs build/nfsfuse
	$(VENV)/bin/pytest tests

# The fuzz suite's long profile (tests/fuzz/): ≥ 100,000 cases over every route and the TFTP parser and server;
# `make test` runs its short profile.
.PHONY: fuzz
fuzz: setup
	HYPOTHESIS_PROFILE=long $(VENV)/bin/pytest tests/fuzz

demo: setup initramfs
	$(VENV)/bin/python -m tests.qemu.demo

clean:
	rm -rf build var

bench: setup
	$(VENV)/bin/python bench/engine.py

bench-server: setup
	$(VENV)/bin/python bench/server.py

# udpcast multicast against unicast, and the stall a dead receiver causes per --retries-until-drop (bench/multicast.py).
.PHONY: bench-multicast
bench-multicast: setup
	$(VENV)/bin/python bench/multicast.py
	$(VENV)/bin/python bench/multicast.py --drop-stalls

# The console at 20,000 hosts / 500 running tasks: page times, and the CPU cost of live updates (bench/console.py).
.PHONY: bench-console
bench-console: setup
	$(VENV)/bin/python bench/console.py

# Chunking engines for incremental redeploy (issue 17): casync against our chunker over partclone's used blocks (bench/chunking.py, docs/chunking.md).
.PHONY: bench-chunking
bench-chunking: setup
	$(VENV)/bin/python bench/chunking.py

# Incremental redeploy over a shaped link by HTTP and NFS against full deploys, stream and chunked, and the goals
# of issue 17 (bench/incremental.py, docs/chunking.md).
.PHONY: bench-incremental
bench-incremental: setup build/nfsfuse
	$(VENV)/bin/python bench/incremental.py

# The NFS client of bench-incremental and its tests (this kernel has none): FUSE over libnfs in C (bench/nfsfuse.c).
build/nfsfuse: build/.apt-installed bench/nfsfuse.c
	cc -O2 -Wall -Wextra -o $@ bench/nfsfuse.c $$(pkg-config --cflags --libs fuse libnfs)

# Power-on → task running per boot path (BIOS, UEFI, Secure Boot, HTTP boot), stage by stage (bench/boot.py).
.PHONY: bench-boot
bench-boot: setup initramfs
	$(VENV)/bin/python bench/boot.py

# The README's pictures of the web console (docs/img/): headless Chromium against a server with demo data.
.PHONY: screenshots
screenshots: setup
	$(VENV)/bin/python -m tests.browser.screenshots --out docs/img

# The server as a Debian package (packaging/, docs/install.md): build/deb/imager-server_<version>_<arch>.deb.
.PHONY: deb
deb: setup
	$(VENV)/bin/python packaging/build_deb.py --out build/deb

# The production boot image (issue 7): make kernel, kernel-config-check, buildroot, buildroot-check.
include mk/bootimage.mk
