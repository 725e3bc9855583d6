#!/usr/bin/env python3
"""Profile vpcd forwarding one (or --streams N) TCP stream between two netns guests: perf record of the whole machine
(call graphs) for --seconds while iperf3 runs, then a report of where the CPU went, split by thread (vpcd's workers,
iperf3 client/server, softirq threads) and, for vpcd's workers, by symbol.

Run it on an idle machine: other load shows up in the system-wide profile and steals the worker's core.
Usage (root): python3 bench/e2e/profile_tcp.py [--build-dir build] [--workers 1] [--streams 1] [--seconds 4]
              [--vpcd-args "--rx-ring v3"] [--guest-threaded-napi] [--small] [--out /tmp/vpcd-tcp.perf]
--small profiles compare.py's 64-byte phase instead (trafgen's UDP flood from guest 1 to guest 2).
--guest-threaded-napi turns on GRO and threaded NAPI on both guests' eth0 (the receiving guest's stack then runs in a
kernel thread instead of inside the worker's sendto); vpcd does the same itself with --vpcd-args "--guest-threaded-napi on"
(rx-udp-gro-forwarding instead of rx-gro-list). Reuses compare.py's setup and cleanup (namespaces vbe<pid>*).
"""
import argparse
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare as c  # noqa: E402


def record(a):
    subprocess.run(["perf", "record", "-e", "cpu-clock", "-a", "-g", "-o", a.out, "--", "sleep", str(a.seconds)],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=a.seconds + 60)


def profile_iperf3(a):
    server = subprocess.Popen(["ip", "netns", "exec", c.G2, "iperf3", "-s", "-1", "-B", c.IP2],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        client = subprocess.Popen(f"ip netns exec {c.G1} timeout {a.seconds + 30} iperf3 -c {c.IP2} "
                                  f"-t {a.seconds + 3} -P {a.streams}", shell=True,
                                  stdout=subprocess.PIPE, text=True)
        time.sleep(1.5)
        record(a)
        return client.communicate(timeout=a.seconds + 60)[0]
    finally:
        server.kill()
        server.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--streams", type=int, default=1)
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--vpcd-args", default="")
    ap.add_argument("--guest-threaded-napi", action="store_true")
    ap.add_argument("--small", action="store_true", help="profile the 64-byte flood instead of iperf3 TCP")
    ap.add_argument("--out", default="/tmp/vpcd-tcp.perf")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("profile_tcp.py: run as root")
    try:
        with c.switch_vpcd(a.build_dir, a.workers, "netns", a.vpcd_args.split(), 120 + a.seconds) as pids:
            c.set_guest_tx_offload(True)
            if a.guest_threaded_napi:
                for ns in (c.G1, c.G2):
                    c.nsx(ns, "ethtool -K eth0 gro on rx-gro-list on", check=False)
                    c.nsx(ns, "sh -c 'echo 1 > /sys/class/net/eth0/threaded'", check=False)
            if not c.wait_ping():
                sys.exit("guests cannot ping each other")
            if a.small:
                result = {}
                flood = threading.Thread(target=lambda: result.update(
                    c.measure_small_frames(a.seconds + 3, pids)))
                flood.start()
                time.sleep(1.5)
                record(a)
                flood.join(timeout=a.seconds + 60)
                out = f"64 B: {result}"
            else:
                out = profile_iperf3(a)
            print("\n".join(l for l in out.splitlines() if "receiver" in l or "64 B" in l))
            print(f"vpcd pid {pids[0]}; perf data in {a.out}")
    finally:
        c.cleanup_namespaces()
    print("\n== CPU by thread (top 15)")
    r = subprocess.run(["perf", "report", "-i", a.out, "--no-children", "--sort", "comm", "--stdio", "-g", "none"],
                       capture_output=True, text=True)
    print("\n".join([l for l in r.stdout.splitlines() if "%" in l and not l.startswith("#")][:15]))
    print("\n== vpcd workers by symbol (top 30)")
    comms = ",".join(f"vpcd-wk-{i}" for i in range(a.workers))
    r = subprocess.run(["perf", "report", "-i", a.out, "--no-children", "--comms", comms, "--sort", "sym",
                        "--stdio", "-g", "none"], capture_output=True, text=True)
    print("\n".join([l for l in r.stdout.splitlines() if "%" in l and not l.startswith("#")][:30]))


if __name__ == "__main__":
    main()
