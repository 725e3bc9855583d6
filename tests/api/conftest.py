"""Fixtures for the REST API suite: one real vpcd per test module on a temporary state dir, listening on a free
127.0.0.1 port over HTTPS, with an admin and a viewer token made by `vpcd token create`. Talks HTTPS with the stdlib
(http.client + ssl, trusting the state dir's self-signed certificate). The daemon is stopped and its state dir and
datapath run dir removed at the end, also when a test fails.

Needs $VPCD_BUILD_DIR/vpcd (the suite fails, saying so, when the daemon is not built).
"""
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
import time

import pytest

BUILD_DIR = os.environ.get("VPCD_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
VPCD = os.path.join(BUILD_DIR, "vpcd")
START_TIMEOUT_S = 60


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def remove_run_dir(log_path):
    """Removes the datapath run dir (/run/vpcd/INSTANCE, instance named in the log) of the vpcd this module ran."""
    try:
        with open(log_path, "rb") as f:
            m = re.search(rb"instance ([0-9a-f]+)", f.read())
    except OSError:
        return
    if m:
        shutil.rmtree(os.path.join("/run/vpcd", m.group(1).decode()), ignore_errors=True)


class Reply:
    def __init__(self, status, headers, raw):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers}
        self.raw = raw
        self.content_type = self.headers.get("content-type", "")
        self.json = None
        if raw and "json" in self.content_type:
            self.json = json.loads(raw)

    def __repr__(self):
        return "Reply(%d, %s, %r)" % (self.status, self.content_type, self.raw[:300])


class Api:
    """HTTPS client for one vpcd. request() sends `body` as JSON unless `raw` bytes are given."""

    def __init__(self, port, cafile, admin, viewer):
        self.port = port
        self.ctx = ssl.create_default_context(cafile=cafile)
        self.admin = admin
        self.viewer = viewer

    def request(self, method, path, body=None, token="admin", raw=None, headers=None, timeout=30):
        h = dict(headers or {})
        if token == "admin":
            token = self.admin
        elif token == "viewer":
            token = self.viewer
        if token:
            h["Authorization"] = "Bearer " + token
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=timeout)
        try:
            conn.request(method, path, body=data, headers=h)
            r = conn.getresponse()
            return Reply(r.status, r.getheaders(), r.read())
        finally:
            conn.close()

    def oversized_post(self, path, size_bytes, timeout=30):
        """Announces a `size_bytes` JSON body, sends its first KiB and reads the answer (the rest is never sent)."""
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=timeout)
        try:
            conn.putrequest("POST", path)
            conn.putheader("Authorization", "Bearer " + self.admin)
            conn.putheader("Content-Type", "application/json")
            conn.putheader("Content-Length", str(size_bytes))
            conn.endheaders(b'{"name": "' + b"a" * 1024)
            r = conn.getresponse()
            return Reply(r.status, r.getheaders(), r.read())
        finally:
            conn.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body, **kw):
        return self.request("POST", path, body=body, **kw)

    def put(self, path, body, **kw):
        return self.request("PUT", path, body=body, **kw)

    def patch(self, path, body, **kw):
        return self.request("PATCH", path, body=body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def create(self, kind, body):
        r = self.post("/v1/" + kind, body)
        assert r.status == 201, r
        return r.json


@pytest.fixture(scope="module")
def api():
    if not os.access(VPCD, os.X_OK):
        pytest.fail("%s is not built: build it first (scripts/test.sh does)" % VPCD)
    tmp = tempfile.mkdtemp(prefix="vpcd-api-test-%d-" % os.getpid())
    state = os.path.join(tmp, "state")
    os.mkdir(state)
    log_path = os.path.join(tmp, "vpcd.log")
    proc = None
    try:
        tokens = {}
        for role in ("admin", "viewer"):
            out = subprocess.run([VPCD, "token", "create", "--state-dir", state, "--role", role],
                                 check=True, capture_output=True, text=True, timeout=60)
            tokens[role] = out.stdout.strip()
        port = free_port()
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([VPCD, "--state-dir", state, "--listen", "127.0.0.1:%d" % port, "--workers", "1"],
                                    stdout=log, stderr=log)
        client = None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            cert = os.path.join(state, "tls", "cert.pem")
            if os.path.exists(cert):
                try:
                    client = Api(port, cert, tokens["admin"], tokens["viewer"])
                    if client.get("/v1/health", token=None, timeout=5).status == 200:
                        break
                except (OSError, ssl.SSLError, http.client.HTTPException):
                    pass
                client = None
            time.sleep(0.05)
        if client is None:
            with open(log_path, "rb") as f:
                pytest.fail("vpcd did not come up:\n" + f.read()[-4000:].decode(errors="replace"))
        client.log_path = log_path
        yield client
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        remove_run_dir(log_path)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def vpc(api):
    """A fresh VPC with a unique /16 (and nothing in it), deleted afterwards when still empty."""
    vpc.counter = getattr(vpc, "counter", 0) + 1
    obj = api.create("vpcs", {"cidrs": ["10.%d.0.0/16" % (vpc.counter % 250)], "name": "t%d" % vpc.counter})
    yield obj
    api.delete("/v1/vpcs/" + obj["id"])
