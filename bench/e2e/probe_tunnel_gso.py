#!/usr/bin/env python3
"""Does this kernel accept UDP-tunnel GSO from an AF_PACKET socket's vnet header?

vpcd can hand a VXLAN-encapsulated TCP super-frame to the kernel in one of two ways: segment it in software first
(datapath/proto/gso.h), or write one 64 KiB outer frame with a virtio_net_hdr that says "UDP tunnel GSO, inner TCPv4"
(VIRTIO_NET_HDR_GSO_UDP_TUNNEL_IPV4 = 0x20, Linux 6.17+, virtio 1.4) and let the kernel segment. This probe sends,
inside a namespace of its own (veth pair vxgso0/vxgso1, removed afterwards), through a packet socket with
PACKET_VNET_HDR:
  1. a plain TCPv4 GSO super-frame (gso_type TCPV4) - the control: must be accepted;
  2. the same frame VXLAN-encapsulated with gso_type TCPV4 | UDP_TUNNEL_IPV4.
and prints what the kernel said. Run as root: python3 bench/e2e/probe_tunnel_gso.py
"""
import os
import socket
import struct
import subprocess
import sys

NS = "vxlan-gso-probe"
SOL_PACKET = 263
PACKET_VNET_HDR = 15
PACKET_VNET_HDR_SZ = 24


def sh(*args, check=True):
    return subprocess.run(args, check=check, capture_output=True, text=True)


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ipv4(src, dst, proto, payload_len, df=True):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + payload_len, 0, 0x4000 if df else 0, 64, proto, 0,
                    socket.inet_aton(src), socket.inet_aton(dst))
    return h[:10] + struct.pack("!H", csum(h)) + h[12:]


def tcp_superframe(payload_len):
    eth = bytes.fromhex("020000000002" "020000000001" "0800")
    tcp = struct.pack("!HHIIBBHHH", 40000, 5201, 1, 0, 5 << 4, 0x10, 65535, 0, 0)
    return eth + ipv4("10.0.0.1", "10.0.0.2", 6, len(tcp) + payload_len) + tcp + bytes(payload_len)


def vnet(flags, gso_type, hdr_len, gso_size, csum_start, csum_offset):
    return struct.pack("<BBHHHH", flags, gso_type, hdr_len, gso_size, csum_start, csum_offset)


def main():
    if os.geteuid() != 0:
        sys.exit("run as root")
    sh("ip", "netns", "add", NS)
    try:
        sh("ip", "-n", NS, "link", "add", "vxgso0", "type", "veth", "peer", "name", "vxgso1")
        sh("ip", "-n", NS, "link", "set", "vxgso0", "up")
        sh("ip", "-n", NS, "link", "set", "vxgso1", "up")
        code = r'''
import socket, struct, sys
sys.path.insert(0, %r)
from probe_tunnel_gso import *
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
s.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
s.bind(("vxgso0", 0))
inner = tcp_superframe(20000)
# 1. plain TCPv4 GSO: csum_start at TCP (34), offset 16, hdr_len 54, mss 1400
try:
    s.send(vnet(1, 1, 54, 1400, 34, 16) + inner)
    print("tcpv4 gso: accepted")
except OSError as e:
    print("tcpv4 gso: refused:", e)
# 2. the same inside VXLAN, gso_type TCPV4 | UDP_TUNNEL_IPV4 (0x20)
vx = struct.pack("!BBBBI", 8, 0, 0, 0, 42 << 8)
udp = struct.pack("!HHHH", 50000, 4789, 8 + len(vx) + len(inner), 0)
outer = bytes.fromhex("02000000000b" "02000000000a" "0800") + ipv4("192.0.2.1", "192.0.2.2", 17, len(udp) + len(vx) + len(inner)) + udp + vx
for name, hdr in (("udp-tunnel gso (10-byte vnet header)", vnet(1, 0x21, 50 + 54, 1400, 50 + 34, 16)),):
    try:
        s.send(hdr + outer + inner)
        print(name + ": accepted")
    except OSError as e:
        print(name + ": refused:", e)
try:
    s.setsockopt(SOL_PACKET, PACKET_VNET_HDR_SZ, 24)
    print("PACKET_VNET_HDR_SZ 24: accepted")
except OSError as e:
    print("PACKET_VNET_HDR_SZ 24 (room for the tunnel offsets): refused:", e)
''' % os.path.dirname(os.path.abspath(__file__))
        r = sh("ip", "netns", "exec", NS, sys.executable, "-c", code, check=False)
        print(r.stdout + r.stderr, end="")
        print("kernel", os.uname().release)
    finally:
        sh("ip", "netns", "del", NS, check=False)


if __name__ == "__main__":
    main()
