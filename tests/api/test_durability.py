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

from vpcdtest import link_delete, need_root, wait_for

THREADS = 6
KILL_AFTER_ACKS = 1000
MAX_NICS = 24


class Ledger:
    """What the server acknowledged, per object id: the body it returned, or None once a delete was acknowledged."""

    def __init__(self):
        self.lock = threading.Lock()
        self.objects = {}  # (kind, id) -> acknowledged object, or None when deleted
        self.acks = 0
        self.nic_budget = MAX_NICS

    def ack(self, kind, obj_id, obj):
        with self.lock:
            self.objects[(kind, obj_id)] = obj
            self.acks += 1

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
                status, _, _ = d.request("DELETE", "/v1/subnets/" + sn["id"], token=token, conn=conn)
                if status != 204:
                    errors.append(("delete subnet", status, None))
                    return
                ledger.ack("subnets", sn["id"], None)
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
        with ledger.lock:
            objects = dict(ledger.objects)
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
