// Tests for datapath/proto/checksum: RFC 1071 and real-header vectors, a naive 16-bit reference over every length and
// alignment, pseudo-header sums, and RFC 1624 incremental updates against full recomputation.
#include "datapath/proto/checksum.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "datapath/proto/ipv4.h"
#include "tests/unit/proto/test_hex.h"

namespace vpcd::proto {
namespace {

using testutil::from_hex;

// Straight RFC 1071 definition: big-endian 16-bit words, 32-bit accumulator, end-around carry.
uint16_t naive_sum(const uint8_t* p, size_t n) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < n; i += 2) sum += uint32_t(p[i]) << 8 | p[i + 1];
  if (n % 2) sum += uint32_t(p[n - 1]) << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return uint16_t(sum);
}

TEST(Checksum, Rfc1071Example) {
  // RFC 1071 section 3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2 (after carries).
  const auto bytes = from_hex("00 01 f2 03 f4 f5 f6 f7");
  EXPECT_EQ(ones_sum(bytes), 0xddf2);
  EXPECT_EQ(internet_checksum(bytes).to_host(), 0x220d);
}

TEST(Checksum, RealIpv4Header) {
  // 192.168.0.1 -> 192.168.0.199, UDP, tot_len 0x73, DF, TTL 64; header checksum b861.
  auto hdr = from_hex("4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7");
  EXPECT_TRUE(checksum_valid(hdr));
  hdr[10] = hdr[11] = 0;
  EXPECT_EQ(internet_checksum(hdr).to_host(), 0xb861);
  EXPECT_FALSE(checksum_valid(hdr));
}

TEST(Checksum, MatchesNaiveAtEveryLengthAndAlignment) {
  std::mt19937 rng(42);
  std::vector<uint8_t> buf(600);
  for (auto& b : buf) b = uint8_t(rng());
  for (size_t align = 0; align < 8; ++align) {
    for (size_t n = 0; n + align <= 520; ++n) {
      SCOPED_TRACE(testing::Message() << "align " << align << " len " << n);
      ASSERT_EQ(ones_sum({buf.data() + align, n}), naive_sum(buf.data() + align, n));
    }
  }
  std::vector<uint8_t> ones(4096, 0xff);  // many carries
  EXPECT_EQ(ones_sum(ones), naive_sum(ones.data(), ones.size()));
}

// ones_sum_copy (the GSO segment copy with its sum fused): the same sum as ones_sum and the naive reference, and
// the same bytes as memcpy, for every length up to 300 (the 32-byte loop, the 8-byte loop and every 1-7 byte tail)
// and odd lengths of a segment's size, from odd and even source and destination addresses; nothing written past
// the end.
TEST(Checksum, CopySumEqualsCopyThenSum) {
  std::mt19937 rng(7);
  std::vector<uint8_t> src(1600);
  for (auto& b : src) b = uint8_t(rng());
  std::vector<size_t> lens;
  for (size_t n = 0; n <= 300; ++n) lens.push_back(n);
  for (size_t n : {1397u, 1398u, 1399u, 1447u, 1450u, 1451u, 1580u}) lens.push_back(n);
  for (size_t s_align = 0; s_align < 8; ++s_align) {
    for (size_t d_align : {size_t(0), size_t(1), size_t(3), size_t(8)}) {
      for (size_t n : lens) {
        if (s_align + n > src.size()) continue;
        SCOPED_TRACE(testing::Message() << "src align " << s_align << " dst align " << d_align << " len " << n);
        std::vector<uint8_t> dst(d_align + n + 16, 0xa5);
        const uint8_t* from = src.data() + s_align;
        ASSERT_EQ(ones_sum_copy(dst.data() + d_align, from, n), naive_sum(from, n));
        ASSERT_EQ(0, std::memcmp(dst.data() + d_align, from, n));
        for (size_t i = 0; i < d_align; ++i) ASSERT_EQ(dst[i], 0xa5);
        for (size_t i = d_align + n; i < dst.size(); ++i) ASSERT_EQ(dst[i], 0xa5);
      }
    }
  }
}

// All-0xff data carries out of every 64-bit add; all-zero data must stay 0 (not 0xffff), as ones_sum gives.
TEST(Checksum, CopySumCarriesAndZero) {
  for (size_t n : {1u, 2u, 7u, 8u, 9u, 31u, 32u, 33u, 1397u, 1398u, 4096u, 65535u}) {
    SCOPED_TRACE(testing::Message() << "len " << n);
    std::vector<uint8_t> ones(n + 1, 0xff), out(n + 1);
    EXPECT_EQ(ones_sum_copy(out.data(), ones.data() + 1, n), naive_sum(ones.data() + 1, n));  // odd source
    EXPECT_EQ(ones_sum_copy(out.data(), ones.data() + 1, n), ones_sum({ones.data() + 1, n}));
    std::vector<uint8_t> zeros(n), zout(n, 1);
    EXPECT_EQ(ones_sum_copy(zout.data(), zeros.data(), n), 0);
    EXPECT_EQ(zout, zeros);
  }
  // Past 16384 steps of 64 bytes (1 MiB), where the SSE2 lanes are widened into the totals in the middle of the
  // data: against ones_sum (the naive reference's 32-bit sum would overflow here).
  {
    const size_t n = (size_t(1) << 20) + 4096 + 77;
    std::vector<uint8_t> big(n + 1, 0xff), out(n);
    EXPECT_EQ(ones_sum_copy(out.data(), big.data() + 1, n), ones_sum({big.data() + 1, n}));
    std::mt19937 rng(3);
    for (auto& b : big) b = uint8_t(rng());
    EXPECT_EQ(ones_sum_copy(out.data(), big.data() + 1, n), ones_sum({big.data() + 1, n}));
    EXPECT_EQ(0, std::memcmp(out.data(), big.data() + 1, n));
  }
  // A sum that is a non-zero multiple of 0xffff is 0xffff (one's complement -0), as in ones_sum.
  const auto cancel = from_hex("12 34 ed cb 00 00 00 00 12 34");  // 0x1234 + 0xedcb = 0xffff, + 0x1234
  std::vector<uint8_t> out(cancel.size());
  EXPECT_EQ(ones_sum_copy(out.data(), cancel.data(), 4), 0xffff);
  EXPECT_EQ(ones_sum_copy(out.data(), cancel.data(), 4), ones_sum({cancel.data(), 4}));
  // Chained onto a header sum exactly as gso.cc does: equal to the sum over header + payload.
  const std::span<const uint8_t> all(cancel);
  EXPECT_EQ(fold_sum(uint32_t(ones_sum(all.first(4), 0x1234)) + ones_sum_copy(out.data(), cancel.data() + 4, 6)),
            ones_sum(all, 0x1234));
}

TEST(Checksum, ChainingEvenChunksEqualsWhole) {
  const auto bytes = from_hex("45 00 00 73 00 00 40 00 40 11 00 00 c0 a8 00 01 c0 a8 00 c7 01");
  const std::span<const uint8_t> all(bytes);
  EXPECT_EQ(ones_sum(all.subspan(8), ones_sum(all.first(8))), ones_sum(all));
  EXPECT_EQ(ones_sum(all, 0x10001), ones_sum(all, 2));  // initial is folded with end-around carry
}

TEST(Checksum, Ipv4PseudoHeaderUdp) {
  // UDP 10.0.0.1:1000 -> 10.0.0.2:53, payload "hi"; checksum computed by hand:
  // pseudo 0a00+0001+0a00+0002+0011+000a = 0x141e; udp 03e8+0035+000a+0000+6869 = 0x6c90; sum 0x80ae -> ~ = 0x7f51.
  auto udp = from_hex("03e8 0035 000a 0000 6869");
  const Ipv4Addr a{0x0a000001}, b{0x0a000002};
  EXPECT_EQ(ipv4_pseudo_sum(a, b, kIpProtoUdp, 10), 0x141eu);
  EXPECT_EQ(udp_checksum_ipv4(a, b, udp).to_host(), 0x7f51);
  udp[6] = 0x7f;
  udp[7] = 0x51;
  EXPECT_TRUE(checksum_valid(udp, ipv4_pseudo_sum(a, b, kIpProtoUdp, 10)));
}

TEST(Checksum, UdpZeroIsSentAsAllOnes) {
  // Choose a payload word that makes the sum 0xffff: the computed checksum would be 0, which UDP sends as ffff.
  const Ipv4Addr a{0x0a000001}, b{0x0a000002};
  auto udp = from_hex("03e8 0035 000a 0000 0000");
  const uint16_t partial = ones_sum(udp, ipv4_pseudo_sum(a, b, kIpProtoUdp, 10));
  const uint16_t fill = uint16_t(0xffff - partial);
  udp[8] = uint8_t(fill >> 8);
  udp[9] = uint8_t(fill);
  EXPECT_EQ(l4_checksum_ipv4(a, b, kIpProtoUdp, udp).to_host(), 0);
  EXPECT_EQ(udp_checksum_ipv4(a, b, udp).to_host(), 0xffff);
}

TEST(Checksum, Ipv6PseudoHeader) {
  const auto src = *Ipv6Addr::parse("fd00::1");
  const auto dst = *Ipv6Addr::parse("fd00::2");
  // fd00 + 0001 + fd00 + 0002 + length 0x10 (two words 0000 0010) + next header 0x3a.
  const uint32_t expect = naive_sum(from_hex("fd00 0001 fd00 0002 0000 0010 003a").data(), 14);
  EXPECT_EQ(fold_sum(ipv6_pseudo_sum(src, dst, 58, 16)), expect);
}

TEST(Checksum, IncrementalUpdateMatchesRecompute) {
  std::mt19937 rng(7);
  for (int iter = 0; iter < 2000; ++iter) {
    SCOPED_TRACE(iter);
    std::vector<uint8_t> hdr(20);
    for (auto& b : hdr) b = uint8_t(rng());
    hdr[10] = hdr[11] = 0;
    const be16 before = internet_checksum(hdr);
    // 16-bit field at offset 8 (TTL/protocol), as a TTL decrement does.
    be16 old16, new16;
    std::memcpy(&old16, &hdr[8], 2);
    new16 = be16::from_host(uint16_t(rng()));
    std::memcpy(&hdr[8], &new16, 2);
    const be16 after16 = internet_checksum(hdr);
    const be16 inc16 = checksum_update16(before, old16, new16);
    EXPECT_EQ(inc16.to_host(), after16.to_host());
    // 32-bit field at offset 12 (source address), as SNAT does.
    be32 old32, new32;
    std::memcpy(&old32, &hdr[12], 4);
    new32 = be32::from_host(uint32_t(rng()));
    std::memcpy(&hdr[12], &new32, 4);
    EXPECT_EQ(checksum_update32(after16, old32, new32).to_host(), internet_checksum(hdr).to_host());
  }
}

TEST(Checksum, IncrementalUpdateOfPseudoHeaderAddress) {
  // NAT rewrites the source address: the UDP checksum (which covers it through the pseudo-header) follows.
  auto udp = from_hex("03e8 0035 000c 0000 6869 7a7a");
  const Ipv4Addr a{0x0a000001}, b{0x0a000002}, nat{0xc6336401};
  const be16 c1 = udp_checksum_ipv4(a, b, udp);
  const be16 c2 = udp_checksum_ipv4(nat, b, udp);
  EXPECT_EQ(checksum_update32(c1, a.to_be(), nat.to_be()).to_host(), c2.to_host());
}

}  // namespace
}  // namespace vpcd::proto
