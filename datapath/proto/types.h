// Address and byte-order types shared by the datapath and the control plane.
//
// be16/be32 keep network byte order in the type system (like OVS's ovs_be16): a value read off the wire stays a
// be16 until to_host() is called, so mixing host and wire order is a compile error.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace vpcd {

struct be16 {
  uint16_t raw = 0;  // network byte order
  static constexpr be16 from_host(uint16_t v) noexcept { return be16{__builtin_bswap16(v)}; }
  constexpr uint16_t to_host() const noexcept { return __builtin_bswap16(raw); }
  friend constexpr bool operator==(be16, be16) = default;
};
struct be32 {
  uint32_t raw = 0;  // network byte order
  static constexpr be32 from_host(uint32_t v) noexcept { return be32{__builtin_bswap32(v)}; }
  constexpr uint32_t to_host() const noexcept { return __builtin_bswap32(raw); }
  friend constexpr bool operator==(be32, be32) = default;
};
static_assert(sizeof(be16) == 2 && sizeof(be32) == 4);

struct MacAddr {
  std::array<uint8_t, 6> b{};

  constexpr bool is_broadcast() const noexcept {
    return b[0] == 0xff && b[1] == 0xff && b[2] == 0xff && b[3] == 0xff && b[4] == 0xff && b[5] == 0xff;
  }
  constexpr bool is_multicast() const noexcept { return (b[0] & 1) != 0; }  // includes broadcast
  constexpr bool is_zero() const noexcept {
    return (b[0] | b[1] | b[2] | b[3] | b[4] | b[5]) == 0;
  }
  // 48 bits in the low part of a uint64_t, for hashing and table keys.
  constexpr uint64_t to_u64() const noexcept {
    return (uint64_t(b[0]) << 40) | (uint64_t(b[1]) << 32) | (uint64_t(b[2]) << 24) | (uint64_t(b[3]) << 16) |
           (uint64_t(b[4]) << 8) | uint64_t(b[5]);
  }
  static constexpr MacAddr from_u64(uint64_t v) noexcept {
    return MacAddr{{uint8_t(v >> 40), uint8_t(v >> 32), uint8_t(v >> 24), uint8_t(v >> 16), uint8_t(v >> 8),
                    uint8_t(v)}};
  }
  static MacAddr from_bytes(const uint8_t* p) noexcept {
    MacAddr m;
    std::memcpy(m.b.data(), p, 6);
    return m;
  }
  static std::optional<MacAddr> parse(std::string_view s);  // "aa:bb:cc:dd:ee:ff" (or '-')
  std::string to_string() const;                             // lower-case, ':'-separated
  friend constexpr bool operator==(const MacAddr&, const MacAddr&) = default;
  friend constexpr auto operator<=>(const MacAddr&, const MacAddr&) = default;
};
inline constexpr MacAddr kBroadcastMac{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};

struct Ipv4Addr {
  uint32_t v = 0;  // host byte order
  constexpr be32 to_be() const noexcept { return be32::from_host(v); }
  static constexpr Ipv4Addr from_be(be32 x) noexcept { return Ipv4Addr{x.to_host()}; }
  static std::optional<Ipv4Addr> parse(std::string_view s);  // dotted quad, strict (no leading zeros, 0..255)
  std::string to_string() const;
  friend constexpr bool operator==(Ipv4Addr, Ipv4Addr) = default;
  friend constexpr auto operator<=>(Ipv4Addr, Ipv4Addr) = default;
};

struct Ipv4Prefix {
  Ipv4Addr addr;    // network address (host bits zero when canonical)
  uint8_t len = 0;  // 0..32

  constexpr uint32_t mask() const noexcept { return len == 0 ? 0 : ~uint32_t(0) << (32 - len); }
  constexpr bool contains(Ipv4Addr a) const noexcept { return (a.v & mask()) == (addr.v & mask()); }
  constexpr bool contains(const Ipv4Prefix& p) const noexcept { return p.len >= len && contains(p.addr); }
  constexpr bool overlaps(const Ipv4Prefix& p) const noexcept { return contains(p) || p.contains(*this); }
  constexpr bool is_canonical() const noexcept { return (addr.v & ~mask()) == 0; }
  constexpr Ipv4Addr broadcast() const noexcept { return Ipv4Addr{addr.v | ~mask()}; }
  // "10.0.0.0/24". With strict=true, host bits must be zero.
  static std::optional<Ipv4Prefix> parse(std::string_view s, bool strict = true);
  std::string to_string() const;
  friend constexpr bool operator==(const Ipv4Prefix&, const Ipv4Prefix&) = default;
};

}  // namespace vpcd
