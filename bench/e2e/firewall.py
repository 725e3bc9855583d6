#!/usr/bin/env python3
"""Routed TCP through stateful firewalls (issue 9): guest A in one subnet, guest B in another subnet of the same VPC,
iperf3 TCP A -> B (1 and 4 streams, --duration seconds each) through the router, in one run, in these setups:
  none    vpcd, both NICs without security groups (the default policy: with no group, no route and port security on
          the VPC gets no firewall stages at all, so this is the routed path without conntrack or rules);
  sg100   vpcd, each NIC in a security group of its own with 100 rules: 99 that do not match the test flow and 1 that
          allows it (A's group: egress to B's address, B's group: ingress from A's address; tcp/5201). The 99 are of
          three kinds, 33 each: another TCP port, UDP on the iperf3 port, TCP on the iperf3 port from/to a CIDR that is
          not the peer's. Every new flow is classified by A's egress and B's ingress policy; established packets hit
          conntrack;
  sg1     (only when asked for with --setups) vpcd, each NIC in a group with only the rule that allows the flow: the
          cost of conntrack without the rule count;
  kernel  the Linux kernel doing the same: a router namespace with a veth to each guest namespace, ip_forward=1, and
          an nftables forward chain (policy drop): `ct state established,related accept`, then the same 100 rules
          (B's group, as `ip saddr CIDR <proto> dport RANGE accept`, the allowing rule last).
The 64 KiB TSO super-frames of the guests' veths reach vpcd and the kernel router alike (guest offloads stay on).
Before measuring, each setup is checked: a TCP connection from A to B's port 5201 (allowed; nothing listens yet) is
refused by B (ping is in no rule, so it is no check here); a TCP connection to a port no rule allows (nothing listens
there) is refused without firewall (none) and times out with one (sg100, sg1, kernel: the SYN is dropped), so a
firewall that silently lets everything through shows as an error, not as a good figure.

Prints the table (Gb/s, retransmits, CPU of the machine and of vpcd in cores, vpcd's per-NIC drop counters over the
whole setup), the ratios sg100/none (loss in %), none/kernel and sg100/kernel, the targets of issue 9 (at most 15%
TCP throughput loss with 100 rules; routed TCP at least 70% of the kernel's) marked met/missed, and the load average
at start and end (on a busy machine the figures are lower bounds).

Every namespace is named fwbench<pid>*; vpcd runs with its own state dir on 127.0.0.1:0 (tests/lib/vpcdtest.py) and
creates the guest namespaces of its netns NICs itself. Addresses are 10.79.1.0/24 and 10.79.2.0/24, which exist
only inside these namespaces. Everything is removed at the end, also on failure or SIGTERM; every iperf3 is bounded
by --duration + 20 s.

Usage (root): python3 bench/e2e/firewall.py [--build-dir build] [--setups none,sg100,kernel] [--duration 5]
                                            [--runs 1] [--workers 1] [--json out.json]
"""
import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "lib"))
import e2e_lib as lib  # noqa: E402
import vpcdtest as vt  # noqa: E402

PID = os.getpid()
P = f"fwbench{PID}"
GA, GB, ROUTER = P + "ga", P + "gb", P + "r"
VPC_CIDR = "10.79.0.0/16"
NET_A, NET_B = "10.79.1.0/24", "10.79.2.0/24"
IP_A, IP_B = "10.79.1.10", "10.79.2.20"
GW_A, GW_B = "10.79.1.1", "10.79.2.1"  # vpcd's subnet gateways; the kernel router's addresses
MTU = 1500
PORT = 5201        # iperf3's: the test flow, A -> B tcp/5201
DENIED_PORT = 5299  # in no rule, nothing listens on it


def other_rules(peer_cidr):
    """The 99 rules that do not match the test flow, as (protocol, port_min, port_max, cidr): 33 TCP rules for other
    ports from/to the peer's subnet, 33 UDP rules whose ranges hold the iperf3 port, 33 TCP rules for the iperf3 port from/to
    CIDRs that do not hold the peer."""
    rules = []
    for i in range(33):
        rules.append(("tcp", 6000 + 10 * i, 6000 + 10 * i + 4, peer_cidr))
        rules.append(("udp", PORT, PORT + i, peer_cidr))
        rules.append(("tcp", PORT, PORT, f"172.{16 + i // 16}.{(i % 16) * 16}.0/20"))
    assert len(rules) == 99 and len(set(rules)) == 99
    return rules


def api_rules(direction, peer_ip, n_other):
    """One group's rules through the API: n_other non-matching ones, then the one that allows the test flow."""
    peer_cidr = NET_B if direction == "egress" else NET_A
    out = [{"direction": direction, "protocol": p, "port_min": lo, "port_max": hi, "cidr": c}
           for p, lo, hi, c in other_rules(peer_cidr)[:n_other]]
    out.append({"direction": direction, "protocol": "tcp", "port_min": PORT, "port_max": PORT,
                "cidr": peer_ip + "/32"})
    return out


def nft_ruleset():
    """The kernel router's firewall: the forward chain with conntrack and B's 100 ingress rules."""
    lines = ["table inet fwbench {", "  chain forward {", "    type filter hook forward priority 0; policy drop;",
             "    ct state established,related accept"]
    for p, lo, hi, c in other_rules(NET_A):
        ports = str(lo) if lo == hi else f"{lo}-{hi}"
        lines.append(f"    ip saddr {c} {p} dport {ports} accept")
    lines.append(f"    ip saddr {IP_A}/32 tcp dport {PORT} accept")
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


def tcp_probe(ns, ip, port, timeout_s=1.5):
    """'refused', 'timeout' or 'open' for a TCP connect from namespace ns."""
    code = ("import socket,sys\n"
            "s=socket.socket(); s.settimeout(%s)\n"
            "try:\n    s.connect((sys.argv[1], int(sys.argv[2]))); print('open')\n"
            "except ConnectionRefusedError: print('refused')\n"
            "except OSError: print('timeout')\n" % timeout_s)
    return lib.sh(["ip", "netns", "exec", ns, "/usr/bin/python3", "-c", code, ip, str(port)], check=False,
                  timeout=timeout_s + 15).strip()


@contextlib.contextmanager
def setup_vpcd(build_dir, workers, n_rules):
    """n_rules None: no security groups; otherwise a group of n_rules rules per NIC (n_rules - 1 non-matching)."""
    vt.BUILD = os.path.abspath(build_dir)
    d = vt.Vpcd(workers=workers)
    try:
        d.start(timeout=30)
        api = d.client()
        vpc = api.call("POST", "/v1/vpcs", {"cidrs": [VPC_CIDR], "mtu": MTU, "name": "fwbench"})
        nics = []
        for ns, net, gw, ip, direction, peer in ((GA, NET_A, GW_A, IP_A, "egress", IP_B),
                                                (GB, NET_B, GW_B, IP_B, "ingress", IP_A)):
            sn = api.call("POST", "/v1/subnets", {"vpc_id": vpc["id"], "cidr": net, "gateway": gw})
            body = {"subnet_id": sn["id"], "ips": [ip], "backend": {"type": "netns", "netns": ns, "ifname": "eth0"}}
            if n_rules is not None:
                g = api.call("POST", "/v1/security-groups", {"vpc_id": vpc["id"],
                                                             "rules": api_rules(direction, peer, n_rules - 1)})
                assert len(g["rules"]) == n_rules, g
                body["security_group_ids"] = [g["id"]]
            nics.append(api.call("POST", "/v1/nics", body))
        deadline = time.monotonic() + 30
        while any(api.call("GET", f"/v1/nics/{n['id']}")["state"] != "up" for n in nics):
            if time.monotonic() > deadline:
                raise RuntimeError("NICs did not come up: " + json.dumps([api.call("GET", f"/v1/nics/{n['id']}")
                                                                          for n in nics]))
            time.sleep(0.1)

        def drops():
            out = {}
            for name, n in zip(("A", "B"), nics):
                for reason, v in api.call("GET", f"/v1/nics/{n['id']}/stats").get("drops", {}).items():
                    if v:
                        out[f"{name} {reason}"] = v
            return out

        yield [d.proc.pid], drops, n_rules is not None
    finally:
        with lib.signals_deferred():
            d.close()
            lib.remove_namespaces(P)  # the guest namespaces vpcd created (named by us)


@contextlib.contextmanager
def setup_kernel():
    nft_file = None
    try:
        for ns in (ROUTER, GA, GB):
            lib.sh(f"ip netns add {ns}")
            lib.nsx(ns, "ip link set lo up")
            for key in ("all", "default"):
                lib.nsx(ns, f"sysctl -qw net.ipv6.conf.{key}.disable_ipv6=1", check=False)
        lib.nsx(ROUTER, "sysctl -qw net.ipv4.ip_forward=1")
        for i, (ns, ip, gw) in enumerate(((GA, IP_A, GW_A), (GB, IP_B, GW_B)), start=1):
            lib.sh(f"ip -n {ROUTER} link add r{i} mtu {MTU} type veth peer name eth0 netns {ns}")
            lib.nsx(ROUTER, f"ip addr add {gw}/24 dev r{i}")
            lib.nsx(ROUTER, f"ip link set r{i} up")
            lib.nsx(ns, f"ip link set eth0 mtu {MTU} up")
            lib.nsx(ns, f"ip addr add {ip}/24 dev eth0")
            lib.nsx(ns, f"ip route add default via {gw}")
        with tempfile.NamedTemporaryFile("w", prefix=P + "-", suffix=".nft", delete=False) as f:
            f.write(nft_ruleset())
            nft_file = f.name
        lib.nsx(ROUTER, f"nft -f {nft_file}")
        n = lib.nsx(ROUTER, "nft -a list chain inet fwbench forward").count(" accept # handle")
        assert n == 101, f"{n} accept rules in the forward chain, expected 101 (ct state + 100)"
        yield [], None, True
    finally:
        with lib.signals_deferred():
            if nft_file:
                os.unlink(nft_file)
            lib.remove_namespaces(P)


def run_one(ctx, duration):
    with ctx as (pids, drops, firewalled):
        # Reachability through the allowed port (ping is in no rule): nothing listens yet, so B's RST answers.
        deadline = time.monotonic() + 20
        while (allowed := tcp_probe(GA, IP_B, PORT)) != "refused":
            if time.monotonic() > deadline:
                return {"error": f"A cannot reach B's tcp/{PORT} through the router (last probe: {allowed!r})"}
            time.sleep(0.2)
        denied = tcp_probe(GA, IP_B, DENIED_PORT)
        if denied != ("timeout" if firewalled else "refused"):
            return {"error": f"a TCP connect to port {DENIED_PORT} (in no rule) gave {denied!r}: "
                             f"the firewall is {'not ' if firewalled else ''}in the path"}
        r = {"tcp1": lib.measure_tcp(GA, GB, IP_B, 1, duration, pids),
             "tcp4": lib.measure_tcp(GA, GB, IP_B, 4, duration, pids),
             "denied_probe": denied}
        if drops:
            r["drops"] = drops()
        return r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--setups", default="none,sg100,kernel", help="comma-separated: none, sg100, sg1, kernel")
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1, help="vpcd datapath workers")
    ap.add_argument("--json")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("firewall.py: run as root")
    if not 1 <= a.duration <= 120:
        sys.exit("firewall.py: --duration must be 1..120 seconds")
    for tool in ("iperf3", "nft", "ping", "ip"):
        if not shutil.which(tool):
            sys.exit(f"firewall.py: {tool} missing: run scripts/install-deps.sh bench")
    setups = a.setups.split(",")
    makers = {
        "none": lambda: setup_vpcd(a.build_dir, a.workers, None),
        "sg100": lambda: setup_vpcd(a.build_dir, a.workers, 100),
        "sg1": lambda: setup_vpcd(a.build_dir, a.workers, 1),
        "kernel": setup_kernel,
    }
    unknown = [s for s in setups if s not in makers]
    if unknown:
        sys.exit(f"firewall.py: unknown setup(s) {unknown}: choose from {list(makers)}")
    if any(s != "kernel" for s in setups) and not os.access(os.path.join(a.build_dir, "vpcd"), os.X_OK):
        sys.exit(f"firewall.py: no vpcd in {a.build_dir}: nice -n 10 ninja -C {a.build_dir} -j2 vpcd")
    # SIGTERM unwinds like an exception, so the finally blocks remove what was created
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    load_start = lib.loadavg()
    print(f"firewall.py: start, {load_start}", flush=True)
    results = {}
    try:
        for run in range(a.runs):
            for name in setups:
                print(f"[run {run + 1}/{a.runs}] {name} ...", file=sys.stderr, flush=True)
                try:
                    r = run_one(makers[name](), a.duration)
                except Exception as e:  # one setup failing must not hide the others' figures
                    r = {"error": str(e)[-1500:]}
                results.setdefault(name, []).append(r)
    finally:
        with lib.signals_deferred():
            lib.remove_namespaces(P)
    load_end = lib.loadavg()

    def med(name, path):
        return lib.median_at(results, name, path)

    cols = [("TCP1 Gb/s", ("tcp1", "gbit_s")), ("retr", ("tcp1", "retransmits")),
            ("cpu vpcd", ("tcp1", "cpu_switch")), ("cpu box", ("tcp1", "cpu_machine")),
            ("TCP4 Gb/s", ("tcp4", "gbit_s")), ("retr", ("tcp4", "retransmits")),
            ("cpu vpcd", ("tcp4", "cpu_switch")), ("cpu box", ("tcp4", "cpu_machine"))]
    print(f"\nrouted TCP A -> B through firewalls ({a.duration} s per measurement, median of {a.runs} run(s), "
          f"vpcd {a.workers} worker(s))")
    print(f"{'setup':<8}" + "".join(f"{c:>11}" for c, _ in cols))
    for name in results:
        row = f"{name:<8}"
        for _, path in cols:
            v = med(name, path)
            row += f"{'-' if v is None else round(v, 3):>11}"
        print(row)
        if a.runs > 1:
            per_run = lambda k: "/".join(str(r.get(k, {}).get("gbit_s", "-")) for r in results[name])
            print(f"  {name} per run: TCP1 {per_run('tcp1')} Gb/s, TCP4 {per_run('tcp4')} Gb/s")
        for r in results[name]:
            if "error" in r:
                print(f"  {name} error: {r['error']}")
            if "drops" in r:
                print(f"  {name} vpcd drops (whole setup): " +
                      (", ".join(f"{k} {v}" for k, v in sorted(r["drops"].items())) or "none"))
    print("(cpu: in cores, over the 1-stream / 4-stream measurement; cpu vpcd: the vpcd process, cpu box: the "
          "whole machine)")

    def ratio(x_name, y_name, path):
        x, y = med(x_name, path), med(y_name, path)
        return None if not x or not y else x / y

    print("\nratios (TCP1, TCP4):")
    for label, x, y in (("sg100 / none", "sg100", "none"), ("sg1 / none", "sg1", "none"),
                        ("none / kernel", "none", "kernel"), ("sg100 / kernel", "sg100", "kernel")):
        if x in results and y in results:
            rs = [ratio(x, y, ("tcp1", "gbit_s")), ratio(x, y, ("tcp4", "gbit_s"))]
            extra = ""
            if label.endswith("/ none"):
                extra = "   loss " + "  ".join("-" if v is None else f"{100 * (1 - v):.1f}%" for v in rs)
            print(f"  {label:<15} " + "  ".join("-" if v is None else f"{v:.2f}x" for v in rs) + extra)

    def target(label, x, y, path, op, factor):
        v = ratio(x, y, path)
        if v is None:
            return print(f"  {label:<56} -  (missing {x if not med(x, path) else y})")
        ok = v >= factor if op == ">=" else v <= factor
        print(f"  {label:<56} {v:6.3f}x  {'met' if ok else 'MISSED'}")

    print("\nissue 9 targets:")
    for s, path in (("1 stream", ("tcp1", "gbit_s")), ("4 streams", ("tcp4", "gbit_s"))):
        target(f"TCP {s}: loss with 100 rules <= 15% (sg100/none)", "sg100", "none", path, ">=", 0.85)
    for s, path in (("1 stream", ("tcp1", "gbit_s")), ("4 streams", ("tcp4", "gbit_s"))):
        target(f"TCP {s}: routed >= 0.7x kernel (none/kernel)", "none", "kernel", path, ">=", 0.7)
        target(f"TCP {s}: firewalled >= 0.7x kernel (sg100/kernel)", "sg100", "kernel", path, ">=", 0.7)
    print(f"\nat start: {load_start}; at end: {load_end}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"load_start": load_start, "load_end": load_end, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
