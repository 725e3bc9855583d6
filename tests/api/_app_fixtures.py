"""Helpers shared by the app engineer's pytest suites: start/kill a real vpcd on a temporary state dir, make tokens,
talk HTTPS to it (stdlib http.client + ssl, trusting the state dir's self-signed certificate), and namespace clean-up.

Every vpcd started here listens on 127.0.0.1 with an ephemeral port (read back from its log) and is killed at the end.
"""
import http.client
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import tempfile
import time

import pytest

BUILD_DIR = os.environ.get("VPCD_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
SOURCE_DIR = os.environ.get("VPCD_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
VPCD = os.path.join(BUILD_DIR, "vpcd")
VPCCTL = os.path.join(BUILD_DIR, "vpcctl")


def need_root():
    if os.geteuid() != 0:
        pytest.fail("needs root (vpcd creates interfaces and namespaces)")


class Vpcd:
    """One vpcd process on a state dir. start() waits until it answers /v1/health."""

    def __init__(self, state_dir, workers=1, extra=()):
        self.state_dir = state_dir
        self.workers = workers
        self.extra = list(extra)
        self.proc = None
        self.port = None
        self.instance = None  # datapath instance name, from the log: its run dir is /run/vpcd/INSTANCE
        self.log_path = os.path.join(state_dir, "..", os.path.basename(state_dir) + ".log")
        self._log = None

    def token(self, role="admin"):
        out = subprocess.run([VPCD, "token", "create", "--state-dir", self.state_dir, "--role", role],
                             check=True, capture_output=True, text=True, timeout=60)
        tok = out.stdout.strip()
        assert re.fullmatch(r"vpcd_[a-z2-7]{12}_[A-Za-z0-9_-]{43}", tok), tok
        return tok

    def start(self, timeout=60):
        self._log = open(self.log_path, "ab")
        offset = self._log.tell()
        self.proc = subprocess.Popen(
            [VPCD, "--state-dir", self.state_dir, "--listen", "127.0.0.1:0", "--workers", str(self.workers)]
            + self.extra, stdout=self._log, stderr=self._log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("vpcd exited with %s:\n%s" % (self.proc.returncode, self.log_tail()))
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                m = re.search(rb"listening on https://127\.0\.0\.1:(\d+)", f.read())
            if m:
                self.port = int(m.group(1))
                with open(self.log_path, "rb") as f:
                    f.seek(offset)
                    inst = re.search(rb"instance ([0-9a-f]+)", f.read())
                if inst:
                    self.instance = inst.group(1).decode()
                break
            time.sleep(0.05)
        else:
            self.kill()
            raise RuntimeError("vpcd did not start listening:\n" + self.log_tail())
        while time.monotonic() < deadline:
            try:
                status, body, _ = self.request("GET", "/v1/health")
                if status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("vpcd /v1/health never answered:\n" + self.log_tail())

    def ssl_context(self):
        ctx = ssl.create_default_context(cafile=os.path.join(self.state_dir, "tls", "cert.pem"))
        return ctx

    def connection(self, timeout=30):
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ssl_context(), timeout=timeout)

    def request(self, method, path, body=None, token=None, conn=None, headers=None):
        """Returns (status, parsed JSON or text or None, headers)."""
        own = conn is None
        c = conn or self.connection()
        try:
            h = dict(headers or {})
            if token:
                h["Authorization"] = "Bearer " + token
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                h.setdefault("Content-Type", "application/json")
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            raw = r.read()
            ctype = r.getheader("Content-Type", "")
            parsed = None
            if raw:
                parsed = json.loads(raw) if "json" in ctype else raw.decode(errors="replace")
            return r.status, parsed, dict(r.getheaders())
        finally:
            if own:
                c.close()

    def kill(self, sig=signal.SIGKILL, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self._log:
            self._log.close()
            self._log = None
        return self.proc.returncode if self.proc else None

    def remove_run_dir(self):
        """After the last kill: removes the datapath's marker directory for this (temporary) state dir."""
        if self.instance and (self.proc is None or self.proc.poll() is not None):
            shutil.rmtree(os.path.join("/run/vpcd", self.instance), ignore_errors=True)

    def log_tail(self, n=60):
        try:
            with open(self.log_path, "rb") as f:
                return b"".join(f.readlines()[-n:]).decode(errors="replace")
        except OSError:
            return ""


@pytest.fixture
def state_dir():
    with tempfile.TemporaryDirectory(prefix="vpcd-app-test-") as d:
        sd = os.path.join(d, "state")
        os.mkdir(sd)
        yield sd


def wait_for(pred, timeout, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %.1fs waiting for %s (last: %r)" % (timeout, what, last))


def netns_exists(name):
    return os.path.exists(os.path.join("/run/netns", name))


def netns_delete(name):
    """Deletes a namespace this test run named (and so created through vpcd); its veth ends go with it."""
    if netns_exists(name):
        subprocess.run(["ip", "netns", "delete", name], capture_output=True, timeout=30)


def link_delete(ifname):
    subprocess.run(["ip", "link", "delete", ifname], capture_output=True, timeout=30)
