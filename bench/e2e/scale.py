#!/usr/bin/env python3
"""Scale benchmark (not a test): N netns NICs (default 1000) in V VPCs (default 10) created through the REST API of a
private vpcd on this box.

Reports:
  - the time from the first POST to every NIC reported `up` (and the POST phase alone);
  - vpcd's memory afterwards: VmRSS, and the packet_mmap ring memory (mappings of sockets in /proc/PID/smaps: the
    rings are kernel pages mapped into vpcd, counted in its RSS), per NIC;
  - a ping (-c1 -W2) across --pairs random pairs of NICs of the same VPC, started as soon as all are up, how many
    were lost and the median / largest round trip (the first packet of each pair needs ARP at both ends). A lost
    ping stays lost; for each one the script prints what tells why (--no-diagnose turns that off): the ping's
    output, the deltas around it of vpcd's counters (both NICs, every worker, the totals), the kernel's backlog
    drops, both guests' IP/ICMP and link counters and the host ends' link counters, the NICs' state and the guests'
    neighbour entries, then one retry of the pair while vpcd captures both NICs (printed as a diagnosis);
  - the time from the first DELETE until every namespace is gone and GET /v1/nics is empty;
  - what is left behind: namespaces with this run's prefix, links carrying this vpcd instance's alias, markers under
    /run/vpcd/INSTANCE/netns.
Usage (root): python3 bench/e2e/scale.py [--build-dir build] [--nics 1000] [--vpcs 10] [--pairs 100] [--workers 1]
              [--threads 4] [--vpcd-args "..."] [--no-diagnose]
Everything lives in namespaces vtS<pid>* and a private vpcd (the test harness's state dir); all is removed at the end,
also on failure. Traffic stays inside those namespaces (10.90.0.0/15 and up, addresses that exist only there).
"""
import argparse
import concurrent.futures as cf
import json
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


def indent(text, pre="      "):
    return "\n".join(pre + l for l in text.rstrip().splitlines())


def flatten(obj, prefix=""):
    """{"a": {"b": 1}} -> {"a.b": 1}; numbers only."""
    out = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}{k}."))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.update(flatten(v, f"{prefix}{i}."))
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        out[prefix[:-1]] = obj
    return out


def deltas(before, after):
    """The keys of two flattened dicts whose value changed, as 'key +N'."""
    return [f"{k} +{after[k] - before.get(k, 0)}" for k in sorted(after) if after[k] != before.get(k, 0)]


class Diagnosis:
    """What tells why a ping was lost: vpcd's counters (the two NICs', every worker's, the totals' drops), the
    kernel's backlog drops (/proc/net/softnet_stat), the guests' IP/ICMP counters, link counters and neighbour
    entries, and the host ends' link counters; taken before and after each ping and printed as deltas on a loss. Then
    one retry of the same pair while vpcd captures on both NICs (printed as a diagnosis: the loss still counts)."""

    def __init__(self, client, instance):
        self.c = client
        self.instance = instance
        self._host = {}

    def host_ifname(self, nic_id):
        if nic_id not in self._host:
            out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
            for l in out.splitlines():
                if f"alias vpcd:{self.instance}:{nic_id}" in l:
                    self._host[nic_id] = l.split(":")[1].strip().split("@")[0]
        return self._host.get(nic_id)

    @staticmethod
    def softnet_dropped():
        """(frames dropped because a CPU's backlog was full, times net_rx_action ran out of budget), all CPUs."""
        dropped = squeezed = 0
        with open("/proc/net/softnet_stat") as f:
            for line in f:
                cols = [int(x, 16) for x in line.split()]
                dropped += cols[1]
                squeezed += cols[2]
        return {"backlog_dropped": dropped, "time_squeeze": squeezed}

    @staticmethod
    def link_stats(netns, ifname):
        cmd = (["ip", "netns", "exec", netns] if netns else []) + ["ip", "-s", "-j", "link", "show", "dev", ifname]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            return {}
        st = json.loads(r.stdout)[0].get("stats64", {})
        return flatten({"rx": st.get("rx", {}), "tx": st.get("tx", {})})

    @staticmethod
    def guest(netns):
        """The guest's /proc/net/snmp (Ip, Icmp) and eth0 counters, flattened."""
        r = subprocess.run(["ip", "netns", "exec", netns, "cat", "/proc/net/snmp"], capture_output=True, text=True)
        snmp = {}
        lines = r.stdout.splitlines()
        for names, values in zip(lines[0::2], lines[1::2]):
            proto = names.split(":")[0]
            if proto not in ("Ip", "Icmp", "Udp"):
                continue
            for k, v in zip(names.split()[1:], values.split()[1:]):
                snmp[f"{proto}.{k}"] = int(v)
        snmp.update({"eth0." + k: v for k, v in Diagnosis.link_stats(netns, "eth0").items()})
        return snmp

    def snapshot(self, src, dst):
        st = self.c.call("GET", "/v1/stats")
        snap = {"softnet": self.softnet_dropped()}
        for tag, (netns, _, nic_id) in (("src", src), ("dst", dst)):
            snap[tag + " vpcd NIC"] = flatten(st["nics"].get(nic_id, {}))
            snap[tag + " guest"] = self.guest(netns)
            host = self.host_ifname(nic_id)
            snap[tag + " host end " + str(host)] = self.link_stats(None, host) if host else {}
        snap["vpcd workers"] = flatten(st["workers"])
        snap["vpcd totals"] = flatten(st["totals"])
        return snap

    def report(self, before, after, src, dst):
        for key in after:
            d = deltas(before.get(key, {}), after[key])
            print(f"    {key}: " + (", ".join(d) if d else "no change"))
        for tag, (netns, ip, nic_id) in (("src", src), ("dst", dst)):
            nic = self.c.call("GET", f"/v1/nics/{nic_id}")
            neigh = subprocess.run(["ip", "netns", "exec", netns, "ip", "neigh", "show"], capture_output=True,
                                   text=True).stdout.strip().replace("\n", "; ")
            link = subprocess.run(["ip", "netns", "exec", netns, "ip", "-br", "link", "show", "eth0"],
                                  capture_output=True, text=True).stdout.strip()
            print(f"    {tag} NIC state {nic.get('state')} ({nic.get('state_detail', '')}); guest {link}; "
                  f"neighbours: {neigh or 'none'}")

    def retry(self, src, dst):
        """One more ping of the pair while both NICs are captured (diagnosis only)."""
        caps = []
        try:
            for _, _, nic_id in (src, dst):
                conn = self.c.connection(timeout=30)
                conn.request("GET", f"/v1/nics/{nic_id}/capture?count=50&seconds=4&filter=arp%20or%20icmp",
                             headers={"Authorization": f"Bearer {self.c.admin}"})
                caps.append(conn)
            time.sleep(0.3)  # the captures attach to the workers' next snapshot
            r = subprocess.run(["ip", "netns", "exec", src[0], "ping", "-c1", "-W2", dst[1]], capture_output=True,
                               text=True, timeout=10)
            print(f"    retry of the pair (diagnosis only; the loss above still counts): "
                  f"{'answered' if r.returncode == 0 else 'lost again'}")
            for tag, conn in zip(("src", "dst"), caps):
                resp = conn.getresponse()
                pcap = resp.read()
                txt = subprocess.run(["tcpdump", "-nn", "-e", "-r", "-"], input=pcap, capture_output=True).stdout
                print(f"    capture on the {tag} NIC during the retry ({resp.status}):\n" +
                      indent(txt.decode(errors="replace") or "(nothing)", "        "))
        finally:
            for conn in caps:
                conn.close()


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
    ap.add_argument("--no-diagnose", dest="diagnose", action="store_false",
                    help="skip the counter snapshots around each ping (printed on a lost ping)")
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
        for i, (v, netns, ip) in enumerate(plan):
            by_vpc.setdefault(v, []).append((netns, ip, ids[i]))
        lost = 0
        pings = 0
        rtts = []  # ms, answered pings (each includes the ARP exchange at both ends)
        t_ping = time.monotonic()
        diag = Diagnosis(c, instance)
        for _ in range(a.pairs):
            members = by_vpc[rng.randrange(a.vpcs)]
            if len(members) < 2:
                continue
            src, dst = rng.sample(members, 2)
            pings += 1
            before = diag.snapshot(src, dst) if a.diagnose else None
            r = subprocess.run(["ip", "netns", "exec", src[0], "ping", "-c1", "-W2", dst[1]],
                               capture_output=True, text=True, timeout=10)
            m = re.search(r"time=([0-9.]+) ms", r.stdout)
            if m:
                rtts.append(float(m.group(1)))
            if r.returncode != 0:
                lost += 1
                print(f"  LOST: ping {src[0]} ({src[1]}, NIC {src[2]}) -> {dst[0]} ({dst[1]}, NIC {dst[2]}) "
                      f"{time.monotonic() - t0:.1f} s after the first POST:\n" + indent(r.stdout + r.stderr))
                if before is not None:
                    diag.report(before, diag.snapshot(src, dst), src, dst)
                    diag.retry(src, dst)
        rtts.sort()
        rtt_text = (f"; RTT (with ARP) median {rtts[len(rtts) // 2]:.2f} ms, max {rtts[-1]:.2f} ms" if rtts else "")
        print(f"  ping across {pings} random same-VPC pairs, started {t_ping - t0:.1f} s after the first POST: "
              f"{lost} lost{rtt_text}")

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
