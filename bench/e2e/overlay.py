#!/usr/bin/env python3
"""Overlay end-to-end comparison (issue 8): guest to guest across two "boxes", in one run, through
  vpcd    vpcd on both boxes (one VPC with the same VNI on each, an underlay uplink, the other box as VTEP peer and
          the other guest as a remote NIC, all through the REST API; --workers workers each, default 1);
  kernel  a Linux vxlan device (the VNI, dstport 4789, the other box as remote) in a Linux bridge on both boxes;
  ovs     Open vSwitch's userspace datapath on both boxes (a private ovsdb-server/ovs-vswitchd per box; br-phy, a
          netdev bridge holding the underlay interface with the underlay address on its internal port, and br-int,
          a netdev bridge with the guest's veth and a type=vxlan port to the other box).

  guest ga 10.77.1.10 --veth-- box A up0 198.18.77.1 ====veth underlay==== up0 198.18.77.2 box B --veth-- guest gb
  (guest MTU 1450, underlay MTU 1500)                                                                   10.77.1.20

Each box and guest is a network namespace of this run's own (ovb<pid>*); vpcd runs in its box's namespace with
nsenter --net (tests/overlay/overlay_lib.py's Box, own state dir, 127.0.0.1:0 in that namespace). Measured the same
way as compare.py (bench/e2e/e2e_lib.py): iperf3 TCP ga -> gb with 1 and 4 streams for --duration seconds, trafgen
60-byte UDP frames ga -> gb on one core for --duration seconds (delivered = gb's eth0 rx_packets delta), ping RTT
(20 echoes), CPU of the machine and of the switch processes (both vpcd, both ovs-vswitchd), and vpcd's drop counters
per box and reason (GET /v1/stats, the whole run: where lost frames went). The guests' tx offloads
stay on for vpcd and the kernel; for OVS they are off (its userspace tunnels drop packets with offload flags:
"Tunneling packets with HW offload flags is not supported", openvswitch/ovs-issues #269; ../shared/PEERS.md).
Prints the table, the ratios vpcd/kernel and vpcd/OVS, the targets of issue 8, and the load average at start and end.

Everything it creates (namespaces ovb<pid>*, the vpcd state dirs, the private OVS run dirs) is removed at the end,
also on failure or SIGTERM; every generator is bounded in time. Traffic stays between the namespaces it creates, to
addresses that exist only there.

Usage (root): python3 bench/e2e/overlay.py [--build-dir build] [--setups vpcd,kernel,ovs] [--duration 5] [--runs 1]
                                           [--workers 1] [--no-remote-nics] [--vxlan-uso on|off] [--rx-ring v2|v3]
                                           [--uplink-tx-big-frames N] [--json out.json]
--vxlan-uso: vpcd's config vxlan-uso (TCP super-frames to tunnels as one UDP GSO frame each; default: vpcd's, on).
--rx-ring: vpcd's config rx-ring for every port of both boxes (v3: super-frames land in the ring's blocks instead of
the V2 copy path; default: vpcd's, v2).
--uplink-tx-big-frames: vpcd's config uplink-tx-big-frames on both boxes (big TX ring slots per uplink and worker, in
which USO frames are built and sent without a copy into the skb; 0 = none, sendmsg; default: vpcd's, 0).
"""
import argparse
import contextlib
import json
import os
import shutil
import signal
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "overlay"))
import e2e_lib as lib  # noqa: E402
import overlay_lib as ol  # noqa: E402

PID = os.getpid()
P = f"ovb{PID}"
BOX_A, BOX_B, GA, GB = P + "A", P + "B", P + "ga", P + "gb"
UL_A, UL_B, UL_PREFIX = "198.18.77.1", "198.18.77.2", 24
IP_A, IP_B, GUEST_PREFIX = "10.77.1.10", "10.77.1.20", 24
MAC_A, MAC_B = "02:77:01:00:00:0a", "02:77:01:00:00:14"
VNI = 7077
GUEST_MTU = 1450  # the VPC default; + 50 bytes of outer headers = the underlay's 1500
# (box, own underlay address, the other box's, guest namespace, guest IP, guest MAC, the other guest's IP and MAC)
SIDES = ((BOX_A, UL_A, UL_B, GA, IP_A, MAC_A, IP_B, MAC_B), (BOX_B, UL_B, UL_A, GB, IP_B, MAC_B, IP_A, MAC_A))


def make_boxes():
    """Box namespaces A and B joined by a veth pair, up0 on each side."""
    for ns in (BOX_A, BOX_B):
        lib.sh(f"ip netns add {ns}")
        lib.nsx(ns, "ip link set lo up")
        for key in ("all", "default"):
            lib.nsx(ns, f"sysctl -qw net.ipv6.conf.{key}.disable_ipv6=1", check=False)
    lib.sh(f"ip -n {BOX_A} link add up0 type veth peer name up0 netns {BOX_B}")
    for ns in (BOX_A, BOX_B):
        lib.nsx(ns, "ip link set up0 mtu 1500 up")


def make_guest(box, guest, ip, mac):
    """Guest namespace `guest` whose eth0 is the peer of g0 in `box`; returns nothing, g0 is left down in the box."""
    lib.sh(f"ip netns add {guest}")
    lib.nsx(guest, "ip link set lo up")
    for key in ("all", "default"):
        lib.nsx(guest, f"sysctl -qw net.ipv6.conf.{key}.disable_ipv6=1", check=False)
    lib.sh(f"ip -n {box} link add g0 mtu {GUEST_MTU} type veth peer name eth0 netns {guest}")
    lib.nsx(guest, f"ip link set eth0 address {mac} mtu {GUEST_MTU} up")
    lib.nsx(guest, f"ip addr add {ip}/{GUEST_PREFIX} dev eth0")


@contextlib.contextmanager
def setup_vpcd(build_dir, workers, remote_nics):
    ol.VPCD = os.path.join(os.path.abspath(build_dir), "vpcd")
    boxes = []
    try:
        make_boxes()
        for side in SIDES:
            boxes.append(ol.Box(side[0], workers=workers).start())
        nics = []
        for box, (_, me, peer, guest, ip, mac, other_ip, other_mac) in zip(boxes, SIDES):
            box.call("POST", "/v1/uplinks", {"ifname": "up0", "address": f"{me}/{UL_PREFIX}", "role": "underlay"})
            vpc = box.call("POST", "/v1/vpcs", {"cidrs": ["10.77.0.0/16"], "vni": VNI, "mtu": GUEST_MTU,
                                                "name": "overlay-bench"})
            sn = box.call("POST", "/v1/subnets", {"vpc_id": vpc["id"], "cidr": f"10.77.1.0/{GUEST_PREFIX}"})
            box.call("POST", "/v1/vtep-peers", {"vpc_id": vpc["id"], "underlay_ip": peer})
            if remote_nics:
                box.call("POST", "/v1/remote-nics", {"vpc_id": vpc["id"], "mac": other_mac, "ips": [other_ip],
                                                     "underlay_ip": peer})
            nic = box.call("POST", "/v1/nics", {"subnet_id": sn["id"], "ips": [ip], "mac": mac,
                                                "backend": {"type": "netns", "netns": guest, "ifname": "eth0"}})
            nics.append((box, nic["id"]))
        for box, nic_id in nics:
            ol.wait_for(lambda: box.call("GET", "/v1/nics/" + nic_id)["state"] == "up", 60, what="NIC up")
        def drops():
            """vpcd's own drop counters after the measurements, per box: where the lost frames went."""
            out = {}
            for box, (ns, *_rest) in zip(boxes, SIDES):
                st = box.call("GET", "/v1/stats")
                d = {}
                for kind in ("nics", "uplinks", "tunnels"):
                    for counters in (st.get(kind) or {}).values():
                        for reason, n in counters.get("drops", {}).items():
                            d[f"{kind[:-1]} {reason}"] = d.get(f"{kind[:-1]} {reason}", 0) + n
                out["box " + ns[-1]] = d
            return out

        # nsenter execs vpcd: these are the vpcd processes
        yield [box.proc.pid for box in boxes], drops
    finally:
        with lib.signals_deferred():
            for box in boxes:
                box.stop()
            lib.remove_namespaces(P)  # the guest namespaces vpcd created (named by us) and the boxes


@contextlib.contextmanager
def setup_kernel():
    try:
        make_boxes()
        for box, me, peer, guest, ip, mac, _, _ in SIDES:
            lib.nsx(box, f"ip addr add {me}/{UL_PREFIX} dev up0")
            lib.nsx(box, f"ip link add vx0 type vxlan id {VNI} local {me} remote {peer} dstport 4789 dev up0")
            lib.nsx(box, "ip link add br0 type bridge")
            make_guest(box, guest, ip, mac)
            for dev in ("vx0", "g0"):
                lib.nsx(box, f"ip link set {dev} master br0 up")
            lib.nsx(box, "ip link set br0 up")
        yield [], None
    finally:
        with lib.signals_deferred():
            lib.remove_namespaces(P)


@contextlib.contextmanager
def setup_ovs():
    try:
        with contextlib.ExitStack() as stack:  # stops both OVS instances before the namespaces go
            make_boxes()
            pids = []
            for box, me, peer, guest, ip, mac, _, _ in SIDES:
                ovs = stack.enter_context(lib.ovs_instance(box, f"{P}-ovs-"))
                pids.append(ovs.vswitchd_pid)
                ovs.vsctl("add-br br-phy -- set bridge br-phy datapath_type=netdev")
                ovs.vsctl("add-port br-phy up0")
                lib.nsx(box, f"ip addr add {me}/{UL_PREFIX} dev br-phy")
                lib.nsx(box, "ip link set br-phy up")
                ovs.vsctl("add-br br-int -- set bridge br-int datapath_type=netdev")
                make_guest(box, guest, ip, mac)
                lib.nsx(box, "ip link set g0 up")
                ovs.vsctl("add-port br-int g0")
                ovs.vsctl(f"add-port br-int vx0 -- set interface vx0 type=vxlan options:remote_ip={peer} "
                          f"options:key={VNI}")
                lib.nsx(box, "ip link set br-int up", check=False)
            yield pids, None
    finally:
        with lib.signals_deferred():
            lib.remove_namespaces(P)


def run_one(ctx, duration, guest_tx_offload):
    with ctx as (pids, drops):
        for guest in (GA, GB):
            lib.set_tx_offload(guest, "eth0", guest_tx_offload)
        if not lib.wait_ping(GA, IP_B, timeout_s=30):
            return {"error": "guests cannot ping each other"}
        ping = lib.measure_ping(GA, IP_B)  # first: an idle path, before any flood has filled a queue
        r = {"tcp1": lib.measure_tcp(GA, GB, IP_B, 1, duration, pids),
             "tcp4": lib.measure_tcp(GA, GB, IP_B, 4, duration, pids),
             "small": lib.measure_small_frames(GA, GB, MAC_A, MAC_B, IP_A, IP_B, duration, pids),
             "ping": ping, "guest_tx_offload": guest_tx_offload}
        if drops:
            r["drops"] = drops()
        return r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--setups", default="vpcd,kernel,ovs")
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1, help="vpcd workers per box")
    ap.add_argument("--no-remote-nics", action="store_true",
                    help="vpcd: VTEP peers only (the other guest's MAC is learned from flooded traffic)")
    ap.add_argument("--vxlan-uso", choices=("on", "off"), help="vpcd: config vxlan-uso (default: vpcd's own)")
    ap.add_argument("--rx-ring", choices=("v2", "v3"), help="vpcd: config rx-ring, every port (default: vpcd's own)")
    ap.add_argument("--uplink-tx-big-frames", type=int,
                    help="vpcd: config uplink-tx-big-frames, both boxes (default: vpcd's own)")
    ap.add_argument("--json")
    a = ap.parse_args()
    if a.uplink_tx_big_frames is not None:
        os.environ["VPCD_TEST_UPLINK_TX_BIG_FRAMES"] = str(a.uplink_tx_big_frames)  # read by overlay_lib.Box
    if a.vxlan_uso:
        os.environ["VPCD_TEST_VXLAN_USO"] = a.vxlan_uso  # read by overlay_lib.Box
    if a.rx_ring:
        os.environ["VPCD_TEST_RX_RING"] = a.rx_ring  # read by overlay_lib.Box
    if os.geteuid() != 0:
        sys.exit("overlay.py: run as root")
    for tool in ("iperf3", "trafgen", "ovs-vswitchd", "ovsdb-server", "ethtool", "ping", "nsenter"):
        if not shutil.which(tool):
            sys.exit(f"overlay.py: {tool} missing: run scripts/install-deps.sh bench")
    setups = a.setups.split(",")
    if "vpcd" in setups and not os.access(os.path.join(a.build_dir, "vpcd"), os.X_OK):
        sys.exit(f"overlay.py: no vpcd in {a.build_dir}: nice -n 10 ninja -C {a.build_dir} -j2 vpcd")
    # SIGTERM unwinds like an exception, so the finally blocks remove what was created
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    makers = {
        "vpcd": (lambda: setup_vpcd(a.build_dir, a.workers, not a.no_remote_nics), True),
        "kernel": (setup_kernel, True),
        "ovs": (setup_ovs, False),
    }
    load_start = lib.loadavg()
    print(f"overlay.py: start, {load_start}", flush=True)
    results = {}
    try:
        for run in range(a.runs):
            for name in setups:
                maker, offload = makers[name]
                print(f"[run {run + 1}/{a.runs}] {name} ...", file=sys.stderr, flush=True)
                try:
                    r = run_one(maker(), a.duration, offload)
                except Exception as e:  # one setup failing must not hide the others' figures
                    r = {"error": str(e)[-1500:]}
                results.setdefault(name, []).append(r)
    finally:
        with lib.signals_deferred():
            lib.remove_namespaces(P)

    def med(name, path):
        return lib.median_at(results, name, path)

    cols = [("TCP1 Gb/s", ("tcp1", "gbit_s")), ("TCP4 Gb/s", ("tcp4", "gbit_s")),
            ("64B kpps", ("small", "delivered_kpps")), ("offered", ("small", "offered_kpps")),
            ("loss %", ("small", "loss_pct")), ("ping ms", ("ping", "avg_ms")),
            ("cpu sw (64B)", ("small", "cpu_switch")), ("cpu box (64B)", ("small", "cpu_machine")),
            ("cpu sw (TCP1)", ("tcp1", "cpu_switch")), ("cpu box (TCP1)", ("tcp1", "cpu_machine"))]
    print(f"\noverlay, guest to guest across two boxes ({a.duration} s per measurement, median of {a.runs} run(s), "
          f"vpcd {a.workers} worker(s) per box, vxlan-uso {a.vxlan_uso or 'default'}, uplink-tx-big-frames "
          f"{'default' if a.uplink_tx_big_frames is None else a.uplink_tx_big_frames})")
    lib.print_table(results, cols)
    for name in results:
        for r in results[name]:
            for box, d in r.get("drops", {}).items():
                print(f"  {name} {box} drops (whole run): " + (", ".join(f"{k} {v}" for k, v in sorted(d.items()))
                                                              or "none"))
    print("(cpu sw: both vpcd / both ovs-vswitchd processes, in cores; cpu box: the whole machine, in cores)")

    if "vpcd" in results:
        print("\nratios vpcd / peer (TCP1, TCP4, 64B delivered, ping RTT):")
        for name in (n for n in results if n != "vpcd"):
            ratios = []
            for path in (("tcp1", "gbit_s"), ("tcp4", "gbit_s"), ("small", "delivered_kpps"), ("ping", "avg_ms")):
                x, p = med("vpcd", path), med(name, path)
                ratios.append("-" if not x or not p else f"{x / p:.2f}x")
            print(f"  vpcd / {name:<7} " + "  ".join(ratios))

        def target(label, path, peer, factor):
            x, p = med("vpcd", path), med(peer, path)
            if x is None or p is None:
                return print(f"  {label:<40} -  (missing {'vpcd' if x is None else peer})")
            print(f"  {label:<40} {x / p:6.2f}x  {'met' if x >= factor * p else 'MISSED'}")

        print("\nissue 8 targets:")
        target("TCP 1 stream >= 0.5x kernel", ("tcp1", "gbit_s"), "kernel", 0.5)
        target("TCP 4 streams >= 0.5x kernel", ("tcp4", "gbit_s"), "kernel", 0.5)
        target("TCP 1 stream >= 5x OVS", ("tcp1", "gbit_s"), "ovs", 5)
        target("TCP 4 streams >= 5x OVS", ("tcp4", "gbit_s"), "ovs", 5)
        target("64 B delivered >= kernel", ("small", "delivered_kpps"), "kernel", 1)
    print(f"\nat start: {load_start}; at end: {lib.loadavg()}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"load_start": load_start, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
