#!/usr/bin/env python3
"""Writes the seed corpora of fuzz_router and fuzz_conntrack (fuzz/corpus/router/, fuzz/corpus/conntrack/): frames
built with struct (no scapy), named by a hash of their bytes. Rerun after changing the record format."""
import hashlib
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROUTER = bytes.fromhex("02fe00000001")
MAC_A, MAC_B = bytes.fromhex("02000000000a"), bytes.fromhex("02000000000b")


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ip4(a):
    return bytes(int(x) for x in a.split("."))


def ipv4(src, dst, proto, payload, ttl=64, frag=0, ident=1):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, frag, ttl, proto, 0, ip4(src), ip4(dst))
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return h + payload


def eth(dst, src, l3):
    return dst + src + b"\x08\x00" + l3


def udp(sport, dport, n=18):
    return struct.pack("!HHHH", sport, dport, 8 + n, 0) + bytes(n)


def tcp(sport, dport, seq, ack, flags, win=65535, n=0):
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, win, 0, 0) + bytes(n)


def icmp(type_, code, rest=b"\0\0\0\0", payload=b""):
    b = struct.pack("!BBH", type_, code, 0) + rest + payload
    return b[:2] + struct.pack("!H", csum(b)) + b[4:]


def write(d, data):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha256(data).hexdigest()[:16]), "wb") as f:
        f.write(data)


def router():
    d = os.path.join(HERE, "corpus", "router")
    a = "10.0.1.5"
    for dst, ttl in [("10.0.2.7", 64), ("10.0.2.7", 1), ("192.168.3.4", 64), ("192.168.66.1", 64),
                     ("172.16.0.1", 64), ("8.8.8.8", 64), ("10.0.2.99", 2)]:
        write(d, eth(ROUTER, MAC_A, ipv4(a, dst, 17, udp(1000, 2000), ttl=ttl)))
    write(d, eth(ROUTER, MAC_A, ipv4(a, "10.0.2.1", 1, icmp(8, 0, struct.pack("!HH", 7, 1), bytes(56)))))
    write(d, eth(ROUTER, MAC_A, ipv4(a, "10.0.1.1", 6, tcp(1, 22, 1, 0, 2))))
    write(d, eth(ROUTER, MAC_A, ipv4(a, "10.0.2.7", 17, udp(1, 2, 1400), ttl=1, frag=0x2000)))


def rec(flags, step, frame):
    return struct.pack("<BBH", flags, step, len(frame)) + frame


def conntrack():
    d = os.path.join(HERE, "corpus", "conntrack")
    a, b = "10.0.0.2", "10.0.0.3"
    fa = lambda l3: eth(MAC_B, MAC_A, l3)  # noqa: E731
    fb = lambda l3: eth(MAC_A, MAC_B, l3)  # noqa: E731
    hs = (rec(3, 0, fa(ipv4(a, b, 6, tcp(40000, 22, 1000, 0, 0x02)))) +
          rec(2, 0, fb(ipv4(b, a, 6, tcp(22, 40000, 5000, 1001, 0x12)))) +
          rec(3, 1, fa(ipv4(a, b, 6, tcp(40000, 22, 1001, 5001, 0x10)))) +
          rec(3, 1, fa(ipv4(a, b, 6, tcp(40000, 22, 1001, 5001, 0x18, n=100)))) +
          rec(2, 1, fb(ipv4(b, a, 6, tcp(22, 40000, 5001, 1101, 0x11)))) +
          rec(3, 1, fa(ipv4(a, b, 6, tcp(40000, 22, 1101, 5002, 0x11)))) +
          rec(2, 1, fb(ipv4(b, a, 6, tcp(22, 40000, 5002, 1102, 0x10)))))
    write(d, hs)
    write(d, rec(3, 0, fa(ipv4(a, b, 6, tcp(40000, 22, 1000, 0, 0x02)))) +
          rec(14, 0, fb(ipv4(b, a, 6, tcp(22, 40000, 5000, 1001, 0x12)))))
    u = fa(ipv4(a, b, 17, udp(5000, 53)))
    write(d, rec(3, 0, u) + rec(2, 5, fb(ipv4(b, a, 17, udp(53, 5000)))) +
          rec(2, 0, fb(ipv4(b, a, 1, icmp(3, 3, b"\0\0\0\0", u[14:42])))))
    write(d, rec(3, 0, fa(ipv4(a, b, 1, icmp(8, 0, struct.pack("!HH", 9, 1))))) +
          rec(2, 0, fb(ipv4(b, a, 1, icmp(0, 0, struct.pack("!HH", 9, 1))))))
    write(d, rec(3, 0, fa(ipv4(a, b, 17, udp(5000, 9000, 1472), frag=0x2000, ident=77))) +
          rec(3, 0, fa(ipv4(a, b, 17, bytes(600), frag=185, ident=77))))
    write(d, b"".join(rec(3, 1, fa(ipv4(a, b, 17, udp(6000 + i, 53)))) for i in range(12)))
    write(d, rec(3, 0, fa(ipv4(a, b, 6, tcp(40000, 22, 7777, 8888, 0x10, n=10)))) +
          rec(2, 200, fb(ipv4(b, a, 6, tcp(22, 40000, 8888, 7787, 0x10)))))


if __name__ == "__main__":
    router()
    conntrack()
