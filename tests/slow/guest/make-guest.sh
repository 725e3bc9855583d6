#!/usr/bin/env bash
# Builds a tiny QEMU guest for the slow tests: Debian's kernel (downloaded as a .deb and unpacked, never installed on
# the host) and a busybox initramfs whose /init configures eth0 from the kernel command line, pings a peer, prints one
# "GUEST_RESULT ..." line on the serial console and powers off.
#   make-guest.sh OUTDIR      -> OUTDIR/vmlinuz, OUTDIR/initrd.gz (cached: rebuilt only when missing)
# Kernel command line keys read by /init: vpcd.ip=A.B.C.D/N vpcd.gw=A.B.C.D vpcd.peer=A.B.C.D vpcd.count=N
set -euo pipefail
out=$(realpath -m "$1")
[ -s "$out/vmlinuz" ] && [ -s "$out/initrd.gz" ] && exit 0
export DEBIAN_FRONTEND=noninteractive
need=()
for p in qemu-system-x86 cpio busybox-static; do
  [ "$p" = busybox-static ] && continue
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
((${#need[@]})) && { apt-get update -qq; apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
[ -n "$kpkg" ] || { apt-get update -qq; kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}'); }
apt-get download "$kpkg" busybox-static >/dev/null
for d in ./*.deb; do dpkg-deb -x "$d" kroot; done
kver=$(ls kroot/lib/modules | head -1)
mods=kroot/lib/modules/$kver/kernel
mkdir -p ird/bin ird/m
cp kroot/bin/busybox ird/bin/
cp $mods/drivers/virtio/{virtio_ring,virtio,virtio_pci_modern_dev,virtio_pci_legacy_dev,virtio_pci}.ko \
   $mods/net/core/failover.ko $mods/drivers/net/{net_failover,virtio_net}.ko ird/m/
cat > ird/init <<'INIT'
#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /bin
/bin/busybox --install -s /bin
mount -t proc p /proc
mount -t sysfs s /sys
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net; do
  insmod /m/$m.ko
done
for kv in $(cat /proc/cmdline); do
  case "$kv" in
    vpcd.ip=*) IP=${kv#vpcd.ip=} ;;
    vpcd.gw=*) GW=${kv#vpcd.gw=} ;;
    vpcd.peer=*) PEER=${kv#vpcd.peer=} ;;
    vpcd.count=*) COUNT=${kv#vpcd.count=} ;;
  esac
done
ip link set lo up
ip link set eth0 up
ip addr add "$IP" dev eth0
[ -n "$GW" ] && ip route add default via "$GW"
sleep 1
ping -c "${COUNT:-5}" -i 0.3 -W 2 "$PEER" > /ping.txt 2>&1
echo "GUEST_RESULT $(grep -o '[0-9]* packets transmitted, [0-9]* packets received' /ping.txt | tr -d ',')" \
     "tx=$(cat /sys/class/net/eth0/statistics/tx_packets) rx=$(cat /sys/class/net/eth0/statistics/rx_packets)"
poweroff -f
INIT
chmod +x ird/init
mkdir -p "$out"
(cd ird && find . | cpio -o -H newc 2>/dev/null | gzip -1 > "$out/initrd.gz.tmp")
cp kroot/boot/vmlinuz-* "$out/vmlinuz.tmp"
mv "$out/initrd.gz.tmp" "$out/initrd.gz"
mv "$out/vmlinuz.tmp" "$out/vmlinuz"
