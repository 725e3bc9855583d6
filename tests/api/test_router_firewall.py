"""The VPC router and stateful security groups end to end (issue 9), through the REST API, with netns NICs and two
datapath workers (so the two directions of a flow are usually served by different workers).

Every namespace is named router<pid><letter> and addresses are in a per-run 10.X.0.0/16 that exists only inside these
namespaces; every loop is bounded in time; vpcd, namespaces and its run dir are removed at the end, also on failure.
"""
import os
import signal
import subprocess
import tempfile
import time

import pytest

from vpcdtest import Vpcd, netns_delete, netns_exists, need_root, wait_for

TAG = "%d" % (os.getpid() % 100000)
OCTET = 16 + (os.getpid() // 7) % 200


def sh(ns, *cmd, timeout=20, check=False):
    return subprocess.run(["ip", "netns", "exec", ns] + list(cmd), capture_output=True, text=True, timeout=timeout,
                          check=check)


def ping(ns, addr, ttl=None, wait_s=1.0):
    cmd = ["ping", "-n", "-c", "1", "-W", str(wait_s)] + (["-t", str(ttl)] if ttl else []) + [addr]
    return sh(ns, *cmd, timeout=wait_s + 10)


def pings(ns, addr, tries=3):
    return any(ping(ns, addr).returncode == 0 for _ in range(tries))


# A TCP/UDP probe run inside a namespace with Debian's python3: prints OK or FAIL:<reason>.
PROBE = r'''
import socket, sys
kind, host, port, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
try:
    if kind == "tcp":
        s = socket.create_connection((host, port), timeout=timeout)
        s.settimeout(timeout)
        s.sendall(b"ping\n")
        data = s.recv(100)
        print("OK" if data.startswith(b"pong") else "FAIL:reply %r" % data)
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(timeout)
        s.connect((host, port))
        s.send(b"ping\n")
        data = s.recv(100)
        print("OK" if data.startswith(b"pong") else "FAIL:reply %r" % data)
except ConnectionRefusedError:
    print("REFUSED")
except Exception as e:
    print("FAIL:%s" % type(e).__name__)
'''

# A server answering "pong" on TCP and UDP until killed.
SERVER = r'''
import socket, sys, threading
port = int(sys.argv[1])
def tcp():
    l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); l.bind(("0.0.0.0", port)); l.listen(64)
    while True:
        c, _ = l.accept()
        def serve(c):
            try:
                while True:
                    d = c.recv(100)
                    if not d: break
                    c.sendall(b"pong\n")
            except OSError:
                pass
        threading.Thread(target=serve, args=(c,), daemon=True).start()
def udp():
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", port))
    while True:
        d, a = u.recvfrom(100); u.sendto(b"pong\n", a)
threading.Thread(target=tcp, daemon=True).start()
udp()
'''


def probe(ns, kind, host, port, timeout=1.0):
    r = sh(ns, "/usr/bin/python3", "-c", PROBE, kind, host, str(port), str(timeout), timeout=timeout + 15)
    return r.stdout.strip()


class Net:
    """One vpcd (2 workers), one VPC, and helpers to add subnets and netns NICs. close() removes everything."""

    def __init__(self, extra_conf=""):
        self.tmp = tempfile.TemporaryDirectory(prefix="vpcd-router-test-")
        self.state = os.path.join(self.tmp.name, "state")
        os.mkdir(self.state)
        extra = []
        if extra_conf:
            conf = os.path.join(self.tmp.name, "vpcd.conf")
            with open(conf, "w") as f:
                f.write(extra_conf)
            extra = ["--config", conf]
        self.d = Vpcd(self.state, workers=2, extra=extra)
        self.token = self.d.token("admin")
        self.namespaces = []
        self.servers = []
        self.d.start()
        st, self.vpc, _ = self.req("POST", "/v1/vpcs", {"cidrs": ["10.%d.0.0/16" % OCTET]})
        assert st == 201, self.vpc

    def req(self, method, path, body=None):
        return self.d.request(method, path, body, token=self.token)

    def subnet(self, third):
        st, sn, _ = self.req("POST", "/v1/subnets", {"vpc_id": self.vpc["id"], "cidr": "10.%d.%d.0/24" % (OCTET, third)})
        assert st == 201, sn
        return sn

    def nic(self, sn, letter, **extra):
        ns = "router%s%s" % (TAG, letter)
        assert not netns_exists(ns)
        self.namespaces.append(ns)
        body = {"subnet_id": sn["id"], "backend": {"type": "netns", "netns": ns}}
        body.update(extra)
        st, nic, _ = self.req("POST", "/v1/nics", body)
        assert st == 201, nic
        wait_for(lambda: self.req("GET", "/v1/nics/" + nic["id"])[1]["state"] == "up", 30, what="NIC up")
        nic["ns"] = ns
        return nic

    def serve(self, nic, port):
        p = subprocess.Popen(["ip", "netns", "exec", nic["ns"], "/usr/bin/python3", "-c", SERVER, str(port)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.servers.append(p)
        time.sleep(0.3)

    def drops(self, nic):
        st, s, _ = self.req("GET", "/v1/nics/%s/stats" % nic["id"])
        assert st == 200, s
        return s["drops"]

    def close(self):
        for p in self.servers:
            p.kill()
            p.wait(timeout=10)
        self.d.kill(signal.SIGTERM)
        self.d.close()
        for ns in self.namespaces:
            netns_delete(ns)
        self.tmp.cleanup()


@pytest.fixture
def net():
    need_root()
    n = Net()
    try:
        yield n
    finally:
        n.close()


def test_router_between_subnets_ping_tcp_ttl(net):
    sn1, sn2 = net.subnet(1), net.subnet(2)
    a, b = net.nic(sn1, "a"), net.nic(sn2, "b")
    ip_a, ip_b = a["ips"][0], b["ips"][0]
    assert pings(a["ns"], ip_b), "a cannot ping b through the router"
    assert pings(b["ns"], ip_a)
    assert pings(a["ns"], sn1["gateway"]) and pings(a["ns"], sn2["gateway"]), "the gateways answer ping"
    net.serve(b, 8080)
    assert probe(a["ns"], "tcp", ip_b, 8080) == "OK"
    assert probe(a["ns"], "udp", ip_b, 8080) == "OK"
    # TTL 1: the router answers with time exceeded from a's gateway (what traceroute shows as its first hop).
    r = ping(a["ns"], ip_b, ttl=1)
    assert r.returncode != 0 and "Time to live exceeded" in r.stdout and sn1["gateway"] in r.stdout, r.stdout
    assert net.drops(a).get("ttl_exceeded", 0) >= 1
    # TTL 2 reaches b (one routed hop).
    assert ping(a["ns"], ip_b, ttl=2).returncode == 0


def test_static_route_to_a_nic_and_blackhole(net):
    sn1, sn2 = net.subnet(1), net.subnet(2)
    a = net.nic(sn1, "a")
    fw = net.nic(sn2, "f", port_security=False)
    far = "192.168.%d.1" % OCTET
    sh(fw["ns"], "ip", "addr", "add", far + "/32", "dev", "lo", check=True)
    st, r, _ = net.req("POST", "/v1/routes", {"vpc_id": net.vpc["id"], "destination": "192.168.%d.0/24" % OCTET,
                                               "next_hop": fw["ips"][0]})
    assert st == 201, r
    wait_for(lambda: ping(a["ns"], far).returncode == 0, 10, what="ping through the static route")
    st, r, _ = net.req("POST", "/v1/routes", {"vpc_id": net.vpc["id"], "destination": "172.20.%d.0/24" % OCTET,
                                               "next_hop": "blackhole"})
    assert st == 201, r
    out = wait_for(lambda: (lambda x: "Unreachable" in x.stdout and x.stdout)(ping(a["ns"], "172.20.%d.9" % OCTET)),
                   10, what="net unreachable from the blackhole")
    assert "Destination Net Unreachable" in out, out
    assert net.drops(a).get("blackhole_route", 0) >= 1


def group(net, rules):
    st, g, _ = net.req("POST", "/v1/security-groups", {"vpc_id": net.vpc["id"], "rules": rules})
    assert st == 201, g
    return g


def test_security_groups_matrix_remote_group_and_cut(net):
    sn = net.subnet(1)
    vpc_cidr = "10.%d.0.0/16" % OCTET
    client = group(net, [{"direction": "egress", "protocol": "any"}])
    server = group(net, [{"direction": "ingress", "protocol": "tcp", "port_min": 8080, "port_max": 8080,
                          "cidr": vpc_cidr},
                         {"direction": "ingress", "protocol": "udp", "port_min": 9999, "port_max": 9999,
                          "cidr": vpc_cidr},
                         {"direction": "ingress", "protocol": "icmp", "remote_group_id": client["id"]}])
    a = net.nic(sn, "a", security_group_ids=[client["id"]])
    b = net.nic(sn, "b", security_group_ids=[server["id"]])
    ip_a, ip_b = a["ips"][0], b["ips"][0]
    net.serve(b, 8080)
    net.serve(b, 8081)
    net.serve(a, 8080)
    # a -> b: allowed by a's egress and b's ingress, replies pass.
    assert probe(a["ns"], "tcp", ip_b, 8080) == "OK"
    assert pings(a["ns"], ip_b)
    # Not allowed into b: TCP 8081, UDP 8080.
    assert probe(a["ns"], "tcp", ip_b, 8081).startswith("FAIL")
    assert probe(a["ns"], "udp", ip_b, 8080).startswith("FAIL")
    # b has no egress rule: nothing it opens passes.
    assert probe(b["ns"], "tcp", ip_a, 8080).startswith("FAIL")
    assert ping(b["ns"], ip_a).returncode != 0
    assert net.drops(b).get("denied_by_rule", 0) >= 2
    # An ICMP error about an allowed flow passes: UDP 9999 is allowed into b, nobody listens there, b's port
    # unreachable reaches a (the socket sees the refusal instead of a timeout).
    assert probe(a["ns"], "udp", ip_b, 9999) == "REFUSED"

    # The remote group follows membership: a leaves "client" (its default policy still allows its egress).
    st, r, _ = net.req("PATCH", "/v1/nics/" + a["id"], {"security_group_ids": []})
    assert st == 200, r
    wait_for(lambda: ping(a["ns"], ip_b, wait_s=0.5).returncode != 0, 10, what="ping denied after leaving the group")
    st, r, _ = net.req("PATCH", "/v1/nics/" + a["id"], {"security_group_ids": [client["id"]]})
    assert st == 200, r
    wait_for(lambda: ping(a["ns"], ip_b, wait_s=0.5).returncode == 0, 10, what="ping allowed after rejoining")

    # A removed rule cuts an established flow: a long-lived connection exchanges messages, the TCP rule goes away.
    script = r'''
import socket, sys, time, os
s = socket.create_connection((sys.argv[1], 8080), timeout=2); s.settimeout(1.0)
for i in range(3):
    s.sendall(b"x"); assert s.recv(100).startswith(b"pong")
open(sys.argv[2], "w").close()
deadline = time.time() + 20
while not os.path.exists(sys.argv[3]) and time.time() < deadline: time.sleep(0.05)
time.sleep(1.0)
try:
    s.sendall(b"x"); s.recv(100); print("STILL")
except Exception as e:
    print("CUT")
'''
    ready, go = os.path.join(net.tmp.name, "ready"), os.path.join(net.tmp.name, "go")
    p = subprocess.Popen(["ip", "netns", "exec", a["ns"], "/usr/bin/python3", "-c", script, ip_b, ready, go],
                         stdout=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: os.path.exists(ready), 15, what="the connection to be established")
        rules = [r for r in server["rules"] if r.get("protocol") != "tcp"]
        st, r, _ = net.req("PATCH", "/v1/security-groups/" + server["id"], {"rules": rules})
        assert st == 200, r
        open(go, "w").close()
        out, _ = p.communicate(timeout=30)
    finally:
        p.kill()
    assert out.strip() == "CUT", out


def test_table_full_and_invalid_segments():
    need_root()
    net = Net("conntrack-max = 6\nconntrack-loose-pickup = off\n")
    try:
        sn = net.subnet(1)
        open_all = group(net, [{"direction": "ingress", "protocol": "any"}, {"direction": "egress", "protocol": "any"}])
        a = net.nic(sn, "a", security_group_ids=[open_all["id"]])
        b = net.nic(sn, "b", security_group_ids=[open_all["id"]])
        ip_b = b["ips"][0]
        net.serve(b, 8080)
        script = r'''
import socket, sys, time
s = socket.create_connection((sys.argv[1], 8080), timeout=2); s.settimeout(2)
s.sendall(b"x"); assert s.recv(100).startswith(b"pong")
print("EST", flush=True)
sys.stdin.readline()
s.sendall(b"x"); print("AFTER", s.recv(100).startswith(b"pong"), flush=True)
'''
        p = subprocess.Popen(["ip", "netns", "exec", a["ns"], "/usr/bin/python3", "-c", script, ip_b],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert p.stdout.readline().strip() == "EST"
            # New flows until the table is full: some are refused and counted; the established one goes on.
            results = [probe(a["ns"], "udp", ip_b, 8080, timeout=0.5) for _ in range(10)]
            assert any(r.startswith("FAIL") for r in results), results
            assert net.drops(a).get("ct_table_full", 0) >= 1
            p.stdin.write("\n")
            p.stdin.flush()
            assert p.stdout.readline().strip() == "AFTER True"
        finally:
            p.kill()
            p.wait(timeout=10)
        # A TCP segment of no tracked connection (no loose pickup) is invalid and counted.
        raw = r'''
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
hdr = struct.pack("!HHIIBBHHH", 40404, 8080, 123456789, 987654321, 5 << 4, 0x10, 1000, 0, 0)
s.sendto(hdr, (sys.argv[1], 0))
'''
        before = net.drops(a).get("ct_invalid", 0)
        sh(a["ns"], "/usr/bin/python3", "-c", raw, ip_b, check=True)
        wait_for(lambda: net.drops(a).get("ct_invalid", 0) > before, 10, what="ct_invalid counted")
        # Both workers carried traffic (a's and b's queues are spread over the two workers).
        st, stats, _ = net.req("GET", "/v1/stats")
        assert st == 200
    finally:
        net.close()
