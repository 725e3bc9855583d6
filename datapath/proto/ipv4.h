// IPv4 (RFC 791) wire format, flag/offset helpers and IP protocol numbers.
//
// Threading: plain data, no state.
#pragma once

#include <cstddef>
#include <cstdint>

#include "datapath/proto/types.h"

namespace vpcd::proto {

// IP protocol / IPv6 next-header numbers.
inline constexpr uint8_t kIpProtoHopOpts = 0;
inline constexpr uint8_t kIpProtoIcmp = 1;
inline constexpr uint8_t kIpProtoTcp = 6;
inline constexpr uint8_t kIpProtoUdp = 17;
inline constexpr uint8_t kIpProtoRouting = 43;
inline constexpr uint8_t kIpProtoFragment = 44;
inline constexpr uint8_t kIpProtoEsp = 50;
inline constexpr uint8_t kIpProtoAh = 51;
inline constexpr uint8_t kIpProtoIcmpv6 = 58;
inline constexpr uint8_t kIpProtoNoNext = 59;
inline constexpr uint8_t kIpProtoDstOpts = 60;

inline constexpr size_t kIpv4MinHdrLen = 20;
inline constexpr size_t kIpv4MaxHdrLen = 60;
inline constexpr uint16_t kIpv4FlagDf = 0x4000;       // in frag_off, host order
inline constexpr uint16_t kIpv4FlagMf = 0x2000;
inline constexpr uint16_t kIpv4FragOffsetMask = 0x1fff;  // in 8-byte units

struct Ipv4Hdr {
  uint8_t ver_ihl;  // version (high nibble), header length in 32-bit words (low nibble)
  uint8_t tos;
  be16 tot_len;
  be16 id;
  be16 frag_off;  // flags (3 bits) + fragment offset (13 bits)
  uint8_t ttl;
  uint8_t proto;
  be16 csum;
  be32 src;
  be32 dst;

  constexpr uint8_t version() const noexcept { return ver_ihl >> 4; }
  constexpr size_t hdr_len_bytes() const noexcept { return size_t(ver_ihl & 0x0f) * 4; }
  constexpr bool more_fragments() const noexcept { return (frag_off.to_host() & kIpv4FlagMf) != 0; }
  constexpr uint16_t frag_offset_units() const noexcept { return frag_off.to_host() & kIpv4FragOffsetMask; }
  constexpr bool is_fragment() const noexcept { return more_fragments() || frag_offset_units() != 0; }
};
static_assert(sizeof(Ipv4Hdr) == kIpv4MinHdrLen);

}  // namespace vpcd::proto
