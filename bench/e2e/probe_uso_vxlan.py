#!/usr/bin/env python3
"""Does this kernel carry VXLAN built by the sender as one UDP segmentation offload (USO) frame?

The kernel refuses UDP-tunnel GSO through AF_PACKET (probe_tunnel_gso.py). Plain USO (VIRTIO_NET_HDR_GSO_UDP_L4) is
accepted by virtio_net_hdr_to_skb. vpcd can segment the guest's TCP super-frame itself (inner headers and checksums
per segment) and lay the segments out as ONE frame: outer Ethernet + IPv4 (DF) + UDP once, then N chunks of exactly
gso_size bytes (VXLAN header + inner Ethernet frame; only the last chunk shorter). The kernel's UDP GSO then gives
every chunk its own copy of the outer headers (IP length, ID, checksum; UDP length, checksum), i.e. every datagram is
one RFC 7348 VXLAN packet, and the underlay carries one skb per super-frame.

This probe, in namespaces of its own (usoA sender, usoB receiver underlay host, usoG guest behind a kernel vxlan +
bridge in usoB; veth usoa0/usob0, all removed afterwards), sends such frames through an AF_PACKET socket with
PACKET_VNET_HDR on usoa0 and checks:
  (a) interop: a kernel vxlan device (VNI 42, dstport 4789) in a bridge with the guest namespace delivers every inner
      frame, checksums intact (inner UDP datagrams read by a UDP socket in usoG, so the kernel verified them);
  (b) an AF_PACKET socket with PACKET_VNET_HDR on usob0 (what another vpcd's uplink would be) sees one frame with
      gso_type UDP_L4 and the gso_size sent.
Prints one line per check and exits non-zero if any failed. Run as root: python3 bench/e2e/probe_uso_vxlan.py
"""
import os
import socket
import struct
import subprocess
import sys
import time

SOL_PACKET = 263
PACKET_VNET_HDR = 15
GSO_UDP_L4 = 5
NEEDS_CSUM = 1
VNI = 42
SEGMENTS = 40          # inner frames per super-frame
INNER_PAYLOAD = 1400   # inner UDP payload per segment (the last one shorter)
A_IP, B_IP = "192.0.2.1", "192.0.2.2"
GA_IP, GB_IP = "10.42.0.1", "10.42.0.2"
GA_MAC, GB_MAC = "02:00:00:00:42:01", "02:00:00:00:42:02"
NAMESPACES = ("usoA", "usoB", "usoG")


def sh(*args, check=True):
    return subprocess.run(args, check=check, capture_output=True, text=True)


def csum_add(b, s=0):
    if len(b) % 2:
        b += b"\0"
    s += sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def csum(b):
    return (~csum_add(b)) & 0xFFFF


def ipv4(src, dst, proto, payload_len, ident=0):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + payload_len, ident, 0x4000, 64, proto, 0,
                    socket.inet_aton(src), socket.inet_aton(dst))
    return h[:10] + struct.pack("!H", csum(h)) + h[12:]


def udp(src, dst, sport, dport, payload):
    ln = 8 + len(payload)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 17, ln)
    c = csum(pseudo + struct.pack("!HHHH", sport, dport, ln, 0) + payload) or 0xFFFF
    return struct.pack("!HHHH", sport, dport, ln, c) + payload


def mac(s):
    return bytes.fromhex(s.replace(":", ""))


def inner_frames(tag):
    """SEGMENTS inner Ethernet frames: IPv4/UDP GA->GB:9999, payload = tag, index, filler; last one shorter."""
    out = []
    for i in range(SEGMENTS):
        n = INNER_PAYLOAD if i < SEGMENTS - 1 else 333
        body = struct.pack("!4sI", tag, i) + bytes((i + k) & 0xFF for k in range(n - 8))
        u = udp(GA_IP, GB_IP, 40000, 9999, body)
        out.append(mac(GB_MAC) + mac(GA_MAC) + b"\x08\x00" + ipv4(GA_IP, GB_IP, 17, len(u), ident=i) + u)
    return out


def uso_frame(dst_mac, src_mac, frames):
    """One outer frame: Ethernet + IPv4 (DF) + UDP once, then each frame as VXLAN header + inner frame."""
    vx = struct.pack("!BBBBI", 0x08, 0, 0, 0, VNI << 8)
    chunks = [vx + f for f in frames]
    gso_size = len(chunks[0])
    assert all(len(c) == gso_size for c in chunks[:-1]) and len(chunks[-1]) <= gso_size
    payload = b"".join(chunks)
    ulen = 8 + len(payload)
    # NEEDS_CSUM: the UDP checksum field holds the folded pseudo-header sum over the whole length (the kernel
    # adjusts it per segment, __udp_gso_segment).
    pseudo = csum_add(socket.inet_aton(A_IP) + socket.inet_aton(B_IP) + struct.pack("!BBH", 0, 17, ulen))
    u = struct.pack("!HHHH", 50000, 4789, ulen, pseudo)
    frame = dst_mac + src_mac + b"\x08\x00" + ipv4(A_IP, B_IP, 17, ulen) + u + payload
    # virtio_net_hdr: flags, gso_type, hdr_len, gso_size, csum_start, csum_offset
    hdr = struct.pack("<BBHHHH", NEEDS_CSUM, GSO_UDP_L4, 42, gso_size, 34, 6)
    return hdr + frame, gso_size


def setup():
    for ns in NAMESPACES:
        sh("ip", "netns", "add", ns)
    sh("ip", "link", "add", "usoa0", "netns", "usoA", "type", "veth", "peer", "name", "usob0", "netns", "usoB")
    sh("ip", "-n", "usoA", "addr", "add", A_IP + "/24", "dev", "usoa0")
    sh("ip", "-n", "usoA", "link", "set", "usoa0", "up")
    sh("ip", "-n", "usoB", "addr", "add", B_IP + "/24", "dev", "usob0")
    sh("ip", "-n", "usoB", "link", "set", "usob0", "up")
    sh("ip", "-n", "usoB", "link", "add", "usovx", "type", "vxlan", "id", str(VNI), "dstport", "4789",
       "local", B_IP, "remote", A_IP, "dev", "usob0")
    sh("ip", "-n", "usoB", "link", "add", "usobr", "type", "bridge")
    sh("ip", "link", "add", "usogb", "netns", "usoB", "type", "veth", "peer", "name", "usog0", "netns", "usoG")
    for dev in ("usovx", "usogb"):
        sh("ip", "-n", "usoB", "link", "set", dev, "master", "usobr")
        sh("ip", "-n", "usoB", "link", "set", dev, "up")
    sh("ip", "-n", "usoB", "link", "set", "usobr", "up")
    sh("ip", "-n", "usoG", "link", "set", "usog0", "address", GB_MAC)
    sh("ip", "-n", "usoG", "addr", "add", GB_IP + "/24", "dev", "usog0")
    sh("ip", "-n", "usoG", "link", "set", "usog0", "up")
    sh("ip", "-n", "usoG", "link", "set", "lo", "up")


def teardown():
    for ns in NAMESPACES:
        sh("ip", "netns", "del", ns, check=False)


def ns_dev_mac(ns, dev):
    return sh("ip", "-n", ns, "-br", "link", "show", dev).stdout.split()[2]


# Run inside a namespace: python3 probe_uso_vxlan.py --role ROLE ...
def role_guest(seconds, expect):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((GB_IP, 9999))
    s.settimeout(0.2)
    got = {}
    print("ready", flush=True)
    end = time.time() + seconds
    while time.time() < end and len(got) < expect:
        try:
            d = s.recv(65535)
        except socket.timeout:
            continue
        got[d[:8]] = d
    ok = 0
    for tag_i, d in got.items():
        tag, i = struct.unpack("!4sI", tag_i)
        n = INNER_PAYLOAD if i < SEGMENTS - 1 else 333
        if d == tag_i + bytes((i + k) & 0xFF for k in range(n - 8)):
            ok += 1
    print("received %d distinct, %d intact" % (len(got), ok), flush=True)


def role_tap(seconds):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
    s.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
    s.bind(("usob0", 0))
    s.settimeout(0.2)
    print("ready", flush=True)
    end = time.time() + seconds
    while time.time() < end:
        try:
            d = s.recv(70000)
        except socket.timeout:
            continue
        flags, gso_type, hdr_len, gso_size, cstart, coff = struct.unpack("<BBHHHH", d[:10])
        frame = d[10:]
        if frame[23] != 17 or struct.unpack("!H", frame[36:38])[0] != 4789:
            continue
        print("frame len %d flags %d gso_type %d gso_size %d csum_start %d csum_offset %d" %
              (len(frame), flags, gso_type, gso_size, cstart, coff), flush=True)
        return
    print("no frame", flush=True)


def role_send(dst_mac, count, tag):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    s.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
    s.bind(("usoa0", 0))
    for k in range(count):
        buf, gso = uso_frame(mac(dst_mac), SRC_MAC, inner_frames(tag + bytes([k])))
        try:
            n = s.send(buf)
            print("sent %d bytes, gso_size %d: accepted" % (n, gso), flush=True)
        except OSError as e:
            print("send: refused: %s" % e, flush=True)
            sys.exit(3)


SRC_MAC = b""


def spawn(ns, *args):
    p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, os.path.abspath(__file__)] + list(args),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = p.stdout.readline()
    if line.strip() != "ready":
        raise RuntimeError("%s: %s%s" % (ns, line, p.stdout.read()))
    return p


def main():
    global SRC_MAC
    if len(sys.argv) > 1 and sys.argv[1] == "--role":
        role = sys.argv[2]
        if role == "guest":
            role_guest(float(sys.argv[3]), int(sys.argv[4]))
        elif role == "tap":
            role_tap(float(sys.argv[3]))
        elif role == "send":
            SRC_MAC = mac(sys.argv[5])
            role_send(sys.argv[3], int(sys.argv[4]), b"uso")
        return
    if os.geteuid() != 0:
        sys.exit("run as root")
    teardown()
    failed = False
    try:
        setup()
        b_mac = ns_dev_mac("usoB", "usob0")
        a_mac = ns_dev_mac("usoA", "usoa0")
        sh("ip", "-n", "usoA", "neigh", "replace", B_IP, "lladdr", b_mac, "dev", "usoa0")
        guest = spawn("usoG", "--role", "guest", "5", str(2 * SEGMENTS))
        tap = spawn("usoB", "--role", "tap", "5")
        time.sleep(0.3)
        r = sh("ip", "netns", "exec", "usoA", sys.executable, os.path.abspath(__file__), "--role", "send", b_mac, "2",
               a_mac, check=False)
        print(r.stdout + r.stderr, end="")
        failed |= r.returncode != 0
        out_t, _ = tap.communicate(timeout=10)
        out_g, _ = guest.communicate(timeout=10)
        gso_expected = 8 + len(inner_frames(b"uso\0")[0])
        print("(b) AF_PACKET + vnet header on the far veth: " + out_t.strip())
        if "gso_type %d gso_size %d" % (GSO_UDP_L4, gso_expected) not in out_t:
            print("(b) FAILED: expected one frame with gso_type UDP_L4 (5), gso_size %d" % gso_expected)
            failed = True
        print("(a) kernel vxlan + bridge guest: " + out_g.strip() + " of %d sent" % (2 * SEGMENTS))
        if "received %d distinct, %d intact" % (2 * SEGMENTS, 2 * SEGMENTS) not in out_g:
            print("(a) FAILED")
            failed = True
        print("kernel", os.uname().release)
    finally:
        teardown()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
