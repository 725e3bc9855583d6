"""A QEMU guest (TCG, Debian kernel, busybox initramfs) on a vpcd tap NIC pings a netns guest of the same VPC."""
import os
import re
import subprocess
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import vpcdtest as vt  # noqa: E402

GUEST_DIR = os.environ.get("VPCD_GUEST_DIR", "/var/cache/vpcd-test-guest")


@pytest.fixture(scope="module")
def guest_images():
    r = subprocess.run(["bash", os.path.join(os.path.dirname(__file__), "guest", "make-guest.sh"), GUEST_DIR],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return os.path.join(GUEST_DIR, "vmlinuz"), os.path.join(GUEST_DIR, "initrd.gz")


def test_qemu_guest_on_tap_pings_netns_guest(guest_images, vpcd_factory):
    kernel, initrd = guest_images
    ns = vt.Namespaces("q")
    tap = f"vq{os.getpid() % 100000}"
    d = vpcd_factory(workers=2).start()
    try:
        c = d.client()
        vpc = c.call("POST", "/v1/vpcs", {"cidrs": ["10.61.0.0/16"]})
        sub = c.call("POST", "/v1/subnets", {"vpc_id": vpc["id"], "cidr": "10.61.1.0/24"})
        peer = c.call("POST", "/v1/nics", {"subnet_id": sub["id"], "ips": ["10.61.1.2"],
                                            "backend": {"type": "netns", "netns": ns.name("g"), "ifname": "eth0"}})
        vm = c.call("POST", "/v1/nics", {"subnet_id": sub["id"], "ips": ["10.61.1.5"], "mac": "52:54:00:61:01:05",
                                          "backend": {"type": "tap", "ifname": tap, "queues": 1}})
        vt.wait_for(lambda: c.call("GET", f"/v1/nics/{peer['id']}")["state"] == "up", what="netns NIC up")
        # The tap exists (persistent) before any hypervisor opens it; it is down until one attaches.
        assert os.path.exists(f"/sys/class/net/{tap}")
        out = subprocess.run(
            ["timeout", "180", "qemu-system-x86_64", "-accel", "tcg", "-smp", "1", "-m", "256M", "-nodefaults",
             "-no-user-config", "-netdev", f"tap,id=n0,ifname={tap},script=no,downscript=no,vhost=off",
             "-device", "virtio-net-pci,netdev=n0,mac=52:54:00:61:01:05,vectors=0,romfile=",
             "-kernel", kernel, "-initrd", initrd, "-append",
             "console=ttyS0 quiet panic=-1 vpcd.ip=10.61.1.5/24 vpcd.gw=10.61.1.1 vpcd.peer=10.61.1.2 vpcd.count=5",
             "-serial", "stdio", "-display", "none", "-no-reboot"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=200)
        line = next((l for l in out.stdout.replace("\r", "").splitlines() if "GUEST_RESULT" in l), None)
        assert line, "guest printed no result:\n" + out.stdout[-3000:] + out.stderr[-2000:]
        m = re.search(r"(\d+) packets transmitted (\d+) packets received", line)
        assert m and m.group(1) == "5" and m.group(2) == "5", line
        stats = c.call("GET", f"/v1/nics/{vm['id']}/stats")
        assert stats["rx_packets"] >= 5 and stats["tx_packets"] >= 5, stats
    finally:
        d.stop()
        ns.remove_all()
        subprocess.run(["ip", "link", "del", tap], capture_output=True)
        d.close()
