"""A QEMU guest (TCG, Debian kernel, busybox initramfs: tests/lib/qemu_guest.py) on a vpcd vhost-user NIC pings a
netns guest of the same VPC: QEMU is the vhost-user front-end (guest memory in a shared memfd, shared/vhost-user/) and
vpcd serves its virtqueues.

Modes: `server` (vpcd creates the socket, QEMU connects: QEMU's default chardev), `client` (QEMU listens with
server=on, vpcd connects), and `client` with the guest's memory in two NUMA nodes, each its own memfd backend: QEMU's
SET_MEM_TABLE then carries two regions and two fds (checked once with strace: gpa 0 and 128 MiB, 128 MiB each; one
256 MiB backend gives one region, with or without -nodefaults). The guest runs with IPv6 disabled so that the only
frames it sends are the ping and its ARP: vpcd must have received exactly what the guest's eth0 says it transmitted,
and the guest must have received every frame vpcd counts as transmitted to it.
"""
import os
import shutil
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import qemu_guest  # noqa: E402
import vpcdtest as vt  # noqa: E402

VM_MAC = "52:54:00:64:01:05"
COUNT = 7

CASES = {
    "server": ("server", 1),
    "client": ("client", 1),
    "client_two_memory_regions": ("client", 2),
}


@pytest.mark.parametrize("case", list(CASES))
def test_qemu_guest_on_vhost_user_pings_netns_guest(case, guest_images, vpcd_factory):
    mode, nodes = CASES[case]
    kernel, initrd = guest_images
    ns = vt.Namespaces("qvh")
    sockdir = tempfile.mkdtemp(prefix="qvhost-sock-")
    sock = os.path.join(sockdir, "vm.sock")
    d = vpcd_factory(workers=2).start()
    try:
        c = d.client()
        vpc = c.call("POST", "/v1/vpcs", {"cidrs": ["10.64.0.0/16"]})
        sub = c.call("POST", "/v1/subnets", {"vpc_id": vpc["id"], "cidr": "10.64.1.0/24"})
        peer = c.call("POST", "/v1/nics", {"subnet_id": sub["id"], "ips": ["10.64.1.2"],
                                            "backend": {"type": "netns", "netns": ns.name("g"), "ifname": "eth0"}})
        vm = c.call("POST", "/v1/nics", {"subnet_id": sub["id"], "ips": ["10.64.1.5"], "mac": VM_MAC,
                                          "backend": {"type": "vhost-user", "socket": sock, "mode": mode,
                                                      "queues": 1}})
        vt.wait_for(lambda: c.call("GET", f"/v1/nics/{peer['id']}")["state"] == "up", what="netns NIC up")
        # No IPv6 chatter from the namespace either (MLD, router solicitations flooded to the VM NIC).
        for key in ("all", "default", "eth0"):
            vt.sh(["ip", "netns", "exec", ns.name("g"), "sysctl", "-qw", f"net.ipv6.conf.{key}.disable_ipv6=1"])
        nic = c.call("GET", f"/v1/nics/{vm['id']}")
        assert nic["state"] == "down" and "waiting" in nic["state_detail"], nic
        # Frames flooded to the VM NIC before it had a front-end (the namespace's first IPv6 frames) are port_down
        # drops of its own: the counters below are compared with this baseline.
        vs0 = c.call("GET", f"/v1/nics/{vm['id']}/stats")
        if mode == "server":
            # vpcd listens: the socket exists before any hypervisor connects (QEMU's chardev is a client).
            vt.wait_for(lambda: os.path.exists(sock), what="vpcd's vhost-user socket")
            chardev = f"socket,id=c0,path={sock}"
        else:
            # QEMU listens (and waits in its vhost-user netdev until vpcd has connected).
            chardev = f"socket,id=c0,path={sock},server=on,wait=off"
        memory = []
        for i in range(nodes):  # 256 MiB in all, shared (vhost-user needs share=on)
            memory += ["-object", f"memory-backend-memfd,id=m{i},size={256 // nodes}M,share=on",
                       "-numa", f"node,memdev=m{i}"]
        netdev = memory + ["-chardev", chardev, "-netdev", "vhost-user,id=n0,chardev=c0"]
        res = qemu_guest.run(kernel, initrd, netdev, mac=VM_MAC, ip="10.64.1.5/24", gw="10.64.1.1",
                             peer="10.64.1.2", count=COUNT, append_extra="ipv6.disable=1")
        assert res.line, "guest printed no result:\n" + res.console[-3000:] + "\nvpcd:\n" + d.log_tail()
        assert (res.transmitted, res.received) == (COUNT, COUNT), res.line
        # QEMU has quit: the NIC says so at once (no resync) and waits for the front-end again.
        nic = vt.wait_for(lambda: (n := c.call("GET", f"/v1/nics/{vm['id']}"))["state"] == "down" and n,
                          timeout=10, what="vhost-user NIC down after QEMU quit")
        assert "waiting" in nic["state_detail"], nic
        vs = c.call("GET", f"/v1/nics/{vm['id']}/stats")
        ps = c.call("GET", f"/v1/nics/{peer['id']}/stats")
        # Every frame the guest sent (its ARP and COUNT echo requests) reached vpcd, every frame vpcd sent it reached
        # the guest's eth0, and nothing was dropped on the way (no RARP of vpcd's own either: port security is on).
        rx, tx = vs["rx_packets"] - vs0["rx_packets"], vs["tx_packets"] - vs0["tx_packets"]
        assert (rx, tx) == (res.tx, res.rx), (vs0, vs, res.line)
        assert rx >= COUNT and tx >= COUNT, vs
        assert vs["drops"] == vs0["drops"], (vs0, vs)
        # The echo requests went out to the netns guest and its replies came back through vpcd.
        assert ps["tx_packets"] >= COUNT and ps["rx_packets"] >= COUNT, ps
        # A server-mode socket is vpcd's own file: it goes with the NIC.
        c.call("DELETE", f"/v1/nics/{vm['id']}")
        if mode == "server":
            vt.wait_for(lambda: not os.path.exists(sock), what="vpcd removing its socket with the NIC")
    finally:
        d.stop()
        ns.remove_all()
        shutil.rmtree(sockdir, ignore_errors=True)
        d.close()
