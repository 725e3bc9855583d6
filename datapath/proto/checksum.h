// Internet checksum (RFC 1071), pseudo-header sums for TCP/UDP/ICMPv6, and incremental update (RFC 1624).
//
// Sums are "one's complement sums of big-endian 16-bit words" kept in host integers (uint32_t, not yet folded or
// complemented) so they can be chained: ones_sum(l4, ipv4_pseudo_sum(...)). Chained spans must each start at an even
// offset of the checksummed data. Final values are be16, ready to store in a header.
// Threading: pure functions.
#pragma once

#include <cstdint>
#include <span>

#include "datapath/proto/ipv6.h"
#include "datapath/proto/types.h"

namespace vpcd::proto {

// One's complement sum of data (as big-endian 16-bit words; an odd last byte is padded with zero) added to initial,
// folded to 16 bits. Not complemented.
uint16_t ones_sum(std::span<const uint8_t> data, uint32_t initial = 0) noexcept;

// Copies n bytes from src to dst (not overlapping, any alignment) and returns their one's complement sum, exactly
// ones_sum({src, n}): one pass over the bytes instead of a memcpy and then a second read (the software GSO's
// segment payloads, gso.cc). The sum is relative to src[0], so src must start at an even offset of the checksummed
// data; chain it with fold_sum(ones_sum(headers, pseudo) + ones_sum_copy(...)).
uint16_t ones_sum_copy(uint8_t* dst, const uint8_t* src, size_t n) noexcept;

// Folds a 32-bit running sum to 16 bits with end-around carry.
constexpr uint16_t fold_sum(uint32_t sum) noexcept {
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return uint16_t(sum);
}

// The checksum field value for data (whose own checksum field must be zero when computing): ~ones_sum.
be16 internet_checksum(std::span<const uint8_t> data, uint32_t initial = 0) noexcept;

// True when data (checksum field included) sums to 0xffff, i.e. its checksum verifies.
bool checksum_valid(std::span<const uint8_t> data, uint32_t initial = 0) noexcept;

// Pseudo-header sums (RFC 768 / RFC 9293 for IPv4; RFC 8200 section 8.1 for IPv6), to pass as `initial`.
uint32_t ipv4_pseudo_sum(Ipv4Addr src, Ipv4Addr dst, uint8_t proto, uint16_t l4_len_bytes) noexcept;
uint32_t ipv6_pseudo_sum(const Ipv6Addr& src, const Ipv6Addr& dst, uint8_t next_hdr, uint32_t l4_len_bytes) noexcept;

// TCP/UDP/ICMPv6 checksum over the L4 header + payload (checksum field zeroed) with the pseudo-header. UDP callers
// must send 0xffff instead of a computed 0 (RFC 768); udp_checksum_* do that.
be16 l4_checksum_ipv4(Ipv4Addr src, Ipv4Addr dst, uint8_t proto, std::span<const uint8_t> l4) noexcept;
be16 l4_checksum_ipv6(const Ipv6Addr& src, const Ipv6Addr& dst, uint8_t next_hdr, std::span<const uint8_t> l4) noexcept;
be16 udp_checksum_ipv4(Ipv4Addr src, Ipv4Addr dst, std::span<const uint8_t> udp) noexcept;
be16 udp_checksum_ipv6(const Ipv6Addr& src, const Ipv6Addr& dst, std::span<const uint8_t> udp) noexcept;

// RFC 1624 eqn. 3: the new checksum after a covered 16-bit field changed from old_field to new_field:
// HC' = ~(~HC + ~m + m').
be16 checksum_update16(be16 csum, be16 old_field, be16 new_field) noexcept;
// The same for a 32-bit field (an IPv4 address, for NAT: update both the IP and the L4 checksum).
be16 checksum_update32(be16 csum, be32 old_field, be32 new_field) noexcept;

}  // namespace vpcd::proto
