// L2 switching through the pipeline: unicast to NIC MACs, flooding only inside the VPC, two VPCs with identical
// addresses isolated, learning (aging with an injected clock, moves, stale port seq), hairpin, router MAC, MTU. Also
// the learned MacTable on its own.
#include "datapath/stages/l2_switch.h"

#include <gtest/gtest.h>

#include "tests/unit/stages/switch_test_net.h"

namespace vpcd::dp {
namespace {

using proto::FrameBuilder;
using testing::ip;
using testing::mac;

const MacAddr kA = mac(0x0a), kB = mac(0x0b), kC = mac(0x0c), kD = mac(0x0d), kRouter = mac(0xfe, 0xff);
const MacAddr kX = mac(0x77, 0x55);  // a MAC behind an unprotected port (a nested VM)
const Ipv4Addr kIpA = ip("10.0.0.2"), kIpB = ip("10.0.0.3"), kIpC = ip("10.0.0.4"), kIpD = ip("10.0.0.5");

std::vector<uint8_t> udp(const MacAddr& src, const MacAddr& dst, Ipv4Addr s, Ipv4Addr d, size_t payload = 18) {
  return FrameBuilder().eth(src, dst).ipv4(s, d).udp(1000, 2000).payload_size(payload).build();
}

// VPC 0: a, b (protected), c, d (port security off). VPC 1: e, f with the same MACs/IPs as a, b.
struct Net : testing::SwitchTestNet {
  Net() {
    v0 = add_vpc(kRouter);
    v1 = add_vpc(kRouter);
    a = add_port(v0, kA, {kIpA});
    b = add_port(v0, kB, {kIpB});
    c = add_port(v0, kC, {kIpC}, false);
    d = add_port(v0, kD, {kIpD}, false);
    e = add_port(v1, kA, {kIpA});
    f = add_port(v1, kB, {kIpB});
    build();
  }
  uint16_t v0, v1, a, b, c, d, e, f;
};

TEST(L2Switch, UnicastToNicMacGoesOnlyThere) {
  Net net;
  auto fr = udp(kA, kB, kIpA, kIpB);
  net.receive(net.a, fr);
  auto n = net.out_counts();
  EXPECT_EQ(n, (std::vector<size_t>{0, 1, 0, 0, 0, 0}));
  EXPECT_EQ(net.counters(net.a).rx_packets, 1u);
  EXPECT_EQ(net.counters(net.a).rx_bytes, fr.size());
  EXPECT_EQ(net.counters(net.b).tx_packets, 1u);
  EXPECT_EQ(net.counters(net.b).tx_bytes, fr.size());
}

TEST(L2Switch, FloodsOnlyWithinTheVpc) {
  struct Case {
    const char* name;
    MacAddr dst;
  } const kCases[] = {{"broadcast", kBroadcastMac}, {"multicast", MacAddr{{0x01, 0x00, 0x5e, 0, 0, 1}}}};
  for (const auto& tc : kCases) {
    SCOPED_TRACE(tc.name);
    Net net;
    net.receive(net.a, udp(kA, tc.dst, kIpA, kIpB));
    EXPECT_EQ(net.out_counts(), (std::vector<size_t>{0, 1, 1, 1, 0, 0}));
    net.receive(net.f, udp(kB, tc.dst, kIpB, kIpA));
    EXPECT_EQ(net.out_counts(), (std::vector<size_t>{0, 0, 0, 0, 1, 0}));
  }
}

// Unknown unicast goes only to ports that may have unknown MACs behind them (port security off), never to a NIC whose
// one MAC is known; with no such port it is dropped and counted.
TEST(L2Switch, UnknownUnicastOnlyToPortsWithoutPortSecurity) {
  Net net;
  const MacAddr unknown = mac(0x42, 0x42);
  net.receive(net.a, udp(kA, unknown, kIpA, kIpB));
  EXPECT_EQ(net.out_counts(), (std::vector<size_t>{0, 0, 1, 1, 0, 0}));
  net.receive(net.c, udp(kC, unknown, kIpC, kIpB));
  EXPECT_EQ(net.out_counts(), (std::vector<size_t>{0, 0, 0, 1, 0, 0})) << "not back to c, not to a or b";
  // VPC 1 has only protected NICs: nowhere to go.
  net.receive(net.f, udp(kB, unknown, kIpB, kIpA));
  EXPECT_EQ(net.out_counts(), (std::vector<size_t>{0, 0, 0, 0, 0, 0}));
  EXPECT_EQ(net.drops(net.f, DropReason::kUnknownUnicast), 1u);
  // A learned MAC behind c is known: unicast to c only.
  net.receive(net.c, udp(kX, kBroadcastMac, kIpC, kIpA));
  net.out_counts();
  net.receive(net.a, udp(kA, kX, kIpA, kIpC));
  EXPECT_EQ(net.out_counts(), (std::vector<size_t>{0, 0, 1, 0, 0, 0}));
}

TEST(L2Switch, UnknownUnicastWithOneUnprotectedPortIsDroppedThere) {
  testing::SwitchTestNet net;
  uint16_t v = net.add_vpc(kRouter);
  uint16_t a = net.add_port(v, kA, {kIpA});
  uint16_t c = net.add_port(v, kC, {kIpC}, false);
  net.build();
  net.receive(c, udp(kC, mac(0x42, 0x42), kIpC, kIpA));
  EXPECT_EQ(net.out_counts(), (std::vector<size_t>{0, 0}));
  EXPECT_EQ(net.drops(c, DropReason::kUnknownUnicast), 1u);
  net.receive(a, udp(kA, mac(0x42, 0x42), kIpA, kIpC));
  EXPECT_EQ(net.out_counts(), (std::vector<size_t>{0, 1}));
}

TEST(L2Switch, TwoVpcsWithIdenticalAddressesAreIsolated) {
  Net net;
  // Same MACs and IPs in both VPCs: each frame stays in its own VPC.
  net.receive(net.a, udp(kA, kB, kIpA, kIpB));
  EXPECT_EQ(net.out_counts(), (std::vector<size_t>{0, 1, 0, 0, 0, 0}));
  net.receive(net.e, udp(kA, kB, kIpA, kIpB));
  EXPECT_EQ(net.out_counts(), (std::vector<size_t>{0, 0, 0, 0, 0, 1}));
  net.receive(net.f, udp(kB, kA, kIpB, kIpA));
  EXPECT_EQ(net.out_counts(), (std::vector<size_t>{0, 0, 0, 0, 1, 0}));
  // A MAC learned in VPC 0 is unknown in VPC 1.
  net.receive(net.c, udp(kX, kBroadcastMac, kIpC, kIpA));
  net.out_counts();
  net.receive(net.e, udp(kA, kX, kIpA, kIpC));
  EXPECT_EQ(net.out_counts(), (std::vector<size_t>{0, 0, 0, 0, 0, 0}));  // unknown in VPC 1: no unprotected port there
  EXPECT_EQ(net.drops(net.e, DropReason::kUnknownUnicast), 1u);
  net.receive(net.a, udp(kA, kX, kIpA, kIpC));
  EXPECT_EQ(net.out_counts(), (std::vector<size_t>{0, 0, 1, 0, 0, 0}));
  // ARP is answered from the right VPC's table: give VPC 1's 10.0.0.3 another MAC.
  net.cfg.ports[net.f].mac = kD;
  net.build();
  net.receive(net.e, FrameBuilder().eth(kA, kBroadcastMac).arp(1, kA, kIpA, MacAddr{}, kIpB).build());
  auto got = net.out(net.e);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], FrameBuilder().eth(kD, kA).arp(2, kD, kIpB, kA, kIpA).build());
  net.receive(net.a, FrameBuilder().eth(kA, kBroadcastMac).arp(1, kA, kIpA, MacAddr{}, kIpB).build());
  got = net.out(net.a);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], FrameBuilder().eth(kB, kA).arp(2, kB, kIpB, kA, kIpA).build());
}

TEST(L2Switch, LearnsAgesAndRelearnsMoves) {
  Net net;
  // Unknown: flooded to the ports without port security.
  net.receive(net.a, udp(kA, kX, kIpA, kIpC));
  EXPECT_EQ(net.out_counts(), (std::vector<size_t>{0, 0, 1, 1, 0, 0}));
  // X speaks from behind c: learned there.
  net.receive(net.c, udp(kX, kBroadcastMac, kIpC, kIpA));
  net.out_counts();
  net.receive(net.a, udp(kA, kX, kIpA, kIpC));
  EXPECT_EQ(net.out_counts(), (std::vector<size_t>{0, 0, 1, 0, 0, 0}));
  // Still known 299 s later, aged at 300 s.
  testing::g_test_now_s += 299;
  net.receive(net.a, udp(kA, kX, kIpA, kIpC));
  EXPECT_EQ(net.out_counts(), (std::vector<size_t>{0, 0, 1, 0, 0, 0}));
  testing::g_test_now_s += 1;
  net.receive(net.a, udp(kA, kX, kIpA, kIpC));
  EXPECT_EQ(net.out_counts(), (std::vector<size_t>{0, 0, 1, 1, 0, 0}));
  // Relearned, then moves to d.
  net.receive(net.c, udp(kX, kB, kIpC, kIpB));
  net.out_counts();
  net.receive(net.a, udp(kA, kX, kIpA, kIpC));
  EXPECT_EQ(net.out_counts(), (std::vector<size_t>{0, 0, 1, 0, 0, 0}));
  net.receive(net.d, udp(kX, kB, kIpC, kIpB));
  net.out_counts();
  net.receive(net.a, udp(kA, kX, kIpA, kIpC));
  EXPECT_EQ(net.out_counts(), (std::vector<size_t>{0, 0, 0, 1, 0, 0}));
}

TEST(L2Switch, RefreshKeepsEntryAlive) {
  Net net;
  net.receive(net.c, udp(kX, kB, kIpC, kIpB));
  for (int i = 0; i < 5; ++i) {
    testing::g_test_now_s += 200;
    net.receive(net.c, udp(kX, kB, kIpC, kIpB));
  }
  net.out_counts();
  net.receive(net.a, udp(kA, kX, kIpA, kIpC));
  EXPECT_EQ(net.out_counts(), (std::vector<size_t>{0, 0, 1, 0, 0, 0}));
}

TEST(L2Switch, StalePortSeqFloods) {
  Net net;
  net.receive(net.c, udp(kX, kB, kIpC, kIpB));
  net.out_counts();
  // Port c is recreated (new incarnation, same index): the learned entry is stale.
  auto old = net.cfg.ports[net.c].rt;
  auto rt = std::make_shared<PortRuntime>();
  rt->seq = testing::g_next_seq++;
  rt->io = std::move(old->io);
  net.cfg.ports[net.c].rt = rt;
  net.receive(net.a, udp(kA, kX, kIpA, kIpC));
  EXPECT_EQ(net.out_counts(), (std::vector<size_t>{0, 0, 1, 1, 0, 0}));
}

TEST(L2Switch, DoesNotLearnNicMacsOrOnProtectedPorts) {
  Net net;
  // c (unprotected) sends with b's MAC: not learned, b's frames still go to b.
  net.receive(net.c, udp(kB, kBroadcastMac, kIpC, kIpA));
  net.out_counts();
  net.receive(net.a, udp(kA, kB, kIpA, kIpB));
  EXPECT_EQ(net.out_counts(), (std::vector<size_t>{0, 1, 0, 0, 0, 0}));
  EXPECT_EQ(net.cfg.vpcs[net.v0].learned->live_entries(testing::g_test_now_s), 0u);
  // Learning happens on c for its own nested MAC only.
  net.receive(net.c, udp(kX, kBroadcastMac, kIpC, kIpA));
  EXPECT_EQ(net.cfg.vpcs[net.v0].learned->live_entries(testing::g_test_now_s), 1u);
}

TEST(L2Switch, DropsWithReasonOnInputPort) {
  struct Case {
    const char* name;
    uint16_t Net::*in;
    std::vector<uint8_t> frame;
    DropReason expect;
  };
  const Case kCases[] = {
      {"to own nic mac", &Net::a, udp(kA, kA, kIpA, kIpA), DropReason::kHairpin},
      {"to router mac", &Net::a, udp(kA, kRouter, kIpA, ip("8.8.8.8")), DropReason::kNotRouted},
      {"too big unicast", &Net::a, udp(kA, kB, kIpA, kIpB, 1450 - 28 + 1), DropReason::kTooBig},
      {"too big flood", &Net::a, udp(kA, kBroadcastMac, kIpA, kIpB, 1450 - 28 + 1), DropReason::kTooBig},
  };
  for (const auto& tc : kCases) {
    SCOPED_TRACE(tc.name);
    Net net;
    uint16_t in = net.*tc.in;
    net.receive(in, tc.frame);
    auto cin = net.counters(in);
    EXPECT_EQ(cin.total_drops(), 1u);
    EXPECT_EQ(cin.drops[size_t(tc.expect)], 1u);
    for (size_t n : net.out_counts()) EXPECT_EQ(n, 0u);
  }
}

TEST(L2Switch, HairpinToLearnedMacOnInputPort) {
  Net net;
  net.receive(net.c, udp(kX, kB, kIpC, kIpB));
  net.out_counts();
  net.receive(net.c, udp(kC, kX, kIpC, kIpC));
  EXPECT_EQ(net.drops(net.c, DropReason::kHairpin), 1u);
  for (size_t n : net.out_counts()) EXPECT_EQ(n, 0u);
}

TEST(L2Switch, MtuBoundaryAndGso) {
  Net net;
  net.receive(net.a, udp(kA, kB, kIpA, kIpB, 1450 - 28));  // IP packet of exactly the MTU
  EXPECT_EQ(net.out(net.b).size(), 1u);
  // The output port's MTU counts, not the input's.
  net.cfg.ports[net.b].mtu = 1000;
  net.receive(net.a, udp(kA, kB, kIpA, kIpB, 1000 - 28 + 1));
  EXPECT_EQ(net.drops(net.a, DropReason::kTooBig), 1u);
  net.receive(net.a, udp(kA, kB, kIpA, kIpB, 1000 - 28));
  EXPECT_EQ(net.out(net.b).size(), 1u);
  // A TCP GSO super-frame larger than the MTU passes with its vnet header.
  auto big = FrameBuilder().eth(kA, kB).ipv4(kIpA, kIpB).tcp(1000, 80).payload_size(8000).build();
  virtio_net_hdr vnet{};
  vnet.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
  vnet.gso_size = 948;
  vnet.hdr_len = 54;
  net.receive(net.a, big, vnet);
  auto got = net.fakes[net.b]->drain();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].bytes, big);
  ASSERT_TRUE(got[0].vnet);
  EXPECT_EQ(got[0].vnet->gso_size, 948);
  // Without GSO the same frame is too big.
  net.receive(net.a, big);
  EXPECT_EQ(net.drops(net.a, DropReason::kTooBig), 2u);
}

TEST(L2Switch, FloodWithNoOtherPort) {
  testing::SwitchTestNet net;
  uint16_t v = net.add_vpc(kRouter);
  uint16_t a = net.add_port(v, kA, {kIpA});
  net.build();
  net.receive(a, udp(kA, kBroadcastMac, kIpA, kIpB));
  net.receive(a, udp(kA, kX, kIpA, kIpB));
  EXPECT_EQ(net.drops(a, DropReason::kFloodEmpty), 1u);
  EXPECT_EQ(net.drops(a, DropReason::kUnknownUnicast), 1u);
}

// MLD / IGMP membership reports go to multicast routers only (RFC 4541 2.1.1) and a VPC has none: counted on the
// input port, sent nowhere (neither to the other guests nor to VTEP peers). Queries, neighbour solicitations to a
// solicited-node group and other multicast still flood. Issue 12: 800 guests coming up at once sent ~3000 reports,
// each flooded to 99 ports, and pings waited seconds behind the copies.
TEST(L2Switch, MembershipReportsAreNotFlooded) {
  using proto::Ipv4Opts;
  using proto::Ipv6Addr;
  auto v6 = [](const char* s) { return *Ipv6Addr::parse(s); };
  const MacAddr mld_all_routers{{0x33, 0x33, 0, 0, 0, 0x16}}, all_nodes6{{0x33, 0x33, 0, 0, 0, 1}};
  const MacAddr solicited{{0x33, 0x33, 0xff, 0, 0, 0x01}}, all_routers6{{0x33, 0x33, 0, 0, 0, 2}};
  auto mld = [&](const char* src, const char* dst, const MacAddr& dmac, uint8_t type) {
    return FrameBuilder().eth(kA, dmac).ipv6(v6(src), v6(dst), 1, 0).ipv6_ext(0).icmp(type, 0).payload_size(20).build();
  };
  Ipv4Opts igmp_opts;
  igmp_opts.proto = 2;
  igmp_opts.ttl = 1;
  igmp_opts.options = {0x94, 0x04, 0x00, 0x00};  // router alert
  auto igmp = [&](const char* dst, uint8_t mac_last, uint8_t type) {
    const std::vector<uint8_t> body = {type, 0, 0, 0, 0xe0, 0, 0, 0xfb};
    return FrameBuilder().eth(kA, MacAddr{{0x01, 0x00, 0x5e, 0, 0, mac_last}}).ipv4(kIpA, ip(dst), igmp_opts)
        .payload(body).build();
  };
  struct Case {
    const char* name;
    std::vector<uint8_t> frame;
    bool flooded;
  };
  const Case kCases[] = {
      {"mldv2 report from ::", mld("::", "ff02::16", mld_all_routers, 143), false},
      {"mldv2 report from link-local", mld("fe80::a", "ff02::16", mld_all_routers, 143), false},
      {"mldv1 report", mld("fe80::a", "ff02::1:ff00:1", solicited, 131), false},
      {"mldv1 done", mld("fe80::a", "ff02::2", all_routers6, 132), false},
      {"igmpv2 report", igmp("224.0.0.251", 0xfb, 0x16), false},
      {"igmpv1 report", igmp("224.0.0.251", 0xfb, 0x12), false},
      {"igmpv3 report", igmp("224.0.0.22", 0x16, 0x22), false},
      {"igmpv2 leave", igmp("224.0.0.2", 0x02, 0x17), false},
      {"mld query", mld("fe80::a", "ff02::1", all_nodes6, 130), true},
      {"igmp query", igmp("224.0.0.1", 0x01, 0x11), true},
      {"igmp without its header", FrameBuilder().eth(kA, MacAddr{{0x01, 0x00, 0x5e, 0, 0, 1}})
                                      .ipv4(kIpA, ip("224.0.0.1"), igmp_opts).build(), true},
      {"dad neighbour solicitation", FrameBuilder().eth(kA, solicited).ipv6(v6("::"), v6("ff02::1:ff00:1"), 255)
                                         .icmp(135, 0).payload(std::vector<uint8_t>(16, 0xfe)).build(), true},
      {"udp to a multicast group", udp(kA, MacAddr{{0x01, 0x00, 0x5e, 0, 0, 0xfb}}, kIpA, ip("224.0.0.251")), true},
  };
  for (const auto& tc : kCases) {
    SCOPED_TRACE(tc.name);
    Net net;
    net.receive(net.a, tc.frame);
    auto n = net.out_counts();
    if (tc.flooded) {
      EXPECT_EQ(n, (std::vector<size_t>{0, 1, 1, 1, 0, 0}));
      EXPECT_EQ(net.counters(net.a).total_drops(), 0u);
    } else {
      EXPECT_EQ(n, (std::vector<size_t>{0, 0, 0, 0, 0, 0}));
      EXPECT_EQ(net.drops(net.a, DropReason::kMembershipReport), 1u);
      EXPECT_EQ(net.counters(net.a).total_drops(), 1u);
    }
  }
}

TEST(MacTable, LearnLookupAgeMove) {
  MacTable t(64, 10);
  MacTable::Entry e;
  EXPECT_FALSE(t.lookup(kX, 100, e));
  EXPECT_EQ(t.learn(kX, 3, 0x100000007ull, 100), MacTable::LearnResult::kLearned);
  ASSERT_TRUE(t.lookup(kX, 100, e));
  EXPECT_EQ(e.port, 3);
  EXPECT_EQ(e.seq32, 7u);  // low 32 bits of the seq
  EXPECT_EQ(t.learn(kX, 3, 0x100000007ull, 100), MacTable::LearnResult::kUnchanged);
  EXPECT_EQ(t.learn(kX, 3, 0x100000007ull, 101), MacTable::LearnResult::kRefreshed);
  EXPECT_TRUE(t.lookup(kX, 110, e));
  EXPECT_FALSE(t.lookup(kX, 111, e));
  EXPECT_TRUE(t.lookup(kX, 99, e));  // a worker whose clock is a second behind still sees it
  EXPECT_EQ(t.learn(kX, 4, 9, 120), MacTable::LearnResult::kMoved);
  ASSERT_TRUE(t.lookup(kX, 120, e));
  EXPECT_EQ(e.port, 4);
  EXPECT_EQ(e.seq32, 9u);
  EXPECT_EQ(t.live_entries(120), 1u);
}

TEST(MacTable, FullWindowRefusesThenReusesAgedSlots) {
  MacTable t(8, 10);  // one probe window
  for (uint8_t i = 0; i < 8; ++i) EXPECT_EQ(t.learn(mac(i, 1), 1, 1, 100), MacTable::LearnResult::kLearned);
  EXPECT_EQ(t.learn(mac(100, 1), 1, 1, 100), MacTable::LearnResult::kFull);
  EXPECT_EQ(t.learn_full(), 1u);
  MacTable::Entry e;
  EXPECT_FALSE(t.lookup(mac(100, 1), 100, e));
  // Refresh all but one; the aged one is replaced.
  for (uint8_t i = 1; i < 8; ++i) t.learn(mac(i, 1), 1, 1, 105);
  EXPECT_EQ(t.learn(mac(100, 1), 2, 1, 111), MacTable::LearnResult::kLearned);
  ASSERT_TRUE(t.lookup(mac(100, 1), 111, e));
  EXPECT_EQ(e.port, 2);
  EXPECT_FALSE(t.lookup(mac(0, 1), 111, e));
  for (uint8_t i = 1; i < 8; ++i) EXPECT_TRUE(t.lookup(mac(i, 1), 111, e)) << int(i);
}

TEST(MacTable, ManyMacsAllFoundWhenRoomy) {
  MacTable t(4096);
  for (uint32_t i = 0; i < 1000; ++i)
    t.learn(MacAddr::from_u64(0x020000000000ull + i * 7919), uint16_t(i % 50), i, 5);
  MacTable::Entry e;
  size_t found = 0;
  for (uint32_t i = 0; i < 1000; ++i)
    if (t.lookup(MacAddr::from_u64(0x020000000000ull + i * 7919), 5, e) && e.port == i % 50 && e.seq32 == i) ++found;
  EXPECT_EQ(found + t.learn_full(), 1000u);
  EXPECT_GE(found, 990u);
}

}  // namespace
}  // namespace vpcd::dp
