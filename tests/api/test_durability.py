"""Durability: vpcd is SIGKILLed while several client threads make >= 1000 concurrent writes. After a restart every
acknowledged (2xx) write is present with the acknowledged content, every acknowledged delete is gone, nothing is
half-written (no NIC without its IPs, no subnet without its VPC), and SQLite's integrity and foreign-key checks pass.
The few NICs use tap backends named for this run and are removed at the end."""
import os
import signal
import sqlite3
import subprocess
import threading
import time

import pytest

from vpcdtest import Vpcd, link_delete, need_root, wait_for

THREADS = 6
KILL_AFTER_ACKS = 1000
MAX_NICS = 24


class Ledger:
    """What the server acknowledged, per object id: the body it returned, or None once a delete was acknowledged."""

    def __init__(self):
        self.lock = threading.Lock()
        self.objects = {}  # (kind, id) -> acknowledged object, or None when deleted
        self.in_flight = set()  # (kind, id) with a change sent but not yet acknowledged: either outcome is right
        self.acks = 0
        self.nic_budget = MAX_NICS

    def begin(self, kind, obj_id):
        with self.lock:
            self.in_flight.add((kind, obj_id))

    def ack(self, kind, obj_id, obj):
        with self.lock:
            self.objects[(kind, obj_id)] = obj
            self.in_flight.discard((kind, obj_id))
            self.acks += 1

    def settled(self):
        """The acknowledged objects whose last change was acknowledged (a kill may have cut the answer of the
        change after it, which then may or may not have been committed)."""
        with self.lock:
            return {k: v for k, v in self.objects.items() if k not in self.in_flight}

    def take_nic(self):
        with self.lock:
            if self.nic_budget <= 0:
                return False
            self.nic_budget -= 1
            return True


def writer(d, token, ledger, thread_no, stop, errors, tap_prefix):
    """Creates VPC -> subnet -> (sometimes) NIC chains and deletes some of them, until the server goes away."""
    conn = d.connection(timeout=10)
    i = 0
    try:
        while not stop.is_set():
            i += 1
            a, b = 100 + thread_no, i % 250
            status, vpc, _ = d.request("POST", "/v1/vpcs", {"cidrs": ["10.%d.%d.0/24" % (a, b)],
                                                             "name": "t%d-%d" % (thread_no, i)},
                                       token=token, conn=conn)
            if status == 409:  # this thread wrapped around its address range: reuse is refused, move on
                continue
            if status != 201:
                errors.append(("vpc", status, vpc))
                return
            ledger.ack("vpcs", vpc["id"], vpc)
            status, sn, _ = d.request("POST", "/v1/subnets", {"vpc_id": vpc["id"], "cidr": "10.%d.%d.0/25" % (a, b)},
                                      token=token, conn=conn)
            if status != 201:
                errors.append(("subnet", status, sn))
                return
            ledger.ack("subnets", sn["id"], sn)
            if i % 7 == 0 and ledger.take_nic():
                body = {"subnet_id": sn["id"],
                        "backend": {"type": "tap", "ifname": "%s%d_%d" % (tap_prefix, thread_no, i)},
                        "ips": ["10.%d.%d.10" % (a, b), "10.%d.%d.11" % (a, b)]}
                status, nic, _ = d.request("POST", "/v1/nics", body, token=token, conn=conn)
                if status != 201:
                    errors.append(("nic", status, nic))
                    return
                ledger.ack("nics", nic["id"], nic)
            elif i % 3 == 0:
                ledger.begin("subnets", sn["id"])
                status, _, _ = d.request("DELETE", "/v1/subnets/" + sn["id"], token=token, conn=conn)
                if status != 204:
                    errors.append(("delete subnet", status, None))
                    return
                ledger.ack("subnets", sn["id"], None)
                ledger.begin("vpcs", vpc["id"])
                status, _, _ = d.request("DELETE", "/v1/vpcs/" + vpc["id"], token=token, conn=conn)
                if status != 204:
                    errors.append(("delete vpc", status, None))
                    return
                ledger.ack("vpcs", vpc["id"], None)
    except (OSError, ValueError, Exception) as e:  # the kill: connection reset, short read, ...
        if not stop.is_set():
            errors.append(("exception before the kill", repr(e), None))
    finally:
        conn.close()


def links_with_prefix(prefix):
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, timeout=30).stdout
    names = []
    for line in out.splitlines():
        parts = line.split(":", 2)
        if len(parts) > 1:
            name = parts[1].strip().split("@")[0]
            if name.startswith(prefix):
                names.append(name)
    return names


def list_all(d, token, kind):
    items, offset = [], 0
    while True:
        status, page, _ = d.request("GET", "/v1/%s?limit=1000&offset=%d" % (kind, offset), token=token)
        assert status == 200, page
        items += page["items"]
        offset += len(page["items"])
        if offset >= page["total"] or not page["items"]:
            return items


def test_kill9_during_concurrent_writes(state_dir, vpcd_factory):
    need_root()
    tap_prefix = "vd%d_" % (os.getpid() % 10000)
    d = vpcd_factory(state_dir, workers=1)
    token = d.token("admin")
    d.start()
    ledger, stop, errors = Ledger(), threading.Event(), []
    threads = [threading.Thread(target=writer, args=(d, token, ledger, n, stop, errors, tap_prefix))
               for n in range(THREADS)]
    nic_ifnames = []
    try:
        for t in threads:
            t.start()
        wait_for(lambda: ledger.acks >= KILL_AFTER_ACKS or errors or not any(t.is_alive() for t in threads),
                 timeout=600, interval=0.01, what="%d acknowledged writes" % KILL_AFTER_ACKS)
        assert not errors, errors[:5]
        stop.set()
        d.kill(signal.SIGKILL)  # the writers are still writing: some requests are in flight
        acked_at_kill = ledger.acks
        for t in threads:
            t.join(timeout=60)
        assert acked_at_kill >= KILL_AFTER_ACKS
        print("SIGKILL after %d acknowledged writes from %d threads" % (acked_at_kill, THREADS))
        assert not errors, errors[:5]

        with sqlite3.connect(os.path.join(state_dir, "vpcd.db")) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert db.execute("PRAGMA foreign_key_check").fetchall() == []

        d.start()
        objects = ledger.settled()
        conn = d.connection()
        try:
            for (kind, obj_id), acked in objects.items():
                status, got, _ = d.request("GET", "/v1/%s/%s" % (kind, obj_id), token=token, conn=conn)
                if acked is None:
                    assert status == 404, (kind, obj_id, "acknowledged delete came back", got)
                    continue
                assert status == 200, (kind, obj_id, "acknowledged write lost", status, got)
                for field in ("cidrs", "vni", "cidr", "gateway", "vpc_id", "subnet_id", "mac", "ips", "backend"):
                    if field in acked:
                        assert got[field] == acked[field], (kind, obj_id, field, got[field], acked[field])
        finally:
            conn.close()

        vpcs = {v["id"] for v in list_all(d, token, "vpcs")}
        subnets = list_all(d, token, "subnets")
        nics = list_all(d, token, "nics")
        nic_ifnames = [n["backend"]["ifname"] for n in nics if n["backend"]["type"] == "tap"]
        for s in subnets:
            assert s["vpc_id"] in vpcs, ("subnet without its VPC", s)
        subnet_ids = {s["id"] for s in subnets}
        for n in nics:
            assert n["subnet_id"] in subnet_ids, ("NIC without its subnet", n)
            assert len(n["ips"]) == 2, ("NIC without its IPs", n)
        # The reconciler rebuilt the NICs after the kill with no API call: every tap exists and none is in error
        # (a tap no hypervisor has opened has no carrier, so "down" is its healthy state here).
        def nic_problems():
            bad = []
            for n in nics:
                got = d.request("GET", "/v1/nics/" + n["id"], token=token)[1]
                if got["state"] == "error" or not os.path.exists("/sys/class/net/" + n["backend"]["ifname"]):
                    bad.append((n["backend"]["ifname"], got["state"], got.get("state_detail")))
            return bad
        deadline = time.monotonic() + 60
        problems = nic_problems()
        while problems and time.monotonic() < deadline:
            time.sleep(0.2)
            problems = nic_problems()
        assert not problems, ("NICs not rebuilt after the restart (ifname, state, detail)", problems)
        assert nics, "no NIC was acknowledged before the kill"
    finally:
        stop.set()
        try:
            if d.proc and d.proc.poll() is None:
                for n in list_all(d, token, "nics"):
                    d.request("DELETE", "/v1/nics/" + n["id"], token=token)
                    nic_ifnames.append(n["backend"].get("ifname", ""))
                time.sleep(0.5)
        except Exception:
            pass
        d.kill(signal.SIGTERM)
        d.remove_run_dir()
        for t in threads:
            t.join(timeout=30)
        # Every tap this run named (acknowledged or caught in flight by the kill): names carry this run's prefix.
        for name in set(nic_ifnames) | set(links_with_prefix(tap_prefix)):
            if name.startswith(tap_prefix):
                link_delete(name)


KILL_ROUNDS = int(os.environ.get("VPCD_KILL_ROUNDS", "20"))
ACKS_PER_ROUND = 40


def ping(ns, addr, timeout_s=0.5):
    r = subprocess.run(["ip", "netns", "exec", ns, "ping", "-n", "-q", "-c", "1", "-W", str(timeout_s), addr],
                       capture_output=True, text=True, timeout=timeout_s + 10)
    return r.returncode == 0


def check_db(state_dir):
    """integrity_check and foreign_key_check on the database of a stopped vpcd."""
    db = sqlite3.connect(os.path.join(state_dir, "vpcd.db"))
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        db.close()


def check_acked(d, token, objects):
    conn = d.connection()
    try:
        for (kind, obj_id), acked in objects.items():
            status, got, _ = d.request("GET", "/v1/%s/%s" % (kind, obj_id), token=token, conn=conn)
            if acked is None:
                assert status == 404, (kind, obj_id, "acknowledged delete came back", got)
                continue
            assert status == 200, (kind, obj_id, "acknowledged write lost", status, got)
            for field in ("cidrs", "vni", "cidr", "gateway", "vpc_id"):
                if field in acked:
                    assert got[field] == acked[field], (kind, obj_id, field, got[field], acked[field])
    finally:
        conn.close()


def test_kill9_repeatedly_during_writes_and_guest_traffic(state_dir):  # noqa: F811
    """KILL_ROUNDS times: writers busy, two netns guests pinging each other, SIGKILL. After every kill the database
    passes its checks; after every restart every acknowledged write is there and the guests reach each other again
    with no API call (the reconciler restores the datapath from the store)."""
    need_root()
    tag = "%d" % (os.getpid() % 100000)
    ns_a, ns_b = "apisec%sa" % tag, "apisec%sb" % tag
    octet = 16 + os.getpid() % 200  # these addresses exist only inside the two namespaces
    ip_a, ip_b = "10.%d.1.10" % octet, "10.%d.1.20" % octet
    for ns in (ns_a, ns_b):
        assert not os.path.exists("/run/netns/" + ns)
    d = Vpcd(state_dir, workers=1)
    token = d.token("admin")
    d.start()
    pinger = None
    threads = []
    stop = threading.Event()
    try:
        status, vpc, _ = d.request("POST", "/v1/vpcs", {"cidrs": ["10.%d.0.0/16" % octet], "name": "guests"},
                                   token=token)
        assert status == 201, vpc
        status, sn, _ = d.request("POST", "/v1/subnets", {"vpc_id": vpc["id"], "cidr": "10.%d.1.0/24" % octet},
                                  token=token)
        assert status == 201, sn
        for ns, ip in ((ns_a, ip_a), (ns_b, ip_b)):
            status, nic, _ = d.request("POST", "/v1/nics", {"subnet_id": sn["id"], "ips": [ip],
                                                            "backend": {"type": "netns", "netns": ns}}, token=token)
            assert status == 201, nic
        wait_for(lambda: ping(ns_a, ip_b) and ping(ns_b, ip_a), 30, what="guests to ping each other")
        # Guest traffic for the whole test (bounded by -w), across every kill and restart.
        pinger = subprocess.Popen(["ip", "netns", "exec", ns_a, "ping", "-n", "-q", "-i", "0.05", "-w", "600", ip_b],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        ledger = Ledger()
        ledger.nic_budget = 0  # the writers make VPCs and subnets; the guests' NICs are the datapath under test
        t0 = time.monotonic()
        for rnd in range(KILL_ROUNDS):
            stop = threading.Event()
            errors = []
            start_acks = ledger.acks
            threads = [threading.Thread(target=writer, args=(d, token, ledger, n, stop, errors, "unused"))
                       for n in range(3)]
            for t in threads:
                t.start()
            wait_for(lambda: ledger.acks >= start_acks + ACKS_PER_ROUND or errors
                     or not any(t.is_alive() for t in threads), timeout=120, interval=0.005,
                     what="round %d: %d acknowledged writes" % (rnd, ACKS_PER_ROUND))
            assert not errors, (rnd, errors[:5])
            stop.set()
            d.kill(signal.SIGKILL)  # writes in flight
            for t in threads:
                t.join(timeout=60)
            assert not errors, (rnd, errors[:5])
            check_db(state_dir)
            d.start()
            wait_for(lambda: ping(ns_a, ip_b) and ping(ns_b, ip_a), 30, interval=0.05,
                     what="round %d: guests to reach each other again with no API call" % rnd)
            check_acked(d, token, ledger.settled())
        print("%d SIGKILLs, %d acknowledged writes kept, %.1f s" % (KILL_ROUNDS, ledger.acks, time.monotonic() - t0))
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
        if pinger:
            pinger.kill()
            pinger.wait(timeout=10)
        d.kill(signal.SIGTERM)
        d.remove_run_dir()
        for ns in (ns_a, ns_b):
            if os.path.exists("/run/netns/" + ns):
                subprocess.run(["ip", "netns", "delete", ns], capture_output=True, timeout=30)


def test_full_state_filesystem(state_dir):  # noqa: F811
    """The state dir on a small tmpfs that fills up: writes answer a clear 5xx problem (507), reads still work,
    nothing acknowledged is lost or corrupted, and writes work again once space is freed."""
    need_root()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "apisec-fullfs", state_dir], check=True,
                   timeout=30)
    d = Vpcd(state_dir, workers=1)
    filler = os.path.join(state_dir, "filler")
    try:
        token = d.token("admin")
        d.start()
        acked = []
        status, vpc, _ = d.request("POST", "/v1/vpcs", {"cidrs": ["10.1.0.0/16"]}, token=token)
        assert status == 201, vpc
        acked.append(vpc["id"])
        with open(filler, "wb", buffering=0) as f:  # take every free byte
            for size in (1 << 16, 1 << 12, 1 << 9, 1):
                try:
                    while True:
                        f.write(b"\0" * size)
                except OSError:
                    pass
        refused = None
        for i in range(2000):
            status, body, headers = d.request("POST", "/v1/vpcs", {"cidrs": ["10.2.0.0/16"], "name": "n%d" % i,
                                                                   "labels": {"pad": "x" * 1000}}, token=token)
            if status == 201:
                acked.append(body["id"])
                continue
            refused = (status, body, headers)
            break
        assert refused is not None, "the filesystem never filled up"
        status, body, headers = refused
        assert status == 507, refused
        assert headers.get("content-type") == "application/problem+json"
        assert "full" in body["detail"], body
        status, page, _ = d.request("GET", "/v1/vpcs?limit=1000", token=token)  # reads still work
        assert status == 200 and page["total"] == len(acked), (status, page.get("total"), len(acked))

        os.unlink(filler)
        status, vpc, _ = d.request("POST", "/v1/vpcs", {"cidrs": ["10.3.0.0/16"]}, token=token)
        assert status == 201, vpc
        acked.append(vpc["id"])
        conn = d.connection()
        try:
            for vid in acked:
                assert d.request("GET", "/v1/vpcs/" + vid, token=token, conn=conn)[0] == 200, vid
        finally:
            conn.close()
        d.kill(signal.SIGTERM)
        check_db(state_dir)
    finally:
        d.kill(signal.SIGTERM)
        d.remove_run_dir()
        if os.path.exists(filler):
            os.unlink(filler)
        subprocess.run(["umount", state_dir], capture_output=True, timeout=30)
