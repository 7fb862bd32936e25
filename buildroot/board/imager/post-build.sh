#!/bin/sh
# Post-build script: give the buildroot rootfs the same /init as the Debian-package
# initramfs (initramfs/init in this repository, the one and only copy), the same DHCP
# hook, and the paths that init expects; then check that every program it needs is there.
# Called by buildroot with the target directory as $1.
set -e

TARGET_DIR="$1"
BOARD_DIR="$(cd "$(dirname "$0")" && pwd)"
REPO_DIR="$(cd "${BOARD_DIR}/../../.." && pwd)"

install -D -m 0755 "${REPO_DIR}/initramfs/init" "${TARGET_DIR}/init"
install -D -m 0755 "${REPO_DIR}/initramfs/udhcpc.script" \
	"${TARGET_DIR}/etc/imager/udhcpc.script"
# The agent's proof it runs in this image, not on a machine it would reboot (imager/bootenv.py).
echo "imager boot image" > "${TARGET_DIR}/etc/imager-boot-environment"

# init starts udev as Debian names it; eudev installs udevd in sbin.
udevd=""
for dir in sbin usr/sbin usr/bin; do
	if [ -x "${TARGET_DIR}/${dir}/udevd" ]; then
		udevd="/${dir}/udevd"
		break
	fi
done
if [ -z "${udevd}" ]; then
	echo "post-build: udevd not found in ${TARGET_DIR}" >&2
	exit 1
fi
mkdir -p "${TARGET_DIR}/lib/systemd"
ln -sf "${udevd}" "${TARGET_DIR}/lib/systemd/systemd-udevd"

mkdir -p "${TARGET_DIR}/images" "${TARGET_DIR}/root"

# The kernel buildroot configured must keep every symbol of the fragment, as
# `make kernel-config-check` demands of Debian's kernel source.
linux_config=""
for file in "${BUILD_DIR}"/linux-[0-9]*/.config; do
	if [ -f "${file}" ]; then
		linux_config="${file}"
		break
	fi
done
if [ -n "${linux_config}" ]; then
	python3 "${REPO_DIR}/kernel-config/check_config.py" \
		"${REPO_DIR}/kernel-config/imager.fragment" "${linux_config}"
fi

# linux-firmware installs every version of the NIC firmware (bnx2x alone is
# megabytes of old versions); keep the files the built-in drivers name.
modinfo=""
for file in "${BUILD_DIR}"/linux-[0-9]*/modules.builtin.modinfo; do
	if [ -f "${file}" ]; then
		modinfo="${file}"
		break
	fi
done
if [ -n "${modinfo}" ] && [ -d "${TARGET_DIR}/lib/firmware" ]; then
	wanted="$(tr '\0' '\n' <"${modinfo}" | sed -n 's/^[^.]*\.firmware=//p')"
	for dir in bnx2 bnx2x rtl_nic tigon; do
		[ -d "${TARGET_DIR}/lib/firmware/${dir}" ] || continue
		for file in "${TARGET_DIR}/lib/firmware/${dir}"/*; do
			name="${dir}/${file##*/}"
			if ! printf '%s\n' "${wanted}" | grep -qxF "${name}"; then
				rm -f "${file}"
			fi
		done
	done
fi

# imager activates LVM groups itself (imager/lvm.py); udev's device-mapper/LVM rules would
# auto-activate them behind its back and wait for dmsetup's notification (as in initramfs/build.py).
rm -f "${TARGET_DIR}"/lib/udev/rules.d/*-dm.rules "${TARGET_DIR}"/lib/udev/rules.d/*-lvm.rules \
	"${TARGET_DIR}"/lib/udev/rules.d/*-dm-*.rules "${TARGET_DIR}"/lib/udev/rules.d/*dm-notify.rules \
	"${TARGET_DIR}"/usr/lib/udev/rules.d/*-dm.rules "${TARGET_DIR}"/usr/lib/udev/rules.d/*-lvm.rules \
	"${TARGET_DIR}"/usr/lib/udev/rules.d/*-dm-*.rules "${TARGET_DIR}"/usr/lib/udev/rules.d/*dm-notify.rules

# Every module of the agent and everything it imports of ours must be in the tree
# (imager and contract; never server_stub): read statically, so it runs for any target.
site="$(ls -d "${TARGET_DIR}"/usr/lib/python3*/site-packages 2>/dev/null | head -n 1)"
if [ -z "${site}" ]; then
	echo "post-build: no python site-packages in ${TARGET_DIR}" >&2
	exit 1
fi
python3 "${BOARD_DIR}/check_imports.py" "${site}"
# Where the target's python runs here (same architecture, root for chroot), import them for real.
if [ "$(id -u)" = 0 ] && chroot "${TARGET_DIR}" /usr/bin/python3 -c pass 2>/dev/null; then
	for module in $(python3 "${BOARD_DIR}/check_imports.py" "${site}" --list); do
		chroot "${TARGET_DIR}" /usr/bin/python3 -c "import ${module}" || {
			echo "post-build: import ${module} fails inside the image" >&2
			exit 1
		}
	done
fi

# What init and the agent run: the programs initramfs/build.py puts in the
# Debian-package initrd (tests/bootimage keeps the two lists in step).
missing=""
for program in python3 udevadm busybox udhcpc ip mount umount mount.nfs \
	partclone.extfs partclone.ntfs partclone.fat partclone.xfs \
	partclone.btrfs partclone.dd partclone.restore partclone.info \
	partclone.chkimg zstd sfdisk sgdisk blkid wipefs partx blockdev lsblk \
	partprobe e2fsck resize2fs mke2fs dumpe2fs ntfsresize mkswap \
	xfs_growfs btrfs dialog udp-receiver lvm ntfs-3g ntfsfix nvme smartctl; do
	found=""
	for dir in bin sbin usr/bin usr/sbin; do
		if [ -e "${TARGET_DIR}/${dir}/${program}" ] || \
			[ -L "${TARGET_DIR}/${dir}/${program}" ]; then
			found=yes
			break
		fi
	done
	if [ -z "${found}" ]; then
		missing="${missing} ${program}"
	fi
done
if [ -n "${missing}" ]; then
	echo "post-build: missing from the image:${missing}" >&2
	exit 1
fi
