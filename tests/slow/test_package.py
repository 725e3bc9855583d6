"""The Debian package (issue 5): builds, passes lintian without errors, installs without systemd, runs as its unit says,
upgrades keeping the database, purges clean.

The daemon is started with the unit's own ExecStart line, as the unit's user and with the unit's capabilities
(setpriv), inside a network namespace of the test's own so 127.0.0.1:8443 cannot collide with anything else.
"""
import configparser
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time

import pytest

SRC = os.environ.get("VPCD_SOURCE_DIR", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def run(cmd, check=True, timeout=1800, **kw):
    r = subprocess.run(cmd, shell=isinstance(cmd, str), capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{cmd} failed ({r.returncode}):\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}")
    return r


def unit_exec_start(unit_text):
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.read_string(unit_text)
    svc = cp["Service"]
    caps = [c.lower() for c in svc["AmbientCapabilities"].split()]
    return shlex.split(svc["ExecStart"]), svc["User"], svc["Group"], caps


@pytest.fixture(scope="module")
def debs():
    if run("dpkg-query -W -f='${Status}' vpcd", check=False).stdout.startswith("install ok installed"):
        pytest.fail("a vpcd package is already installed on this machine; the package test installs and purges its "
                    "own and will not touch another")
    out = tempfile.mkdtemp(prefix="vpcd-pkgtest-")
    run(["bash", os.path.join(SRC, "packaging", "build-deb.sh"), out], timeout=2400)
    deb = [f for f in os.listdir(out) if re.match(r"vpcd_.*\.deb$", f)]
    dbg = [f for f in os.listdir(out) if f.startswith("vpcd-dbgsym_")]
    assert len(deb) == 1, os.listdir(out)
    assert dbg, "no -dbgsym package was built"
    new = os.path.join(out, deb[0])
    # The "previous build": the same package re-versioned lower, so dpkg takes the upgrade path (old version given to
    # the maintainer scripts, conffiles and state kept).
    prev_tree = os.path.join(out, "prev")
    run(["dpkg-deb", "-R", new, prev_tree])
    control = os.path.join(prev_tree, "DEBIAN", "control")
    text = open(control).read()
    open(control, "w").write(re.sub(r"^Version: .*$", "Version: 0.0.1", text, flags=re.M))
    prev = os.path.join(out, "vpcd_0.0.1_prev.deb")
    run(["dpkg-deb", "-b", "--root-owner-group", prev_tree, prev])
    yield {"new": new, "prev": prev, "dir": out}
    run("dpkg --purge vpcd", check=False)
    shutil.rmtree(out, ignore_errors=True)


class Daemon:
    """vpcd as the unit runs it, in a private network namespace."""

    def __init__(self):
        unit = open("/lib/systemd/system/vpcd.service").read()
        self.argv, self.user, self.group, self.caps = unit_exec_start(unit)
        self.ns = f"vpkg{os.getpid()}"
        run(["ip", "netns", "add", self.ns])
        run(["ip", "netns", "exec", self.ns, "ip", "link", "set", "lo", "up"])
        capset = ",".join("+" + c.removeprefix("cap_") for c in self.caps)
        cmd = ["ip", "netns", "exec", self.ns, "setpriv", f"--reuid={self.user}", f"--regid={self.group}",
               "--init-groups", f"--inh-caps={capset}", f"--ambient-caps={capset}", "--no-new-privs"] + self.argv
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log)

    def curl(self, path, token=None, method="GET", body=None):
        cmd = ["ip", "netns", "exec", self.ns, "curl", "-sk", "-o", "-", "-w", "\n%{http_code}", "-X", method]
        if token:
            cmd += ["-H", f"Authorization: Bearer {token}"]
        if body is not None:
            cmd += ["-H", "Content-Type: application/json", "--data", json.dumps(body)]
        r = run(cmd + [f"https://127.0.0.1:8443{path}"], check=False, timeout=30)
        text, _, code = r.stdout.rpartition("\n")
        return int(code or 0), text

    def wait_healthy(self):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            code, _ = self.curl("/v1/health")
            if code == 200:
                return
            time.sleep(0.2)
        self.log.seek(0)
        raise AssertionError("vpcd from the package did not answer /v1/health:\n" + self.log.read().decode()[-3000:])

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        run(["ip", "netns", "del", self.ns], check=False)


def test_package_lifecycle(debs):
    lint = run(["lintian", "--fail-on", "error", "--no-tag-display-limit", debs["new"]], check=False)
    assert lint.returncode == 0, "lintian reports errors:\n" + lint.stdout

    # Install the previous build (no systemd running here: the maintainer scripts must cope).
    run(["dpkg", "-i", debs["prev"]])
    token_file = "/var/lib/vpcd/admin-token"
    st = os.stat(token_file)
    assert st.st_uid == 0 and (st.st_mode & 0o077) == 0, "token file must be readable by root only"
    token = open(token_file).read().strip()
    assert token.startswith("vpcd_")

    d = Daemon()
    try:
        d.wait_healthy()
        code, body = d.curl("/v1/vpcs", token=token)
        assert code == 200, body
        code, _ = d.curl("/v1/vpcs", token="vpcd_bogus_bogus")
        assert code == 401
        code, body = d.curl("/v1/vpcs", token=token, method="POST",
                            body={"name": "before-upgrade", "cidrs": ["10.99.0.0/16"]})
        assert code == 201, body
        vpc_id = json.loads(body)["id"]
    finally:
        d.stop()

    # Upgrade: the database and the token survive, migrations run at start.
    run(["dpkg", "-i", debs["new"]])
    files = [l for l in run(["dpkg", "-L", "vpcd"]).stdout.splitlines() if l.strip()]
    d = Daemon()
    try:
        d.wait_healthy()
        code, body = d.curl(f"/v1/vpcs/{vpc_id}", token=token)
        assert code == 200, body
        assert json.loads(body)["name"] == "before-upgrade"
    finally:
        d.stop()

    # Remove keeps state; purge removes everything the package put or made.
    run(["dpkg", "--remove", "vpcd"])
    assert os.path.exists("/var/lib/vpcd/vpcd.db") or os.listdir("/var/lib/vpcd"), "remove must keep the state"
    run(["dpkg", "--purge", "vpcd"])
    left = [f for f in files if os.path.isfile(f) or (os.path.isdir(f) and f.startswith(("/etc/vpcd", "/var/lib/vpcd",
                                                                                            "/usr/share/vpcd")))]
    assert not left, f"purge left files behind: {left}"
    for path in ("/var/lib/vpcd", "/etc/vpcd", "/usr/share/vpcd"):
        assert not os.path.exists(path), f"purge left {path}"
