#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (fuzz/corpus/<name>/) deterministically; rerun after changing them.

parse:  every frame of tests/data/kernel_frames.hex (real Linux frames, some GSO with a virtio_net_hdr) in the input
        format of fuzz_parse.cc, plus a cut frame.
switch: short sequences of frames on the fixed network of fuzz_switch.cc (ARP, unicast, broadcast, unknown unicast,
        DHCP discover, IPv6 ND/RA, LLC, VLAN, learning behind an unprotected port).
"""
import hashlib
import os
import struct

ROOT = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(ROOT)


def write(name, blobs):
    d = os.path.join(ROOT, "corpus", name)
    os.makedirs(d, exist_ok=True)
    for b in blobs:
        with open(os.path.join(d, hashlib.sha1(b).hexdigest()[:16]), "wb") as f:
            f.write(b)


def parse_corpus():
    out = []
    with open(os.path.join(SRC, "tests", "data", "kernel_frames.hex")) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            if parts[0] == "vnet":
                out.append(b"\x01" + bytes.fromhex(parts[1]) + bytes.fromhex(parts[2]))
            else:
                out.append(b"\x00" + bytes.fromhex(parts[0]))
    out.append(b"\x02\x10" + bytes.fromhex(line.split()[-1]))  # cut by the ring
    return out


def mac(last, fifth=0):
    return bytes([2, 0, 0, 0, fifth, last])


BCAST = b"\xff" * 6
ROUTER = mac(0xFE, 0xFF)


def ip(s):
    return bytes(int(x) for x in s.split("."))


def eth(src, dst, etype):
    return dst + src + struct.pack("!H", etype)


def arp(op, sha, spa, tha, tpa):
    return struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + sha + ip(spa) + tha + ip(tpa)


def ipv4(src, dst, proto, payload):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0, 64, proto, 0, ip(src), ip(dst))
    return h + payload


def udp(sp, dp, payload):
    return struct.pack("!HHHH", sp, dp, 8 + len(payload), 0) + payload


def ipv6(src, dst, nh, payload):
    return struct.pack("!IHBB", 6 << 28, len(payload), nh, 255) + src + dst + payload


LL_A = bytes.fromhex("fe800000000000000000000000000a0a")
ALL_NODES = bytes.fromhex("ff020000000000000000000000000001")


def rec(port, frame, dt=0):
    return bytes([port, dt]) + struct.pack("<H", len(frame)) + frame


def switch_corpus():
    a, b, c, d = mac(0x0A), mac(0x0B), mac(0x0C), mac(0x0D)
    x = mac(0x77, 0x55)
    f_arp_req = eth(a, BCAST, 0x0806) + arp(1, a, "10.0.0.2", b"\0" * 6, "10.0.0.3")
    f_arp_gw = eth(a, BCAST, 0x0806) + arp(1, a, "10.0.0.2", b"\0" * 6, "10.0.0.1")
    f_udp_ab = eth(a, b, 0x0800) + ipv4("10.0.0.2", "10.0.0.3", 17, udp(1000, 2000, b"x" * 18))
    f_unknown = eth(a, mac(0x42, 0x42), 0x0800) + ipv4("10.0.0.2", "10.0.0.9", 17, udp(1000, 2000, b"y" * 18))
    f_dhcp = eth(a, BCAST, 0x0800) + ipv4("0.0.0.0", "255.255.255.255", 17, udp(68, 67, b"\x01\x01\x06\x00" + b"\0" * 236))
    f_ra = eth(a, b"\x33\x33\0\0\0\x01", 0x86DD) + ipv6(LL_A, ALL_NODES, 58, bytes([134, 0, 0, 0]) + b"\0" * 12)
    f_llc = b"\xff" * 6 + a + struct.pack("!H", 40) + b"\xaa\xaa\x03\0\0\0\x08\x00" + b"\0" * 32
    f_vlan = eth(a, b, 0x8100) + struct.pack("!HH", 5, 0x0800) + ipv4("10.0.0.2", "10.0.0.3", 17, udp(1, 2, b"z" * 8))
    f_nested = eth(x, a, 0x0800) + ipv4("10.0.0.4", "10.0.0.2", 17, udp(5, 6, b"n" * 8))
    f_to_nested = eth(a, x, 0x0800) + ipv4("10.0.0.2", "10.0.0.4", 17, udp(6, 5, b"m" * 8))
    f_router = eth(a, ROUTER, 0x0800) + ipv4("10.0.0.2", "8.8.8.8", 17, udp(6, 53, b"q" * 8))
    return [
        rec(0, f_arp_req),
        rec(0, f_arp_gw) + rec(4, f_arp_req),
        rec(0, f_udp_ab),
        rec(0, f_unknown) + rec(2, f_unknown),
        rec(0, f_dhcp),
        rec(0, f_ra),
        rec(0, f_llc) + rec(2, f_llc),
        rec(0, f_vlan),
        rec(2, f_nested) + rec(0, f_to_nested) + rec(0, f_to_nested, 250) + rec(0, f_to_nested, 250),
        rec(0, f_router),
        rec(3, eth(d, c, 0x88CC) + b"\0" * 30),
    ]


if __name__ == "__main__":
    write("parse", parse_corpus())
    write("switch", switch_corpus())
