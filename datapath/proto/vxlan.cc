// VXLAN outer header builders and checksum helpers; see vxlan.h.
#include "datapath/proto/vxlan.h"

#include <cstring>

#include "datapath/proto/checksum.h"

namespace vpcd::proto {

VxlanOuter build_vxlan_outer(const VxlanOuterParams& p) noexcept {
  VxlanOuter o{};
  o.eth.dst = p.dst_mac;
  o.eth.src = p.src_mac;
  o.eth.ethertype = be16::from_host(kEthTypeIpv4);
  o.ip.ver_ihl = 0x45;
  o.ip.tos = 0;
  o.ip.frag_off = be16::from_host(kIpv4FlagDf);
  o.ip.ttl = p.ttl;
  o.ip.proto = kIpProtoUdp;
  o.ip.src = p.src_ip.to_be();
  o.ip.dst = p.dst_ip.to_be();
  o.udp.dst_port = be16::from_host(p.dst_port);
  o.vxlan = VxlanHdr::make(p.vni & kVxlanMaxVni);
  return o;
}

void finish_vxlan_outer(VxlanOuter& out, uint32_t inner_len_bytes, uint16_t src_port) noexcept {
  const uint32_t udp_len = uint32_t(kUdpHdrLen + kVxlanHdrLen) + inner_len_bytes;
  out.ip.tot_len = be16::from_host(uint16_t(kIpv4MinHdrLen + udp_len));
  out.ip.csum = be16{};
  out.ip.csum = internet_checksum({reinterpret_cast<const uint8_t*>(&out.ip), kIpv4MinHdrLen});
  out.udp.src_port = be16::from_host(src_port);
  out.udp.len = be16::from_host(uint16_t(udp_len));
  out.udp.csum = be16{};
}

be16 vxlan_udp_checksum(const VxlanOuter& out, std::span<const uint8_t> inner) noexcept {
  const uint16_t udp_len = out.udp.len.to_host();
  uint32_t sum = ipv4_pseudo_sum(Ipv4Addr::from_be(out.ip.src), Ipv4Addr::from_be(out.ip.dst), kIpProtoUdp, udp_len);
  // UDP header + VXLAN header: 16 bytes, so the inner frame starts at an even offset and the sums chain.
  sum = ones_sum({reinterpret_cast<const uint8_t*>(&out.udp), kUdpHdrLen + kVxlanHdrLen}, sum);
  be16 c = internet_checksum(inner, sum);
  if (c.raw == 0) c = be16{0xffff};
  return c;
}

bool vxlan_udp_checksum_ok(Ipv4Addr src, Ipv4Addr dst, std::span<const uint8_t> udp) noexcept {
  if (udp.size() < kUdpHdrLen) return false;
  if (udp[6] == 0 && udp[7] == 0) return true;  // no checksum
  return checksum_valid(udp, ipv4_pseudo_sum(src, dst, kIpProtoUdp, uint16_t(udp.size())));
}

}  // namespace vpcd::proto
