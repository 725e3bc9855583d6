// Tests for datapath/proto/frame_builder: byte-exact matches against frames captured from Linux
// (tests/data/kernel_frames.hex), and valid lengths and checksums for every layer combination.
#include "datapath/proto/frame_builder.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "datapath/proto/arp.h"
#include "datapath/proto/checksum.h"
#include "datapath/proto/ipv4.h"
#include "datapath/proto/l4.h"
#include "tests/unit/proto/test_hex.h"

namespace vpcd::proto {
namespace {

using testutil::from_hex;

const MacAddr kCapA{{0xfa, 0xe3, 0x6f, 0x25, 0x8a, 0xaf}};
const MacAddr kCapB{{0xb2, 0xc0, 0x47, 0x41, 0x24, 0x7c}};
const Ipv4Addr kCapIpA{0x0afa0001}, kCapIpB{0x0afa0002};

TEST(FrameBuilder, ArpRequestMatchesKernel) {
  const auto kernel = from_hex(
      "ffffffffffff fae36f258aaf 0806 0001 0800 06 04 0001 fae36f258aaf 0afa0001 000000000000 0afa0002");
  EXPECT_EQ(FrameBuilder().eth(kCapA, kBroadcastMac).arp(kArpOpRequest, kCapA, kCapIpA, {}, kCapIpB).build(), kernel);
}

TEST(FrameBuilder, IcmpEchoMatchesKernel) {
  // ping -s 16 from 10.250.0.1: IPv4 id ba6c, DF, TTL 64; ICMP id 4433 seq 1. Both checksums are complete in the
  // capture (ICMP is not offloaded), so this checks the IPv4 header and ICMP checksums byte for byte.
  const auto kernel = from_hex(
      "b2c04741247c fae36f258aaf 0800 4500002cba6c400040016a6e0afa00010afa0002 "
      "0800f02744330001a569026b0000000018cf030000000000");
  const auto payload = from_hex("a569026b0000000018cf030000000000");
  EXPECT_EQ(FrameBuilder()
                .eth(kCapA, kCapB)
                .ipv4(kCapIpA, kCapIpB, {.id = 0xba6c, .frag_off = kIpv4FlagDf})
                .icmp_echo(true, 0x4433, 1)
                .payload(payload)
                .build(),
            kernel);
}

TEST(FrameBuilder, Icmpv6EchoMatchesKernel) {
  // ping fd00:250::2: the kernel computes the ICMPv6 checksum (0ba3) over the IPv6 pseudo-header.
  auto kernel = from_hex(
      "b2c04741247c fae36f258aaf 86dd 600be0c700183a40 fd000250000000000000000000000001 "
      "fd000250000000000000000000000002 80000ba344350001a569026b00000000855a040000000000");
  auto built = FrameBuilder()
                   .eth(kCapA, kCapB)
                   .ipv6(*Ipv6Addr::parse("fd00:250::1"), *Ipv6Addr::parse("fd00:250::2"))
                   .icmp_echo(true, 0x4435, 1)
                   .payload(from_hex("a569026b00000000855a040000000000"))
                   .build();
  ASSERT_EQ(built.size(), kernel.size());
  std::memcpy(&built[15], &kernel[15], 3);  // flow label (the builder leaves it 0)
  EXPECT_EQ(built, kernel);
}

TEST(FrameBuilder, Ipv4UdpTcpLengthsAndChecksums) {
  const Ipv4Addr a{0xc0a80001}, b{0xc0a800c7};
  for (int tcp = 0; tcp < 2; ++tcp) {
    SCOPED_TRACE(tcp ? "tcp" : "udp");
    FrameBuilder fb;
    fb.eth(kCapA, kCapB).vlan(7).ipv4(a, b, {.ttl = 9});
    if (tcp) {
      fb.tcp(1234, 80, {.seq = 1, .ack = 2, .flags = kTcpAck | kTcpPsh});
    } else {
      fb.udp(1234, 53);
    }
    const auto f = fb.payload_size(33).build();
    const size_t l3 = 18, l4 = l3 + 20, l4_len = (tcp ? 20u : 8u) + 33;
    ASSERT_EQ(f.size(), l4 + l4_len);
    EXPECT_EQ(f[12], 0x81);
    EXPECT_EQ(f[16], 0x08);
    std::span<const uint8_t> frame(f);
    EXPECT_TRUE(checksum_valid(frame.subspan(l3, 20)));
    EXPECT_EQ(size_t(f[l3 + 2] << 8 | f[l3 + 3]), 20 + l4_len);
    EXPECT_EQ(f[l3 + 8], 9);
    EXPECT_EQ(f[l3 + 9], tcp ? kIpProtoTcp : kIpProtoUdp);
    EXPECT_TRUE(checksum_valid(frame.subspan(l4), ipv4_pseudo_sum(a, b, f[l3 + 9], uint16_t(l4_len))));
    if (!tcp) {
      EXPECT_EQ(size_t(f[l4 + 4] << 8 | f[l4 + 5]), l4_len);
    }
  }
}

TEST(FrameBuilder, Ipv4OptionsArePaddedAndCounted) {
  const auto f = FrameBuilder().ipv4({1}, {2}, {.options = {0x94, 0x04, 0, 0, 0x01}}).udp(1, 2).build();
  EXPECT_EQ(f[14], 0x47);  // 20 + 8 bytes of options
  EXPECT_TRUE(checksum_valid(std::span<const uint8_t>(f).subspan(14, 28)));
  EXPECT_EQ(f.size(), 14u + 28 + 8);
}

TEST(FrameBuilder, Ipv6UdpAndExtensionHeaders) {
  const auto a = *Ipv6Addr::parse("2001:db8::1"), b = *Ipv6Addr::parse("2001:db8::2");
  const auto f = FrameBuilder().ipv6(a, b).ipv6_ext(kIpProtoHopOpts, 8).ipv6_frag(0, true, 99).udp(9, 10)
                     .payload_size(5).build();
  ASSERT_EQ(f.size(), 14u + 40 + 8 + 8 + 8 + 5);
  EXPECT_EQ(f[14 + 6], kIpProtoHopOpts);
  EXPECT_EQ(size_t(f[18] << 8 | f[19]), 8u + 8 + 13);
  EXPECT_EQ(f[54], kIpProtoFragment);  // hop-by-hop next header
  EXPECT_EQ(f[55], 0);                 // 8 bytes
  EXPECT_EQ(f[56], 1);                 // PadN covering the rest
  EXPECT_EQ(f[57], 4);
  EXPECT_EQ(f[62], kIpProtoUdp);  // fragment next header
  EXPECT_EQ(f[65], 1);            // offset 0, M set
  std::span<const uint8_t> frame(f);
  EXPECT_TRUE(checksum_valid(frame.subspan(70), ipv6_pseudo_sum(a, b, kIpProtoUdp, 13)));
}

TEST(FrameBuilder, EchoTypeFollowsL3WhateverTheCallOrder) {
  const auto a = *Ipv6Addr::parse("fd00::1"), b = *Ipv6Addr::parse("fd00::2");
  const auto v6 = FrameBuilder().icmp_echo(true, 5, 6).ipv6(a, b).build();
  EXPECT_EQ(v6[54], kIcmpv6EchoRequest);
  EXPECT_TRUE(checksum_valid(std::span<const uint8_t>(v6).subspan(54), ipv6_pseudo_sum(a, b, kIpProtoIcmpv6, 8)));
  const auto v4 = FrameBuilder().icmp_echo(false, 5, 6).ipv4({1}, {2}).build();
  EXPECT_EQ(v4[34], kIcmpEchoReply);
  EXPECT_EQ(v4[23], kIpProtoIcmp);
  EXPECT_TRUE(checksum_valid(std::span<const uint8_t>(v4).subspan(34)));
}

TEST(FrameBuilder, Ipv6ExtLengthIsRoundedToEightByteUnits) {
  const auto f = FrameBuilder().ipv6({}, {}).ipv6_ext(kIpProtoDstOpts, 3).ipv6_ext(kIpProtoDstOpts, 9).build();
  ASSERT_EQ(f.size(), 14u + 40 + 8 + 16);
  EXPECT_EQ(f[55], 0);  // 8 bytes
  EXPECT_EQ(f[63], 1);  // 16 bytes
}

TEST(FrameBuilder, PadToAndMakePacket) {
  auto f = FrameBuilder().arp(kArpOpReply, kCapA, kCapIpA, kCapB, kCapIpB).pad_to(kEthMinFrameLen).build();
  ASSERT_EQ(f.size(), kEthMinFrameLen);
  EXPECT_EQ(f[59], 0);
  dp::Packet p = make_packet(f);
  EXPECT_EQ(p.data, f.data());
  EXPECT_EQ(p.len, 60u);
  EXPECT_EQ(p.wire_len, 60u);
  EXPECT_FALSE(p.dropped());
}

}  // namespace
}  // namespace vpcd::proto
