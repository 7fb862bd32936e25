#!/bin/sh
# Post-image script: lay the kernel and initrd out as the Debian-package build does
# (build/boot/vmlinuz, build/boot/initrd.img), so imager-server --boot-dir can serve
# either build unchanged.  Called by buildroot with the images directory as $1.
set -e

BINARIES_DIR="$1"
BOOT_DIR="${BINARIES_DIR}/boot"

mkdir -p "${BOOT_DIR}"
cp "${BINARIES_DIR}/bzImage" "${BOOT_DIR}/vmlinuz"
cp "${BINARIES_DIR}/rootfs.cpio.zst" "${BOOT_DIR}/initrd.img"
release="$(cat "${BUILD_DIR}"/linux-[0-9]*/include/config/kernel.release 2>/dev/null || true)"
echo "kernel ${release:-unknown} (buildroot)" >"${BOOT_DIR}/VERSION"
for name in vmlinuz initrd.img; do
	echo "${BOOT_DIR}/${name}: $(du -h "${BOOT_DIR}/${name}" | cut -f1)"
done
