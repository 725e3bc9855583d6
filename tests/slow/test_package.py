"""The Debian package (issue 5): builds, passes lintian without errors, installs without systemd, runs as its unit says,
creates a tap NIC and a netns NIC with only the unit's capabilities, upgrades keeping the database, purges clean.

The daemon is started with the unit's own ExecStart line, as the unit's user and group, with the unit's ambient
capabilities and bounding set and no_new_privs (setpriv), in a network namespace of the test's own (so 127.0.0.1:8443
cannot collide with anything else) but in the host's mount namespace, as the unit runs it: the guest namespaces vpcd
names under /run/netns are visible to the host. /sys is remounted privately so it shows the test's namespace.
Everything the test makes carries its pid in the name and is removed (and the package purged) even when it fails.
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
PID = os.getpid()
NS = f"vpkg{PID}"          # the daemon's network namespace
GUEST_NS = f"vpkgg{PID}"   # the guest namespace vpcd creates for the netns NIC
TAP = f"vpkt{PID}"         # the tap vpcd creates
RUN_DIR = "/run/vpcd"      # the unit's RuntimeDirectory
# Whether /run/vpcd was there before the test (vpcd run by hand as root on this machine): then the test leaves it and
# makes only the packaged instance's directory in it.
RUN_DIR_EXISTED = os.path.isdir(RUN_DIR)


def instance_dir(state_dir="/var/lib/vpcd"):
    """/run/vpcd/INSTANCE of a state directory, as vpcd names it (FNV-1a 64 of the path, 10 hex digits)."""
    h = 1469598103934665603
    for c in state_dir.encode():
        h = ((h ^ c) * 1099511628211) % (1 << 64)
    return os.path.join(RUN_DIR, ("%016x" % h)[:10])


def run(cmd, check=True, timeout=1800, **kw):
    r = subprocess.run(cmd, shell=isinstance(cmd, str), capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{cmd} failed ({r.returncode}):\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}")
    return r


def unit_service(unit_text):
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.read_string(unit_text)
    return cp["Service"]


def installed():
    return run("dpkg-query -W -f='${Status}' vpcd", check=False).stdout.startswith("install ok installed")


def cleanup_host():
    """Removes what the test and the package may have left: the package (purged), our namespaces, the run dir."""
    if run("dpkg-query -W -f='${Status}' vpcd", check=False).returncode == 0:
        run("dpkg --purge vpcd", check=False)
    for ns in (GUEST_NS, NS):
        if os.path.exists(f"/run/netns/{ns}"):
            run(["ip", "netns", "del", ns], check=False)
    shutil.rmtree(instance_dir(), ignore_errors=True)
    if not RUN_DIR_EXISTED and os.path.isdir(RUN_DIR) and not os.listdir(RUN_DIR):
        os.rmdir(RUN_DIR)


@pytest.fixture(scope="module")
def debs():
    if installed() or os.path.exists("/var/lib/vpcd") or os.path.exists("/etc/vpcd"):
        pytest.fail("a vpcd package (or its state) is already on this machine; the package test installs and purges "
                    "its own and will not touch another")
    out = tempfile.mkdtemp(prefix="vpcd-pkgtest-")
    try:
        # VPCD_DEB_DIR: test the .debs build-deb.sh already put there instead of building them again.
        if os.environ.get("VPCD_DEB_DIR"):
            for f in os.listdir(os.environ["VPCD_DEB_DIR"]):
                if f.endswith(".deb"):
                    shutil.copy(os.path.join(os.environ["VPCD_DEB_DIR"], f), out)
        else:
            run(["bash", os.path.join(SRC, "packaging", "build-deb.sh"), out], timeout=2400)
        deb = [f for f in os.listdir(out) if re.match(r"vpcd_.*\.deb$", f)]
        dbg = [f for f in os.listdir(out) if f.startswith("vpcd-dbgsym_")]
        assert len(deb) == 1, os.listdir(out)
        assert dbg, "no -dbgsym package was built"
        new = os.path.join(out, deb[0])
        # The "previous build": the same package re-versioned lower, so dpkg takes the upgrade path (old version given
        # to the maintainer scripts, conffiles and state kept).
        prev_tree = os.path.join(out, "prev")
        run(["dpkg-deb", "-R", new, prev_tree])
        control = os.path.join(prev_tree, "DEBIAN", "control")
        text = open(control).read()
        open(control, "w").write(re.sub(r"^Version: .*$", "Version: 0.0.1", text, flags=re.M))
        prev = os.path.join(out, "vpcd_0.0.1_prev.deb")
        run(["dpkg-deb", "-b", "--root-owner-group", prev_tree, prev])
        yield {"new": new, "prev": prev, "dbgsym": os.path.join(out, dbg[0]), "dir": out}
    finally:
        cleanup_host()
        shutil.rmtree(out, ignore_errors=True)


class Daemon:
    """vpcd as the unit runs it (ExecStart, User, Group, capabilities, RuntimeDirectory), in the test's netns."""

    def __init__(self):
        svc = unit_service(open("/lib/systemd/system/vpcd.service").read())
        self.argv = shlex.split(svc["ExecStart"])
        self.user, self.group = svc["User"], svc["Group"]
        caps = [c.lower().removeprefix("cap_") for c in svc["AmbientCapabilities"].split()]
        bounding = [c.lower().removeprefix("cap_") for c in svc["CapabilityBoundingSet"].split()]
        assert set(caps) <= set(bounding), "ambient capabilities outside the bounding set are dropped"
        assert svc["RuntimeDirectory"] == "vpcd"
        if not RUN_DIR_EXISTED:
            run(["install", "-d", "-o", self.user, "-g", self.group, "-m", "0755", RUN_DIR])
        else:
            run(["install", "-d", "-o", self.user, "-g", self.group, "-m", "0755", instance_dir()])
        if not os.path.exists(f"/run/netns/{NS}"):
            run(["ip", "netns", "add", NS])
            run(["ip", "netns", "exec", NS, "ip", "link", "set", "lo", "up"])
        capset = ",".join("+" + c for c in caps)
        priv = ["setpriv", f"--reuid={self.user}", f"--regid={self.group}", "--init-groups",
                f"--inh-caps=-all,{capset}", f"--ambient-caps=-all,{capset}",
                f"--bounding-set=-all,{','.join('+' + c for c in bounding)}", "--no-new-privs"]
        # The host's mount namespace semantics (a copy whose mounts stay peers of the host's, so /run/netns bind
        # mounts propagate), with a private /sys for the test's network namespace.
        shell = 'mount --make-rslave /sys && mount -t sysfs sysfs /sys && exec "$@"'
        cmd = ["nsenter", f"--net=/run/netns/{NS}", "unshare", "--mount", "--propagation", "unchanged",
               "sh", "-c", shell, "sh"] + priv + self.argv
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log)

    def output(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-4000:]

    def curl(self, path, token=None, method="GET", body=None):
        cmd = ["ip", "netns", "exec", NS, "curl", "-sk", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}",
               "-X", method]
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
        raise AssertionError("vpcd from the package did not answer /v1/health:\n" + self.output())

    def wait_nic(self, token, nic_id, states):
        """Waits until the NIC's state is one of `states`; "error" fails at once with vpcd's reason."""
        deadline = time.monotonic() + 20
        body = ""
        while time.monotonic() < deadline:
            code, body = self.curl(f"/v1/nics/{nic_id}", token=token)
            assert code == 200, body
            state = json.loads(body)["state"]
            assert state != "error", f"NIC {nic_id}: {body}\n{self.output()}"
            if state in states:
                return json.loads(body)
            time.sleep(0.2)
        raise AssertionError(f"NIC {nic_id} did not reach {states}: {body}\n{self.output()}")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def ns_has_link(ns, ifname):
    return run(["ip", "-n", ns, "link", "show", ifname], check=False).returncode == 0


def test_package_lifecycle(debs):
    lint = run(["lintian", "--fail-on", "error", "--no-tag-display-limit", debs["new"], debs["dbgsym"]], check=False)
    assert lint.returncode == 0, "lintian reports errors:\n" + lint.stdout

    # Install the previous build (no systemd running here: the maintainer scripts must cope).
    inst = run(["dpkg", "-i", debs["prev"]])
    token_file = "/var/lib/vpcd/admin-token"
    assert token_file in inst.stdout, "postinst must print where the token is"
    st = os.stat(token_file)
    assert st.st_uid == 0 and (st.st_mode & 0o077) == 0, "token file must be readable by root only"
    token = open(token_file).read().strip()
    assert token.startswith("vpcd_")
    assert token not in inst.stdout + inst.stderr, "the token must not be printed"
    assert os.path.isfile("/var/lib/vpcd/tls/cert.pem") and os.path.isfile("/var/lib/vpcd/tls/key.pem")
    cert_before = open("/var/lib/vpcd/tls/cert.pem").read()
    assert os.stat("/var/lib/vpcd/tls/key.pem").st_mode & 0o077 == 0

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
        code, body = d.curl("/v1/subnets", token=token, method="POST", body={"vpc_id": vpc_id, "cidr": "10.99.1.0/24"})
        assert code == 201, body
        subnet_id = json.loads(body)["id"]
        # Both NIC kinds with only the unit's capabilities, as the vpcd user.
        code, body = d.curl("/v1/nics", token=token, method="POST",
                            body={"subnet_id": subnet_id, "backend": {"type": "tap", "ifname": TAP}})
        assert code == 201, body
        tap_id = json.loads(body)["id"]
        code, body = d.curl("/v1/nics", token=token, method="POST",
                            body={"subnet_id": subnet_id, "backend": {"type": "netns", "netns": GUEST_NS,
                                                                      "ifname": "eth0"}})
        assert code == 201, body
        netns_id = json.loads(body)["id"]
        d.wait_nic(token, netns_id, ("up",))
        tap = d.wait_nic(token, tap_id, ("up", "down"))  # down until a hypervisor opens the tap: no carrier
        assert tap["state"] == "up" or "carrier" in tap["state_detail"], tap
        assert ns_has_link(NS, TAP), "the tap is not in vpcd's namespace"
        assert ns_has_link(GUEST_NS, "eth0"), "the guest namespace is not visible to the host"
        # The kernel fast path (on by default) loads and attaches with these capabilities too: both NICs carried.
        code, body = d.curl("/v1/stats", token=token)
        assert code == 200, body
        assert json.loads(body)["fastpath"] == {"enabled": True, "error": "", "ports": 2}, body
    finally:
        d.stop()

    # Upgrade: the database, the token, the certificate and the NICs survive; migrations run in postinst and at start.
    run(["dpkg", "-i", debs["new"]])
    assert open(token_file).read().strip() == token
    assert open("/var/lib/vpcd/tls/cert.pem").read() == cert_before
    files = [l for l in run(["dpkg", "-L", "vpcd"]).stdout.splitlines() if l.strip()]
    d = Daemon()
    try:
        d.wait_healthy()
        code, body = d.curl(f"/v1/vpcs/{vpc_id}", token=token)
        assert code == 200, body
        assert json.loads(body)["name"] == "before-upgrade"
        d.wait_nic(token, netns_id, ("up",))
        d.wait_nic(token, tap_id, ("up", "down"))
        assert ns_has_link(NS, TAP) and ns_has_link(GUEST_NS, "eth0")
        for nic in (tap_id, netns_id):
            code, body = d.curl(f"/v1/nics/{nic}", token=token, method="DELETE")
            assert code == 204, body
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (ns_has_link(NS, TAP) or os.path.exists(f"/run/netns/{GUEST_NS}")):
            time.sleep(0.2)
        assert not ns_has_link(NS, TAP), "deleting the tap NIC left the tap"
        assert not os.path.exists(f"/run/netns/{GUEST_NS}"), "deleting the netns NIC left its namespace"
    finally:
        d.stop()

    # Remove keeps state; purge removes everything the package put or made.
    run(["dpkg", "--remove", "vpcd"])
    assert os.path.exists("/var/lib/vpcd/vpcd.db"), "remove must keep the state"
    assert os.path.exists(token_file)
    run(["dpkg", "--purge", "vpcd"])
    left = [f for f in files if os.path.isfile(f) or (os.path.isdir(f) and f.startswith(("/etc/vpcd", "/var/lib/vpcd",
                                                                                            "/usr/share/vpcd")))]
    assert not left, f"purge left files behind: {left}"
    for path in ("/var/lib/vpcd", "/etc/vpcd", "/usr/share/vpcd") + (() if RUN_DIR_EXISTED else (RUN_DIR,)):
        assert not os.path.exists(path), f"purge left {path}"
