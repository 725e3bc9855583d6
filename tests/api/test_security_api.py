"""Abuse of the API port against a real vpcd (issue 11): an idle-connection flood from one client, an unauthenticated
request announcing a large body, control bytes in a request path, and token revocation while vpcd runs
(`vpcd token list` / `vpcd token revoke`). vpcd listens on 127.0.0.1 with an ephemeral port; the flood comes from
127.0.0.2 (loopback), so nothing leaves the machine."""
import re
import resource
import socket
import ssl
import subprocess
import time

from vpcdtest import VPCD, Vpcd, wait_for  # noqa: F401  (state_dir: the shared pytest plugin's fixture)


def tls_socket(d, source="127.0.0.1"):
    raw = socket.create_connection(("127.0.0.1", d.port), timeout=10, source_address=(source, 0))
    return ssl.create_default_context(cafile=d.cafile()).wrap_socket(raw, server_hostname="localhost")


def read_status(sock, timeout=5.0):
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    m = re.match(rb"HTTP/1\.1 (\d+)", data)
    return int(m.group(1)) if m else None


def test_idle_flood_from_one_client_leaves_health_and_admin(state_dir):  # noqa: F811
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    d = Vpcd(state_dir, workers=1)
    token = d.token("admin")
    d.start()
    flood = []
    try:
        for _ in range(1100):
            s = socket.socket()
            s.bind(("127.0.0.2", 0))
            s.connect(("127.0.0.1", d.port))
            flood.append(s)
        time.sleep(0.5)  # let vpcd accept (or refuse) them all
        status, body, _ = d.request("GET", "/v1/health")
        assert status == 200, body
        status, body, _ = d.request("POST", "/v1/vpcs", {"cidrs": ["10.1.0.0/16"]}, token=token)
        assert status == 201, body
        status, metrics, _ = d.request("GET", "/metrics", token=token)
        assert status == 200
    finally:
        for s in flood:
            s.close()
        d.kill()
        d.remove_run_dir()


def test_unauthenticated_large_body_is_refused_before_it_is_read(state_dir):  # noqa: F811
    d = Vpcd(state_dir, workers=1)
    d.start()
    try:
        s = tls_socket(d)
        try:
            s.sendall(b"POST /v1/vpcs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 1000000\r\n\r\n")  # and no body
            assert read_status(s) == 401
        finally:
            s.close()
    finally:
        d.kill()
        d.remove_run_dir()


def test_control_bytes_in_a_path_are_escaped_in_the_log(state_dir):  # noqa: F811
    d = Vpcd(state_dir, workers=1)
    token = d.token("viewer")
    d.start()
    try:
        status, _, _ = d.request("GET", "/v1/x%1b%5b2J%1b]0;owned%07", token=token)
        assert status == 404
    finally:
        d.kill(__import__("signal").SIGTERM)
        d.remove_run_dir()
    with open(d.log_path, "rb") as f:
        log = f.read()
    assert b"\x1b" not in log and b"\x07" not in log
    assert b"GET /v1/x\\x1b[2J\\x1b]0;owned\\x07 404" in log, log[-2000:]


def test_token_list_and_revoke_take_effect_at_once(state_dir):  # noqa: F811
    d = Vpcd(state_dir, workers=1)
    keep = d.token("admin")
    gone = d.token("admin")
    viewer = d.token("viewer")
    d.start()
    try:
        gone_id = gone.split("_")[1]
        out = subprocess.run([VPCD, "token", "list", "--state-dir", state_dir], capture_output=True, text=True,
                             timeout=60, check=True).stdout
        for tok, role in ((keep, "admin"), (gone, "admin"), (viewer, "viewer")):
            assert re.search(r"^%s\s+%s\s+\d{4}-" % (tok.split("_")[1], role), out, re.M), out
            assert tok.split("_", 2)[2] not in out  # never a secret (base64url: it may hold "_" itself)
        conn = d.connection()  # a keep-alive connection that already used the token
        try:
            assert d.request("GET", "/v1/vpcs", token=gone, conn=conn)[0] == 200
            r = subprocess.run([VPCD, "token", "revoke", gone_id, "--state-dir", state_dir], capture_output=True,
                               text=True, timeout=60)
            assert r.returncode == 0, r.stderr
            # Refused from the very next request (no cache, no restart), also on the open connection.
            assert d.request("GET", "/v1/vpcs", token=gone, conn=conn)[0] == 401
        finally:
            conn.close()
        assert d.request("GET", "/v1/vpcs", token=gone)[0] == 401
        assert d.request("GET", "/v1/vpcs", token=keep)[0] == 200
        assert d.request("GET", "/v1/vpcs", token=viewer)[0] == 200
        out = subprocess.run([VPCD, "token", "list", "--state-dir", state_dir], capture_output=True, text=True,
                             timeout=60, check=True).stdout
        assert gone_id not in out
        r = subprocess.run([VPCD, "token", "revoke", "aaaaaaaaaaaa", "--state-dir", state_dir], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 1 and "no token" in r.stderr
    finally:
        d.kill()
        d.remove_run_dir()
