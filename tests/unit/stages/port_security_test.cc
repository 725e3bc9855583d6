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
const proto::Ipv6Addr kLl = *proto::Ipv6Addr::parse("fe80::10"), kPeerLl = *proto::Ipv6Addr::parse("fe80::11");

proto::Ipv6Addr v6(const char* s) { return *proto::Ipv6Addr::parse(s); }

// A BOOTP/DHCP message (RFC 2131): op, htype 1, hlen 6, chaddr, the 236 fixed bytes plus the magic cookie.
std::vector<uint8_t> bootp(uint8_t op, const MacAddr& chaddr, size_t len = 240) {
  std::vector<uint8_t> b(len, 0);
  if (len >= 34) {
    b[0] = op;
    b[1] = 1;
    b[2] = 6;
    std::copy(chaddr.b.begin(), chaddr.b.end(), b.begin() + 28);
  }
  if (len >= 240) {
    b[236] = 99, b[237] = 130, b[238] = 83, b[239] = 99;
  }
  return b;
}
std::vector<uint8_t> dhcp(const MacAddr& src, const MacAddr& dst_mac, Ipv4Addr dst, std::vector<uint8_t> payload) {
  return FrameBuilder().eth(src, dst_mac).ipv4(ip("0.0.0.0"), dst).udp(68, 67).payload(payload).build();
}

// ND bodies after the 4-byte ICMPv6 header's rest: [target (16)] + options.
std::vector<uint8_t> nd_body(const proto::Ipv6Addr* target, std::vector<std::vector<uint8_t>> opts) {
  std::vector<uint8_t> b;
  if (target) b.insert(b.end(), target->b.begin(), target->b.end());
  for (auto& o : opts) b.insert(b.end(), o.begin(), o.end());
  return b;
}
std::vector<uint8_t> lla(uint8_t type, const MacAddr& m) {
  return {type, 1, m.b[0], m.b[1], m.b[2], m.b[3], m.b[4], m.b[5]};
}
std::vector<uint8_t> icmp6(const MacAddr& src_mac, const char* src, const char* dst, uint8_t type, uint32_t rest,
                           std::vector<uint8_t> body) {
  return FrameBuilder()
      .eth(src_mac, mac(0x11))
      .ipv6(v6(src), v6(dst), 255)
      .icmp(type, 0, rest)
      .payload(body)
      .build();
}

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
       dhcp(kGuest, kBroadcastMac, ip("255.255.255.255"), bootp(1, kGuest)), DropReason::kCount},
      {"dhcp from 0.0.0.0 unicast to a peer", dhcp(kGuest, kPeer, kPeerIp, bootp(1, kGuest)),
       DropReason::kSpoofedSourceIp},
      {"dhcp to 255.255.255.255 but a unicast MAC", dhcp(kGuest, kPeer, ip("255.255.255.255"), bootp(1, kGuest)),
       DropReason::kSpoofedSourceIp},
      {"dhcp BOOTREPLY from 0.0.0.0 (a rogue server)",
       dhcp(kGuest, kBroadcastMac, ip("255.255.255.255"), bootp(2, kGuest)), DropReason::kSpoofedSourceIp},
      {"dhcp for another chaddr (starvation)",
       dhcp(kGuest, kBroadcastMac, ip("255.255.255.255"), bootp(1, kOther)), DropReason::kSpoofedSourceIp},
      {"dhcp with a short payload", dhcp(kGuest, kBroadcastMac, ip("255.255.255.255"), bootp(1, kGuest, 100)),
       DropReason::kSpoofedSourceIp},
      {"0.0.0.0 udp 68 -> 67 with any payload",
       FrameBuilder().eth(kGuest, kBroadcastMac).ipv4(kZero, ip("255.255.255.255")).udp(68, 67).build(),
       DropReason::kSpoofedSourceIp},
      {"0.0.0.0 but not dhcp", FrameBuilder().eth(kGuest, kBroadcastMac).ipv4(kZero, kPeerIp).udp(68, 68).build(),
       DropReason::kSpoofedSourceIp},
      {"0.0.0.0 tcp to 67", FrameBuilder().eth(kGuest, kPeer).ipv4(kZero, kPeerIp).tcp(68, 67).build(),
       DropReason::kSpoofedSourceIp},
      {"icmp redirect", FrameBuilder().eth(kGuest, kPeer).ipv4(kGuestIp, kPeerIp).icmp(5, 1, 0x0a000001).build(),
       DropReason::kRaGuard},
      {"icmp echo", FrameBuilder().eth(kGuest, kPeer).ipv4(kGuestIp, kPeerIp).icmp_echo(true, 1, 1).build(),
       DropReason::kCount},
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
      {"ipv6 unspecified (DAD neighbour solicitation)",
       icmp6(kGuest, "::", "ff02::1:ff00:1", 135, 0, nd_body(&kLl, {})), DropReason::kCount},
      {"router advertisement", icmp6(kGuest, "fe80::10", "ff02::1", 134, 0x40000708, nd_body(nullptr, {lla(1, kGuest)})),
       DropReason::kRaGuard},
      {"router advertisement in a first fragment",
       FrameBuilder().eth(kGuest, kPeer).ipv6(v6("fe80::10"), v6("ff02::1"), 255, 44).ipv6_frag(0, true).icmp(134, 0)
           .payload_size(64).build(),
       DropReason::kRaGuard},
      {"ipv6 redirect", icmp6(kGuest, "fe80::10", "fe80::11", 137, 0, nd_body(&kLl, {})), DropReason::kRaGuard},
      {"router solicitation with own mac", icmp6(kGuest, "fe80::10", "ff02::2", 133, 0, nd_body(nullptr, {lla(1, kGuest)})),
       DropReason::kCount},
      {"router solicitation with another mac",
       icmp6(kGuest, "fe80::10", "ff02::2", 133, 0, nd_body(nullptr, {lla(1, kOther)})), DropReason::kSpoofedNd},
      {"neighbour solicitation with own mac",
       icmp6(kGuest, "fe80::10", "ff02::1:ff00:11", 135, 0, nd_body(&kPeerLl, {lla(1, kGuest)})), DropReason::kCount},
      {"neighbour solicitation with another mac",
       icmp6(kGuest, "fe80::10", "ff02::1:ff00:11", 135, 0, nd_body(&kPeerLl, {lla(1, kOther)})),
       DropReason::kSpoofedNd},
      {"neighbour solicitation from :: with a source lla",
       icmp6(kGuest, "::", "ff02::1:ff00:11", 135, 0, nd_body(&kPeerLl, {lla(1, kGuest)})), DropReason::kSpoofedNd},
      {"neighbour solicitation cut short", icmp6(kGuest, "fe80::10", "ff02::1:ff00:11", 135, 0, {1, 2, 3, 4}),
       DropReason::kSpoofedNd},
      {"neighbour solicitation with a zero-length option",
       icmp6(kGuest, "fe80::10", "ff02::1:ff00:11", 135, 0, nd_body(&kPeerLl, {{1, 0, 0, 0, 0, 0, 0, 0}})),
       DropReason::kSpoofedNd},
      {"neighbour advertisement for itself",
       icmp6(kGuest, "fe80::10", "fe80::11", 136, 0x60000000, nd_body(&kLl, {lla(2, kGuest)})), DropReason::kCount},
      {"neighbour advertisement for another address",
       icmp6(kGuest, "fe80::10", "fe80::11", 136, 0x60000000, nd_body(&kPeerLl, {lla(2, kGuest)})),
       DropReason::kSpoofedNd},
      {"neighbour advertisement with another mac",
       icmp6(kGuest, "fe80::10", "fe80::11", 136, 0x60000000, nd_body(&kLl, {lla(2, kOther)})),
       DropReason::kSpoofedNd},
      {"icmpv6 echo", FrameBuilder().eth(kGuest, kPeer).ipv6(v6("fe80::10"), v6("fe80::11")).icmp_echo(true, 1, 1)
           .build(), DropReason::kCount},
      {"ipv6 global", FrameBuilder().eth(kGuest, kPeer).ipv6(v6("2001:db8::1"), v6("fe80::2")).udp(1, 2).build(),
       DropReason::kSpoofedSourceIp},
      {"ipv6 fec0 (not link-local)",
       FrameBuilder().eth(kGuest, kPeer).ipv6(v6("fec0::1"), v6("fe80::2")).udp(1, 2).build(),
       DropReason::kSpoofedSourceIp},
      {"ipv6 link-local but other mac",
       FrameBuilder().eth(kOther, kPeer).ipv6(v6("fe80::1"), v6("fe80::2")).udp(1, 2).build(),
       DropReason::kSpoofedSourceMac},
      {"other ethertype (LLDP) from own mac", FrameBuilder().eth(kGuest, kPeer).ethertype(0x88cc).pad_to(60).build(),
       DropReason::kEthertypeNotAllowed},
      {"802.3 LLC/SNAP carrying IPv4 with a spoofed source",
       FrameBuilder().eth(kGuest, kPeer).ethertype(8 + 28).payload(std::vector<uint8_t>{
           0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00, 0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 3, 10, 0, 0,
           4, 0, 1, 0, 2, 0, 8, 0, 0}).pad_to(60).build(),
       DropReason::kEthertypeNotAllowed},
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
