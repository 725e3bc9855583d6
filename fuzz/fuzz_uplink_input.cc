// libFuzzer target: the uplink input path (parse -> uplink-input (ARP, VXLAN decap) -> arp-responder -> l2-switch ->
// vxlan-encap -> output) on the overlay test network (tests/unit/overlay/overlay_test_net.h: one VPC, a guest, the
// uplink, two tunnels), fed a sequence of frames received on the uplink (and, for a selector byte >= 0xf0, on the
// guest, so replies and head-end replication run too), with ticks in between (ARP retries and failures).
//
// Input: records of [selector][tick step (x100 ms)][length lo][length hi][frame bytes], until the input ends.
// Invariants checked after every record (a violation aborts): the guest only receives frames that came out of a
// VXLAN datagram of the VPC's VNI from a configured VTEP (so at most one per record from the uplink, never longer than
// the datagram minus 50 bytes); everything the uplink sends is an ARP frame from the uplink MAC or an IPv4/UDP VXLAN
// datagram from our address to a configured VTEP with DF set; no pool buffer leaks (the pool holds only frames
// queued for ARP).
// Seed corpus: fuzz/corpus/uplink_input/ (fuzz/make_uplink_corpus.py). Run: scripts/fuzz.sh.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
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

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  OverlayNet net;
  uint64_t now_ms = 1000000;
  size_t off = 0;
  while (off + 4 <= size) {
    const bool from_guest = data[off] >= 0xf0;
    now_ms += uint64_t(data[off + 1]) * 100;
    size_t len = size_t(data[off + 2]) | size_t(data[off + 3]) << 8;
    off += 4;
    if (len > size - off) len = size - off;
    std::vector<uint8_t> frame(data + off, data + off + len);
    off += len;

    net.receive(from_guest ? net.guest : net.uplink, frame);
    net.tick(now_ms);
    auto to_guest = net.fakes[net.guest]->drain_bytes();
    if (!from_guest) {
      check(to_guest.size() <= 1, "one datagram delivered twice");
      for (const auto& f : to_guest) {
        const bool arp_reply = f.size() >= 42 && f[12] == 0x08 && f[13] == 0x06;
        check(f.size() + 50 <= frame.size() || arp_reply, "delivered frame longer than its datagram allows");
      }
    }
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
