"""A QEMU guest (TCG, Debian kernel, busybox initramfs) on a vpcd tap NIC pings a netns guest of the same VPC."""
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import qemu_guest  # noqa: E402
import vpcdtest as vt  # noqa: E402


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
        vt.wait_for(lambda: c.call("GET", f"/v1/nics/{vm['id']}")["state"] == "down", what="tap NIC down")
        # While the VM runs: when the tap's carrier comes up (QEMU attached), the NIC's stored state must follow at
        # once (the link monitor wakes the reconciler; the periodic pass alone would take up to 30 s).
        seen = {}
        stop = threading.Event()

        def watch():
            while not stop.is_set() and "api_up" not in seen:
                try:
                    with open(f"/sys/class/net/{tap}/carrier") as f:
                        carrier = f.read().strip() == "1"
                except OSError:  # EINVAL while the device is administratively down
                    carrier = False
                if carrier and "carrier" not in seen:
                    seen["carrier"] = time.monotonic()
                if c.call("GET", f"/v1/nics/{vm['id']}")["state"] == "up":
                    seen["api_up"] = time.monotonic()
                time.sleep(0.05)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            res = qemu_guest.run(kernel, initrd,
                                 ["-netdev", f"tap,id=n0,ifname={tap},script=no,downscript=no,vhost=off"],
                                 mac="52:54:00:61:01:05", ip="10.61.1.5/24", gw="10.61.1.1", peer="10.61.1.2",
                                 count=5)
        finally:
            stop.set()
            watcher.join(timeout=30)
        assert "carrier" in seen and "api_up" in seen, seen
        assert seen["api_up"] - seen["carrier"] < 3, seen
        # QEMU has exited: the tap lost its carrier, and the NIC shows it without any write.
        vt.wait_for(lambda: c.call("GET", f"/v1/nics/{vm['id']}")["state"] == "down", timeout=5,
                    what="tap NIC down after the VM left")
        assert res.line, "guest printed no result:\n" + res.console[-3000:]
        assert (res.transmitted, res.received) == (5, 5), res.line
        stats = c.call("GET", f"/v1/nics/{vm['id']}/stats")
        assert stats["rx_packets"] >= 5 and stats["tx_packets"] >= 5, stats
    finally:
        d.stop()
        ns.remove_all()
        subprocess.run(["ip", "link", "del", tap], capture_output=True)
        d.close()
