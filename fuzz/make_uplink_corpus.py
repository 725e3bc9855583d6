#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_uplink_input (fuzz/corpus/uplink_input/): records of
[selector][tick step][length lo][length hi][frame] (see fuzz/fuzz_uplink_input.cc) with valid and broken VXLAN
datagrams, ARP for the uplink address, a guest frame to a remote MAC, and batches of in-order TCP segments
(selector 0x80: held for one batch, so tcp-coalesce joins them), and VXLAN as UDP GSO super-frames (selector bit 0x40:
a virtio_net_hdr in front, gso_type UDP_L4, as another vpcd's USO transmit arrives). Run: python3
fuzz/make_uplink_corpus.py"""
import hashlib
import os
import struct

UPLINK = bytes.fromhex("02aa00000001")
PEER_MAC = bytes.fromhex("02bb00000002")
GUEST = bytes.fromhex("02000000000a")
REMOTE = bytes.fromhex("02000000000b")
ME, PEER, PEER2 = bytes([198, 18, 0, 1]), bytes([198, 18, 0, 2]), bytes([198, 18, 0, 3])


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ipv4(src, dst, proto, payload):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0x4000, 64, proto, 0, src, dst)
    return h[:10] + struct.pack("!H", csum(h)) + h[12:] + payload


def inner(src_mac=REMOTE, dst_mac=GUEST):
    udp = struct.pack("!HHHH", 1000, 2000, 8 + 18, 0) + bytes(18)
    return dst_mac + src_mac + b"\x08\x00" + ipv4(bytes([10, 0, 0, 20]), bytes([10, 0, 0, 10]), 17, udp)


def tcp_seg(seq, payload, flags=0x10):
    src, dst = bytes([10, 0, 0, 20]), bytes([10, 0, 0, 10])
    t = struct.pack("!HHIIBBHHH", 5201, 40000, seq, 1, 5 << 4, flags, 500, 0, 0) + payload
    pseudo = src + dst + struct.pack("!BBH", 0, 6, len(t))
    t = t[:16] + struct.pack("!H", csum(pseudo + t)) + t[18:]
    return GUEST + REMOTE + b"\x08\x00" + ipv4(src, dst, 6, t)


def tcp_run(n, size=1398, psh_at=None):
    return b"".join(rec(vxlan(payload=tcp_seg(1000 + i * size, bytes([i]) * size, 0x18 if i == psh_at else 0x10)),
                        sel=0x80 if i + 1 < n else 0) for i in range(n))


def vxlan(src=PEER, vni=4242, flags=8, payload=None):
    payload = inner() if payload is None else payload
    vx = struct.pack("!BBBBI", flags, 0, 0, 0, vni << 8) + payload
    udp = struct.pack("!HHHH", 50000, 4789, 8 + len(vx), 0) + vx
    return UPLINK + PEER_MAC + b"\x08\x00" + ipv4(src, ME, 17, udp)


def arp(op, sha, spa, tha, tpa, dst):
    a = struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + sha + spa + tha + tpa
    return (dst + sha + b"\x08\x06" + a).ljust(60, b"\0")


def uso(n, size=1398, gso_size=None, flags=1):
    """n TCP segments as one USO frame: outer headers once, then VXLAN header + inner frame per chunk."""
    chunks = [struct.pack("!BBBBI", 8, 0, 0, 0, 4242 << 8) + tcp_seg(1000 + i * size, bytes([i]) * size)
              for i in range(n)]
    payload = b"".join(chunks)
    udp = struct.pack("!HHHH", 50000, 4789, 8 + len(payload), 0x1234) + payload
    frame = UPLINK + PEER_MAC + b"\x08\x00" + ipv4(PEER, ME, 17, udp)
    vnet = struct.pack("<BBHHHH", flags, 5, 42, len(chunks[0]) if gso_size is None else gso_size, 34, 6)
    return vnet + frame


def rec(frame, sel=0, step=0):
    return bytes([sel, step]) + struct.pack("<H", len(frame)) + frame


SEEDS = [
    rec(vxlan()),
    rec(vxlan(vni=7)) + rec(vxlan(src=bytes([198, 18, 0, 99]))) + rec(vxlan(flags=0)),
    rec(arp(1, PEER_MAC, PEER, bytes(6), ME, b"\xff" * 6)),
    rec(vxlan()) + rec(inner(GUEST, REMOTE), sel=0xf0) + rec(arp(2, PEER_MAC, PEER, UPLINK, ME, UPLINK), step=1),
    rec(inner(GUEST, b"\xff" * 6), sel=0xf0) + rec(b"", step=20) + rec(b"", step=20) + rec(b"", step=20),
    rec(vxlan(payload=inner()[:20])) + rec(vxlan()[:40]),
    tcp_run(6),
    tcp_run(5, size=300, psh_at=2) + tcp_run(3),
    rec(uso(4), sel=0x40),
    rec(vxlan(), sel=0x80) + rec(uso(3), sel=0xc0) + rec(uso(2, size=500, gso_size=21), sel=0x40),
]

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "uplink_input")
os.makedirs(out, exist_ok=True)
for s in SEEDS:
    with open(os.path.join(out, hashlib.sha1(s).hexdigest()[:16]), "wb") as f:
        f.write(s)
print("wrote", len(SEEDS), "seeds to", out)
