// Stage "port-security"; rules and threading in port_security.h.
#include "datapath/stages/port_security.h"

#include <cstring>

namespace vpcd::dp {
namespace {

constexpr uint16_t kDhcpClientPort = 68;
constexpr uint16_t kDhcpServerPort = 67;
constexpr size_t kArpShaOffset = 8;   // within the ARP header
constexpr size_t kIpv6SrcOffset = 8;  // within the IPv6 header

bool same_mac(const uint8_t* a, const MacAddr& b) noexcept { return std::memcmp(a, b.b.data(), 6) == 0; }

DropReason check_ipv4(const PortConfig& in, const Packet& p) noexcept {
  if (in.has_ip(p.ip4_src)) return DropReason::kCount;
  if (p.ip4_src.v == 0 && (p.flags & (kIsUdp | kIsFragment)) == kIsUdp && p.src_port == kDhcpClientPort &&
      p.dst_port == kDhcpServerPort)
    return DropReason::kCount;
  return DropReason::kSpoofedSourceIp;
}

DropReason check_ipv6(const Packet& p) noexcept {
  const uint8_t* src = p.data + p.l3_offset + kIpv6SrcOffset;  // parse guaranteed the 40-byte header
  if (src[0] == 0xfe && (src[1] & 0xc0) == 0x80) return DropReason::kCount;  // fe80::/10
  for (int i = 0; i < 16; ++i)
    if (src[i] != 0) return DropReason::kSpoofedSourceIp;
  return DropReason::kCount;  // ::
}

DropReason check_arp(const PortConfig& in, const Packet& p) noexcept {
  if (!same_mac(p.data + p.l3_offset + kArpShaOffset, in.mac)) return DropReason::kSpoofedArp;
  if (p.ip4_src.v != 0 && !in.has_ip(p.ip4_src)) return DropReason::kSpoofedArp;
  return DropReason::kCount;
}

DropReason check(const PortConfig& in, const Packet& p) noexcept {
  if (p.flags & kHasVlan) [[unlikely]]
    return DropReason::kVlanTagged;
  if (!same_mac(p.src_mac(), in.mac)) [[unlikely]]
    return DropReason::kSpoofedSourceMac;
  if (p.flags & kIsIpv4) return check_ipv4(in, p);
  if (p.flags & kIsArp) return check_arp(in, p);
  if (p.flags & kIsIpv6) return check_ipv6(p);
  return DropReason::kCount;
}

}  // namespace

void port_security(const PortConfig& in, std::span<Packet* const> pkts) noexcept {
  for (Packet* p : pkts) {
    if (p->dropped()) continue;
    p->drop = check(in, *p);
  }
}

void PortSecurityStage::process(WorkerContext&, const DataplaneConfig& cfg, std::span<Packet* const> pkts) noexcept {
  uint16_t last_port = kInvalidPort;
  const PortConfig* in = nullptr;
  for (Packet* p : pkts) {
    if (p->in_port != last_port) {
      last_port = p->in_port;
      in = cfg.port(last_port);
    }
    if (!in) [[unlikely]] {
      p->drop_with(DropReason::kPortDown);
      continue;
    }
    const DropReason r = check(*in, *p);
    if (r != DropReason::kCount) [[unlikely]] {
      p->drop_with(r);
      continue;
    }
    p->next = next_stage(in->features, Next::kPortSecurity);
  }
}

}  // namespace vpcd::dp
