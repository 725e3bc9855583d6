#!/usr/bin/env python3
"""Small frames over a bare veth pair under veth's NAPI settings: what moving the receive half to a threaded-NAPI
kernel thread does to trafgen (the 64-byte sender of compare.py), without vpcd (docs/STATUS.md, issue 12, 2026-12-03).

Two namespaces vnp<pid>a / vnp<pid>b joined by one veth pair (eth0 in each, 10.79.0.1 and .2, addresses that exist only
there); trafgen in a sends 60-byte UDP frames to b for --duration seconds, then 20 pings. Modes:
  plain        veth as created (no NAPI: the receive runs in the sender's softirq)
  napi         GRO + rx-udp-gro-forwarding + threaded NAPI on both ends (trafgen's TX-ring skbs are not eligible for
               veth's NAPI path while the sending end has TSO: nothing should change)
  tsooff-napi  the same with TSO off on both ends (every skb eligible: the receive runs in the napi/eth0 kthread)
Everything it creates is removed at the end, also on failure.

Usage (root): python3 bench/e2e/veth_napi.py [--modes plain,napi,tsooff-napi] [--duration 5]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_lib as lib  # noqa: E402

PID = os.getpid()
A, B = f"vnp{PID}a", f"vnp{PID}b"
IPA, IPB = "10.79.0.1", "10.79.0.2"
MACA, MACB = "02:79:00:00:00:01", "02:79:00:00:00:02"


def run(mode, duration):
    try:
        for ns in (A, B):
            lib.sh(f"ip netns add {ns}")
        lib.sh(f"ip link add eth0 netns {A} type veth peer name eth0 netns {B}")
        for ns, ip, mac in ((A, IPA, MACA), (B, IPB, MACB)):
            lib.nsx(ns, f"ip link set eth0 address {mac} up")
            lib.nsx(ns, f"ip addr add {ip}/24 dev eth0")
            lib.nsx(ns, "ip link set lo up")
        for ns in (A, B):
            if mode == "tsooff-napi":
                lib.nsx(ns, "ethtool -K eth0 tso off")
            if mode in ("napi", "tsooff-napi"):
                lib.nsx(ns, "ethtool -K eth0 gro on rx-udp-gro-forwarding on")
                lib.nsx(ns, "sh -c 'echo 1 > /sys/class/net/eth0/threaded'")
        lib.wait_ping(A, IPB)
        small = lib.measure_small_frames(A, B, MACA, MACB, IPA, IPB, duration, [])
        return small | {"ping_ms": lib.measure_ping(A, IPB)["avg_ms"]}
    finally:
        lib.remove_namespaces(f"vnp{PID}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modes", default="plain,napi,tsooff-napi")
    ap.add_argument("--duration", type=int, default=5)
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("veth_napi.py: run as root")
    for mode in a.modes.split(","):
        r = run(mode, a.duration)
        print(f"{mode:<12} 64B delivered {r['delivered_kpps']:8.1f} kpps, offered {r['offered_kpps']:8.1f}, "
              f"box CPU {r['cpu_machine']:.2f}, ping {r['ping_ms']} ms", flush=True)


if __name__ == "__main__":
    main()
