"""An uplink's read-only `state` and `state_detail` (API.md `uplinks`): what the datapath made of it, so an operator
who names an interface that is not there sees why instead of a silent 201.

One vpcd box in a namespace of the test's own (prefix "upst<pid>", removed at the end, also on failure): an uplink on
an interface that does not exist is shown in error with the reason; once the interface exists, the next reconcile pass
(here: triggered by a write to the uplink) opens it and shows it up; the list shows the same.
"""
import os

import pytest

from overlay_lib import Box, remove_namespaces, sh, wait_for

PREFIX = "upst%d" % (os.getpid() % 100000)


@pytest.fixture(scope="module")
def box():
    if os.geteuid() != 0:
        raise AssertionError("needs root (namespaces, veth, vpcd)")
    remove_namespaces(PREFIX)
    b = None
    try:
        ns = PREFIX + "A"
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        b = Box(ns).start()
        yield b
    finally:
        if b:
            b.stop()
        remove_namespaces(PREFIX)


def test_uplink_state_follows_its_interface(box):
    up = box.call("POST", "/v1/uplinks", {"ifname": "up0", "address": "198.18.9.1/24", "role": "underlay"})
    path = "/v1/uplinks/" + up["id"]
    got = wait_for(lambda: (lambda u: u if u["state"] == "error" else None)(box.call("GET", path)), 30,
                   what="uplink in error")
    assert "up0" in got["state_detail"] and "does not exist" in got["state_detail"], got

    # The interface appears; a write to the uplink makes vpcd reconcile (a periodic pass would, later).
    sh("ip", "-n", box.ns, "link", "add", "up0", "type", "veth", "peer", "name", "up0p")
    sh("ip", "-n", box.ns, "link", "set", "up0p", "up")
    box.call("PATCH", path, {"name": "underlay"})
    got = wait_for(lambda: (lambda u: u if u["state"] == "up" else None)(box.call("GET", path)), 30,
                   what="uplink up")
    assert got["state_detail"] == "", got
    listed = [u for u in box.call("GET", "/v1/uplinks")["items"] if u["id"] == up["id"]]
    assert listed and listed[0]["state"] == "up", listed
    # Read-only: what a client sends for it is ignored.
    box.call("PATCH", path, {"state": "error", "state_detail": "set by a client"})
    got = box.call("GET", path)
    assert got["state"] == "up" and got["state_detail"] == "", got
    box.call("DELETE", path)
