// Stage "port-security"; rules and threading in port_security.h.
#include "datapath/stages/port_security.h"

#include <cstring>

#include "datapath/pipeline/input_runs.h"

namespace vpcd::dp {
namespace {

constexpr uint16_t kDhcpClientPort = 68;
constexpr uint16_t kDhcpServerPort = 67;
constexpr size_t kArpShaOffset = 8;   // within the ARP header
constexpr size_t kIpv6SrcOffset = 8;  // within the IPv6 header
constexpr uint32_t kBroadcastIp = 0xffffffffu;

// DHCP / BOOTP (RFC 2131 section 2): op, htype, hlen at 0..2, chaddr at 28; 236 bytes of fixed fields.
constexpr size_t kBootpOp = 0, kBootpHtype = 1, kBootpHlen = 2, kBootpChaddr = 28, kBootpFixedLen = 236;
constexpr uint8_t kBootRequest = 1;

// ICMP types a guest never sends.
constexpr uint8_t kIcmpRedirect = 5;
constexpr uint8_t kIcmpv6RouterSolicit = 133, kIcmpv6RouterAdvert = 134, kIcmpv6NeighSolicit = 135,
                  kIcmpv6NeighAdvert = 136, kIcmpv6Redirect = 137;
constexpr uint8_t kNdOptSourceLla = 1, kNdOptTargetLla = 2;

bool same_mac(const uint8_t* a, const MacAddr& b) noexcept { return std::memcmp(a, b.b.data(), 6) == 0; }

// A DHCP client's datagram from 0.0.0.0 (see port_security.h). parse checked the UDP header and l4_len.
bool is_dhcp_client_broadcast(const PortConfig& in, const Packet& p) noexcept {
  if ((p.flags & (kIsUdp | kIsFragment)) != kIsUdp || p.src_port != kDhcpClientPort || p.dst_port != kDhcpServerPort)
    return false;
  if (p.ip4_dst.v != kBroadcastIp || !MacAddr::from_bytes(p.dst_mac()).is_broadcast()) return false;
  if (p.l4_len < 8 + kBootpFixedLen || size_t(p.l4_offset) + 8 + kBootpFixedLen > p.len) return false;
  const uint8_t* b = p.data + p.l4_offset + 8;
  return b[kBootpOp] == kBootRequest && b[kBootpHtype] == 1 && b[kBootpHlen] == 6 &&
         same_mac(b + kBootpChaddr, in.mac);
}

DropReason check_ipv4(const PortConfig& in, const Packet& p) noexcept {
  if ((p.flags & kIsIcmp) && (p.dst_port >> 8) == kIcmpRedirect) [[unlikely]]
    return DropReason::kRaGuard;
  if (in.has_ip(p.ip4_src)) return DropReason::kCount;
  if (p.ip4_src.v == 0 && is_dhcp_client_broadcast(in, p)) return DropReason::kCount;
  return DropReason::kSpoofedSourceIp;
}

// Router / neighbour solicitations and neighbour advertisements (see port_security.h). `src` is the IPv6 source.
DropReason check_nd(const PortConfig& in, const Packet& p, uint8_t type, const uint8_t* src, bool src_unspecified) noexcept {
  // Fixed part after the 4-byte ICMPv6 header: RS 4 reserved bytes; NS/NA 4 bytes + the 16-byte target.
  const size_t fixed = type == kIcmpv6RouterSolicit ? 8 : 24;
  if (p.l4_len < fixed || size_t(p.l4_offset) + p.l4_len > p.len) return DropReason::kSpoofedNd;
  const uint8_t* m = p.data + p.l4_offset;
  if (type == kIcmpv6NeighAdvert && std::memcmp(m + 8, src, 16) != 0) return DropReason::kSpoofedNd;
  for (size_t off = fixed; off < p.l4_len;) {
    if (p.l4_len - off < 2) return DropReason::kSpoofedNd;
    const uint8_t opt = m[off];
    const size_t len = size_t(m[off + 1]) * 8;
    if (len == 0 || len > p.l4_len - off) return DropReason::kSpoofedNd;
    if (opt == kNdOptSourceLla || opt == kNdOptTargetLla) {
      if (len < 8 || !same_mac(m + off + 2, in.mac)) return DropReason::kSpoofedNd;
      if (opt == kNdOptSourceLla && src_unspecified) return DropReason::kSpoofedNd;  // RFC 4861 7.1.1
    }
    off += len;
  }
  return DropReason::kCount;
}

DropReason check_ipv6(const PortConfig& in, const Packet& p) noexcept {
  const uint8_t* src = p.data + p.l3_offset + kIpv6SrcOffset;  // parse guaranteed the 40-byte header
  bool unspecified = false;
  if (!(src[0] == 0xfe && (src[1] & 0xc0) == 0x80)) {  // not fe80::/10
    for (int i = 0; i < 16; ++i)
      if (src[i] != 0) return DropReason::kSpoofedSourceIp;
    unspecified = true;  // ::
  }
  if (!(p.flags & kIsIcmp)) return DropReason::kCount;
  const uint8_t type = uint8_t(p.dst_port >> 8);
  switch (type) {
    case kIcmpv6RouterAdvert:
    case kIcmpv6Redirect:
      return DropReason::kRaGuard;
    case kIcmpv6RouterSolicit:
    case kIcmpv6NeighSolicit:
    case kIcmpv6NeighAdvert:
      return check_nd(in, p, type, src, unspecified);
    default:
      return DropReason::kCount;
  }
}

DropReason check_arp(const PortConfig& in, const Packet& p) noexcept {
  if (!same_mac(p.data + p.l3_offset + kArpShaOffset, in.mac)) return DropReason::kSpoofedArp;
  if (p.ip4_src.v != 0 && !in.has_ip(p.ip4_src)) return DropReason::kSpoofedArp;
  return DropReason::kCount;
}

[[gnu::always_inline]] inline DropReason check(const PortConfig& in, const Packet& p) noexcept {
  if (p.flags & kHasVlan) [[unlikely]]
    return DropReason::kVlanTagged;
  if (!same_mac(p.src_mac(), in.mac)) [[unlikely]]
    return DropReason::kSpoofedSourceMac;
  if (p.flags & kIsIpv4) return check_ipv4(in, p);
  if (p.flags & kIsArp) return check_arp(in, p);
  if (p.flags & kIsIpv6) return check_ipv6(in, p);
  return DropReason::kEthertypeNotAllowed;  // parse sets one of the three for IPv4 / ARP / IPv6 frames it accepted
}

}  // namespace

void port_security(const PortConfig& in, std::span<Packet* const> pkts) noexcept {
  for (Packet* p : pkts) {
    if (p->dropped()) continue;
    p->drop = check(in, *p);
  }
}

NextSet PortSecurityStage::process(WorkerContext& ctx, const DataplaneConfig& cfg, std::span<Packet* const> pkts) noexcept {
  return for_each_input_run(ctx, pkts, [&](uint16_t in_port, uint16_t, std::span<Packet* const> run) noexcept {
    const PortConfig* in = cfg.port(in_port);
    if (!in) [[unlikely]] {
      for (Packet* p : run) p->drop_with(DropReason::kPortDown);
      return stage_bit(Next::kDrop);
    }
    const NextFor next(in->features, Next::kPortSecurity);
    NextSet nexts = 0;
    for (Packet* p : run) {
      const DropReason r = check(*in, *p);
      if (r != DropReason::kCount) [[unlikely]]
        p->drop_with(r);
      else
        p->next = next(*p);
      nexts |= stage_bit(p->next);
    }
    return nexts;
  });
}

}  // namespace vpcd::dp
