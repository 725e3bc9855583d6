// libFuzzer target: the "parse" stage on arbitrary frames, with and without a virtio_net_hdr.
//
// Input: byte 0 = flags (bit 0: a virtio_net_hdr follows in the next 10 bytes and kHasVnet is set; bit 1: the ring
// "cut" the frame, wire_len = len + 1 + byte 1; bit 2 with bit 1: the port marked it kRxQueueFull); the rest is the frame. The frame is copied into a buffer of exactly
// its length, so AddressSanitizer catches any read past it. Beyond memory errors the target checks the parser's
// contract (parse.h): drops only with parse-group reasons, offsets and lengths inside the frame, L3/L4 flags
// consistent; the fast path of parse() and parse_general() agree on every frame. A violated invariant aborts
// (a finding).
// Seed corpus: fuzz/corpus/parse/ (fuzz/make_corpus.py). Run: scripts/fuzz.sh.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "datapath/stages/parse.h"

namespace {

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz_parse: invariant violated: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace vpcd::dp;
  if (size < 1) return 0;
  const uint8_t flags = data[0];
  size_t off = 1;
  Packet p;
  if (flags & 1) {
    if (size < off + sizeof(virtio_net_hdr)) return 0;
    std::memcpy(&p.vnet, data + off, sizeof(virtio_net_hdr));
    p.flags = kHasVnet;
    off += sizeof(virtio_net_hdr);
  }
  uint32_t extra = 0;
  if (flags & 2) {
    if (size < off + 1) return 0;
    extra = 1u + data[off++];
    if (flags & 4) p.flags |= kRxQueueFull;
  }
  std::vector<uint8_t> frame(data + off, data + size);  // exactly len bytes: ASan sees any overread
  p.data = frame.data();
  p.len = uint32_t(frame.size());
  p.wire_len = p.len + extra;

  Packet general = p;
  parse(p);
  parse_general(general);  // no fast path: both must agree on everything
  check(general.drop == p.drop, "fast path and general parser disagree on the verdict");
  check(general.flags == p.flags && general.ethertype == p.ethertype && general.vlan_tci == p.vlan_tci &&
            general.l3_offset == p.l3_offset && general.ip_proto == p.ip_proto && general.l4_offset == p.l4_offset &&
            general.l4_len == p.l4_len && general.ip4_src == p.ip4_src && general.ip4_dst == p.ip4_dst &&
            general.src_port == p.src_port && general.dst_port == p.dst_port,
        "fast path and general parser disagree on the metadata");

  if (p.dropped()) {
    check(is_parse_drop(p.drop), "drop reason outside the parse group");
    check(extra == 0 || p.drop == ((flags & 4) ? DropReason::kRxQueueFull : DropReason::kTruncated),
          "cut frame not dropped as truncated (rx_queue_full when the port said so)");
    return 0;
  }
  check(extra == 0, "cut frame accepted");
  check(p.len >= 14, "frame shorter than Ethernet accepted");
  check(p.l3_offset >= 14 && p.l3_offset <= p.len, "l3_offset outside the frame");
  const int l3 = !!(p.flags & kIsArp) + !!(p.flags & kIsIpv4) + !!(p.flags & kIsIpv6);
  check(l3 <= 1, "more than one L3 flag");
  const int l4 = !!(p.flags & kIsTcp) + !!(p.flags & kIsUdp) + !!(p.flags & kIsIcmp);
  check(l4 <= 1, "more than one L4 flag");
  if (l4) {
    check((p.flags & (kIsIpv4 | kIsIpv6)) != 0, "L4 flag without IP");
    check(p.l4_offset > p.l3_offset, "l4_offset not after l3_offset");
    check(uint32_t(p.l4_offset) + p.l4_len <= p.len, "L4 bytes beyond the frame");
    const uint32_t min_l4 = (p.flags & kIsTcp) ? 20u : (p.flags & kIsUdp) ? 8u : 4u;
    check(p.l4_len >= min_l4, "L4 header shorter than its minimum");
  }
  if (p.flags & kIsArp) check(p.l3_offset + 28u <= p.len, "ARP header beyond the frame");
  if (p.flags & kIsIpv4) check(p.l3_offset + 20u <= p.len, "IPv4 header beyond the frame");
  if (p.flags & kIsIpv6) check(p.l3_offset + 40u <= p.len, "IPv6 header beyond the frame");
  if (p.flags & kHasVnet) {
    if (p.vnet.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM)
      check(uint32_t(p.vnet.csum_start) + p.vnet.csum_offset + 2 <= p.len, "checksum offset beyond the frame");
    if ((p.vnet.gso_type & ~VIRTIO_NET_HDR_GSO_ECN) != VIRTIO_NET_HDR_GSO_NONE)
      check(l4 && !(p.flags & kIsFragment), "GSO frame without L4 or fragmented");
  }
  // Parsing is a pure function of the bytes: a second run gives the same result.
  Packet q = p;
  parse(q);
  check(q.flags == p.flags && q.l4_offset == p.l4_offset && q.drop == p.drop, "parse not deterministic");
  return 0;
}
