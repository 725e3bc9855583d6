// Software GSO; behaviour and threading in gso.h.
#include "datapath/proto/gso.h"

#include <cstring>

#include "datapath/proto/checksum.h"
#include "datapath/proto/ipv4.h"
#include "datapath/proto/ipv6.h"
#include "datapath/proto/l4.h"

namespace vpcd::proto {
namespace {

struct Layout {
  uint8_t gso;
  bool tcp;
  size_t hdr_bytes;     // Ethernet + IP + L4 header
  size_t payload_bytes;
  size_t gso_size;
  size_t count;
};

bool layout(const dp::Packet& p, Layout& l) noexcept {
  if (!(p.flags & dp::kHasVnet) || p.dropped() || p.len < p.wire_len) return false;
  l.gso = p.vnet.gso_type & uint8_t(~VIRTIO_NET_HDR_GSO_ECN);
  l.gso_size = p.vnet.gso_size;
  if (l.gso_size == 0 || p.l4_offset == 0 || (p.flags & dp::kIsFragment)) return false;
  if (l.gso == VIRTIO_NET_HDR_GSO_TCPV4 || l.gso == VIRTIO_NET_HDR_GSO_TCPV6) {
    const bool v4 = l.gso == VIRTIO_NET_HDR_GSO_TCPV4;
    if (!(p.flags & dp::kIsTcp) || !(p.flags & (v4 ? dp::kIsIpv4 : dp::kIsIpv6))) return false;
    if (!v4 && p.l4_offset != p.l3_offset + kIpv6HdrLen) return false;  // extension headers: not supported
    TcpHdr t;
    std::memcpy(&t, p.data + p.l4_offset, sizeof t);
    l.tcp = true;
    l.hdr_bytes = p.l4_offset + t.hdr_len_bytes();
  } else if (l.gso == kVnetGsoUdpL4) {
    if (!(p.flags & dp::kIsUdp)) return false;
    if ((p.flags & dp::kIsIpv6) && p.l4_offset != p.l3_offset + kIpv6HdrLen) return false;
    l.tcp = false;
    l.hdr_bytes = p.l4_offset + kUdpHdrLen;
  } else {
    return false;
  }
  // The IP-stated end of the packet (Ethernet padding excluded).
  const size_t end = size_t(p.l4_offset) + p.l4_len;
  if (end > p.len || end < l.hdr_bytes) return false;
  l.payload_bytes = end - l.hdr_bytes;
  l.count = l.payload_bytes == 0 ? 1 : (l.payload_bytes + l.gso_size - 1) / l.gso_size;
  return true;
}

}  // namespace

size_t gso_segment_count(const dp::Packet& p) noexcept {
  Layout l;
  return layout(p, l) ? l.count : 0;
}

namespace {

// Writes segment i of p (layout l) at f; returns its length and fills vnet.
size_t write_segment(const dp::Packet& p, const Layout& l, size_t i, GsoCsum csum, uint8_t* f,
                     virtio_net_hdr* vnet) noexcept {
  const bool v4 = (p.flags & dp::kIsIpv4) != 0;
  const size_t l3 = p.l3_offset, l4 = p.l4_offset;
  const size_t done = i * l.gso_size;
  const size_t chunk = l.payload_bytes - done < l.gso_size ? l.payload_bytes - done : l.gso_size;
  std::memcpy(f, p.data, l.hdr_bytes);
  // kSoftware: the payload is summed as it is copied (one pass); the L4 header's sum is added once it is final.
  uint16_t payload_sum = 0;
  if (csum == GsoCsum::kSoftware)
    payload_sum = ones_sum_copy(f + l.hdr_bytes, p.data + l.hdr_bytes + done, chunk);
  else
    std::memcpy(f + l.hdr_bytes, p.data + l.hdr_bytes + done, chunk);
  const size_t len = l.hdr_bytes + chunk;
  const size_t l4_len = len - l4;
  Ipv4Addr src4, dst4;
  Ipv6Addr src6, dst6;
  if (v4) {
    Ipv4Hdr ip;
    std::memcpy(&ip, p.data + l3, sizeof ip);
    ip.tot_len = be16::from_host(uint16_t(len - l3));
    ip.id = be16::from_host(uint16_t(ip.id.to_host() + i));
    ip.csum = be16{};
    std::memcpy(f + l3, &ip, sizeof ip);
    const be16 c = internet_checksum({f + l3, ip.hdr_len_bytes()});
    std::memcpy(f + l3 + 10, &c, 2);
    src4 = Ipv4Addr::from_be(ip.src);
    dst4 = Ipv4Addr::from_be(ip.dst);
  } else {
    const be16 pl = be16::from_host(uint16_t(len - l3 - kIpv6HdrLen));
    std::memcpy(f + l3 + 4, &pl, 2);
    std::memcpy(src6.b.data(), f + l3 + 8, 16);
    std::memcpy(dst6.b.data(), f + l3 + 24, 16);
  }
  size_t csum_off;
  if (l.tcp) {
    TcpHdr t;
    std::memcpy(&t, p.data + l4, sizeof t);
    t.seq = be32::from_host(uint32_t(t.seq.to_host() + done));
    if (i + 1 < l.count) t.flags &= uint8_t(~(kTcpFin | kTcpPsh));
    if (i > 0) t.flags &= uint8_t(~0x80);  // CWR
    t.csum = be16{};
    std::memcpy(f + l4, &t, sizeof t);
    csum_off = 16;
  } else {
    UdpHdr u;
    std::memcpy(&u, f + l4, sizeof u);
    u.len = be16::from_host(uint16_t(l4_len));
    u.csum = be16{};
    std::memcpy(f + l4, &u, sizeof u);
    csum_off = 6;
  }
  const uint8_t proto = l.tcp ? kIpProtoTcp : kIpProtoUdp;
  const uint32_t pseudo = v4 ? ipv4_pseudo_sum(src4, dst4, proto, uint16_t(l4_len))
                             : ipv6_pseudo_sum(src6, dst6, proto, uint32_t(l4_len));
  *vnet = virtio_net_hdr{};
  if (csum == GsoCsum::kSoftware) {
    // The payload starts at an even offset of the L4 data (TCP headers are 4-byte multiples, UDP's is 8 bytes), so
    // its sum chains onto the header's.
    const uint16_t sum = fold_sum(uint32_t(ones_sum({f + l4, l.hdr_bytes - l4}, pseudo)) + payload_sum);
    be16 c = be16::from_host(uint16_t(~sum));
    if (!l.tcp && c.raw == 0) c = be16{0xffff};
    std::memcpy(f + l4 + csum_off, &c, 2);
  } else {
    const be16 c = be16::from_host(fold_sum(pseudo));
    std::memcpy(f + l4 + csum_off, &c, 2);
    vnet->flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    vnet->csum_start = uint16_t(l4);
    vnet->csum_offset = uint16_t(csum_off);
  }
  return len;
}

}  // namespace

size_t gso_segment(const dp::Packet& p, GsoCsum csum, std::span<uint8_t> out, std::span<GsoSegment> segs) noexcept {
  Layout l;
  if (!layout(p, l)) return 0;
  if (segs.size() < l.count || out.size() < (l.hdr_bytes + 1) * l.count + l.payload_bytes) return 0;
  size_t off = 0;
  for (size_t i = 0; i < l.count; ++i) {
    GsoSegment& s = segs[i];
    s.offset = uint32_t(off);
    s.len = uint32_t(write_segment(p, l, i, csum, out.data() + off, &s.vnet));
    off += (s.len + 1) & ~size_t(1);  // next segment 2-byte aligned
  }
  return l.count;
}

size_t gso_max_segment_bytes(const dp::Packet& p) noexcept {
  Layout l;
  return layout(p, l) ? l.hdr_bytes + l.gso_size : 0;
}

bool gso_segment_one(const dp::Packet& p, size_t i, GsoCsum csum, uint8_t* out, size_t cap, GsoSegment* seg) noexcept {
  Layout l;
  if (!layout(p, l) || i >= l.count || cap < l.hdr_bytes + l.gso_size) return false;
  seg->offset = 0;
  seg->len = uint32_t(write_segment(p, l, i, csum, out, &seg->vnet));
  return true;
}

bool finish_partial_checksum(dp::Packet& p) noexcept {
  if (!(p.flags & dp::kHasVnet) || !(p.vnet.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM)) return true;
  const size_t start = p.vnet.csum_start, field = start + p.vnet.csum_offset;
  // Sum up to the IP-stated end when the checksum covers the parsed L4 header (Ethernet padding is not part of it).
  const size_t end = (p.l4_offset != 0 && start >= p.l4_offset) ? size_t(p.l4_offset) + p.l4_len : p.len;
  if (field + 2 > end || start >= end || end > p.len) return false;
  // The field holds the folded pseudo-header sum; summing the whole span with it in place gives the final sum.
  const be16 c = internet_checksum({p.data + start, end - start});
  std::memcpy(p.data + field, &c, 2);
  p.vnet.flags &= uint8_t(~VIRTIO_NET_HDR_F_NEEDS_CSUM);
  p.vnet.csum_start = p.vnet.csum_offset = 0;
  return true;
}

}  // namespace vpcd::proto
