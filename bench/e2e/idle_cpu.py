#!/usr/bin/env python3
"""CPU an idle vpcd uses after traffic stopped, per busy-poll mode (issue 12: "no core burnt while idle").

vpcd joins two guest namespaces with netns NICs (as compare.py does). The guests exchange traffic for --warm seconds
(one ping every 10 ms, so adaptive busy polling has started), then nothing is sent: after a 1 s settle the CPU time
of vpcd's worker threads (vpcd-wk-N) and of the whole process is read from /proc over --seconds, with the workers'
busy-poll counters (/v1/stats: empty_polls, spin_starts, spin_stops) before and after. An idle worker that sleeps
uses ~0 cores and makes no empty poll; `--busy-poll on` shows one core per worker.

Everything it creates (namespaces vbe<pid>-*, a vpcd state dir) is removed at the end, also on failure; traffic only
flows between those namespaces (10.77.0.0/24).

Usage (root): python3 bench/e2e/idle_cpu.py [--build-dir build] [--workers 1] [--seconds 10]
                                             [--vpcd-args "--busy-poll adaptive --busy-poll-us 50"] [--json out.json]
"""
import argparse
import glob
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare as c  # noqa: E402  (guest names, addresses, the netns vpcd setup and cleanup)

lib, vt = c.lib, c.vt


def thread_jiffies(pid, prefix):
    """utime + stime of the threads of pid whose name starts with prefix."""
    total = 0
    for task in glob.glob(f"/proc/{pid}/task/*"):
        try:
            with open(f"{task}/comm") as f:
                if not f.read().startswith(prefix):
                    continue
            with open(f"{task}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            continue
    return total


def worker_counters(api):
    keys = ("empty_polls", "spin_starts", "spin_stops", "packets", "wakeups")
    return [{k: w.get(k) for k in keys} for w in api.call("GET", "/v1/stats")["workers"]]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--warm", type=float, default=2, help="seconds of pings before the idle period")
    ap.add_argument("--vpcd-args", default="", help="extra vpcd flags, e.g. '--busy-poll adaptive'")
    ap.add_argument("--json", help="also write the result here")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("idle_cpu.py: run as root (namespaces, veth)")

    vt.BUILD = os.path.abspath(a.build_dir)
    d = vt.Vpcd(workers=a.workers, extra_args=a.vpcd_args.split())
    try:
        d.start(timeout=20)
        api = d.client()
        vpc = api.call("POST", "/v1/vpcs", {"cidrs": ["10.77.0.0/16"], "mtu": c.MTU})
        sub = api.call("POST", "/v1/subnets", {"vpc_id": vpc["id"], "cidr": f"10.77.0.0/{c.PREFIX}"})
        nics = [api.call("POST", "/v1/nics", {"subnet_id": sub["id"], "mac": mac, "ips": [ip],
                                              "backend": {"type": "netns", "netns": ns, "ifname": "eth0"}})
                for ns, ip, mac in ((c.G1, c.IP1, c.MAC1), (c.G2, c.IP2, c.MAC2))]
        if not c.wait_ping(20):
            sys.exit("idle_cpu.py: the guests cannot ping each other through vpcd")
        count = max(1, int(a.warm / 0.01))
        lib.nsx(c.G1, f"ping -q -c {count} -i 0.01 -W 1 {c.IP2}", check=False, timeout=a.warm + 20)
        time.sleep(1)
        pid, hz = d.proc.pid, os.sysconf("SC_CLK_TCK")
        before = worker_counters(api)
        t0, w0, p0 = time.monotonic(), thread_jiffies(pid, "vpcd-wk-"), lib.proc_jiffies([pid])
        time.sleep(a.seconds)
        dt = time.monotonic() - t0
        w1, p1 = thread_jiffies(pid, "vpcd-wk-"), lib.proc_jiffies([pid])
        after = worker_counters(api)
        res = {
            "vpcd_args": a.vpcd_args, "workers": a.workers, "seconds": round(dt, 2),
            "workers_cpu_cores": round((w1 - w0) / hz / dt, 4),
            "process_cpu_cores": round((p1 - p0) / hz / dt, 4),
            "worker_counters_delta": [{k: (y[k] - x[k]) if x[k] is not None and y[k] is not None else None
                                       for k in x} for x, y in zip(before, after)],
            "worker_counters_after": after,
        }
        for n in nics:
            api.call("DELETE", f"/v1/nics/{n['id']}")
    finally:
        d.close()
        c.cleanup_namespaces()
    print(json.dumps(res, indent=1))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
