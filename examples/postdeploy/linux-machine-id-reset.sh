#!/bin/sh
# imager post-deploy script: give every deployed Linux a machine ID of its own.
#
# A cloned /etc/machine-id makes every copy the same machine to systemd, journald, DHCP (the DUID) and
# D-Bus. An empty /etc/machine-id tells systemd this is a first boot: it writes a new random ID then.
# /var/lib/dbus/machine-id (a copy, or a link to /etc/machine-id) goes, so D-Bus reads the new one.
#
# Attach it:  imager-server script add machine-id-reset examples/postdeploy/linux-machine-id-reset.sh
#             imager-server script attach machine-id-reset --image debian12 --policy fail
# It sees the deployed filesystems in IMAGER_MOUNTS ("1=/tmp/imager-mnt-x/p1 2=…"), docs/task-json.md.
set -eu

reset=0
for pair in ${IMAGER_MOUNTS:-}; do
    root=${pair#*=}
    id="$root/etc/machine-id"
    # Only a regular file: a link could point anywhere, the imaging environment's own files included.
    if [ -f "$id" ] && [ ! -L "$id" ] && [ ! -L "$root/etc" ]; then
        : > "$id"
        dbus="$root/var/lib/dbus/machine-id"
        if [ -e "$dbus" ] || [ -L "$dbus" ]; then
            [ -L "$root/var" ] || [ -L "$root/var/lib" ] || [ -L "$root/var/lib/dbus" ] || rm -f "$dbus"
        fi
        echo "machine-id reset on partition ${pair%%=*} (${IMAGER_HOSTNAME:-?}): systemd makes a new one at first boot"
        reset=$((reset + 1))
    fi
done
if [ "$reset" -eq 0 ]; then
    echo "no Linux root with /etc/machine-id among: ${IMAGER_MOUNTS:-nothing mounted}"
fi
