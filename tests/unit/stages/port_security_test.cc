// Port security through the whole pipeline: every rule of port_security.h, with the drop counted on the input port
// under the right reason and allowed frames delivered.
#include "datapath/stages/port_security.h"

#include <gtest/gtest.h>

#include "datapath/proto/ethernet.h"
#include "datapath/proto/ipv6.h"
#include "tests/unit/stages/switch_test_net.h"

namespace vpcd::dp {
namespace {

using proto::FrameBuilder;
using testing::ip;
using testing::mac;

const MacAddr kGuest = mac(0x10), kPeer = mac(0x11), kOther = mac(0x99), kRouter = mac(0xfe, 0xff);
const Ipv4Addr kGuestIp = ip("10.0.0.2"), kGuestIp2 = ip("10.0.0.22"), kPeerIp = ip("10.0.0.3");
const Ipv4Addr kZero = ip("0.0.0.0");

proto::Ipv6Addr v6(const char* s) { return *proto::Ipv6Addr::parse(s); }

struct Case {
  const char* name;
  std::vector<uint8_t> frame;
  DropReason expect;  // kCount: delivered
};

std::vector<Case> cases() {
  return {
      {"ipv4 from own address", FrameBuilder().eth(kGuest, kPeer).ipv4(kGuestIp, kPeerIp).udp(1, 2).build(),
       DropReason::kCount},
      {"ipv4 from second address", FrameBuilder().eth(kGuest, kPeer).ipv4(kGuestIp2, kPeerIp).udp(1, 2).build(),
       DropReason::kCount},
      {"ipv4 spoofed source mac", FrameBuilder().eth(kOther, kPeer).ipv4(kGuestIp, kPeerIp).udp(1, 2).build(),
       DropReason::kSpoofedSourceMac},
      {"ipv4 spoofed source ip", FrameBuilder().eth(kGuest, kPeer).ipv4(kPeerIp, kPeerIp).udp(1, 2).build(),
       DropReason::kSpoofedSourceIp},
      {"dhcp discover from 0.0.0.0",
       FrameBuilder().eth(kGuest, kBroadcastMac).ipv4(kZero, ip("255.255.255.255")).udp(68, 67).build(),
       DropReason::kCount},
      {"0.0.0.0 but not dhcp", FrameBuilder().eth(kGuest, kBroadcastMac).ipv4(kZero, kPeerIp).udp(68, 68).build(),
       DropReason::kSpoofedSourceIp},
      {"0.0.0.0 tcp to 67", FrameBuilder().eth(kGuest, kPeer).ipv4(kZero, kPeerIp).tcp(68, 67).build(),
       DropReason::kSpoofedSourceIp},
      {"arp request from own addresses",
       FrameBuilder().eth(kGuest, kBroadcastMac).arp(1, kGuest, kGuestIp, MacAddr{}, ip("10.0.0.77")).build(),
       DropReason::kCount},
      {"arp probe (sender ip 0)",
       FrameBuilder().eth(kGuest, kBroadcastMac).arp(1, kGuest, kZero, MacAddr{}, ip("10.0.0.77")).build(),
       DropReason::kCount},
      {"arp spoofed sender mac",
       FrameBuilder().eth(kGuest, kBroadcastMac).arp(1, kOther, kGuestIp, MacAddr{}, ip("10.0.0.77")).build(),
       DropReason::kSpoofedArp},
      {"arp spoofed sender ip",
       FrameBuilder().eth(kGuest, kBroadcastMac).arp(1, kGuest, kPeerIp, MacAddr{}, ip("10.0.0.77")).build(),
       DropReason::kSpoofedArp},
      {"arp from other mac", FrameBuilder().eth(kOther, kBroadcastMac).arp(1, kOther, kGuestIp, {}, ip("10.0.0.77")).build(),
       DropReason::kSpoofedSourceMac},
      {"vlan tagged", FrameBuilder().eth(kGuest, kPeer).vlan(10).ipv4(kGuestIp, kPeerIp).udp(1, 2).build(),
       DropReason::kVlanTagged},
      {"ipv6 link-local", FrameBuilder().eth(kGuest, kPeer).ipv6(v6("fe80::1"), v6("fe80::2")).udp(1, 2).build(),
       DropReason::kCount},
      {"ipv6 unspecified", FrameBuilder().eth(kGuest, kPeer).ipv6(v6("::"), v6("ff02::1:ff00:1")).icmp(135, 0).build(),
       DropReason::kCount},
      {"ipv6 global", FrameBuilder().eth(kGuest, kPeer).ipv6(v6("2001:db8::1"), v6("fe80::2")).udp(1, 2).build(),
       DropReason::kSpoofedSourceIp},
      {"ipv6 fec0 (not link-local)",
       FrameBuilder().eth(kGuest, kPeer).ipv6(v6("fec0::1"), v6("fe80::2")).udp(1, 2).build(),
       DropReason::kSpoofedSourceIp},
      {"ipv6 link-local but other mac",
       FrameBuilder().eth(kOther, kPeer).ipv6(v6("fe80::1"), v6("fe80::2")).udp(1, 2).build(),
       DropReason::kSpoofedSourceMac},
      {"other ethertype from own mac", FrameBuilder().eth(kGuest, kPeer).ethertype(0x88cc).pad_to(60).build(),
       DropReason::kCount},
      {"other ethertype from other mac", FrameBuilder().eth(kOther, kPeer).ethertype(0x88cc).pad_to(60).build(),
       DropReason::kSpoofedSourceMac},
  };
}

TEST(PortSecurity, TableOfRulesOnProtectedPort) {
  for (const auto& c : cases()) {
    SCOPED_TRACE(c.name);
    testing::SwitchTestNet net;
    uint16_t v = net.add_vpc(kRouter);
    uint16_t guest = net.add_port(v, kGuest, {kGuestIp, kGuestIp2}, /*port_security=*/true);
    uint16_t peer = net.add_port(v, kPeer, {kPeerIp});
    net.build();
    net.receive(guest, c.frame);
    auto in = net.counters(guest);
    EXPECT_EQ(in.rx_packets, 1u);
    if (c.expect == DropReason::kCount) {
      EXPECT_EQ(in.total_drops(), 0u);
      auto got = net.out(peer);
      ASSERT_EQ(got.size(), 1u);
      EXPECT_EQ(got[0], c.frame);
    } else {
      EXPECT_EQ(in.total_drops(), 1u);
      EXPECT_EQ(in.drops[size_t(c.expect)], 1u) << "expected " << drop_reason_name(c.expect);
      EXPECT_TRUE(net.out(peer).empty());
    }
  }
}

TEST(PortSecurity, UnprotectedPortSendsAnything) {
  for (const auto& c : cases()) {
    SCOPED_TRACE(c.name);
    testing::SwitchTestNet net;
    uint16_t v = net.add_vpc(kRouter);
    uint16_t guest = net.add_port(v, kGuest, {kGuestIp}, /*port_security=*/false);
    uint16_t peer = net.add_port(v, kPeer, {kPeerIp});
    net.build();
    net.receive(guest, c.frame);
    EXPECT_EQ(net.counters(guest).total_drops(), 0u);
    EXPECT_EQ(net.out(peer).size(), 1u);
  }
}

TEST(PortSecurity, StageLeavesEarlierDropsAlone) {
  PortConfig in;
  in.mac = kGuest;
  in.ips = {kGuestIp};
  auto f = FrameBuilder().eth(kOther, kPeer).ipv4(kPeerIp, kPeerIp).udp(1, 2).build();
  Packet p = proto::make_packet(f);
  p.drop = DropReason::kTooShortUdp;
  Packet* ptrs[] = {&p};
  port_security(in, ptrs);
  EXPECT_EQ(p.drop, DropReason::kTooShortUdp);
}

}  // namespace
}  // namespace vpcd::dp
