"""End to end through the API: a VPC, a subnet and two netns NICs created over HTTPS; the guests ping each other;
vpcd is SIGKILLed and restarted; the same guests ping again with no API call. Also measures the time from the
POST /v1/nics answer to the first forwarded frame. Namespaces are named for this run and removed at the end, also on
failure."""
import os
import signal
import subprocess
import time

import pytest

from vpcdtest import netns_delete, netns_exists, need_root, wait_for


def ping(ns, addr, timeout_s=1.0):
    r = subprocess.run(["ip", "netns", "exec", ns, "ping", "-n", "-q", "-c", "1", "-W", str(timeout_s), addr],
                       capture_output=True, text=True, timeout=timeout_s + 10)
    return r.returncode == 0


def nic_state(d, token, nic_id):
    status, nic, _ = d.request("GET", "/v1/nics/" + nic_id, token=token)
    assert status == 200, nic
    return nic["state"], nic.get("state_detail", "")


def test_two_guests_ping_across_a_kill9(state_dir, vpcd_factory):
    need_root()
    tag = "%d" % (os.getpid() % 100000)
    ns_a, ns_b = "vpcdt%sa" % tag, "vpcdt%sb" % tag
    octet = 16 + os.getpid() % 200  # a per-run range; these addresses exist only inside the two namespaces
    assert not netns_exists(ns_a) and not netns_exists(ns_b)
    d = vpcd_factory(state_dir, workers=1)
    token = d.token("admin")
    d.start()
    try:
        status, vpc, _ = d.request("POST", "/v1/vpcs", {"cidrs": ["10.%d.0.0/16" % octet], "name": "e2e"}, token=token)
        assert status == 201, vpc
        status, sn, _ = d.request("POST", "/v1/subnets", {"vpc_id": vpc["id"], "cidr": "10.%d.1.0/24" % octet},
                                  token=token)
        assert status == 201, sn
        status, nic_a, _ = d.request("POST", "/v1/nics", {"subnet_id": sn["id"], "name": "a",
                                                          "backend": {"type": "netns", "netns": ns_a}}, token=token)
        assert status == 201, nic_a
        wait_for(lambda: nic_state(d, token, nic_a["id"])[0] == "up", 30, what="NIC a up")

        # Time to the first forwarded frame. Guest a gets a static neighbour entry for b (b's MAC and IP are chosen
        # here), so its first echo request leaves at once instead of waiting out the kernel's 1 s ARP retry; then
        # a pings b as fast as b's namespace appears and answers.
        ip_a, ip_b, mac_b = nic_a["ips"][0], "10.%d.1.20" % octet, "02:00:5e:%02x:00:0b" % octet
        subprocess.run(["ip", "netns", "exec", ns_a, "ip", "neigh", "replace", ip_b, "lladdr", mac_b, "dev", "eth0",
                        "nud", "permanent"], check=True, capture_output=True, timeout=30)
        status, nic_b, _ = d.request("POST", "/v1/nics", {"subnet_id": sn["id"], "name": "b", "mac": mac_b,
                                                          "ips": [ip_b],
                                                          "backend": {"type": "netns", "netns": ns_b}}, token=token)
        t_answer = time.monotonic()
        assert status == 201, nic_b
        t_first = wait_for(lambda: netns_exists(ns_b) and ping(ns_a, ip_b, 0.2) and time.monotonic(), 30,
                           interval=0.002, what="first ping a -> b")
        print("POST /v1/nics answer -> first ping reply: %.1f ms" % ((t_first - t_answer) * 1000))
        status, stats, _ = d.request("GET", "/v1/stats", token=token)
        assert status == 200
        print("reconciler notify -> applied, max: %.1f ms"
              % (stats["reconciler"]["max_notify_to_applied_us"] / 1000))
        assert t_first - t_answer < 5.0

        assert nic_state(d, token, nic_b["id"])[0] == "up"
        assert ping(ns_b, ip_a) and ping(ns_a, ip_b)
        status, st, _ = d.request("GET", "/v1/nics/%s/stats" % nic_a["id"], token=token)
        assert status == 200 and st["rx_packets"] > 0 and st["tx_packets"] > 0, st

        # kill -9 and restart: the reconciler rebuilds the datapath from the store; no API call is made.
        d.kill(signal.SIGKILL)
        assert netns_exists(ns_a) and netns_exists(ns_b)  # OS objects outlive the process
        t_restart = time.monotonic()
        d.start()
        wait_for(lambda: ping(ns_a, ip_b, 0.5) and ping(ns_b, ip_a, 0.5), 30, interval=0.05,
                 what="ping after the restart")
        print("restart -> guests ping again: %.1f ms" % ((time.monotonic() - t_restart) * 1000))

        # Deleting the NICs through the API removes what vpcd created for them.
        for nic in (nic_a, nic_b):
            status, _, _ = d.request("DELETE", "/v1/nics/" + nic["id"], token=token)
            assert status == 204
        wait_for(lambda: not ping(ns_a, ip_b, 0.2), 10, what="traffic to stop after the NIC delete")
    finally:
        d.kill(signal.SIGTERM)
        d.remove_run_dir()
        netns_delete(ns_a)
        netns_delete(ns_b)
