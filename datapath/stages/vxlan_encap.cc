// VXLAN encapsulation helpers; behaviour and threading in vxlan_encap.h.
#include "datapath/stages/vxlan_encap.h"

#include <algorithm>
#include <cstring>
#include <span>

#include "datapath/proto/checksum.h"
#include "datapath/proto/ethernet.h"
#include "datapath/proto/ipv4.h"
#include "datapath/proto/l4.h"

namespace vpcd::dp {
namespace {

constexpr uint32_t mix(uint32_t h, uint32_t v) noexcept {
  h ^= v + 0x9e3779b9u + (h << 6) + (h >> 2);
  return h;
}

uint32_t finalize(uint32_t h) noexcept {
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h ? h : 1;
}

}  // namespace

uint32_t inner_flow_hash(const Packet& p) noexcept {
  uint32_t h = 0x5f3759dfu;
  if (p.flags & kIsIpv4) {
    h = mix(h, p.ip4_src.v);
    h = mix(h, p.ip4_dst.v);
  } else if (p.flags & kIsIpv6) {
    uint32_t w[8];
    std::memcpy(w, p.data + p.l3_offset + 8, sizeof w);  // src and dst (parse checked the 40 bytes)
    for (uint32_t x : w) h = mix(h, x);
  } else {
    uint64_t macs = MacAddr::from_bytes(p.data).to_u64() ^ (MacAddr::from_bytes(p.data + 6).to_u64() << 3);
    h = mix(h, uint32_t(macs));
    h = mix(h, uint32_t(macs >> 32));
    return finalize(mix(h, p.ethertype));
  }
  h = mix(h, p.ip_proto);
  if (p.flags & (kIsTcp | kIsUdp)) h = mix(h, uint32_t(p.src_port) << 16 | p.dst_port);
  return finalize(h);
}

void vxlan_encap_header(Packet& p, const proto::VxlanOuter& tmpl, uint32_t hash, bool udp_csum,
                        proto::VxlanOuter& out) noexcept {
  out = tmpl;
  proto::finish_vxlan_outer(out, p.len, proto::vxlan_source_port(hash));
  if (p.flags & kHasVnet) {
    if (p.vnet.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) p.vnet.csum_start = uint16_t(p.vnet.csum_start + proto::kVxlanOverhead);
    if (p.vnet.hdr_len) p.vnet.hdr_len = uint16_t(p.vnet.hdr_len + proto::kVxlanOverhead);
    if (p.vnet.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) return;  // inner bytes not final: outer UDP checksum stays 0
    if ((p.vnet.gso_type & ~VIRTIO_NET_HDR_GSO_ECN) != VIRTIO_NET_HDR_GSO_NONE) return;
  }
  if (udp_csum) out.udp.csum = proto::vxlan_udp_checksum(out, {p.data, p.len});
}

bool needs_frag_needed(const Packet& p, uint32_t mtu) noexcept {
  if (!(p.flags & kIsIpv4)) return false;
  if ((p.flags & kHasVnet) && (p.vnet.gso_type & ~VIRTIO_NET_HDR_GSO_ECN) != VIRTIO_NET_HDR_GSO_NONE) return false;
  if (p.len <= mtu + p.l3_offset) return false;
  proto::Ipv4Hdr ip;
  std::memcpy(&ip, p.data + p.l3_offset, sizeof ip);
  return (ip.frag_off.to_host() & proto::kIpv4FlagDf) != 0;
}

size_t build_icmp_frag_needed(const Packet& p, const MacAddr& router_mac, Ipv4Addr gateway, uint16_t mtu, uint8_t* out,
                              size_t cap) noexcept {
  using namespace proto;
  if (!(p.flags & kIsIpv4)) return 0;
  constexpr size_t kMaxIcmpDatagram = 576;
  const size_t orig_ip_len = p.len - p.l3_offset;
  const size_t quoted = std::min(orig_ip_len, kMaxIcmpDatagram - kIpv4MinHdrLen - 8);
  const size_t total = kEthHdrLen + kIpv4MinHdrLen + 8 + quoted;
  if (total > cap) return 0;
  EthHdr eth;
  eth.dst = MacAddr::from_bytes(p.src_mac());
  eth.src = router_mac;
  eth.ethertype = be16::from_host(kEthTypeIpv4);
  std::memcpy(out, &eth, sizeof eth);
  Ipv4Hdr ip{};
  ip.ver_ihl = 0x45;
  ip.tot_len = be16::from_host(uint16_t(kIpv4MinHdrLen + 8 + quoted));
  ip.ttl = 64;
  ip.proto = kIpProtoIcmp;
  ip.src = gateway.to_be();
  ip.dst = p.ip4_src.to_be();
  ip.csum = internet_checksum({reinterpret_cast<const uint8_t*>(&ip), sizeof ip});
  std::memcpy(out + kEthHdrLen, &ip, sizeof ip);
  uint8_t* icmp = out + kEthHdrLen + kIpv4MinHdrLen;
  icmp[0] = kIcmpDestUnreachable;
  icmp[1] = 4;  // fragmentation needed and DF set
  icmp[2] = icmp[3] = 0;
  icmp[4] = icmp[5] = 0;  // unused
  const be16 m = be16::from_host(mtu);
  std::memcpy(icmp + 6, &m, 2);
  std::memcpy(icmp + 8, p.data + p.l3_offset, quoted);
  const be16 c = internet_checksum({icmp, 8 + quoted});
  std::memcpy(icmp + 2, &c, 2);
  return total;
}

}  // namespace vpcd::dp
