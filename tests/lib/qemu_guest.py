"""The slow tier's QEMU guest (TCG, Debian kernel, busybox initramfs from tests/slow/guest/make-guest.sh): build the
images once (cached in VPCD_GUEST_DIR) and boot a guest whose /init configures eth0 from the kernel command line,
pings a peer COUNT times, prints one "GUEST_RESULT ..." line on the serial console and powers off.

    kernel, initrd = images()
    res = run(kernel, initrd, netdev=[...], ip="10.61.1.5/24", gw="10.61.1.1", peer="10.61.1.2", count=5, mac=...)
    res.transmitted, res.received   # ping's own summary
    res.tx, res.rx                  # the guest's eth0 tx_packets/rx_packets after the ping
"""
import os
import re
import signal
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
GUEST_DIR = os.environ.get("VPCD_GUEST_DIR", "/var/cache/vpcd-test-guest")
MAKE_GUEST = os.path.join(HERE, "..", "slow", "guest", "make-guest.sh")


def images():
    """(vmlinuz, initrd.gz) in GUEST_DIR, built by make-guest.sh when missing (downloads Debian packages)."""
    r = subprocess.run(["bash", MAKE_GUEST, GUEST_DIR], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError("make-guest.sh failed:\n" + r.stderr[-3000:])
    return os.path.join(GUEST_DIR, "vmlinuz"), os.path.join(GUEST_DIR, "initrd.gz")


class Result:
    def __init__(self, line, console):
        self.line = line
        self.console = console
        m = re.search(r"(\d+) packets transmitted (\d+) packets received", line or "")
        self.transmitted, self.received = (int(m.group(1)), int(m.group(2))) if m else (None, None)
        m = re.search(r"tx=(\d+) rx=(\d+)", line or "")
        self.tx, self.rx = (int(m.group(1)), int(m.group(2))) if m else (None, None)

    def __repr__(self):
        return f"GuestResult({self.line!r})"


def run(kernel, initrd, netdev, mac, ip, gw, peer, count=5, timeout=180, extra=(), append_extra=""):
    """Boots the guest with `netdev` (the -netdev/-chardev/-object arguments) behind a virtio-net-pci NIC and returns
    its Result once it has powered off. The guest runs in its own process group and is killed (group and all) after
    `timeout` seconds or when the caller is interrupted. vectors=0 and romfile= as in shared/vhost-user/: with MSI-X
    QEMU 7.2 crashes in vhost_net_start, and no option ROM is needed for -kernel."""
    cmd = ["qemu-system-x86_64", "-accel", "tcg", "-smp", "1", "-m", "256M", "-nodefaults", "-no-user-config"]
    cmd += list(netdev) + list(extra)
    cmd += ["-device", f"virtio-net-pci,netdev=n0,mac={mac},vectors=0,romfile=",
            "-kernel", kernel, "-initrd", initrd, "-append",
            f"console=ttyS0 quiet panic=-1 vpcd.ip={ip} vpcd.gw={gw} vpcd.peer={peer} vpcd.count={count}"
            + (" " + append_extra if append_extra else ""),
            "-serial", "stdio", "-display", "none", "-no-reboot"]
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, errors="replace", start_new_session=True)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out = (p.communicate()[0] or "") + f"\n[qemu killed after {timeout} s]"
    except BaseException:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        raise
    out = out.replace("\r", "")
    line = next((l for l in out.splitlines() if "GUEST_RESULT" in l), None)
    return Result(line, out)
