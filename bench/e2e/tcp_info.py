#!/usr/bin/env python3
"""What a single TCP stream sees through a switch: the sender's and the receiver's tcp_info (`ss -tin`) sampled once a
second while iperf3 runs between compare.py's two guests, then the throughput.

Answers "why does this stream run at this rate": RTT under load against its minimum (a queue in front of the
slowest hop), the congestion control's bandwidth estimate and pacing rate (bbr), cwnd against unacked segments
(cwnd-limited or not), segments per ACK (ACK batching), and the receiver's out-of-order packets (reordering).

Usage (root): python3 bench/e2e/tcp_info.py [--switch vpcd|bridge] [--build-dir build] [--workers 1] [--seconds 6]
                                          [--vpcd-args "..."] [--iperf3-args "-C cubic"]
Reuses compare.py's setup and cleanup (namespaces vbe<pid>*); traffic stays between them.
"""
import argparse
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare as c  # noqa: E402

FIELDS = ("rtt", "minrtt", "cwnd", "unacked", "bbr", "pacing_rate", "delivery_rate", "segs_out", "segs_in",
          "data_segs_out", "retrans", "reordering", "rcv_ooopack", "bytes_received", "notsent")


def pick(line):
    out = {}
    for f in FIELDS:
        # "bbr:(bw:...,mrtt:...)" is bbr's state; the bare "bbr " at the start is the algorithm's name
        pattern = r"bbr:(\([^)]*\))" if f == "bbr" else r"(?:^|\s)" + f + r"[: ](\S+)"
        m = re.search(pattern, line)
        if m:
            out[f] = m.group(1)
    return out


def biggest(ns, filt, key):
    """The line of `ss -tin` in ns matching filt with the largest `key` counter (the data connection, not iperf3's
    control connection)."""
    out = subprocess.run(["ip", "netns", "exec", ns, "ss", "-tin"] + filt, capture_output=True, text=True,
                         timeout=10).stdout
    best, best_n = None, -1
    for line in out.splitlines():
        m = re.search(key + r":(\d+)", line)
        if m and int(m.group(1)) > best_n:
            best, best_n = line, int(m.group(1))
    return best


def sample(seconds, iperf3_args):
    server = subprocess.Popen(["ip", "netns", "exec", c.G2, "iperf3", "-s", "-1", "-B", c.IP2],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        client = subprocess.Popen(f"ip netns exec {c.G1} timeout {seconds + 30} iperf3 -c {c.IP2} -t {seconds} "
                                  f"{iperf3_args}", shell=True, stdout=subprocess.PIPE, text=True)
        time.sleep(1.5)
        for _ in range(max(1, seconds - 2)):
            snd = biggest(c.G1, ["dst", c.IP2], "bytes_acked")
            rcv = biggest(c.G2, ["src", c.IP2], "bytes_received")
            s, r = pick(snd or ""), pick(rcv or "")
            ratio = ""
            if "data_segs_out" in s and "segs_in" in s and int(s["segs_in"]) > 0:
                ratio = f" segs/ACK {int(s['data_segs_out']) / int(s['segs_in']):.1f}"
            print("sender  ", " ".join(f"{k}:{v}" for k, v in s.items() if k not in ("segs_out",)) + ratio)
            print("receiver", " ".join(f"{k}:{r[k]}" for k in ("rtt", "rcv_ooopack", "bytes_received") if k in r))
            time.sleep(1)
        out = client.communicate(timeout=seconds + 60)[0]
        print("\n".join(l for l in out.splitlines() if "receiver" in l))
    finally:
        server.kill()
        server.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--switch", choices=("vpcd", "bridge"), default="vpcd")
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--seconds", type=int, default=6)
    ap.add_argument("--vpcd-args", default="")
    ap.add_argument("--iperf3-args", default="")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("tcp_info.py: run as root")
    try:
        ctx = (c.switch_bridge() if a.switch == "bridge"
               else c.switch_vpcd(a.build_dir, a.workers, "netns", a.vpcd_args.split(), 120 + a.seconds))
        with ctx:
            c.set_guest_tx_offload(True)
            if not c.wait_ping():
                sys.exit("guests cannot ping each other")
            sample(a.seconds, a.iperf3_args)
    finally:
        c.cleanup_namespaces()


if __name__ == "__main__":
    main()
