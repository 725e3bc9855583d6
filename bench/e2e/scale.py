#!/usr/bin/env python3
"""Scale benchmark (not a test): N netns NICs (default 1000) in V VPCs (default 10) created through the REST API of a
private vpcd on this box.

Reports:
  - the time from the first POST to every NIC reported `up` (and the POST phase alone);
  - vpcd's memory afterwards: VmRSS, and the packet_mmap ring memory (mappings of sockets in /proc/PID/smaps: the
    rings are kernel pages mapped into vpcd, counted in its RSS), per NIC;
  - a ping (-c1 -W2) across --pairs random pairs of NICs of the same VPC, and how many were lost;
  - the time from the first DELETE until every namespace is gone and GET /v1/nics is empty;
  - what is left behind: namespaces with this run's prefix, links carrying this vpcd instance's alias, markers under
    /run/vpcd/INSTANCE/netns.
Usage (root): python3 bench/e2e/scale.py [--build-dir build] [--nics 1000] [--vpcs 10] [--pairs 100] [--workers 1]
              [--threads 4] [--vpcd-args "..."]
Everything lives in namespaces vtS<pid>* and a private vpcd (the test harness's state dir); all is removed at the end,
also on failure. Traffic stays inside those namespaces (10.90.0.0/15 and up, addresses that exist only there).
"""
import argparse
import concurrent.futures as cf
import os
import random
import tempfile
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "lib"))
import vpcdtest as vt  # noqa: E402


def instance_name(state_dir):
    h = 1469598103934665603
    for c in os.path.abspath(state_dir).encode():
        h ^= c
        h = (h * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"[:10]


def smaps_socket_kib(pid):
    """(Size, Rss) in KiB of the mappings of sockets (packet_mmap rings) of pid, and VmRSS in KiB."""
    size = rss = 0
    in_sock = False
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                in_sock = "socket:" in line
            elif in_sock and line.startswith("Size:"):
                size += int(line.split()[1])
            elif in_sock and line.startswith("Rss:"):
                rss += int(line.split()[1])
    vmrss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                vmrss = int(line.split()[1])
    return size, rss, vmrss


def our_alias_links(instance):
    out = subprocess.run(["ip", "-o", "-d", "link", "show"], capture_output=True, text=True).stdout
    return [l.split(":")[1].strip().split("@")[0] for l in out.splitlines() if f"alias vpcd:{instance}:" in l]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--nics", type=int, default=1000)
    ap.add_argument("--vpcs", type=int, default=10)
    ap.add_argument("--pairs", type=int, default=100)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=4, help="concurrent API clients")
    ap.add_argument("--timeout", type=int, default=600, help="bound on each phase, seconds")
    ap.add_argument("--vpcd-args", default="")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("scale.py: run as root")
    vt.BUILD = os.path.abspath(a.build_dir)
    ns = vt.Namespaces("S")
    # The box's capacity limits (vpcd.conf max-nics, default 128) would refuse most of the NICs: raise them here.
    conf = tempfile.NamedTemporaryFile("w", prefix="vpcd-scale-", suffix=".conf", delete=False)
    conf.write("max-nics = %d\nmax-vpcs = %d\n" % (a.nics + 10, a.vpcs + 10))
    conf.close()
    try:
        d = vt.Vpcd(workers=a.workers, extra_args=["--config", conf.name] + a.vpcd_args.split()).start()
    finally:
        os.unlink(conf.name)
    instance = d.instance or instance_name(d.state)
    rng = random.Random(12)
    try:
        c = d.client()
        subnets = []
        for v in range(a.vpcs):
            cidr = f"10.{90 + v // 64}.{(v % 64) * 4}.0/22"
            vpc = c.call("POST", "/v1/vpcs", {"cidrs": [cidr]})
            subnets.append(c.call("POST", "/v1/subnets", {"vpc_id": vpc["id"], "cidr": cidr})["id"])
        plan = []  # (vpc index, netns, ip)
        for i in range(a.nics):
            v = i % a.vpcs
            k = i // a.vpcs  # index inside the VPC
            ip = f"10.{90 + v // 64}.{(v % 64) * 4 + (k + 2) // 256}.{(k + 2) % 256}"
            plan.append((v, ns.name(f"n{i}"), ip))

        def create(p):
            v, netns, ip = p
            cl = d.client()
            return cl.call("POST", "/v1/nics", {"subnet_id": subnets[v], "ips": [ip],
                                                 "backend": {"type": "netns", "netns": netns, "ifname": "eth0"}})["id"]

        t0 = time.monotonic()
        with cf.ThreadPoolExecutor(a.threads) as ex:
            ids = list(ex.map(create, plan))
        t_post = time.monotonic() - t0

        def count_up():
            up = 0
            for off in range(0, a.nics + 1000, 1000):
                page = c.call("GET", f"/v1/nics?limit=1000&offset={off}")["items"]
                up += sum(1 for n in page if n.get("state") == "up")
                if len(page) < 1000:
                    break
            return up

        up = 0
        while time.monotonic() - t0 < a.timeout:
            up = count_up()
            if up == a.nics:
                break
            time.sleep(0.5)
        t_up = time.monotonic() - t0
        size_kib, rss_kib, vmrss_kib = smaps_socket_kib(d.proc.pid)
        print(f"{a.nics} netns NICs in {a.vpcs} VPCs, vpcd with {a.workers} worker(s):")
        print(f"  POSTs answered in {t_post:.1f} s; {up} of {a.nics} up after {t_up:.1f} s")
        print(f"  vpcd VmRSS {vmrss_kib / 1024:.0f} MiB, of which packet rings {rss_kib / 1024:.0f} MiB resident "
              f"({size_kib / 1024:.0f} MiB mapped); per NIC: {size_kib / a.nics:.0f} KiB of ring, "
              f"{vmrss_kib / a.nics:.0f} KiB of RSS in all")

        by_vpc = {}
        for (v, netns, ip) in plan:
            by_vpc.setdefault(v, []).append((netns, ip))
        lost = 0
        pings = 0
        for _ in range(a.pairs):
            members = by_vpc[rng.randrange(a.vpcs)]
            if len(members) < 2:
                continue
            (na, _), (_, ipb) = rng.sample(members, 2)
            pings += 1
            r = subprocess.run(["ip", "netns", "exec", na, "ping", "-c1", "-W2", ipb],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)
            lost += r.returncode != 0
        print(f"  ping across {pings} random same-VPC pairs: {lost} lost")

        t1 = time.monotonic()

        def delete(nic_id):
            d.client().call("DELETE", f"/v1/nics/{nic_id}")

        with cf.ThreadPoolExecutor(a.threads) as ex:
            list(ex.map(delete, ids))
        t_del_api = time.monotonic() - t1
        prefix = ns.prefix
        while time.monotonic() - t1 < a.timeout:
            left_ns = [l for l in vt.sh("ip netns list").stdout.split("\n") if l.startswith(prefix)]
            if not left_ns and c.call("GET", "/v1/nics?limit=1")["total"] == 0:
                break
            time.sleep(0.5)
        t_del = time.monotonic() - t1
        left_ns = [l.split()[0] for l in vt.sh("ip netns list").stdout.split("\n") if l.startswith(prefix)]
        left_links = our_alias_links(instance)
        marker_dir = f"/run/vpcd/{instance}/netns"
        left_markers = os.listdir(marker_dir) if os.path.isdir(marker_dir) else []
        print(f"  DELETEs answered in {t_del_api:.1f} s; everything gone after {t_del:.1f} s")
        print(f"  left behind: {len(left_ns)} namespaces, {len(left_links)} links, {len(left_markers)} markers")
    finally:
        d.close()
        ns.remove_all()


if __name__ == "__main__":
    main()
