// IPv6 (RFC 8200) wire formats: fixed header, generic extension header prefix, fragment header; and Ipv6Addr.
//
// Threading: plain data, no state.
#pragma once

#include <arpa/inet.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "datapath/proto/types.h"

namespace vpcd::proto {

inline constexpr size_t kIpv6HdrLen = 40;
inline constexpr size_t kIpv6FragHdrLen = 8;
inline constexpr uint16_t kIpv6FragOffsetMask = 0xfff8;  // in frag_off_flags, host order: offset << 3
inline constexpr uint16_t kIpv6FragMore = 0x0001;

struct Ipv6Addr {
  std::array<uint8_t, 16> b{};

  // RFC 4291 text form via inet_pton(3).
  static std::optional<Ipv6Addr> parse(std::string_view s) {
    std::string z(s);
    Ipv6Addr a;
    if (inet_pton(AF_INET6, z.c_str(), a.b.data()) != 1) return std::nullopt;
    return a;
  }
  std::string to_string() const {
    char text[INET6_ADDRSTRLEN];
    inet_ntop(AF_INET6, b.data(), text, sizeof(text));
    return text;
  }
  friend constexpr bool operator==(const Ipv6Addr&, const Ipv6Addr&) = default;
};
static_assert(sizeof(Ipv6Addr) == 16);

struct Ipv6Hdr {
  be32 ver_tc_flow;  // version (4 bits), traffic class (8), flow label (20)
  be16 payload_len;  // bytes after this 40-byte header, extension headers included
  uint8_t next_hdr;
  uint8_t hop_limit;
  Ipv6Addr src;
  Ipv6Addr dst;

  constexpr uint8_t version() const noexcept { return uint8_t(ver_tc_flow.to_host() >> 28); }
};
static_assert(sizeof(Ipv6Hdr) == kIpv6HdrLen);

// First two bytes of hop-by-hop, routing and destination-options headers; total length is (hdr_ext_len + 1) * 8.
struct Ipv6ExtHdr {
  uint8_t next_hdr;
  uint8_t hdr_ext_len;

  constexpr size_t len_bytes() const noexcept { return (size_t(hdr_ext_len) + 1) * 8; }
};
static_assert(sizeof(Ipv6ExtHdr) == 2);

struct Ipv6FragHdr {
  uint8_t next_hdr;
  uint8_t reserved;
  be16 frag_off_flags;  // offset in 8-byte units (13 bits), 2 reserved bits, M flag
  be32 id;

  constexpr uint16_t offset_units() const noexcept { return frag_off_flags.to_host() >> 3; }
  constexpr bool more_fragments() const noexcept { return (frag_off_flags.to_host() & kIpv6FragMore) != 0; }
};
static_assert(sizeof(Ipv6FragHdr) == kIpv6FragHdrLen);

}  // namespace vpcd::proto
