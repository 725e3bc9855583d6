"""Helpers for the overlay suite: a vpcd "box" running inside a network namespace of the test's own, and the underlay
that joins the boxes.

How an operator runs vpcd in a namespace and still reaches its guests by name: start it with
`nsenter --net=/run/netns/BOX vpcd ...`, which changes only the network namespace. `ip netns exec BOX vpcd` would
also unshare the mount namespace (and remount /sys), so the guest namespaces vpcd bind-mounts under /run/netns would
be invisible to the host's `ip netns`, and they would vanish with vpcd. With nsenter --net, vpcd's /run/netns/GUEST
mounts land in the host's mount namespace: `ip netns exec GUEST ...` works from the host, and the guests outlive a
vpcd restart as they do outside a namespace. (Alternatively a shared run dir: `ip netns exec` with /run/netns made a
shared mount; nsenter is simpler.)

The REST port of a vpcd in a namespace is on that namespace's 127.0.0.1; the Client here connects from inside the
namespace (a socket created by a thread that setns()'d into it), as an operator would with `ip netns exec BOX curl`.
"""
import ctypes
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time

BUILD_DIR = os.environ.get("VPCD_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
VPCD = os.path.join(BUILD_DIR, "vpcd")
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def sh(*args, check=True, timeout=60, ns=None):
    cmd = (["ip", "netns", "exec", ns] if ns else []) + [str(a) for a in args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError("%s: exit %d\n%s%s" % (" ".join(cmd), r.returncode, r.stdout, r.stderr))
    return r


def ns_socket(ns, addr, timeout):
    """A TCP socket connected to addr from inside network namespace ns."""
    out = {}

    def run():
        try:
            fd = os.open("/run/netns/" + ns, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns " + ns)
            finally:
                os.close(fd)
            out["sock"] = socket.create_connection(addr, timeout=timeout)
        except Exception as e:  # handed to the caller
            out["error"] = e

    t = threading.Thread(target=run)  # the thread dies in ns; the socket stays there
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["sock"]


class NsHTTPS(http.client.HTTPSConnection):
    def __init__(self, ns, port, ctx):
        super().__init__("127.0.0.1", port, context=ctx, timeout=30)
        self.ns = ns

    def connect(self):
        self.sock = self._context.wrap_socket(ns_socket(self.ns, (self.host, self.port), self.timeout),
                                              server_hostname=self.host)


class Box:
    """A vpcd started inside namespace `ns` with nsenter --net, with its own state dir, port and instance."""

    def __init__(self, ns, workers=1):
        self.ns = ns
        self.state = tempfile.mkdtemp(prefix="vpcd-vxlan-")
        self.log_path = self.state + ".log"
        self.workers = workers
        self.proc = None
        self.port = None
        self.instance = None
        self.ctx = ssl.create_default_context()
        self.ctx.check_hostname, self.ctx.verify_mode = False, ssl.CERT_NONE
        r = subprocess.run([VPCD, "token", "create", "--state-dir", self.state, "--role", "admin"],
                           capture_output=True, text=True, timeout=60, check=True)
        self.token = r.stdout.strip()

    def start(self, timeout=60):
        log = open(self.log_path, "ab")
        # VPCD_TEST_VXLAN_USO=on|off runs the boxes with that vxlan-uso (default: vpcd's own default, on).
        uso = ["--vxlan-uso", os.environ["VPCD_TEST_VXLAN_USO"]] if os.environ.get("VPCD_TEST_VXLAN_USO") else []
        # VPCD_TEST_RX_RING=v2|v3 sets the boxes' AF_PACKET RX ring layout (every port; default: vpcd's own, v2).
        if os.environ.get("VPCD_TEST_RX_RING"):
            uso += ["--rx-ring", os.environ["VPCD_TEST_RX_RING"]]
        # VPCD_TEST_UPLINK_TX_BIG_FRAMES=N sets the boxes' uplink-tx-big-frames (0: USO frames through sendmsg).
        if os.environ.get("VPCD_TEST_UPLINK_TX_BIG_FRAMES"):
            uso += ["--uplink-tx-big-frames", os.environ["VPCD_TEST_UPLINK_TX_BIG_FRAMES"]]
        self.proc = subprocess.Popen(["nsenter", "--net=/run/netns/" + self.ns, VPCD, "--state-dir", self.state,
                                      "--listen", "127.0.0.1:0", "--workers", str(self.workers)] + uso,
                                     stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("vpcd exited with %s:\n%s" % (self.proc.returncode, self.log()[-3000:]))
            text = self.log()
            m = re.search(r"listening on https://127\.0\.0\.1:(\d+)", text)
            inst = re.search(r"instance ([0-9a-f]+)", text)
            if m:
                self.port = int(m.group(1))
                self.instance = inst.group(1) if inst else None
                return self
            time.sleep(0.05)
        raise RuntimeError("vpcd did not start:\n" + self.log()[-3000:])

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def call(self, method, path, body=None, expect=(200, 201, 204)):
        c = NsHTTPS(self.ns, self.port, self.ctx)
        h = {"Authorization": "Bearer " + self.token}
        data = None
        if body is not None:
            data = json.dumps(body)
            h["Content-Type"] = "application/json"
        try:
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            text = r.read().decode()
        finally:
            c.close()
        if r.status not in expect:
            raise AssertionError("%s %s -> %d %s" % (method, path, r.status, text))
        return json.loads(text) if text else None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.instance:
            shutil.rmtree("/run/vpcd/" + self.instance, ignore_errors=True)
        shutil.rmtree(self.state, ignore_errors=True)
        if os.path.exists(self.log_path):
            os.unlink(self.log_path)


def netns_list():
    return [l.split()[0] for l in sh("ip", "netns", "list").stdout.splitlines() if l.strip()]


def remove_namespaces(prefix):
    for ns in netns_list():
        if ns.startswith(prefix):
            sh("ip", "netns", "del", ns, check=False)


def two_boxes(prefix, make_underlay, build):
    """The body of a module fixture (`yield from two_boxes(...)`): namespaces from make_underlay(), vpcd boxes
    PREFIX+"A" and PREFIX+"B" started in theirs, then what build(a, b) returns; everything stopped and every namespace
    named PREFIX* removed afterwards, also on failure."""
    if os.geteuid() != 0:
        raise AssertionError("needs root (namespaces, veth, vpcd)")
    remove_namespaces(prefix)
    boxes = []
    try:
        make_underlay()
        # Box A runs 2 workers and box B 1, so both the single-worker path and the sharing between workers (an ARP
        # reply reaches one worker, every worker needs it: underlay_neighbors.h) are in every run.
        # VPCD_TEST_WORKERS=A,B overrides (e.g. 1,1 or 2,2).
        wa, wb = (int(x) for x in os.environ.get("VPCD_TEST_WORKERS", "2,1").split(","))
        a, b = Box(prefix + "A", wa).start(), Box(prefix + "B", wb).start()
        boxes += [a, b]
        yield build(a, b)
    finally:
        for box in boxes:
            box.stop()
        remove_namespaces(prefix)


def ping(ns, addr, count=3, timeout_s=2):
    r = sh("ping", "-n", "-c", count, "-i", "0.2", "-W", timeout_s, addr, ns=ns, check=False, timeout=30)
    return r.returncode == 0


def wait_for(pred, timeout=30, interval=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError("timed out waiting for " + what)


def iperf3(server_ns, client_ns, server_ip, seconds=2, reverse=False):
    """TCP from client to server (or back with reverse); returns bits/s received. Bounded in time."""
    srv = subprocess.Popen(["ip", "netns", "exec", server_ns, "iperf3", "-s", "-1", "-B", server_ip],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        args = ["iperf3", "-c", server_ip, "-t", seconds, "-J", "--connect-timeout", "3000"] + (["-R"] if reverse else [])
        r = sh(*args, ns=client_ns, check=False, timeout=seconds + 30)
        if r.returncode != 0:
            raise AssertionError("iperf3 failed: " + r.stdout[-2000:] + r.stderr[-2000:])
        out = json.loads(r.stdout)
        if "sum_received" not in out.get("end", {}):
            raise AssertionError("iperf3 reported no transfer: " + r.stdout[-2000:])
        return out["end"]["sum_received"]["bits_per_second"]
    finally:
        srv.kill()
        srv.wait()
