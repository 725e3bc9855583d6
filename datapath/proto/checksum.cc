// Internet checksum arithmetic (RFC 1071, RFC 1624). See checksum.h.
//
// ones_sum() adds the data as native-endian 32-bit words into a 64-bit accumulator and byte-swaps the folded result
// once at the end: the one's complement sum is byte-order independent (RFC 1071 section 2(B)), so this equals the sum
// of big-endian 16-bit words. Threading: pure functions.
#include "datapath/proto/checksum.h"

#include <bit>
#include <cstring>

#include "datapath/proto/ipv4.h"

namespace vpcd::proto {
namespace {

uint16_t to_be_numeric(uint16_t native_sum) noexcept {
  if constexpr (std::endian::native == std::endian::little) return __builtin_bswap16(native_sum);
  return native_sum;
}

uint16_t fold64(uint64_t sum) noexcept {
  sum = (sum & 0xffffffffu) + (sum >> 32);
  sum = (sum & 0xffffffffu) + (sum >> 32);
  return fold_sum(uint32_t(sum & 0xffff) + uint32_t(sum >> 16));
}

uint32_t sum_u32(uint32_t v) noexcept { return (v >> 16) + (v & 0xffff); }

}  // namespace

uint16_t ones_sum(std::span<const uint8_t> data, uint32_t initial) noexcept {
  uint64_t acc = 0;  // native-order words; 2^32 words of 2^32 would be needed to overflow
  const uint8_t* p = data.data();
  size_t n = data.size();
  while (n >= 16) {
    uint32_t w[4];
    std::memcpy(w, p, 16);
    acc += uint64_t(w[0]) + w[1] + w[2] + w[3];
    p += 16;
    n -= 16;
  }
  while (n >= 4) {
    uint32_t w;
    std::memcpy(&w, p, 4);
    acc += w;
    p += 4;
    n -= 4;
  }
  if (n >= 2) {
    uint16_t w;
    std::memcpy(&w, p, 2);
    acc += w;
    p += 2;
    n -= 2;
  }
  if (n == 1) {
    const uint8_t last[2] = {*p, 0};
    uint16_t w;
    std::memcpy(&w, last, 2);
    acc += w;
  }
  const uint32_t data_sum = to_be_numeric(fold64(acc));
  return fold_sum(data_sum + fold_sum(initial));
}

be16 internet_checksum(std::span<const uint8_t> data, uint32_t initial) noexcept {
  return be16::from_host(uint16_t(~ones_sum(data, initial)));
}

bool checksum_valid(std::span<const uint8_t> data, uint32_t initial) noexcept {
  return ones_sum(data, initial) == 0xffff;
}

uint32_t ipv4_pseudo_sum(Ipv4Addr src, Ipv4Addr dst, uint8_t proto, uint16_t l4_len_bytes) noexcept {
  return sum_u32(src.v) + sum_u32(dst.v) + proto + l4_len_bytes;
}

uint32_t ipv6_pseudo_sum(const Ipv6Addr& src, const Ipv6Addr& dst, uint8_t next_hdr,
                         uint32_t l4_len_bytes) noexcept {
  uint32_t sum = uint32_t(ones_sum(src.b)) + ones_sum(dst.b);
  return sum + sum_u32(l4_len_bytes) + next_hdr;
}

be16 l4_checksum_ipv4(Ipv4Addr src, Ipv4Addr dst, uint8_t proto, std::span<const uint8_t> l4) noexcept {
  return internet_checksum(l4, ipv4_pseudo_sum(src, dst, proto, uint16_t(l4.size())));
}

be16 l4_checksum_ipv6(const Ipv6Addr& src, const Ipv6Addr& dst, uint8_t next_hdr,
                      std::span<const uint8_t> l4) noexcept {
  return internet_checksum(l4, ipv6_pseudo_sum(src, dst, next_hdr, uint32_t(l4.size())));
}

be16 udp_checksum_ipv4(Ipv4Addr src, Ipv4Addr dst, std::span<const uint8_t> udp) noexcept {
  be16 c = l4_checksum_ipv4(src, dst, kIpProtoUdp, udp);
  return c.raw == 0 ? be16{0xffff} : c;
}

be16 udp_checksum_ipv6(const Ipv6Addr& src, const Ipv6Addr& dst, std::span<const uint8_t> udp) noexcept {
  be16 c = l4_checksum_ipv6(src, dst, kIpProtoUdp, udp);
  return c.raw == 0 ? be16{0xffff} : c;
}

be16 checksum_update16(be16 csum, be16 old_field, be16 new_field) noexcept {
  const uint32_t sum = uint32_t(uint16_t(~csum.to_host())) + uint16_t(~old_field.to_host()) + new_field.to_host();
  return be16::from_host(uint16_t(~fold_sum(sum)));
}

be16 checksum_update32(be16 csum, be32 old_field, be32 new_field) noexcept {
  const uint32_t o = ~old_field.to_host();
  const uint32_t n = new_field.to_host();
  const uint32_t sum = uint32_t(uint16_t(~csum.to_host())) + (o >> 16) + (o & 0xffff) + (n >> 16) + (n & 0xffff);
  return be16::from_host(uint16_t(~fold_sum(sum)));
}

}  // namespace vpcd::proto
