"""The router's ICMP error rate limit is visible (issue 9): with icmp-error-rate = 1 and icmp-error-burst = 1, a burst
of pings with TTL 1 through the gateway gets at most a few time-exceeded answers, and the ICMP errors the workers
suppressed are counted in GET /v1/stats (workers[].icmp_rate_limited, checked against the OpenAPI document) and in
/metrics (vpcd_worker_icmp_rate_limited_total).

Namespaces are named rtover<pid><letter>, addresses are in a per-run 10.X.0.0/16 that exists only inside them; vpcd,
its state and the namespaces are removed at the end, also on failure.
"""
import os
import re
import subprocess
import tempfile

import pytest

from vpcdtest import Vpcd, netns_delete, netns_exists, need_root, wait_for

TAG = "%d" % (os.getpid() % 100000)
OCTET = 16 + (os.getpid() // 11) % 200


@pytest.fixture
def box():
    need_root()
    tmp = tempfile.TemporaryDirectory(prefix="vpcd-rtover-icmp-")
    state = os.path.join(tmp.name, "state")
    os.mkdir(state)
    conf = os.path.join(tmp.name, "vpcd.conf")
    with open(conf, "w") as f:
        f.write("icmp-error-rate = 1\nicmp-error-burst = 1\n")
    d = Vpcd(state, workers=1, extra=["--config", conf], check_openapi=True)
    namespaces = []
    try:
        d.token("admin")
        d.start()
        yield d, namespaces
    finally:
        d.kill()
        d.close()
        for ns in namespaces:
            netns_delete(ns)
        tmp.cleanup()


def post(d, path, body):
    st, r, _ = d.request("POST", path, body, token=d.admin_token)
    assert st == 201, r
    return r


def test_suppressed_icmp_errors_are_counted(box):
    d, namespaces = box
    vpc = post(d, "/v1/vpcs", {"cidrs": ["10.%d.0.0/16" % OCTET]})
    sns = [post(d, "/v1/subnets", {"vpc_id": vpc["id"], "cidr": "10.%d.%d.0/24" % (OCTET, i)}) for i in (1, 2)]
    nics = []
    for sn, letter in zip(sns, "ab"):
        ns = "rtover%s%s" % (TAG, letter)
        assert not netns_exists(ns)
        namespaces.append(ns)
        nic = post(d, "/v1/nics", {"subnet_id": sn["id"], "backend": {"type": "netns", "netns": ns}})
        wait_for(lambda: d.request("GET", "/v1/nics/" + nic["id"], token=d.admin_token)[1]["state"] == "up", 30,
                 what="NIC up")
        nics.append((ns, nic))
    (ns_a, _), (_, b) = nics
    # 20 pings with TTL 1, 50 ms apart (1 s in all): the bucket (1 token, 1 per second) lets through one or two.
    r = subprocess.run(["ip", "netns", "exec", ns_a, "ping", "-n", "-c", "20", "-i", "0.05", "-W", "1", "-t", "1",
                        b["ips"][0]], capture_output=True, text=True, timeout=30)
    answered = len(re.findall(r"Time to live exceeded", r.stdout))
    assert 1 <= answered <= 3, r.stdout

    def suppressed():
        st, s, _ = d.request("GET", "/v1/stats", token=d.admin_token)
        assert st == 200, s
        return sum(w["icmp_rate_limited"] for w in s["workers"])

    n = wait_for(lambda: suppressed() >= 20 - answered and suppressed(), 10, what="suppressed ICMP errors counted")
    assert n == 20 - answered, "every TTL-1 ping either answered or counted as suppressed"
    st, text, _ = d.request("GET", "/metrics", token=d.admin_token)
    assert st == 200
    samples = re.findall(r'^vpcd_worker_icmp_rate_limited_total\{worker="\d+"\} (\d+)$', text, re.M)
    assert samples and sum(int(x) for x in samples) == n, text
