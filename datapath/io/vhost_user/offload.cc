// Software checksum completion and TCP segmentation; see offload.h.
#include "datapath/io/vhost_user/offload.h"

#include <algorithm>
#include <cstring>
#include <span>

#include "datapath/proto/checksum.h"
#include "datapath/proto/ipv4.h"
#include "datapath/proto/ipv6.h"

namespace vpcd::dp::vhost {

namespace {

uint16_t rd16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }
void wr16(uint8_t* p, uint16_t v) {
  p[0] = uint8_t(v >> 8);
  p[1] = uint8_t(v);
}
uint32_t rd32(const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }
void wr32(uint8_t* p, uint32_t v) {
  wr16(p, uint16_t(v >> 16));
  wr16(p + 2, uint16_t(v));
}

constexpr uint8_t kTcpFin = 0x01, kTcpPsh = 0x08, kTcpCwr = 0x80;

}  // namespace

bool complete_checksum(uint8_t* frame, uint32_t len, uint32_t csum_start, uint32_t csum_offset) noexcept {
  if (csum_start >= len || csum_offset > len - csum_start || len - csum_start - csum_offset < 2) return false;
  uint16_t sum = proto::ones_sum(std::span<const uint8_t>(frame + csum_start, len - csum_start));
  wr16(frame + csum_start + csum_offset, uint16_t(~sum));
  return true;
}

bool segment_tcp(const Packet& p, std::vector<uint8_t>& scratch,
                 const std::function<bool(const uint8_t*, uint32_t)>& emit) noexcept {
  const bool v4 = p.flags & kIsIpv4;
  const bool v6 = p.flags & kIsIpv6;
  if (!(p.flags & kIsTcp) || (!v4 && !v6) || p.l4_offset == 0) return false;
  const uint32_t l3 = p.l3_offset, l4 = p.l4_offset, len = p.len;
  if (l4 + 20 > len || l3 + (v4 ? 20u : 40u) > l4) return false;
  const uint32_t doff = uint32_t(p.data[l4 + 12] >> 4) * 4;
  const uint32_t hdr = l4 + doff;
  const uint32_t mss = p.vnet.gso_size;
  if (doff < 20 || hdr > len || mss == 0) return false;
  const uint32_t payload = len - hdr;
  const uint32_t seq0 = rd32(p.data + l4 + 4);
  const uint8_t flags0 = p.data[l4 + 13];
  const uint16_t id0 = v4 ? rd16(p.data + l3 + 4) : 0;
  const uint32_t ihl = v4 ? uint32_t(p.data[l3] & 0x0f) * 4 : 0;
  if (v4 && (ihl < 20 || l3 + ihl > l4)) return false;
  try {
    scratch.resize(hdr + std::min(mss, std::max(payload, 1u)));
  } catch (...) {
    return false;
  }
  uint32_t off = 0;
  unsigned i = 0;
  do {
    const uint32_t n = std::min(mss, payload - off);
    const bool first = off == 0, last = off + n >= payload;
    uint8_t* f = scratch.data();
    std::memcpy(f, p.data, hdr);
    std::memcpy(f + hdr, p.data + hdr + off, n);
    const uint32_t seg_len = hdr + n;
    if (v4) {
      wr16(f + l3 + 2, uint16_t(seg_len - l3));
      wr16(f + l3 + 4, uint16_t(id0 + i));
      wr16(f + l3 + 10, 0);
      be16 c = proto::internet_checksum(std::span<const uint8_t>(f + l3, ihl));
      std::memcpy(f + l3 + 10, &c.raw, 2);
    } else {
      wr16(f + l3 + 4, uint16_t(seg_len - l3 - 40));
    }
    wr32(f + l4 + 4, seq0 + off);
    uint8_t fl = flags0;
    if (!last) fl &= uint8_t(~(kTcpFin | kTcpPsh));
    if (!first) fl &= uint8_t(~kTcpCwr);
    f[l4 + 13] = fl;
    wr16(f + l4 + 16, 0);
    std::span<const uint8_t> seg(f + l4, seg_len - l4);
    be16 c;
    if (v4) {
      c = proto::l4_checksum_ipv4(Ipv4Addr{rd32(f + l3 + 12)}, Ipv4Addr{rd32(f + l3 + 16)}, 6, seg);
    } else {
      proto::Ipv6Addr s, d;
      std::memcpy(&s, f + l3 + 8, 16);
      std::memcpy(&d, f + l3 + 24, 16);
      c = proto::l4_checksum_ipv6(s, d, 6, seg);
    }
    std::memcpy(f + l4 + 16, &c.raw, 2);
    if (!emit(f, seg_len)) return true;
    off += n;
    ++i;
  } while (off < payload);
  return true;
}

}  // namespace vpcd::dp::vhost
