"""Payload integrity through vpcd's L2 path: two netns NICs created over the API, TCP streams whose bytes are hashed on
both ends (tests/lib/transfer.py), with the guests' offloads on (GSO super-frames through the copy path and big
sends) and off (every frame through RX and TX ring slots), both ways, on two workers. Namespaces are named for this run
and removed at the end, also on failure."""
import os
import subprocess

import pytest

from transfer import tcp_transfer
from vpcdtest import netns_delete, netns_exists, need_root, wait_for


@pytest.fixture(params=["fastpath-off", "fastpath-on"])
def guests(request, state_dir, vpcd_factory):
    """With the kernel fast path off every frame crosses the pipeline (its copy paths are what this looks at); with it
    on the same streams go from veth to veth in the kernel."""
    need_root()
    tag = "%d" % (os.getpid() % 100000)
    names = ("vpcdi%sa" % tag, "vpcdi%sb" % tag)
    assert not any(netns_exists(n) for n in names)
    fastpath = request.param == "fastpath-on"
    d = vpcd_factory(state_dir, workers=2, extra=["--kernel-fastpath", "on" if fastpath else "off"])
    d.start()
    try:
        c = d.client()
        octet = 16 + os.getpid() % 200  # addresses that exist only inside these two namespaces
        vpc = c.create("vpcs", {"cidrs": ["10.%d.0.0/16" % octet], "name": "integrity"})
        sn = c.create("subnets", {"vpc_id": vpc["id"], "cidr": "10.%d.1.0/24" % octet})
        nics = [c.create("nics", {"subnet_id": sn["id"], "name": "g%d" % i, "backend": {"type": "netns", "netns": n}})
                for i, n in enumerate(names)]
        for nic in nics:
            wait_for(lambda: c.get("/v1/nics/" + nic["id"]).json["state"] == "up", 30, what="NIC up")
        assert c.get("/v1/stats").json["fastpath"]["enabled"] == fastpath
        yield c, list(zip(names, (n["ips"][0] for n in nics))), fastpath
    finally:
        d.stop()
        d.remove_run_dir()
        for n in names:
            netns_delete(n)


def offloads(ns, on):
    v = "on" if on else "off"
    subprocess.run(["ip", "netns", "exec", ns, "ethtool", "-K", "eth0", "tso", v, "gso", v, "tx", v],
                   check=True, capture_output=True, timeout=30)


@pytest.mark.parametrize("offload", [True, False], ids=["offloads-on", "offloads-off"])
def test_tcp_payload_arrives_intact_both_ways(guests, offload):
    c, [(ns_a, ip_a), (ns_b, ip_b)], fastpath = guests
    for ns, _ in guests[1]:
        offloads(ns, offload)
    for (srv_ns, srv_ip), (cli_ns, _) in (((ns_b, ip_b), (ns_a, ip_a)), ((ns_a, ip_a), (ns_b, ip_b))):
        r = tcp_transfer(srv_ns, cli_ns, srv_ip, mbytes=64)
        print("%s -> %s: %d bytes in %.1f s" % (cli_ns, srv_ns, r["received"][1], r["seconds"]))
        assert r["received"] == r["sent"], r
        assert r["sent"][1] == 64 << 20
    st = c.get("/v1/stats").json
    through_workers = sum(w["packets"] for w in st["workers"])
    if fastpath:
        assert through_workers < 1000, st["workers"]  # ARP and the like; the streams went veth to veth
        assert st["fastpath"]["ports"] == 2
    else:
        assert through_workers > 2 * (64 << 20) // 65536
