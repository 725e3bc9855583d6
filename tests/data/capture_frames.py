#!/usr/bin/env python3
"""Regenerates kernel_frames.hex: real frames that Linux sends, captured with AF_PACKET sockets.

Creates two network namespaces joined by a veth pair (names carry this process's pid), sends ARP/ICMP echo, UDP, a TCP
SYN, IPv6 neighbour discovery / ICMPv6 echo, IPv6 UDP, a UDP GSO send and a TCP bulk write from one side, and
records what arrives on the other (GSO super-frames with their virtio_net_hdr, via PACKET_VNET_HDR). Traffic
stays inside the two namespaces, to addresses that exist only there. Everything created is removed in `finally`.
TCP/UDP checksums in the capture may be partial (veth offload); the parser does not check L4 checksums.
Run as root: python3 tests/data/capture_frames.py > tests/data/kernel_frames.hex
"""
import os
import socket
import subprocess
import sys
import time

PID = os.getpid()
NS_A, NS_B = f"vpcdcapA{PID}", f"vpcdcapB{PID}"
IF_A, IF_B = f"vca{PID}"[:15], f"vcb{PID}"[:15]


def sh(*args, check=True):
    return subprocess.run(args, check=check, capture_output=True, timeout=20)


def in_ns(ns, *args, check=True):
    return sh("ip", "netns", "exec", ns, *args, check=check)


def main():
    created = []
    try:
        for ns in (NS_A, NS_B):
            sh("ip", "netns", "add", ns)
            created.append(ns)
        sh("ip", "link", "add", IF_A, "netns", NS_A, "type", "veth", "peer", "name", IF_B, "netns", NS_B)
        in_ns(NS_A, "ip", "addr", "add", "10.250.0.1/24", "dev", IF_A)
        in_ns(NS_B, "ip", "addr", "add", "10.250.0.2/24", "dev", IF_B)
        in_ns(NS_A, "ip", "addr", "add", "fd00:250::1/64", "dev", IF_A, "nodad")
        in_ns(NS_B, "ip", "addr", "add", "fd00:250::2/64", "dev", IF_B, "nodad")
        for ns, ifname in ((NS_A, IF_A), (NS_B, IF_B)):
            in_ns(ns, "ip", "link", "set", ifname, "up")
        # The capture runs inside NS_B as a child python that prints "hex" lines until its deadline.
        cap = subprocess.Popen(
            ["ip", "netns", "exec", NS_B, sys.executable, "-c", CAPTURE.replace("IFNAME", IF_B)],
            stdout=subprocess.PIPE, text=True)
        time.sleep(0.5)
        in_ns(NS_A, "ping", "-c", "1", "-W", "1", "-s", "16", "10.250.0.2", check=False)
        in_ns(NS_A, "ping", "-c", "1", "-W", "1", "-s", "16", "fd00:250::2", check=False)
        in_ns(NS_A, sys.executable, "-c", SENDERS, check=False)
        out, _ = cap.communicate(timeout=10)
        sys.stdout.write(out)
    finally:
        for ns in created:
            sh("ip", "netns", "del", ns, check=False)


# Two packet sockets: a plain one (every frame, printed as hex) and one with PACKET_VNET_HDR (only frames whose
# virtio_net_hdr carries GSO, printed as "vnet <10-byte header hex> <frame hex>"). Also a TCP sink so the sender's
# bulk write can go out as a TSO super-frame.
CAPTURE = r"""
import select, socket, time
PACKET_VNET_HDR = 15
plain = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
plain.bind(("IFNAME", 0))
vnet = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
vnet.setsockopt(263, PACKET_VNET_HDR, 1)
vnet.bind(("IFNAME", 0))
sink = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sink.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sink.bind(("10.250.0.2", 8080))
sink.listen(1)
conns = []
deadline = time.time() + 4
while time.time() < deadline:
    ready, _, _ = select.select([plain, vnet, sink] + conns, [], [], 0.2)
    for s in ready:
        if s is sink:
            conns.append(sink.accept()[0])
        elif s in conns:
            s.recv(1 << 20)
        else:
            data, addr = s.recvfrom(1 << 17)
            if addr[2] == socket.PACKET_OUTGOING:
                continue
            if s is plain:
                print(data.hex(), flush=True)
            elif data[1] != 0:
                print("vnet", data[:10].hex(), data[10:].hex(), flush=True)
"""

SENDERS = r"""
import socket
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.sendto(b"vpcd-udp-v4", ("10.250.0.2", 5353))
u6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
u6.sendto(b"vpcd-udp-v6", ("fd00:250::2", 5353))
t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
t.settimeout(0.5)
try:
    t.connect(("10.250.0.2", 9))
except OSError:
    pass
# UDP GSO (UDP_SEGMENT = 103): one 3000-byte send, segmented at 1000 bytes later.
g = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
g.setsockopt(socket.SOL_UDP, 103, 1000)
g.sendto(bytes(range(256)) * 11 + bytes(184), ("10.250.0.2", 5354))
# TCP bulk write: leaves as a TSO super-frame when the stack coalesces it.
b = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
b.settimeout(1)
b.connect(("10.250.0.2", 8080))
b.sendall(bytes(6000))
b.close()
"""

if __name__ == "__main__":
    main()
