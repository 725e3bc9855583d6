#!/usr/bin/env python3
"""NIC ready: time from a POST /v1/nics answer to the NIC reported `up`, and to the first frame forwarded through it;
frames the new guest sent that never reached vpcd (a lost first ARP), over N creations.

A peer netns NIC stays; a second netns NIC (a fresh address each time, so no stale ARP entry) is created and deleted
N times. After each POST answer:
  - a thread polls GET /v1/nics/ID every ~2 ms until `state` is `up`  -> "POST -> up";
  - the main thread runs `ping -c1 -W0.05 PEER` inside the new guest's namespace (which vpcd creates) every ~2 ms
    until one is answered  -> "POST -> first forwarded frame" (it includes the guest's own ARP and one RTT);
  - then it compares the guest's eth0 tx_packets with what vpcd counted on that NIC (GET /v1/nics/ID/stats:
    rx_packets plus every drop): the difference is frames lost before vpcd's port saw them. A creation with a loss,
    or whose first reply took >= 900 ms (the kernel re-sends an unanswered ARP after 1 s), counts as a lost first ARP.
Usage (root): python3 bench/e2e/nic_ready.py [--build-dir build] [--n 100] [--workers 1]
Everything lives in namespaces named vtr<pid>* (removed at the end, also on failure) and a private vpcd.
"""
import argparse
import os
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "lib"))
import vpcdtest as vt  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_lib import loadavg  # noqa: E402


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p * (len(xs) - 1))))]


def guest_tx(ns):
    r = subprocess.run(["ip", "netns", "exec", ns, "cat", "/sys/class/net/eth0/statistics/tx_packets"],
                       capture_output=True, text=True, timeout=10)
    return int(r.stdout.strip()) if r.returncode == 0 else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--workers", type=int, default=1)
    a = ap.parse_args()
    vt.BUILD = os.path.abspath(a.build_dir)
    ns = vt.Namespaces("r")
    load_before = loadavg()
    d = vt.Vpcd(workers=a.workers).start()
    to_up, to_fwd, lost_frames, lost_first = [], [], 0, 0
    try:
        c = d.client()
        vpc = c.call("POST", "/v1/vpcs", {"cidrs": ["10.88.0.0/16"]})
        sub = c.call("POST", "/v1/subnets", {"vpc_id": vpc["id"], "cidr": "10.88.0.0/16"})
        peer = c.call("POST", "/v1/nics", {"subnet_id": sub["id"], "ips": ["10.88.0.2"],
                                            "backend": {"type": "netns", "netns": ns.name("p"), "ifname": "eth0"}})
        vt.wait_for(lambda: c.call("GET", f"/v1/nics/{peer['id']}")["state"] == "up", what="peer up")
        for i in range(a.n):
            guest = ns.name(f"g{i}")
            ip = f"10.88.{1 + i // 250}.{1 + i % 250}"
            nic = c.call("POST", "/v1/nics", {"subnet_id": sub["id"], "ips": [ip],
                                               "backend": {"type": "netns", "netns": guest, "ifname": "eth0"}})
            t0 = time.monotonic()
            up_at = []

            def poll_up():
                pc = d.client()
                while time.monotonic() - t0 < 10:
                    if pc.call("GET", f"/v1/nics/{nic['id']}")["state"] == "up":
                        up_at.append(time.monotonic())
                        return
                    time.sleep(0.002)

            th = threading.Thread(target=poll_up)
            th.start()
            while True:
                r = subprocess.run(["ip", "netns", "exec", guest, "ping", "-c1", "-W0.05", "10.88.0.2"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                if r.returncode == 0:
                    break
                if time.monotonic() - t0 > 10:
                    raise RuntimeError("NIC never forwarded")
                time.sleep(0.002)
            fwd_ms = (time.monotonic() - t0) * 1000
            th.join()
            to_fwd.append(fwd_ms)
            if up_at:
                to_up.append((up_at[0] - t0) * 1000)
            tx = guest_tx(guest)
            st = c.call("GET", f"/v1/nics/{nic['id']}/stats")
            seen = st["rx_packets"] + sum(st.get("drops", {}).values())
            lost = max(0, (tx or 0) - seen)
            lost_frames += lost
            if lost > 0 or fwd_ms >= 900:
                lost_first += 1
            c.call("DELETE", f"/v1/nics/{nic['id']}")
        print(f"NIC ready over n={len(to_fwd)} creations (vpcd with {a.workers} worker(s)):")
        if to_up:
            print(f"  POST answer -> state up:             p50 {statistics.median(to_up):7.1f} ms, "
                  f"p99 {pct(to_up, 0.99):7.1f} ms, max {max(to_up):7.1f} ms")
        print(f"  POST answer -> first ping reply:     p50 {statistics.median(to_fwd):7.1f} ms, "
              f"p99 {pct(to_fwd, 0.99):7.1f} ms, max {max(to_fwd):7.1f} ms")
        print(f"  creations with a lost first ARP: {lost_first} of {len(to_fwd)} "
              f"(guest frames vpcd never saw: {lost_frames})")
        met = to_up and pct(to_up, 0.99) < 50 and pct(to_fwd, 0.99) < 50 and lost_first == 0
        print(f"  target (both p99 < 50 ms, no first ARP lost): {'met' if met else 'MISSED'}")
        print(f"  {load_before} before, {loadavg()} after (a loaded figure is an upper bound)")
    finally:
        d.close()
        ns.remove_all()


if __name__ == "__main__":
    main()
