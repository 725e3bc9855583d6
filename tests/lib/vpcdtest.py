"""The one Python harness of vpcd's test tiers (tests/api, tests/slow) and bench scripts (bench/e2e): start a real
vpcd with a private state dir on 127.0.0.1:0 and read back the port it bound (STATE/listen-url), make tokens, talk
HTTPS to it (stdlib http.client + ssl, trusting the state dir's self-signed certificate) and, when asked, check every
response against the server's own OpenAPI document (GET /v1/openapi.json); plus namespace helpers that remove what a
test created. The pytest fixtures built on it are in vpcd_pytest.py.

    d = Vpcd(workers=1).start()          # own temporary state dir, removed by d.close()
    c = d.client()                       # admin token; d.client("viewer") or d.client(token_string)
    vpc = c.call("POST", "/v1/vpcs", {"cidrs": ["10.9.0.0/16"]})
    r = c.get("/v1/vpcs")                # Reply: status, headers (lower-case), raw, content_type, json
    d.stop(); d.close()
"""
import contextlib
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

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("VPCD_SOURCE_DIR", os.path.join(HERE, "..", ".."))
BUILD_DIR = os.environ.get("VPCD_BUILD_DIR", os.path.join(SOURCE_DIR, "build"))
BUILD = BUILD_DIR  # the build dir the helpers use; bench scripts set it from --build-dir (vt.BUILD = ...)
VPCD = os.path.join(BUILD_DIR, "vpcd")
VPCCTL = os.path.join(BUILD_DIR, "vpcctl")
START_TIMEOUT_S = 60


def vpcd_binary():
    return os.path.join(BUILD, "vpcd")


def vpcctl_binary():
    return os.path.join(BUILD, "vpcctl")


class ApiError(Exception):
    def __init__(self, status, body):
        super().__init__(f"HTTP {status}: {body}")
        self.status, self.body = status, body


class Reply:
    """One HTTP response. Unpacks as (status, body, headers) where body is the parsed JSON, else the text, else None."""

    def __init__(self, status, headers, raw):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers}
        self.raw = raw
        self.content_type = self.headers.get("content-type", "")
        self.json = json.loads(raw) if raw and "json" in self.content_type else None

    @property
    def body(self):
        if self.json is not None:
            return self.json
        return self.raw.decode(errors="replace") if self.raw else None

    def __iter__(self):
        return iter((self.status, self.body, self.headers))

    def __getitem__(self, i):
        return (self.status, self.body, self.headers)[i]

    def __repr__(self):
        return "Reply(%d, %s, %r)" % (self.status, self.content_type, self.raw[:300])


class OpenApiChecker:
    """Checks a response against an OpenAPI 3.1 document: the path and method are described, the status is one of the
    operation's responses (or its default), the media type is one it lists and a JSON body validates against the
    schema (JSON Schema 2020-12, Debian's python3-jsonschema). Paths outside /v1 and /metrics (the dashboard's files)
    are not API and are not checked."""

    def __init__(self, doc):
        import jsonschema  # Debian python3-jsonschema (scripts/install-deps.sh)
        self.jsonschema = jsonschema
        self.doc = doc
        self.format_checker = jsonschema.FormatChecker()
        self.routes = []
        for template, ops in doc["paths"].items():
            literal = re.escape(template)
            rx = "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", literal) + "$"
            self.routes.append((template.count("{"), re.compile(rx), template, ops))
        self.routes.sort(key=lambda r: r[0])  # literal segments win, as in the server's router
        self.checked = 0
        self.validators = {}  # id(schema in doc) -> validator

    def _validate(self, schema, value, where):
        validator = self.validators.get(id(schema))
        if validator is None:
            root = dict(schema)
            root["components"] = self.doc["components"]  # so that "#/components/schemas/..." resolves
            validator = self.jsonschema.Draft202012Validator(root, format_checker=self.format_checker)
            self.validators[id(schema)] = validator
        errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
        if errors:
            e = errors[0]
            raise AssertionError("%s: the body does not match the OpenAPI document at %s: %s\nbody: %s" % (
                where, "/".join(str(p) for p in e.absolute_path) or "(top)", e.message, json.dumps(value)[:2000]))

    def check(self, method, target, reply):
        path = target.split("?", 1)[0]
        if not (path.startswith("/v1/") or path == "/metrics"):
            return
        where = "%s %s -> %d" % (method, target, reply.status)
        problem = self.doc["components"]["schemas"]["Problem"]
        match = next((r for r in self.routes if r[1].match(path)), None)
        if match is None or method.lower() not in match[3]:
            # An unknown path (404) or method (405) is fine, as long as it is answered with a problem.
            assert reply.status in (404, 405), "%s: not in the OpenAPI document" % where
            assert reply.content_type.startswith("application/problem+json"), where
            self._validate(problem, reply.json, where)
            self.checked += 1
            return
        op = match[3][method.lower()]
        resp = op["responses"].get(str(reply.status)) or op["responses"].get("default")
        assert resp is not None, "%s: status not in the OpenAPI document (%s)" % (where, sorted(op["responses"]))
        content = resp.get("content")
        if not content:
            assert not reply.raw, "%s: the document describes no body, the server sent %r" % (where, reply.raw[:200])
        else:
            media = reply.content_type.split(";")[0].strip()
            key = next((k for k in content if k.split(";")[0].strip() == media), None)
            assert key is not None, "%s: media type %r not in the document (%s)" % (where, media, list(content))
            schema = content[key].get("schema")
            if schema is not None and "json" in media:
                self._validate(schema, reply.json, where)
        self.checked += 1


class Client:
    """HTTPS client for one vpcd. `token`: "admin" / "viewer" (the Vpcd's tokens of that role), a token string, or
    None for no Authorization header. Every response is checked against `checker` when one is given."""

    def __init__(self, port, cafile, tokens=None, default_token="admin", checker=None, host="127.0.0.1"):
        self.host, self.port = host, port
        self.ctx = ssl.create_default_context(cafile=cafile)
        self.tokens = tokens if tokens is not None else {}
        self.default_token = default_token
        self.checker = checker

    @property
    def admin(self):
        return self.tokens.get("admin")

    @property
    def viewer(self):
        return self.tokens.get("viewer")

    def connection(self, timeout=30):
        return http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=timeout)

    def _bearer(self, token):
        if token == "default":
            token = self.default_token
        return self.tokens.get(token, token) if token in ("admin", "viewer") else token

    def request(self, method, path, body=None, token="default", raw=None, headers=None, timeout=30, conn=None):
        h = dict(headers or {})
        bearer = self._bearer(token)
        if bearer:
            h["Authorization"] = "Bearer " + bearer
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        c = conn or self.connection(timeout)
        try:
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            reply = Reply(r.status, r.getheaders(), r.read())
        finally:
            if conn is None:
                c.close()
        if self.checker is not None:
            self.checker.check(method, path, reply)
        return reply

    def oversized_post(self, path, size_bytes, timeout=30):
        """Announces a `size_bytes` JSON body, sends its first KiB and reads the answer (the rest is never sent)."""
        c = self.connection(timeout)
        try:
            c.putrequest("POST", path)
            c.putheader("Authorization", "Bearer " + self._bearer("default"))
            c.putheader("Content-Type", "application/json")
            c.putheader("Content-Length", str(size_bytes))
            c.endheaders(b'{"name": "' + b"a" * 1024)
            r = c.getresponse()
            reply = Reply(r.status, r.getheaders(), r.read())
        finally:
            c.close()
        if self.checker is not None:
            self.checker.check("POST", path, reply)
        return reply

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

    def call(self, method, path, body=None, expect=(200, 201, 204), **kw):
        """The parsed body of a successful call; ApiError otherwise."""
        r = self.request(method, path, body=body, **kw)
        if r.status not in expect:
            raise ApiError(r.status, r.raw.decode(errors="replace"))
        return r.json

    def create(self, kind, body):
        r = self.post("/v1/" + kind, body)
        assert r.status == 201, r
        return r.json


class Vpcd:
    """One vpcd process on a state dir, listening on 127.0.0.1:0 (the port it bound is read back from
    STATE/listen-url). With no state_dir it makes a temporary one, removed by close(). start() again after stop() or
    kill() reuses the state dir (a restart); the port may change then."""

    def __init__(self, state_dir=None, workers=1, extra=(), extra_args=(), check_openapi=False):
        self._tmp = None
        if state_dir is None:
            self._tmp = tempfile.mkdtemp(prefix="vpcd-test-%d-" % os.getpid())
            state_dir = os.path.join(self._tmp, "state")
            os.mkdir(state_dir)
            self.log_path = os.path.join(self._tmp, "vpcd.log")
        else:
            self.log_path = os.path.join(os.path.dirname(os.path.abspath(state_dir)),
                                         os.path.basename(os.path.abspath(state_dir)) + ".log")
        self.state_dir = state_dir
        self.workers = workers
        self.extra = list(extra) + list(extra_args)
        self.check_openapi = check_openapi
        self.checker = None
        self.proc = None
        self.port = None
        self.instance = None  # datapath instance name, from the log: its run dir is /run/vpcd/INSTANCE
        self.tokens = {}      # role -> the first token made for it
        self._clients = {}    # token -> Client, for this start's port
        self._log = None

    # Compatibility with the older harness names.
    @property
    def state(self):
        return self.state_dir

    @property
    def admin_token(self):
        return self.tokens.get("admin") or self.token("admin")

    def token(self, role="admin"):
        """A new token of `role` (vpcd token create); the first one of each role is the clients' default."""
        out = subprocess.run([vpcd_binary(), "token", "create", "--state-dir", self.state_dir, "--role", role],
                             check=True, capture_output=True, text=True, timeout=60)
        tok = out.stdout.strip()
        assert re.fullmatch(r"vpcd_[a-z2-7]{12}_[A-Za-z0-9_-]{43}", tok), tok
        self.tokens.setdefault(role, tok)
        return tok

    def cafile(self):
        return os.path.join(self.state_dir, "tls", "cert.pem")

    def start(self, timeout=START_TIMEOUT_S):
        if not os.access(vpcd_binary(), os.X_OK):
            raise RuntimeError("%s is not built: build it first (ninja -C build vpcd)" % vpcd_binary())
        url_file = os.path.join(self.state_dir, "listen-url")
        with contextlib.suppress(FileNotFoundError):
            os.remove(url_file)  # left by a vpcd that was killed
        self._log = open(self.log_path, "ab")
        offset = self._log.tell()
        self.proc = subprocess.Popen(
            [vpcd_binary(), "--state-dir", self.state_dir, "--listen", "127.0.0.1:0", "--workers", str(self.workers)]
            + self.extra, stdout=self._log, stderr=self._log)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("vpcd exited with %s:\n%s" % (self.proc.returncode, self.log_tail()))
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("vpcd did not write %s:\n%s" % (url_file, self.log_tail()))
            with contextlib.suppress(FileNotFoundError):
                with open(url_file) as f:
                    m = re.fullmatch(r"https://127\.0\.0\.1:(\d+)\n", f.read())
                if m:
                    self.port = int(m.group(1))
                    break
            time.sleep(0.02)
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            inst = re.search(rb"instance ([0-9a-f]+)", f.read())
        self.instance = inst.group(1).decode() if inst else self.instance
        self._clients = {}
        plain = Client(self.port, self.cafile())
        while True:
            with contextlib.suppress(OSError, http.client.HTTPException):
                if plain.get("/v1/health", token=None, timeout=5).status == 200:
                    break
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.kill()
                raise RuntimeError("vpcd /v1/health never answered:\n" + self.log_tail())
            time.sleep(0.05)
        if self.check_openapi and self.checker is None:
            r = plain.get("/v1/openapi.json", token=None)
            assert r.status == 200, r
            self.checker = OpenApiChecker(r.json)
        return self

    def client(self, token="admin"):
        """A client whose default token is `token` (a role name or a token string)."""
        if token in ("admin", "viewer") and token not in self.tokens:
            self.token(token)
        c = self._clients.get(token)
        if c is None:
            c = self._clients[token] = Client(self.port, self.cafile(), self.tokens, token, self.checker)
        return c

    # Requests on a default admin client (the older harness's API): returns a Reply, which unpacks as
    # (status, body, headers).
    def connection(self, timeout=30):
        return self.client().connection(timeout)

    def request(self, method, path, body=None, token=None, conn=None, headers=None):
        return self.client(token or "admin").request(method, path, body=body, token="default" if token else None,
                                                     conn=conn, headers=headers)

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def log_tail(self, n=60):
        try:
            with open(self.log_path, "rb") as f:
                return b"".join(f.readlines()[-n:]).decode(errors="replace")
        except OSError:
            return ""

    def kill(self, sig=signal.SIGKILL, timeout=30):
        """Sends `sig` (default SIGKILL) and waits; the process's exit status, or None when none ran."""
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

    def stop(self, timeout=20):
        """SIGTERM (a clean shutdown: the datapath's objects stay for the next start), SIGKILL after `timeout`."""
        return self.kill(signal.SIGTERM, timeout)

    def remove_run_dir(self):
        """After the last stop: removes the datapath's marker directory for this (temporary) state dir."""
        if self.instance and (self.proc is None or self.proc.poll() is not None):
            shutil.rmtree(os.path.join("/run/vpcd", self.instance), ignore_errors=True)

    def close(self):
        """Stops the process, removes its run dir and, when the harness made the state dir, the state dir."""
        self.stop()
        self.remove_run_dir()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()


def wait_for(pred, timeout=20, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %.1fs waiting for %s (last: %r)" % (timeout, what, last))


def sh(cmd, check=True, timeout=60):
    r = subprocess.run(cmd, shell=isinstance(cmd, str), capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"{cmd}: exit {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


def need_root():
    if os.geteuid() != 0:
        import pytest
        pytest.fail("needs root (vpcd creates interfaces and namespaces)")


def netns_exists(name):
    return os.path.exists(os.path.join("/run/netns", name))


def netns_delete(name):
    """Deletes a namespace this test run named (and so created through vpcd); its veth ends go with it."""
    if netns_exists(name):
        subprocess.run(["ip", "netns", "delete", name], capture_output=True, timeout=30)


def link_delete(ifname):
    subprocess.run(["ip", "link", "delete", ifname], capture_output=True, timeout=30)


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
