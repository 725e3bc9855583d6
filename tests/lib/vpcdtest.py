"""Shared helpers for the Python test tiers: run a real vpcd with a private state dir on an ephemeral port, talk to it
over HTTPS, and make uniquely named network namespaces that are removed again (also on failure)."""
import contextlib
import http.client
import json
import os
import socket
import ssl
import subprocess
import tempfile
import time

BUILD = os.environ.get("VPCD_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ApiError(Exception):
    def __init__(self, status, body):
        super().__init__(f"HTTP {status}: {body}")
        self.status, self.body = status, body


class Client:
    def __init__(self, port, token=None):
        self.port, self.token = port, token
        self.ctx = ssl.create_default_context()
        self.ctx.check_hostname, self.ctx.verify_mode = False, ssl.CERT_NONE

    def request(self, method, path, body=None, headers=None, raw=None):
        c = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=30)
        h = dict(headers or {})
        if self.token:
            h.setdefault("Authorization", f"Bearer {self.token}")
        data = raw
        if body is not None:
            data = json.dumps(body)
            h.setdefault("Content-Type", "application/json")
        try:
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            text = r.read().decode()
            return r.status, dict((k.lower(), v) for k, v in r.getheaders()), text
        finally:
            c.close()

    def call(self, method, path, body=None, expect=(200, 201, 204)):
        status, _, text = self.request(method, path, body)
        if status not in expect:
            raise ApiError(status, text)
        return json.loads(text) if text else None


class Vpcd:
    """A vpcd process with its own state dir and port. stop() with SIGTERM, kill() with SIGKILL, start() again."""

    def __init__(self, workers=2, extra_args=()):
        self.state = tempfile.mkdtemp(prefix="vpcd-test-")
        self.port = free_port()
        self.workers, self.extra = workers, list(extra_args)
        self.proc = None
        self.log_path = os.path.join(self.state, "vpcd.log")
        self.admin_token = self.token("admin")

    def token(self, role):
        r = subprocess.run([os.path.join(BUILD, "vpcd"), "token", "create", "--state-dir", self.state, "--role", role],
                           capture_output=True, text=True, timeout=30, check=True)
        return r.stdout.strip()

    def start(self, timeout=30):
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen([os.path.join(BUILD, "vpcd"), "--state-dir", self.state, "--listen",
                                      f"127.0.0.1:{self.port}", "--workers", str(self.workers)] + self.extra,
                                     stdout=log, stderr=log)
        log.close()
        c = Client(self.port)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vpcd exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                if c.request("GET", "/v1/health")[0] == 200:
                    return self
            time.sleep(0.05)
        raise RuntimeError("vpcd did not answer /v1/health:\n" + self.log()[-3000:])

    def client(self, token=None):
        return Client(self.port, self.admin_token if token is None else token)

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def wait_for(pred, timeout=20, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def sh(cmd, check=True, timeout=60):
    r = subprocess.run(cmd, shell=isinstance(cmd, str), capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"{cmd}: exit {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


class Namespaces:
    """Unique namespace names for one test; remove_all() deletes every namespace with the prefix (also those vpcd
    created for NICs of this test)."""

    def __init__(self, tag):
        self.prefix = f"vt{tag}{os.getpid() % 100000}"

    def name(self, suffix):
        return f"{self.prefix}{suffix}"

    def remove_all(self):
        for line in sh("ip netns list").stdout.splitlines():
            ns = line.split()[0] if line.strip() else ""
            if ns.startswith(self.prefix):
                sh(["ip", "netns", "del", ns], check=False)


def ping(ns, ip, count=3):
    r = sh(["ip", "netns", "exec", ns, "ping", "-c", str(count), "-i", "0.2", "-W", "1", ip], check=False, timeout=30)
    return r.returncode == 0, r.stdout
