// ARP responder through the pipeline: requests for known addresses are answered in place with exact RFC 826 reply
// bytes, out of the input port only; gratuitous ARP, unknown targets and self-probes are switched (flooded) instead.
#include "datapath/stages/arp_responder.h"

#include <gtest/gtest.h>

#include "tests/unit/stages/switch_test_net.h"

namespace vpcd::dp {
namespace {

using proto::FrameBuilder;
using testing::ip;
using testing::mac;

const MacAddr kA = mac(0x0a), kB = mac(0x0b), kC = mac(0x0c), kRouter = mac(0xfe, 0xff);
const Ipv4Addr kIpA = ip("10.0.0.2"), kIpB = ip("10.0.0.3"), kIpC = ip("10.0.1.4"), kGw = ip("10.0.0.1");

struct Net : testing::SwitchTestNet {
  Net() {
    uint16_t v = add_vpc(kRouter, 1450, {kGw, ip("10.0.1.1")});
    a = add_port(v, kA, {kIpA});
    b = add_port(v, kB, {kIpB});
    c = add_port(v, kC, {kIpC, ip("10.0.1.5")}, /*port_security=*/false);
    build();
  }
  uint16_t a, b, c;
};

TEST(ArpResponder, AnswersNicAddressWithExactReply) {
  struct Case {
    const char* name;
    size_t pad;
  } const kCases[] = {{"unpadded 42 bytes", 0}, {"padded to 60", 60}};
  for (const auto& tc : kCases) {
    SCOPED_TRACE(tc.name);
    Net net;
    auto req = FrameBuilder().eth(kA, kBroadcastMac).arp(1, kA, kIpA, MacAddr{}, kIpB).pad_to(tc.pad).build();
    net.receive(net.a, req);
    auto want = FrameBuilder().eth(kB, kA).arp(2, kB, kIpB, kA, kIpA).pad_to(tc.pad).build();
    auto got = net.out(net.a);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0], want);
    EXPECT_TRUE(net.out(net.b).empty());
    EXPECT_TRUE(net.out(net.c).empty());
    auto ca = net.counters(net.a);
    EXPECT_EQ(ca.rx_packets, 1u);
    EXPECT_EQ(ca.tx_packets, 1u);
    EXPECT_EQ(ca.total_drops(), 0u);
  }
}

TEST(ArpResponder, AnswersEveryKnownAddress) {
  struct Case {
    const char* name;
    Ipv4Addr target;
    MacAddr answer;
  } const kCases[] = {
      {"gateway of first subnet", kGw, kRouter},
      {"gateway of second subnet", ip("10.0.1.1"), kRouter},
      {"nic second address", ip("10.0.1.5"), kC},
      {"nic on unprotected port", kIpC, kC},
  };
  for (const auto& tc : kCases) {
    SCOPED_TRACE(tc.name);
    Net net;
    // Unicast refresh requests (to the owner's MAC) are answered too.
    auto req = FrameBuilder().eth(kA, kBroadcastMac).arp(1, kA, kIpA, MacAddr{}, tc.target).build();
    net.receive(net.a, req);
    auto got = net.out(net.a);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0], FrameBuilder().eth(tc.answer, kA).arp(2, tc.answer, tc.target, kA, kIpA).build());
    EXPECT_TRUE(net.out(net.b).empty());
    EXPECT_TRUE(net.out(net.c).empty());
  }
}

TEST(ArpResponder, SwitchesWhatItDoesNotAnswer) {
  struct Case {
    const char* name;
    std::vector<uint8_t> frame;
  };
  const Case kCases[] = {
      {"unknown target", FrameBuilder().eth(kA, kBroadcastMac).arp(1, kA, kIpA, MacAddr{}, ip("10.0.0.99")).build()},
      {"gratuitous", FrameBuilder().eth(kA, kBroadcastMac).arp(1, kA, kIpA, MacAddr{}, kIpA).build()},
      {"probe for own address", FrameBuilder().eth(kA, kBroadcastMac).arp(1, kA, ip("0.0.0.0"), MacAddr{}, kIpA).build()},
      {"gratuitous reply", FrameBuilder().eth(kA, kBroadcastMac).arp(2, kA, kIpA, kBroadcastMac, kIpA).build()},
  };
  for (const auto& tc : kCases) {
    SCOPED_TRACE(tc.name);
    Net net;
    net.receive(net.a, tc.frame);
    EXPECT_TRUE(net.out(net.a).empty());
    auto to_b = net.out(net.b), to_c = net.out(net.c);
    ASSERT_EQ(to_b.size(), 1u);
    ASSERT_EQ(to_c.size(), 1u);
    EXPECT_EQ(to_b[0], tc.frame);  // unchanged
    EXPECT_EQ(to_c[0], tc.frame);
  }
}

TEST(ArpResponder, GratuitousTakeoverIsFloodedNotAnswered) {
  // c (port security off, e.g. keepalived) announces a known address as its own: it must reach the others.
  Net net;
  auto garp = FrameBuilder().eth(kC, kBroadcastMac).arp(1, kC, kIpB, MacAddr{}, kIpB).build();
  net.receive(net.c, garp);
  EXPECT_TRUE(net.out(net.c).empty());
  EXPECT_EQ(net.out(net.a), std::vector<std::vector<uint8_t>>{garp});
  EXPECT_EQ(net.out(net.b), std::vector<std::vector<uint8_t>>{garp});
}

TEST(ArpResponder, UnicastReplyIsSwitchedToItsDestination) {
  Net net;
  auto reply = FrameBuilder().eth(kA, kB).arp(2, kA, kIpA, kB, kIpB).build();
  net.receive(net.a, reply);
  EXPECT_EQ(net.out(net.b).size(), 1u);
  EXPECT_TRUE(net.out(net.c).empty());
  EXPECT_TRUE(net.out(net.a).empty());
}

TEST(ArpResponder, KeepsVlanTagOnUnprotectedPort) {
  Net net;
  auto req = FrameBuilder().eth(kC, kBroadcastMac).vlan(7).arp(1, kC, kIpC, MacAddr{}, kIpB).build();
  net.receive(net.c, req);
  auto got = net.out(net.c);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], FrameBuilder().eth(kB, kC).vlan(7).arp(2, kB, kIpB, kC, kIpC).build());
}

TEST(ArpResponder, ClearsVnetHeaderOfAnswer) {
  Net net;
  virtio_net_hdr vnet{};
  vnet.flags = 0;
  vnet.gso_type = VIRTIO_NET_HDR_GSO_NONE;
  vnet.hdr_len = 5;  // meaningless for ARP; must not travel back
  auto req = FrameBuilder().eth(kA, kBroadcastMac).arp(1, kA, kIpA, MacAddr{}, kIpB).build();
  net.receive(net.a, req, vnet);
  auto got = net.fakes[net.a]->drain();
  ASSERT_EQ(got.size(), 1u);
  ASSERT_TRUE(got[0].vnet.has_value());
  EXPECT_EQ(got[0].vnet->hdr_len, 0);
}

}  // namespace
}  // namespace vpcd::dp
