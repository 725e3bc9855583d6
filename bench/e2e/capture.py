#!/usr/bin/env python3
"""Forwarding through vpcd with and without a packet capture on the sending guest's NIC.

Two netns guests on one vpcd (the same set-up and measurements as compare.py, whose helpers this imports):
  - TCP: iperf3, 1 stream, --duration seconds;
  - 64-byte frames: trafgen in guest 1 -> guest 2, delivered = guest 2's rx_packets delta;
each measured with no capture, then while `GET /v1/nics/ID/capture` streams to a client that reads and discards
(a) everything (default snaplen: whole GSO super-frames), (b) snaplen 96, (c) a filter that matches nothing (the
workers still copy every frame into the capture rings; nothing is written out). The capture's own counts (frames
written, frames dropped because a ring was full) come from GET /v1/stats.

Everything it creates (namespaces vbe<pid>-*, a vpcd state dir) is removed at the end, also on failure. Traffic only
flows between the namespaces it creates, to addresses that exist only there (10.77.0.0/24).

Usage (root): python3 bench/e2e/capture.py [--build-dir build] [--duration 5] [--workers 1] [--modes off,all,...]
                                           [--kinds tcp,small] [--json out.json]
"""
import argparse
import contextlib
import http.client
import json
import os
import shutil
import socket
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare as cmp  # noqa: E402


class CaptureClient:
    """GET /v1/nics/ID/capture in a thread, reading and discarding the pcap stream; counts bytes."""

    def __init__(self, api, nic_id, **params):
        self.conn = api.connection(timeout=120)
        self.conn.request("GET", f"/v1/nics/{nic_id}/capture?{urllib.parse.urlencode(params)}",
                          headers={"Authorization": f"Bearer {api.admin}"})
        self.sock = self.conn.sock  # getresponse() hands it to the response (Connection: close) and forgets it
        self.resp = self.conn.getresponse()
        if self.resp.status != 200:
            raise RuntimeError(f"capture: {self.resp.status} {self.resp.read()[:300]}")
        self.bytes = 0
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        with contextlib.suppress(OSError, http.client.HTTPException):
            while True:
                b = self.resp.read1(1 << 16)
                if not b:
                    return
                self.bytes += len(b)

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.conn.close()
        self.thread.join(10)


@contextlib.contextmanager
def vpcd_guests(build_dir, workers):
    """vpcd (the shared harness: own state dir, 127.0.0.1:0) with two netns NICs in one VPC; yields (api, nics, pids)."""
    cmp.vt.BUILD = os.path.abspath(build_dir)
    d = cmp.vt.Vpcd(workers=workers)
    try:
        d.start(timeout=20)
        api = d.client()
        vpc = api.call("POST", "/v1/vpcs", {"cidrs": ["10.77.0.0/16"], "mtu": cmp.MTU})
        sub = api.call("POST", "/v1/subnets", {"vpc_id": vpc["id"], "cidr": f"10.77.0.0/{cmp.PREFIX}"})
        nics = [api.call("POST", "/v1/nics", {"subnet_id": sub["id"], "mac": mac, "ips": [ip],
                                              "backend": {"type": "netns", "netns": ns, "ifname": "eth0"}})
                for ns, ip, mac in ((cmp.G1, cmp.IP1, cmp.MAC1), (cmp.G2, cmp.IP2, cmp.MAC2))]
        deadline = time.monotonic() + 20
        while any(api.call("GET", f"/v1/nics/{n['id']}")["state"] != "up" for n in nics):
            if time.monotonic() > deadline:
                raise RuntimeError("NICs did not come up")
            time.sleep(0.1)
        yield api, nics, [d.proc.pid]
        for n in nics:
            api.call("DELETE", f"/v1/nics/{n['id']}")
    finally:
        d.close()
        cmp.cleanup_namespaces()


MODES = {
    "off": None,
    "all": {},
    "snaplen96": {"snaplen": 96},
    "filter-none": {"filter": "host 192.0.2.1"},  # matches no frame of the test: copy cost only
}


def measure(api, nic_id, pids, duration, mode, what):
    params = MODES[mode]
    cap = None
    before = api.call("GET", "/v1/stats")["capture"]
    if params is not None:
        cap = CaptureClient(api, nic_id, seconds=duration + 3, count=1000000, **params)
        time.sleep(0.3)
    try:
        r = cmp.measure_tcp(1, duration, pids) if what == "tcp" else cmp.measure_small_frames(duration, pids)
    finally:
        if cap:
            cap.close()
    deadline = time.monotonic() + 10
    while api.call("GET", "/v1/stats")["capture"]["active"] and time.monotonic() < deadline:
        time.sleep(0.05)
    after = api.call("GET", "/v1/stats")["capture"]
    if cap:
        r["capture"] = {"frames": after["frames_captured"] - before["frames_captured"],
                        "dropped": after["frames_dropped"] - before["frames_dropped"],
                        "filtered_out": after["frames_filtered"] - before["frames_filtered"],
                        "client_mbytes": round(cap.bytes / 1e6, 1)}
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--modes", default=",".join(MODES), help="comma list of: " + ", ".join(MODES))
    ap.add_argument("--kinds", default="tcp,small", help="tcp, small or both")
    ap.add_argument("--json")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (network namespaces)")
    for tool in ("iperf3", "trafgen"):
        if not shutil.which(tool):
            sys.exit(f"{tool} missing: scripts/install-deps.sh bench")
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    results = {"load_before": load, "duration_s": args.duration, "workers": args.workers}
    try:
        with vpcd_guests(args.build_dir, args.workers) as (api, nics, pids):
            if not cmp.wait_ping():
                sys.exit("guests cannot ping each other")
            for what in args.kinds.split(","):
                for mode in args.modes.split(","):
                    r = measure(api, nics[0]["id"], pids, args.duration, mode, what)
                    results[f"{what}/{mode}"] = r
                    print(f"{what:5} capture={mode:11} {json.dumps(r)}", flush=True)
    finally:
        cmp.cleanup_namespaces()
    with open("/proc/loadavg") as f:
        results["load_after"] = f.read().split()[:3]
    print(f"load average before {' '.join(results['load_before'])}, after {' '.join(results['load_after'])}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
