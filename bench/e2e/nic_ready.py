#!/usr/bin/env python3
"""Time from a POST /v1/nics answer to the first frame forwarded through that NIC, p50 and p99.

A peer netns NIC stays; a second netns NIC (a fresh address each time, so no stale ARP entry) is created and
deleted N times. After each POST answer the new guest pings
the peer every ~2 ms (one `ping -c1 -W0.05` at a time inside its namespace, which vpcd creates); the time to the first
reply is the NIC-ready time (it includes the guest's own ARP and one RTT through the datapath).
Usage (root): python3 bench/e2e/nic_ready.py [--build-dir build] [--n 20]
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "lib"))
import vpcdtest as vt  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--n", type=int, default=20)
    a = ap.parse_args()
    vt.BUILD = os.path.abspath(a.build_dir)
    ns = vt.Namespaces("r")
    d = vt.Vpcd(workers=1).start()
    times = []
    try:
        c = d.client()
        vpc = c.call("POST", "/v1/vpcs", {"cidrs": ["10.88.0.0/16"]})
        sub = c.call("POST", "/v1/subnets", {"vpc_id": vpc["id"], "cidr": "10.88.0.0/24"})
        peer = c.call("POST", "/v1/nics", {"subnet_id": sub["id"], "ips": ["10.88.0.2"],
                                            "backend": {"type": "netns", "netns": ns.name("p"), "ifname": "eth0"}})
        vt.wait_for(lambda: c.call("GET", f"/v1/nics/{peer['id']}")["state"] == "up", what="peer up")
        for i in range(a.n):
            guest = ns.name(f"g{i}")
            nic = c.call("POST", "/v1/nics", {"subnet_id": sub["id"], "ips": [f"10.88.0.{10 + i}"],
                                               "backend": {"type": "netns", "netns": guest, "ifname": "eth0"}})
            t0 = time.monotonic()
            while True:
                r = subprocess.run(["ip", "netns", "exec", guest, "ping", "-c1", "-W0.05", "10.88.0.2"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                if r.returncode == 0:
                    break
                if time.monotonic() - t0 > 10:
                    raise RuntimeError("NIC never forwarded")
                time.sleep(0.002)
            times.append((time.monotonic() - t0) * 1000)
            c.call("DELETE", f"/v1/nics/{nic['id']}")
        times.sort()
        p99 = times[min(len(times) - 1, int(round(0.99 * (len(times) - 1))))]
        print(f"NIC ready (POST answer -> first ping reply), n={len(times)}: p50 {statistics.median(times):.1f} ms, "
              f"p99 {p99:.1f} ms, max {times[-1]:.1f} ms")
    finally:
        d.close()
        ns.remove_all()


if __name__ == "__main__":
    main()
