// libFuzzer target: the uplink input path (parse -> uplink-input (ARP, VXLAN decap) -> arp-responder -> l2-switch ->
// vxlan-encap -> output) on the overlay test network (tests/unit/overlay/overlay_test_net.h: one VPC, a guest, the
// uplink, two tunnels), fed a sequence of frames received on the uplink (and, for a selector byte >= 0xf0, on the
// guest, so replies and head-end replication run too), with ticks in between (ARP retries and failures). Frames whose
// selector is in 0x80..0xef are held and received in one batch with the uplink frames that follow, up to the next
// record of another selector (at most 64), so tcp-coalesce (software GRO towards the guest) sees runs of segments.
// An uplink frame whose selector has bit 0x40 set (0x40..0x7f, 0xc0..0xef) starts with a 10-byte virtio_net_hdr
// (as the AF_PACKET uplink would give it) applied to the rest: UDP GSO super-frames (gso_type 5) reach the USO split
// of uplink-input (vxlan_decap.h), whose datagrams count as datagrams in the invariants below.
//
// Input: records of [selector][tick step (x100 ms)][length lo][length hi][frame bytes], until the input ends.
// Invariants checked after every record (a violation aborts): the guest only receives frames that came out of a
// VXLAN datagram of the VPC's VNI from a configured VTEP (so at most one per datagram of a batch, never longer than
// the datagram minus 50 bytes, and in all never more bytes than the batch's datagrams minus 50 bytes each); a
// super-frame (joined by tcp-coalesce) is TCP with a vnet header the guest's kernel accepts (GSO_TCPV4/V6, gso_size
// set, NEEDS_CSUM inside the frame, at most 64 KiB of IP packet); everything the uplink sends is an ARP frame from the uplink MAC or an IPv4/UDP VXLAN
// datagram from our address to a configured VTEP with DF set; no pool buffer leaks (the pool holds only frames
// queued for ARP).
// Seed corpus: fuzz/corpus/uplink_input/ (fuzz/make_uplink_corpus.py). Run: scripts/fuzz.sh.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <vector>

#include "tests/unit/overlay/overlay_test_net.h"

namespace {

using namespace vpcd::dp;
using namespace vpcd::dp::overlaytest;

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz_uplink_input: invariant violated: %s\n", what);
    std::abort();
  }
}

struct UplinkFrame {
  std::vector<uint8_t> bytes;
  std::optional<virtio_net_hdr> vnet;
};

// What the guest received from one batch of uplink frames (see the invariants above).
void check_uplink_batch(OverlayNet& net, const std::vector<UplinkFrame>& batch) {
  size_t datagram_bytes = 0, longest = 0, datagrams = 0;
  for (const auto& uf : batch) {
    const auto& f = uf.bytes;
    if (uf.vnet && (uf.vnet->gso_type & 0x7f) == 5 && uf.vnet->gso_size > 0) {
      // A USO super-frame: at most one datagram per gso_size of what follows the (at least 42) outer header bytes,
      // each at most gso_size bytes of VXLAN header (8) + inner frame.
      const size_t g = uf.vnet->gso_size;
      const size_t payload = f.size() > 42 ? f.size() - 42 : 0;
      datagrams += (payload + g - 1) / g;
      datagram_bytes += payload >= 8 ? payload - 8 : 0;
      if (g + 42 > longest) longest = g + 42;
      continue;
    }
    ++datagrams;
    datagram_bytes += f.size() >= 50 ? f.size() - 50 : 0;
    if (f.size() > longest) longest = f.size();
  }
  size_t delivered_bytes = 0, delivered = 0;
  for (const auto& ff : net.fakes[net.guest]->drain()) {
    const auto& f = ff.bytes;
    const bool arp_reply = f.size() >= 42 && f[12] == 0x08 && f[13] == 0x06;
    if (arp_reply) continue;
    ++delivered;
    delivered_bytes += f.size();
    const bool super = ff.vnet && ff.vnet->gso_type != VIRTIO_NET_HDR_GSO_NONE;
    check(super || f.size() + 50 <= longest, "delivered frame longer than its datagram allows");
    if (super) {
      const virtio_net_hdr& v = *ff.vnet;
      check(v.gso_type == VIRTIO_NET_HDR_GSO_TCPV4 || v.gso_type == VIRTIO_NET_HDR_GSO_TCPV6, "super-frame not TCP");
      check(v.gso_size > 0 && v.hdr_len < f.size() && f.size() <= 14 + 65535 + 40, "super-frame sizes");
      check((v.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) && size_t(v.csum_start) + v.csum_offset + 2 <= f.size(),
            "super-frame checksum offsets");
    }
  }
  check(delivered <= datagrams, "one datagram delivered twice");
  check(delivered_bytes <= datagram_bytes, "more bytes delivered than the datagrams carried");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  OverlayNet net;
  uint64_t now_ms = 1000000;
  size_t off = 0;
  std::vector<UplinkFrame> held;  // uplink frames waiting to be received in one batch
  while (off + 4 <= size) {
    const uint8_t sel = data[off];
    const bool from_guest = sel >= 0xf0;
    now_ms += uint64_t(data[off + 1]) * 100;
    size_t len = size_t(data[off + 2]) | size_t(data[off + 3]) << 8;
    off += 4;
    if (len > size - off) len = size - off;
    std::vector<uint8_t> frame(data + off, data + off + len);
    off += len;
    std::optional<virtio_net_hdr> vnet;
    if (!from_guest && (sel & 0x40) && frame.size() >= sizeof(virtio_net_hdr)) {
      virtio_net_hdr v;
      std::memcpy(&v, frame.data(), sizeof v);
      frame.erase(frame.begin(), frame.begin() + sizeof v);
      vnet = v;
    }
    if (sel >= 0x80 && sel < 0xf0 && held.size() < 63 && off + 4 <= size) {
      held.push_back({std::move(frame), vnet});
      continue;
    }
    if (!from_guest) held.push_back({std::move(frame), vnet});
    if (!held.empty()) {
      for (const auto& h : held) net.fakes[net.uplink]->inject(h.bytes, h.vnet);
      std::vector<Packet> pkts(held.size() + 1);
      unsigned n = net.fakes[net.uplink]->rx_burst(0, pkts.data(), unsigned(pkts.size()));
      run_batch(net.ctx, net.cfg, net.uplink, std::span<Packet>(pkts.data(), n));
      flush_outputs(net.ctx, net.cfg);
      net.fakes[net.uplink]->rx_release(0);
      check_uplink_batch(net, held);
      held.clear();
    }
    if (from_guest) {
      net.receive(net.guest, frame);
      net.fakes[net.guest]->drain();
    }
    net.tick(now_ms);
    net.fakes[net.guest]->drain();  // ARP retries and released frames go to the uplink; nothing checked here
    for (const auto& f : net.fakes[net.uplink]->drain_bytes()) {
      check(f.size() >= 14 && std::memcmp(f.data() + 6, kUplinkMac.b.data(), 6) == 0, "uplink frame not from us");
      const uint16_t type = uint16_t(f[12] << 8 | f[13]);
      if (type == 0x0806) continue;
      check(type == 0x0800 && f.size() >= 50, "uplink frame neither ARP nor IPv4");
      check((f[20] & 0x40) != 0 && f[23] == 17, "outer packet without DF or not UDP");
      uint32_t src, dst;
      std::memcpy(&src, f.data() + 26, 4);
      std::memcpy(&dst, f.data() + 30, 4);
      check(__builtin_bswap32(src) == kMe.v, "outer source not our address");
      const uint32_t d = __builtin_bswap32(dst);
      check(d == kPeer.v || d == kPeer2.v, "outer destination not a configured VTEP");
      check(f[36] == 0x12 && f[37] == 0xb5 && (f[42] & 0x08), "not VXLAN to 4789 with the I flag");
    }
    check(net.ctx.pool.capacity() - net.ctx.pool.available() == net.ctx.overlay.arp.queued_total(),
          "pool buffers leaked");
  }
  return 0;
}
