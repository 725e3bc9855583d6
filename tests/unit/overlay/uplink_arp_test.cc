// ARP on the underlay uplink (datapath/stages/uplink_arp): answers for our address, learning, request frames.
#include "datapath/stages/uplink_arp.h"

#include <gtest/gtest.h>

#include <vector>

#include "datapath/proto/frame_builder.h"
#include "datapath/stages/parse.h"

namespace vpcd::dp {
namespace {

using proto::FrameBuilder;

const MacAddr kUplinkMac{{0x02, 0xaa, 0, 0, 0, 1}};
const MacAddr kPeerMac{{0x02, 0xbb, 0, 0, 0, 2}};
const Ipv4Addr kMe = *Ipv4Addr::parse("198.18.0.1");
const Ipv4Addr kPeer = *Ipv4Addr::parse("198.18.0.2");
const Ipv4Addr kOther = *Ipv4Addr::parse("198.18.0.9");

UnderlayConfig underlay() {
  UnderlayConfig u;
  u.port = 3;
  u.mac = kUplinkMac;
  u.address = Ipv4Prefix{kMe, 24};
  return u;
}

Packet parsed(std::vector<uint8_t>& f) {
  Packet p = proto::make_packet(f);
  parse(p);
  return p;
}

TEST(UplinkArp, AnswersRequestForOurAddressAndLearnsTheAsker) {
  ArpCache cache;
  auto f = FrameBuilder().eth(kPeerMac, kBroadcastMac).arp(1, kPeerMac, kPeer, MacAddr{}, kMe).pad_to(60).build();
  Packet p = parsed(f);
  std::vector<uint32_t> rel;
  ASSERT_EQ(uplink_arp(p, underlay(), cache, nullptr, 1000, &rel), UplinkArpVerdict::kReply);
  auto want = FrameBuilder().eth(kUplinkMac, kPeerMac).arp(2, kUplinkMac, kMe, kPeerMac, kPeer).pad_to(60).build();
  EXPECT_EQ(f, want);
  ArpCache::State s;
  MacAddr m;
  ASSERT_TRUE(cache.state(kPeer, &s, &m));
  EXPECT_EQ(m, kPeerMac);
}

TEST(UplinkArp, ReplyToUsReleasesQueuedFrames) {
  ArpCache cache;
  MacAddr m;
  bool req = false;
  ASSERT_EQ(cache.resolve(kPeer, 0, 42, &m, &req), ArpCache::Result::kQueued);
  auto f = FrameBuilder().eth(kPeerMac, kUplinkMac).arp(2, kPeerMac, kPeer, kUplinkMac, kMe).pad_to(60).build();
  Packet p = parsed(f);
  std::vector<uint32_t> rel;
  EXPECT_EQ(uplink_arp(p, underlay(), cache, nullptr, 10, &rel), UplinkArpVerdict::kConsumed);
  EXPECT_EQ(rel, std::vector<uint32_t>{42});
}

TEST(UplinkArp, OthersAreNotForUsAndCreateNothing) {
  ArpCache cache;
  std::vector<uint32_t> rel;
  auto req = FrameBuilder().eth(kPeerMac, kBroadcastMac).arp(1, kPeerMac, kPeer, MacAddr{}, kOther).pad_to(60).build();
  Packet p = parsed(req);
  EXPECT_EQ(uplink_arp(p, underlay(), cache, nullptr, 0, &rel), UplinkArpVerdict::kNotForUs);
  auto grat = FrameBuilder().eth(kPeerMac, kBroadcastMac).arp(1, kPeerMac, kMe, MacAddr{}, kMe).pad_to(60).build();
  Packet g = parsed(grat);  // someone else claiming our address: never answered
  EXPECT_EQ(uplink_arp(g, underlay(), cache, nullptr, 0, &rel), UplinkArpVerdict::kNotForUs);
  EXPECT_EQ(cache.size(), 0u);
}

TEST(UplinkArp, RequestFrameIsWellFormed) {
  std::vector<uint8_t> out(kArpRequestFrameLen);
  ASSERT_EQ(build_underlay_arp_request(underlay(), kPeer, out.data()), 60u);
  auto want = FrameBuilder().eth(kUplinkMac, kBroadcastMac).arp(1, kUplinkMac, kMe, MacAddr{}, kPeer).pad_to(60).build();
  EXPECT_EQ(out, want);
}

TEST(UnderlayConfig, NextHop) {
  UnderlayConfig u = underlay();
  EXPECT_EQ(u.next_hop(kPeer), kPeer);
  EXPECT_FALSE(u.next_hop(*Ipv4Addr::parse("203.0.113.5")).has_value());
  u.gateway = *Ipv4Addr::parse("198.18.0.254");
  EXPECT_EQ(u.next_hop(*Ipv4Addr::parse("203.0.113.5")), u.gateway);
}

}  // namespace
}  // namespace vpcd::dp
