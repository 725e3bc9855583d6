#!/usr/bin/env python3
"""End-to-end comparison of vpcd with the Linux bridge and Open vSwitch's userspace datapath on this machine.

Two guest namespaces are joined by each switch in turn, in one run, and measured the same way:
  - TCP throughput: iperf3, 1 and 4 streams, --duration seconds;
  - 64-byte frames: trafgen (Debian netsniff-ng) on one core in guest 1 sends 60-byte UDP frames to guest 2 for
    --duration seconds; delivered = guest 2's eth0 rx_packets delta, offered = guest 1's eth0 tx_packets delta;
  - ping RTT (20 echoes, 50 ms apart);
  - CPU: the whole machine's busy time (/proc/stat) and the switch process's own (vpcd, ovs-vswitchd), in cores.
(The measurements and the private Open vSwitch are e2e_lib.py's, shared with overlay.py.)
Then vpcd's drops during each phase (per guest NIC and reason, from its API), the ratios of vpcd to each peer, and
the targets of issue 12 (met / missed).

vpcd is measured with netns NICs and, with --nic-kinds netns,tap, with tap NICs: each guest is then a stand-in on the
tap (bench/e2e/tap_guest_relay.c, compiled here with cc: it attaches to the tap like a hypervisor and relays frames,
vnet header included, to a veth whose peer is the guest namespace's eth0; one extra hop a QEMU+vhost-net guest does not
have, so tap figures are lower bounds). --workers 1,2 measures each vpcd variant with 1 and with 2 workers.
Extra vpcd flags (e.g. --rx-ring v3, --busy-poll on) go through --vpcd-args "...". --pin-workers yes pins vpcd's N
workers to the machine's last N CPUs (--worker-cpus; labels end in -pin); both measures each variant unpinned and
pinned in the same run; the issue 12 verdicts are printed for the unpinned variants and, when measured, the pinned.

Everything it creates (namespaces vbe<pid>-*, OVS private run dir, a vpcd state dir) is removed at the end, also on
failure. Traffic only flows between the namespaces it creates, to addresses that exist only there (10.77.0.0/24, and
10.77.1.0/24 with --routed).

--routed puts guest 2 in a second subnet (10.77.1.0/24, each guest's default route via its subnet's .1): vpcd's router
(VPC with two subnets, netns NICs) against the kernel's own IPv4 forwarding in a namespace ("router"); the 64-byte
frames go to the MAC guest 1 resolved for its gateway.

Usage (root): python3 bench/e2e/compare.py [--build-dir build] [--switches vpcd,bridge,ovs,ovs-tso,ovs-afxdp]
                                           [--duration 5] [--runs 1] [--workers 1,2] [--nic-kinds netns,tap]
                                           [--vpcd-args "--rx-ring v3"] [--pin-workers no|yes|both]
                                           [--routed] [--json out.json]
"""
import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_lib as lib  # noqa: E402
import vpcdtest as vt  # noqa: E402

PID = os.getpid()
G1, G2, SW = f"vbe{PID}g1", f"vbe{PID}g2", f"vbe{PID}sw"
IP1, IP2, PREFIX = "10.77.0.2", "10.77.0.3", 24  # .1 is the vpcd subnet gateway
MAC1, MAC2 = "02:77:00:00:00:01", "02:77:00:00:00:02"
MTU = 1500
# --routed: guest 2 in another subnet (10.77.1.0/24), each guest's default route via its subnet's .1
ROUTED = False
GW1, GW2 = "10.77.0.1", "10.77.1.1"


sh, nsx, counter, CpuMeter = lib.sh, lib.nsx, lib.counter, lib.CpuMeter


class VpcdPids(list):
    """The pids a vpcd switch yields, plus drops(): {"NIC n REASON": count} of its guest NICs, read from the API, so
    run_one can report what vpcd dropped during each phase (a lost super-frame costs TCP far more than its bytes)."""
    drops = None


def drop_delta(before, after):
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


def cleanup_namespaces():
    lib.remove_namespaces(f"vbe{PID}")


def measure_tcp(streams, duration, pids):
    return lib.measure_tcp(G1, G2, IP2, streams, duration, pids)


def measure_small_frames(duration, pids):
    # routed: to the MAC guest 1 resolved for its gateway (the router's), as its own stack would send
    dst_mac = MAC2
    if ROUTED:
        m = re.search(r"lladdr (\S+)", nsx(G1, f"ip neigh show {GW1} dev eth0"))
        if not m:
            raise RuntimeError("guest 1 has no neighbour entry for its gateway")
        dst_mac = m.group(1)
    return lib.measure_small_frames(G1, G2, MAC1, dst_mac, IP1, IP2, duration, pids)


def measure_ping():
    return lib.measure_ping(G1, IP2)


def wait_ping(timeout_s=10):
    return lib.wait_ping(G1, IP2, timeout_s)


def make_guests_with_switch_ns():
    """Guests G1/G2 and a switch namespace SW joined by veth pairs s1<->G1:eth0, s2<->G2:eth0."""
    for ns in (G1, G2, SW):
        sh(f"ip netns add {ns}")
    for i, (ns, ip, mac) in enumerate(((G1, IP1, MAC1), (G2, IP2, MAC2)), start=1):
        sh(f"ip link add vbe{PID}s{i} netns {SW} type veth peer name eth0 netns {ns}")
        nsx(ns, f"ip link set eth0 address {mac} mtu {MTU} up")
        nsx(ns, f"ip addr add {ip}/{PREFIX} dev eth0")
        nsx(ns, "ip link set lo up")
        nsx(SW, f"ip link set vbe{PID}s{i} mtu {MTU} up")
        nsx(SW, f"sysctl -qw net.ipv6.conf.vbe{PID}s{i}.disable_ipv6=1", check=False)
    if ROUTED:
        for ns, gw in ((G1, GW1), (G2, GW2)):
            nsx(ns, f"ip route add default via {gw}")


def set_guest_tx_offload(on):
    for ns in (G1, G2):
        nsx(ns, f"ethtool -K eth0 tx {'on' if on else 'off'}", check=False)


@contextlib.contextmanager
def switch_bridge():
    make_guests_with_switch_ns()
    nsx(SW, "ip link add br0 type bridge")
    for i in (1, 2):
        nsx(SW, f"ip link set vbe{PID}s{i} master br0")
    nsx(SW, "ip link set br0 up")
    try:
        yield []
    finally:
        cleanup_namespaces()


@contextlib.contextmanager
def switch_router():
    """--routed's peer: the kernel's own IPv4 forwarding in the switch namespace (a Linux router between the two
    subnets)."""
    make_guests_with_switch_ns()
    nsx(SW, "sysctl -qw net.ipv4.ip_forward=1")
    for i, gw in ((1, GW1), (2, GW2)):
        nsx(SW, f"ip addr add {gw}/{PREFIX} dev vbe{PID}s{i}")
    try:
        yield []
    finally:
        cleanup_namespaces()


@contextlib.contextmanager
def switch_ovs(port_type="system", tso=False):
    try:
        make_guests_with_switch_ns()
        with lib.ovs_instance(SW, f"vbe{PID}-ovs-", tso=tso) as ovs:
            ovs.vsctl("add-br br0 -- set bridge br0 datapath_type=netdev")
            for i in (1, 2):
                ovs.vsctl(f"add-port br0 vbe{PID}s{i} -- set interface vbe{PID}s{i} type={port_type}")
            nsx(SW, "ip link set br0 up", check=False)
            yield [ovs.vswitchd_pid]
    finally:
        cleanup_namespaces()


RELAY_SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tap_guest_relay.c")


def build_relay(outdir):
    exe = os.path.join(outdir, "tap_guest_relay")
    sh(["cc", "-O2", "-o", exe, RELAY_SRC])
    return exe


def make_tap_guests():
    """Guests G1/G2 whose eth0 peers (vbe<pid>r1/r2 in SW) are relayed to taps vbe<pid>t1/t2 (created by vpcd)."""
    for ns in (G1, G2, SW):
        sh(f"ip netns add {ns}")
    procs = []
    for i, (ns, ip, mac) in enumerate(((G1, IP1, MAC1), (G2, IP2, MAC2)), start=1):
        sh(f"ip link add vbe{PID}r{i} netns {SW} type veth peer name eth0 netns {ns}")
        nsx(ns, f"ip link set eth0 address {mac} mtu {MTU} up")
        nsx(ns, f"ip addr add {ip}/{PREFIX} dev eth0")
        nsx(ns, "ip link set lo up")
        nsx(SW, f"ip link set vbe{PID}r{i} mtu {MTU} up")
        nsx(SW, f"sysctl -qw net.ipv6.conf.vbe{PID}r{i}.disable_ipv6=1", check=False)
    return procs


def start_relays(relay_exe, duration_s):
    procs = []
    for i in (1, 2):
        p = subprocess.Popen([relay_exe, f"vbe{PID}t{i}", f"/run/netns/{SW}", f"vbe{PID}r{i}", str(duration_s)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if p.stdout.readline().strip() != "ready":
            raise RuntimeError("tap relay failed: " + p.stderr.read()[-500:])
        procs.append(p)
    return procs


@contextlib.contextmanager
def switch_vpcd(build_dir, workers, nic_kind="netns", extra_args=(), budget_s=600):
    vt.BUILD = os.path.abspath(build_dir)
    # the shared harness: own state dir, 127.0.0.1:0, the bound port read back
    d = vt.Vpcd(workers=workers, extra_args=list(extra_args))
    relays = []
    try:
        d.start(timeout=20)
        api = d.client()
        vpc = api.call("POST", "/v1/vpcs", {"cidrs": ["10.77.0.0/16"], "mtu": MTU})
        sub = api.call("POST", "/v1/subnets", {"vpc_id": vpc["id"], "cidr": f"10.77.0.0/{PREFIX}"})
        # --routed: guest 2 in a second subnet, reached through the VPC's router
        sub2 = api.call("POST", "/v1/subnets", {"vpc_id": vpc["id"], "cidr": f"10.77.1.0/{PREFIX}"}) if ROUTED else sub
        nics = []
        if nic_kind == "tap":
            make_tap_guests()
        for i, (ns, ip, mac) in enumerate(((G1, IP1, MAC1), (G2, IP2, MAC2)), start=1):
            backend = ({"type": "tap", "ifname": f"vbe{PID}t{i}"} if nic_kind == "tap"
                       else {"type": "netns", "netns": ns, "ifname": "eth0"})
            subnet = sub if i == 1 else sub2
            nics.append(api.call("POST", "/v1/nics", {"subnet_id": subnet["id"], "mac": mac, "ips": [ip],
                                                      "backend": backend}))
        if nic_kind == "tap":  # the hypervisor stand-ins attach once vpcd has created the taps
            deadline = time.monotonic() + 20
            while not all(os.path.exists(f"/sys/class/net/vbe{PID}t{i}") for i in (1, 2)):
                if time.monotonic() > deadline:
                    raise RuntimeError("vpcd did not create the taps")
                time.sleep(0.05)
            relays = start_relays(build_relay(d.state_dir), budget_s)
        deadline = time.monotonic() + 20
        # (a tap NIC is up once its hypervisor stand-in has attached: vpcd hears the carrier change at once)
        while any(api.call("GET", f"/v1/nics/{n['id']}")["state"] != "up" for n in nics):
            if time.monotonic() > deadline:
                raise RuntimeError("NICs did not come up: " + json.dumps([api.call("GET", f"/v1/nics/{n['id']}")
                                                                          for n in nics]))
            time.sleep(0.1)
        pids = VpcdPids([d.proc.pid])

        def drops():
            out = {}
            for i, n in enumerate(nics, start=1):
                for reason, count in api.call("GET", f"/v1/nics/{n['id']}/stats")["drops"].items():
                    out[f"NIC {i} {reason}"] = count
            return out

        pids.drops = drops
        yield pids
        for n in nics:
            api.call("DELETE", f"/v1/nics/{n['id']}")
    finally:
        for r in relays:
            r.kill()
            r.wait()
        d.close()
        if nic_kind == "tap":  # vpcd removes its taps on DELETE; these names are ours (pid) if that did not happen
            for i in (1, 2):
                if os.path.exists(f"/sys/class/net/vbe{PID}t{i}"):
                    sh(f"ip link del vbe{PID}t{i}", check=False)
        cleanup_namespaces()  # deleting a guest namespace also deletes the veth end vpcd drove


def run_one(name, ctx, duration, guest_tx_offload=True):
    with ctx as pids:
        set_guest_tx_offload(guest_tx_offload)
        if not wait_ping():
            return {"error": "guests cannot ping each other"}
        # Ping first: an idle path, before any flood has filled a queue.
        ping = measure_ping()
        drops = getattr(pids, "drops", None) or dict
        d0 = drops()
        r = {"tcp1": measure_tcp(1, duration, pids)}
        d1 = drops()
        r["tcp4"] = measure_tcp(4, duration, pids)
        d2 = drops()
        r |= {"small": measure_small_frames(duration, pids), "ping": ping, "guest_tx_offload": guest_tx_offload}
        if getattr(pids, "drops", None):
            r["drops"] = {"tcp1": drop_delta(d0, d1), "tcp4": drop_delta(d1, d2), "small": drop_delta(d2, drops())}
        return r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--switches", default="vpcd,bridge,ovs,ovs-tso,ovs-afxdp")
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts for vpcd")
    ap.add_argument("--nic-kinds", default="netns,tap", help="vpcd NIC backends to measure: netns, tap")
    ap.add_argument("--vpcd-args", default="", help="extra vpcd flags, e.g. '--rx-ring v3'")
    ap.add_argument("--pin-workers", choices=("no", "yes", "both"), default="no",
                    help="vpcd's N workers on the last N CPUs (--worker-cpus): no, yes, or both variants")
    ap.add_argument("--routed", action="store_true",
                    help="guest 2 in another subnet: vpcd's router against the kernel's (--switches vpcd,router)")
    ap.add_argument("--json")
    a = ap.parse_args()
    global ROUTED, IP2
    if a.routed:
        ROUTED, IP2 = True, "10.77.1.3"
        if a.switches == ap.get_default("switches"):
            a.switches = "vpcd,router"
        if any(x not in ("vpcd", "router") for x in a.switches.split(",")):
            sys.exit("compare.py: --routed compares vpcd with the kernel's router only (--switches vpcd,router)")
        if a.nic_kinds == ap.get_default("nic_kinds"):
            a.nic_kinds = "netns"
        if "tap" in a.nic_kinds.split(","):
            sys.exit("compare.py: --routed measures netns NICs only (--nic-kinds netns)")
    if os.geteuid() != 0:
        sys.exit("compare.py: run as root")
    for tool in ("iperf3", "trafgen", "ovs-vswitchd", "ethtool", "ping"):
        if not shutil.which(tool):
            sys.exit(f"compare.py: {tool} missing: run scripts/install-deps.sh bench")

    budget = 60 + 4 * a.duration + 30  # one switch's measurements, bounded: the tap relays exit by then
    makers = {}
    switches = []
    for name in a.switches.split(","):
        if name != "vpcd":
            switches.append(name)
            continue
        cpus = sorted(os.sched_getaffinity(0))
        pins = {"no": (False,), "yes": (True,), "both": (False, True)}[a.pin_workers]
        for kind in a.nic_kinds.split(","):
            for w in (int(x) for x in a.workers.split(",")):
                for pin in pins:
                    if pin and w > len(cpus):
                        sys.exit(f"compare.py: --pin-workers with {w} workers needs {w} CPUs, vpcd may use {cpus}")
                    label = ("vpcd" + ("" if kind == "netns" else "-tap") + ("" if w == 1 else f"-{w}w")
                             + ("-pin" if pin else ""))
                    args = a.vpcd_args.split() + (["--worker-cpus", ",".join(map(str, cpus[-w:]))] if pin else [])
                    makers[label] = ((lambda w=w, kind=kind, args=args: switch_vpcd(a.build_dir, w, kind, args,
                                                                                    budget)), True)
                    switches.append(label)
    makers |= {
        "bridge": (switch_bridge, True),
        "router": (switch_router, True),
        # Per PEERS.md: OVS netdev with AF_PACKET ports needs the guests' tx offload off, else TCP/UDP time out.
        "ovs": (lambda: switch_ovs("system", tso=False), False),
        "ovs-tso": (lambda: switch_ovs("system", tso=True), True),
        "ovs-afxdp": (lambda: switch_ovs("afxdp", tso=False), False),
    }
    results = {}
    try:
        for run in range(a.runs):
            for name in switches:
                maker, offload = makers[name]
                print(f"[run {run + 1}/{a.runs}] {name} ...", file=sys.stderr, flush=True)
                try:
                    r = run_one(name, maker(), a.duration, offload)
                except Exception as e:  # one switch failing must not hide the others' figures
                    r = {"error": str(e)[-1500:]}
                results.setdefault(name, []).append(r)
    finally:
        cleanup_namespaces()

    def med(name, path):
        return lib.median_at(results, name, path)

    cols = [("TCP1 Gb/s", ("tcp1", "gbit_s")), ("TCP4 Gb/s", ("tcp4", "gbit_s")),
            ("64B kpps", ("small", "delivered_kpps")), ("offered", ("small", "offered_kpps")),
            ("loss %", ("small", "loss_pct")), ("ping ms", ("ping", "avg_ms")),
            ("cpu sw (64B)", ("small", "cpu_switch")), ("cpu box (64B)", ("small", "cpu_machine")),
            ("cpu box (TCP1)", ("tcp1", "cpu_machine"))]
    lib.print_table(results, cols, first="switch", first_width=14)
    vpcds = [n for n in results if n.startswith("vpcd")]
    for v in vpcds:
        for i, r in enumerate(results[v], start=1):
            for phase, d in (r.get("drops") or {}).items():
                if d:
                    print(f"{v} run {i} drops during {phase}: " + ", ".join(f"{k} {c}" for k, c in sorted(d.items())))
    peers = [n for n in results if not n.startswith("vpcd")]
    for v in vpcds:
        print(f"\nratios {v} / peer (TCP1, TCP4, 64B delivered, ping):")
        for name in peers:
            ratios = []
            for path in (("tcp1", "gbit_s"), ("tcp4", "gbit_s"), ("small", "delivered_kpps"), ("ping", "avg_ms")):
                x, p = med(v, path), med(name, path)
                ratios.append("-" if not x or not p else f"{x / p:.2f}x")
            print(f"  vs {name:<10} " + "  ".join(ratios))

    def target(label, vname, path, peer, op, factor):
        x, p = med(vname, path), med(peer, path)
        if x is None or p is None:
            return print(f"  {label:<52} -  (missing {vname if x is None else peer})")
        ok = x <= factor * p if op == "<=" else x >= factor * p
        print(f"  {label:<52} {x / p:6.2f}x  {'met' if ok else 'MISSED'}")

    for suffix in ("", "-pin") if not ROUTED else ():
        if not any(v.endswith("-pin") == bool(suffix) for v in vpcds):
            continue
        one = "vpcd" + suffix if "vpcd" + suffix in results else next(v for v in vpcds if v.endswith("-pin") == bool(suffix))
        two = "vpcd-2w" + suffix if "vpcd-2w" + suffix in results else one
        print(f"\nissue 12 targets ({one}; TCP4 with {two}):")
        target("ping <= 3x bridge", one, ("ping", "avg_ms"), "bridge", "<=", 3)
        target("ping below OVS AF_XDP", one, ("ping", "avg_ms"), "ovs-afxdp", "<=", 1)
        target("TCP 1 stream >= 1.5x OVS+TSO", one, ("tcp1", "gbit_s"), "ovs-tso", ">=", 1.5)
        target("TCP 1 stream >= 0.8x bridge", one, ("tcp1", "gbit_s"), "bridge", ">=", 0.8)
        target("TCP 4 streams >= 0.8x bridge (2 workers)", two, ("tcp4", "gbit_s"), "bridge", ">=", 0.8)
        target("64 B delivered >= OVS AF_XDP", one, ("small", "delivered_kpps"), "ovs-afxdp", ">=", 1)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
