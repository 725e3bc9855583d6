// VXLAN (RFC 7348) wire format and the outer headers vpcd writes in front of an encapsulated frame.
//
// An encapsulated frame on the underlay is Ethernet (14) + IPv4 (20, no options) + UDP (8) + VXLAN (8) + the inner
// Ethernet frame: kVxlanOverhead = 50 bytes more than the inner frame, which is why a VPC's mtu + 50 must fit the
// underlay's MTU. vpcd always sends IPv4 with DF set (the outer packet is never fragmented, RFC 7348 section 4.3) and a
// UDP source port taken from a hash of the inner flow in 49152..65535 (section 5, so the underlay's ECMP spreads
// flows); the UDP checksum is 0 (allowed for IPv4, section 5) unless the caller asks for it to be computed.
//
// VxlanOuter holds the 50 outer bytes as one wire struct: build_vxlan_outer() fills a template once per (tunnel,
// next hop) and finish_vxlan_outer() stamps the per-packet fields (lengths, IP checksum, source port) into a copy.
// Threading: plain data and pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "datapath/proto/ethernet.h"
#include "datapath/proto/ipv4.h"
#include "datapath/proto/l4.h"
#include "datapath/proto/types.h"

namespace vpcd::proto {

inline constexpr uint16_t kVxlanDefaultPort = 4789;  // IANA (RFC 7348 section 5)
inline constexpr size_t kVxlanHdrLen = 8;
inline constexpr uint8_t kVxlanFlagI = 0x08;  // "valid VNI"; every other flag and reserved bit is ignored on receive
inline constexpr uint32_t kVxlanMaxVni = 0xffffff;
inline constexpr size_t kVxlanOverhead = kEthHdrLen + kIpv4MinHdrLen + kUdpHdrLen + kVxlanHdrLen;  // 50
inline constexpr uint16_t kVxlanSrcPortMin = 49152;  // RFC 7348: dynamic/private range 49152-65535
inline constexpr uint16_t kVxlanSrcPortRange = 16384;
inline constexpr uint8_t kVxlanOuterTtl = 64;

struct VxlanHdr {
  uint8_t flags;
  uint8_t rsvd1[3];
  be32 vni_rsvd;  // VNI in the high 24 bits, 8 reserved bits

  constexpr bool has_vni() const noexcept { return (flags & kVxlanFlagI) != 0; }
  // Only meaningful when has_vni() (check the I flag first, as VPP's decap does).
  constexpr uint32_t vni() const noexcept { return vni_rsvd.to_host() >> 8; }
  static constexpr VxlanHdr make(uint32_t vni) noexcept {
    return VxlanHdr{kVxlanFlagI, {0, 0, 0}, be32::from_host(vni << 8)};
  }
};
static_assert(sizeof(VxlanHdr) == kVxlanHdrLen);

// The 50 outer bytes, laid out behind 2 bytes of padding so the IPv4 header is 4-byte aligned (Linux's NET_IP_ALIGN
// trick; no packed struct, no misaligned member access). bytes() is the wire image: kVxlanOverhead bytes.
struct VxlanOuter {
  uint8_t pad_[2];
  EthHdr eth;
  Ipv4Hdr ip;
  UdpHdr udp;
  VxlanHdr vxlan;

  const uint8_t* bytes() const noexcept { return reinterpret_cast<const uint8_t*>(this) + kPad; }
  uint8_t* bytes() noexcept { return reinterpret_cast<uint8_t*>(this) + kPad; }
  static constexpr size_t kPad = 2;
};
static_assert(sizeof(VxlanOuter) == VxlanOuter::kPad + kVxlanOverhead);
static_assert(offsetof(VxlanOuter, eth) == 2 && offsetof(VxlanOuter, ip) == 16 && offsetof(VxlanOuter, udp) == 36 &&
              offsetof(VxlanOuter, vxlan) == 44);

struct VxlanOuterParams {
  MacAddr src_mac;       // the uplink's MAC
  MacAddr dst_mac;       // the next hop's MAC (the remote VTEP when on-link, else the underlay gateway)
  Ipv4Addr src_ip;       // the uplink's address
  Ipv4Addr dst_ip;       // the remote VTEP
  uint16_t dst_port = kVxlanDefaultPort;
  uint32_t vni = 0;
  uint8_t ttl = kVxlanOuterTtl;
};

// The outer header template: everything but the per-packet fields (IPv4 tot_len, id, checksum; UDP source port,
// length, checksum), which are left zero. DF is set.
VxlanOuter build_vxlan_outer(const VxlanOuterParams& p) noexcept;

// The UDP source port for an inner flow hash: 49152 + hash mod 16384 (the high bits of the hash are folded in, so a
// hash whose low bits are constant still spreads).
constexpr uint16_t vxlan_source_port(uint32_t flow_hash) noexcept {
  const uint32_t h = flow_hash ^ (flow_hash >> 14) ^ (flow_hash >> 28);
  return uint16_t(kVxlanSrcPortMin + (h & (kVxlanSrcPortRange - 1)));
}

// Writes the per-packet fields of `out` (a copy of a template) for an inner frame of inner_len_bytes: lengths, the
// IPv4 header checksum, the UDP source port. The UDP checksum stays 0; call vxlan_udp_checksum() to fill it.
void finish_vxlan_outer(VxlanOuter& out, uint32_t inner_len_bytes, uint16_t src_port) noexcept;

// The UDP checksum over outer UDP + VXLAN header + inner frame (with the IPv4 pseudo-header), to store in
// out.udp.csum (0xffff instead of a computed 0, RFC 768). out.udp.csum must be 0 when calling.
be16 vxlan_udp_checksum(const VxlanOuter& out, std::span<const uint8_t> inner) noexcept;

// True when the UDP checksum of a received VXLAN datagram is 0 (not used) or verifies. udp = the UDP header and
// everything after it, exactly udp.len bytes.
bool vxlan_udp_checksum_ok(Ipv4Addr src, Ipv4Addr dst, std::span<const uint8_t> udp) noexcept;

}  // namespace vpcd::proto
