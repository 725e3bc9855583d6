// Internet checksum arithmetic (RFC 1071, RFC 1624). See checksum.h.
//
// ones_sum() adds the data as native-endian 32-bit words into a 64-bit accumulator and byte-swaps the folded result
// once at the end: the one's complement sum is byte-order independent (RFC 1071 section 2(B)), so this equals the sum
// of big-endian 16-bit words. ones_sum_copy() does the same with native 64-bit words and an end-around carry (add,
// then add the carry out: GCC makes that add + adc), 32 bytes per step in two independent accumulators, storing each
// word as it sums it; on x86-64 the bulk goes 64 bytes per step through SSE2 registers (BM_PayloadCopySum in
// bench/bm_vxlan.cc compares it with memcpy + ones_sum). Threading: pure functions.
#include "datapath/proto/checksum.h"

#include <bit>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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

uint16_t ones_sum_copy(uint8_t* dst, const uint8_t* src, size_t n) noexcept {
  // a0/a1: sums of native 64-bit words modulo 2^64; c0/c1: the carries out of them (each worth 2^64 == 1 modulo
  // 0xffff, the one's complement modulus), added back at the end.
  uint64_t a0 = 0, a1 = 0, c0 = 0, c1 = 0;
  auto add = [](uint64_t& a, uint64_t& c, uint64_t w) {
    a += w;
    c += a < w;
  };
#if defined(__SSE2__)
  // x86-64: 64 bytes per step through SSE2 registers (copied as loaded); the low and the high 16 bits of every 32-bit
  // lane summed apart in 32-bit lanes (native 16-bit words: their sum is the one's complement sum modulo 0xffff, as
  // the 64-bit words' is). A lane gains < 2^17 per step, so it is widened into the 64-bit totals every 16384 steps.
  if (n >= 64) {
    const __m128i mask = _mm_set1_epi32(0xffff);
    const __m128i zero = _mm_setzero_si128();
    __m128i total = zero;  // two 64-bit lanes
    auto widen = [&](__m128i x) {
      total = _mm_add_epi64(total, _mm_unpacklo_epi32(x, zero));
      total = _mm_add_epi64(total, _mm_unpackhi_epi32(x, zero));
    };
    while (n >= 64) {
      size_t steps = n / 64;
      if (steps > 16384) steps = 16384;
      __m128i lo0 = zero, hi0 = zero, lo1 = zero, hi1 = zero;
      for (size_t k = 0; k < steps; ++k) {
        const __m128i v0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src));
        const __m128i v1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 16));
        const __m128i v2 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 32));
        const __m128i v3 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 48));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), v0);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 16), v1);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 32), v2);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 48), v3);
        lo0 = _mm_add_epi32(lo0, _mm_and_si128(v0, mask));
        hi0 = _mm_add_epi32(hi0, _mm_srli_epi32(v0, 16));
        lo1 = _mm_add_epi32(lo1, _mm_and_si128(v1, mask));
        hi1 = _mm_add_epi32(hi1, _mm_srli_epi32(v1, 16));
        lo0 = _mm_add_epi32(lo0, _mm_and_si128(v2, mask));
        hi0 = _mm_add_epi32(hi0, _mm_srli_epi32(v2, 16));
        lo1 = _mm_add_epi32(lo1, _mm_and_si128(v3, mask));
        hi1 = _mm_add_epi32(hi1, _mm_srli_epi32(v3, 16));
        src += 64;
        dst += 64;
      }
      n -= steps * 64;
      widen(lo0);
      widen(hi0);
      widen(lo1);
      widen(hi1);
    }
    uint64_t t[2];
    _mm_storeu_si128(reinterpret_cast<__m128i*>(t), total);
    add(a0, c0, t[0]);
    add(a1, c1, t[1]);
  }
#endif
  while (n >= 32) {
    uint64_t w[4];
    std::memcpy(w, src, 32);
    std::memcpy(dst, w, 32);
    add(a0, c0, w[0]);
    add(a1, c1, w[1]);
    add(a0, c0, w[2]);
    add(a1, c1, w[3]);
    src += 32;
    dst += 32;
    n -= 32;
  }
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, src, 8);
    std::memcpy(dst, &w, 8);
    add(a0, c0, w);
    src += 8;
    dst += 8;
    n -= 8;
  }
  if (n) {  // 1-7 bytes: a zero-padded last word (native order keeps each byte at its place in its 16-bit word)
    uint8_t last[8] = {};
    std::memcpy(last, src, n);
    std::memcpy(dst, last, n);
    uint64_t w;
    std::memcpy(&w, last, 8);
    add(a1, c1, w);
  }
  // The sum is a0 + a1 + 2^64 * (c0 + c1), and 2^64 == 1 modulo 0xffff: add the carries back in, end-around.
  uint64_t s = a0 + a1;
  uint64_t carries = c0 + c1 + (s < a0);
  s += carries;
  s += s < carries;  // at most one more carry, and adding it cannot carry again
  return to_be_numeric(fold64(s));
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
