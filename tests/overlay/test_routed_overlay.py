"""Issue 9 through the overlay: guests of two subnets of one VPC on two boxes, routed by the boxes' routers and carried
by VXLAN. Two vpcd boxes, each in a network namespace of its own (started with nsenter --net, see overlay_lib.py),
joined by a veth underlay through a bridge namespace:

  box A (vpcd) up0 198.18.0.1 --+-- br0 in "sw"     one VPC (vni V, 10.78.0.0/16) on both boxes, same subnets:
  box B (vpcd) up0 198.18.0.2 --+                     subnet A 10.78.1.0/24: guest ra 10.78.1.10 on box A
                                                      subnet B 10.78.2.0/24: guest rb 10.78.2.20 on box B
Each box's remote-nics name the other box's guest (MAC, IPs, underlay IP); there are no VTEP peers, so nothing is
flooded across the underlay: a guest's ARP for its gateway is answered by its own box, the router of the sender's box
rewrites the frame to the remote NIC's MAC and vxlan-encap sends it to that NIC's VTEP, where the switch delivers it.

Checks: ping both ways with TTL 63 in the replies (routed once on each box: the request on the sender's box, the
reply on the replier's), iperf3 TCP both ways, the tunnel counters of both boxes move, and with the remote NIC
deleted the sender's gateway answers host unreachable (and counts next_hop_unresolved).
Everything is named with the prefix "rtover<pid>" and removed at the end, also on failure.
"""
import os
import re

import pytest

from overlay_lib import iperf3, sh, two_boxes, wait_for

PREFIX = "rtover%d" % (os.getpid() % 100000)
VNI = 20000 + os.getpid() % 10000
MAC_A = "02:52:0a:00:01:0a"
MAC_B = "02:52:0a:00:02:14"


def ns(name):
    return PREFIX + name


def make_underlay():
    sw, a, b = ns("sw"), ns("A"), ns("B")
    for n in (sw, a, b):
        sh("ip", "netns", "add", n)
        sh("ip", "-n", n, "link", "set", "lo", "up")
        for key in ("all", "default"):
            sh("sysctl", "-qw", "net.ipv6.conf.%s.disable_ipv6=1" % key, ns=n)
    sh("ip", "-n", sw, "link", "add", "br0", "type", "bridge")
    sh("ip", "-n", sw, "link", "set", "br0", "up")
    for port, box in (("pa", a), ("pb", b)):
        sh("ip", "-n", sw, "link", "add", port, "type", "veth", "peer", "name", "up0", "netns", box)
        sh("ip", "-n", sw, "link", "set", port, "master", "br0", "up")


@pytest.fixture(scope="module")
def net():
    yield from two_boxes(PREFIX, make_underlay, build)


def build(a, b):
    out = {"a": a, "b": b}
    guests = {"a": ("ra", "A", "10.78.1.10", MAC_A, "198.18.0.1"), "b": ("rb", "B", "10.78.2.20", MAC_B, "198.18.0.2")}
    for key, box in (("a", a), ("b", b)):
        name, subnet, ip, mac, underlay = guests[key]
        other = guests["b" if key == "a" else "a"]
        box.call("POST", "/v1/uplinks", {"ifname": "up0", "address": underlay + "/24", "role": "underlay"})
        vpc = box.call("POST", "/v1/vpcs", {"cidrs": ["10.78.0.0/16"], "vni": VNI, "name": "routed"})
        sns = {s: box.call("POST", "/v1/subnets", {"vpc_id": vpc["id"], "cidr": "10.78.%d.0/24" % (i + 1)})
               for i, s in enumerate(("A", "B"))}
        nic = box.call("POST", "/v1/nics", {"subnet_id": sns[subnet]["id"], "ips": [ip], "mac": mac, "name": name,
                                             "backend": {"type": "netns", "netns": ns(name)}})
        rn = box.call("POST", "/v1/remote-nics", {"vpc_id": vpc["id"], "mac": other[3], "ips": [other[2]],
                                                   "underlay_ip": other[4]})
        out[key + "_vpc"], out[key + "_nic"], out[key + "_remote"] = vpc["id"], nic["id"], rn["id"]
    for key, box in (("a", a), ("b", b)):
        nic_id = out[key + "_nic"]
        wait_for(lambda: box.call("GET", "/v1/nics/" + nic_id)["state"] == "up", 60, what=key + " guest up")
    return out


def ping_out(src, dst, count=3):
    return sh("ping", "-n", "-c", count, "-i", "0.2", "-W", 2, dst, ns=ns(src), check=False, timeout=30)


def tunnel_tx(box, remote_ip):
    tunnels = box.call("GET", "/v1/stats")["tunnels"]
    return sum(t["tx_packets"] for t in tunnels.values() if t.get("remote_ip") == remote_ip)


def test_ping_between_subnets_on_two_boxes(net):
    a_tx, b_tx = tunnel_tx(net["a"], "198.18.0.2"), tunnel_tx(net["b"], "198.18.0.1")
    for src, dst in (("ra", "10.78.2.20"), ("rb", "10.78.1.10")):
        r = ping_out(src, dst)
        assert r.returncode == 0, "%s -> %s through the routers and the overlay:\n%s%s\nA: %s\nB: %s" % (
            src, dst, r.stdout, r.stderr, net["a"].call("GET", "/v1/stats"), net["b"].call("GET", "/v1/stats"))
        ttls = set(re.findall(r"ttl=(\d+)", r.stdout))
        assert ttls == {"63"}, "one routing hop each way: %s" % r.stdout
    # Both boxes encapsulated: requests from one, replies from the other.
    assert tunnel_tx(net["a"], "198.18.0.2") >= a_tx + 6
    assert tunnel_tx(net["b"], "198.18.0.1") >= b_tx + 6


def test_tcp_between_subnets_on_two_boxes(net):
    ab = iperf3(ns("rb"), ns("ra"), "10.78.2.20")
    ba = iperf3(ns("ra"), ns("rb"), "10.78.1.10")
    print("iperf3 routed over VXLAN A->B %.2f Gbit/s, B->A %.2f Gbit/s (lower bound on a busy machine)"
          % (ab / 1e9, ba / 1e9))
    assert ab > 0 and ba > 0


def test_removed_remote_nic_is_host_unreachable(net):
    a = net["a"]
    before = a.call("GET", "/v1/nics/" + net["a_nic"] + "/stats")["drops"].get("next_hop_unresolved", 0)
    a.call("DELETE", "/v1/remote-nics/" + net["a_remote"])
    try:
        def unreachable():
            r = ping_out("ra", "10.78.2.20", count=1)
            return r.returncode != 0 and "Destination Host Unreachable" in r.stdout and "10.78.1.1" in r.stdout
        wait_for(unreachable, 20, interval=0.5, what="host unreachable from the gateway 10.78.1.1")
        after = a.call("GET", "/v1/nics/" + net["a_nic"] + "/stats")["drops"].get("next_hop_unresolved", 0)
        assert after > before
    finally:
        rn = a.call("POST", "/v1/remote-nics", {"vpc_id": net["a_vpc"], "mac": MAC_B, "ips": ["10.78.2.20"],
                                                 "underlay_ip": "198.18.0.2"})
        net["a_remote"] = rn["id"]
    wait_for(lambda: ping_out("ra", "10.78.2.20", count=1).returncode == 0, 20, interval=0.5, what="routed again")
