"""vhost-user NICs against a real front-end: DPDK's virtio-user in dpdk-testpmd plays the guest (shared/vhost-user/).

A vhost-user NIC (vpcd connects: client mode; testpmd listens with server=1) and a netns NIC in one VPC exchange UDP
both ways with exact counts: testpmd sends 4 bursts of 32 64-byte frames (`start tx_first 4`) that a UDP receiver in
the namespace counts, and the namespace sends N datagrams that testpmd's rxonly engine counts. Variants of the
virtio-user device; the front-end quitting and coming back; vpcd killed and restarted while the front-end waits
(traffic resumes with no API call).
"""
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import vpcdtest as vt  # noqa: E402

TESTPMD = shutil.which("dpdk-testpmd")
EAL = ["--no-pci", "--no-huge", "-m", "256", "--no-shconf", "--no-telemetry"]
GUEST_MAC = "02:76:68:00:00:0a"


@pytest.fixture(scope="module", autouse=True)
def need_testpmd():
    if not TESTPMD:
        pytest.fail("dpdk-testpmd missing: scripts/install-deps.sh test installs dpdk-dev (Debian 12 ships it there)")


class TestPmd:
    """dpdk-testpmd in interactive mode, fed command by command over a pipe; output collected in a file."""

    def __init__(self, sock, tag, peer_mac, args="", queues=1):
        self.prefix = f"vhost{tag}{os.getpid() % 100000}"
        self.out_path = tempfile.mktemp(prefix="testpmd-", suffix=".log")
        self.out = open(self.out_path, "w+")
        vdev = f"net_virtio_user0,path={sock},server=1,queues={queues},mac={GUEST_MAC}{args}"
        # stdbuf: testpmd's stdout goes to a file, and its answers must reach it at once.
        cmd = ["timeout", "-s", "KILL", "300", "stdbuf", "-o0", TESTPMD, "-l", "0,1", "--main-lcore", "0"] + EAL + \
              [f"--file-prefix={self.prefix}", "--vdev", vdev, "--", "-i", "--nb-cores=1",
               f"--rxq={queues}", f"--txq={queues}", "--total-num-mbufs=16384",
               f"--eth-peer=0,{peer_mac}", "--tx-ip=10.62.1.10,10.62.1.20"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=self.out, stderr=subprocess.STDOUT, text=True)

    def cmd(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def text(self):
        with open(self.out_path, errors="replace") as f:
            return f.read()

    def wait_output(self, pattern, after=0, timeout=30):
        try:
            return vt.wait_for(lambda: re.search(pattern, self.text()[after:]), timeout=timeout,
                               what=f"testpmd output {pattern!r}")
        except AssertionError as e:
            raise AssertionError(f"{e}; testpmd said:\n{self.text()[-3000:]}") from None

    def stats(self, after):
        """RX/TX packets of port 0 from the next 'show port stats 0' after offset `after`."""
        self.cmd("show port stats 0")
        m = self.wait_output(r"(?s)NIC statistics for port 0.*?RX-packets:\s+(\d+).*?TX-packets:\s+(\d+)", after, timeout=20)
        return int(m.group(1)), int(m.group(2))

    def quit(self):
        if self.proc.poll() is None:
            try:
                self.cmd("quit")
                self.proc.wait(timeout=20)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.out.close()
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.out_path)
        shutil.rmtree(f"/var/run/dpdk/{self.prefix}", ignore_errors=True)


class Setup:
    def __init__(self, tag, queues=1):
        self.ns = vt.Namespaces(f"vh{tag}")
        self.dir = tempfile.mkdtemp(prefix="vhost-test-")
        self.sock = os.path.join(self.dir, "vm.sock")
        self.queues = queues
        self.d = vt.Vpcd(workers=1).start()
        c = self.d.client()
        vpc = c.call("POST", "/v1/vpcs", {"cidrs": ["10.62.0.0/16"]})
        self.sub = c.call("POST", "/v1/subnets", {"vpc_id": vpc["id"], "cidr": "10.62.1.0/24"})
        self.peer = c.call("POST", "/v1/nics", {"subnet_id": self.sub["id"], "ips": ["10.62.1.20"],
                                                 "backend": {"type": "netns", "netns": self.ns.name("p"),
                                                             "ifname": "eth0"}})
        vt.wait_for(lambda: c.call("GET", f"/v1/nics/{self.peer['id']}")["state"] == "up", what="netns NIC up")
        # No IPv6 chatter (router solicitations, MLD) from the namespace: the counts below must be exact.
        for key in ("all", "default", "eth0"):
            vt.sh(["ip", "netns", "exec", self.ns.name("p"), "sysctl", "-qw", f"net.ipv6.conf.{key}.disable_ipv6=1"])
        self.vm = None

    def create_vm_nic(self):
        c = self.d.client()
        self.vm = c.call("POST", "/v1/nics", {"subnet_id": self.sub["id"], "ips": ["10.62.1.10"], "mac": GUEST_MAC,
                                               "backend": {"type": "vhost-user", "socket": self.sock,
                                                           "mode": "client", "queues": self.queues}})
        return self.vm

    def nic(self):
        return self.d.client().call("GET", f"/v1/nics/{self.vm['id']}")

    def wait_vm_state(self, state, timeout=30):
        return vt.wait_for(lambda: self.nic()["state"] == state and self.nic(), timeout=timeout,
                           what=f"vhost-user NIC {state}")

    def close(self):
        self.d.stop()
        self.d.kill()
        self.d.close()  # its run dir in /run/vpcd and its temporary state dir
        self.ns.remove_all()
        shutil.rmtree(self.dir, ignore_errors=True)


def receiver(ns, seconds):
    """A UDP receiver on port 9 in the namespace; returns the process (prints the datagram count at the end)."""
    code = ("import socket,time\n"
            "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(('10.62.1.20',9));s.settimeout(0.2)\n"
            f"n=0;end=time.monotonic()+{seconds}\n"
            "print('READY',flush=True)\n"
            "while time.monotonic()<end:\n"
            "  try:\n    s.recv(2048);n+=1\n  except socket.timeout:\n    pass\n"
            "print('COUNT',n,flush=True)\n")
    p = subprocess.Popen(["ip", "netns", "exec", ns, "python3", "-c", code], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "READY"
    return p


def send_udp(ns, n):
    code = ("import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
            f"for i in range({n}):\n  s.sendto(b'x'*18,('10.62.1.10',9))\n")
    vt.sh(["ip", "netns", "exec", ns, "python3", "-c", code])


def exchange(s, pmd, guest_to_peer=True):
    """Guest -> namespace: 128 frames counted by the receiver; namespace -> guest: 50 datagrams counted by testpmd."""
    ns = s.ns.name("p")
    pos = len(pmd.text())
    pmd.cmd("stop")
    pmd.cmd("set fwd rxonly")
    pmd.cmd("set txpkts 64")
    pmd.cmd("clear port stats all")
    time.sleep(0.5)  # the RARP vpcd sends for the guest, and anything in flight, land before counting starts
    rx0, tx0 = pmd.stats(pos)
    pos = len(pmd.text())
    rcv = receiver(ns, 4)
    pmd.cmd("start tx_first 4")
    out, _ = rcv.communicate(timeout=30)
    got = int(re.search(r"COUNT (\d+)", out).group(1))
    send_udp(ns, 50)
    time.sleep(1)
    pmd.cmd("stop")
    rx1, tx1 = pmd.stats(pos)
    assert tx1 - tx0 == 128 * s.queues, pmd.text()[-2000:]
    assert got == tx1 - tx0, f"namespace received {got} of {tx1 - tx0} frames the guest sent"
    assert rx1 - rx0 == 50, f"guest received {rx1 - rx0} of 50 datagrams"


VARIANTS = {
    "default": ("", 1),
    "in_order_off": (",in_order=0", 1),
    "mrg_rxbuf_off": (",mrg_rxbuf=0", 1),
    "in_order_off_mrg_off": (",in_order=0,mrg_rxbuf=0", 1),
    "queue_size_1024": (",queue_size=1024", 1),
    "two_queues": ("", 2),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_testpmd_guest_and_netns_guest_exchange_exact_counts(variant):
    args, queues = VARIANTS[variant]
    s = Setup(variant[:2], queues)
    pmd = None
    try:
        pmd = TestPmd(s.sock, variant[:2], s.peer["mac"], args, queues)
        s.create_vm_nic()
        s.wait_vm_state("up")
        exchange(s, pmd)
        stats = s.d.client().call("GET", f"/v1/nics/{s.vm['id']}/stats")
        assert stats["rx_packets"] >= 128 * queues and stats["tx_packets"] >= 50, stats
    finally:
        if pmd:
            pmd.quit()
        s.close()


def test_frontend_leaves_and_comes_back_then_vpcd_restarts():
    s = Setup("rc")
    pmd = None
    try:
        pmd = TestPmd(s.sock, "rc1", s.peer["mac"])
        s.create_vm_nic()
        s.wait_vm_state("up")
        exchange(s, pmd)
        # The front-end goes away: the NIC says so at once (no resync needed), and comes back up with it.
        pmd.quit()
        nic = s.wait_vm_state("down", timeout=10)
        assert "waiting" in nic["state_detail"], nic
        pmd = TestPmd(s.sock, "rc2", s.peer["mac"])
        s.wait_vm_state("up")
        exchange(s, pmd)
        # vpcd is killed while the front-end waits; a new vpcd on the same state reconnects with no API call.
        s.d.kill()
        s.d.start()
        s.wait_vm_state("up")
        exchange(s, pmd)
    finally:
        if pmd:
            pmd.quit()
        s.close()
