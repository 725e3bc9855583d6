// VXLAN decapsulation (datapath/stages/vxlan_decap): a table of underlay datagrams, each accepted with its VPC and
// tunnel or dropped with one DropReason (every vxlan_* reason has a case), plus a truncation sweep.
#include "datapath/stages/vxlan_decap.h"

#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "datapath/proto/frame_builder.h"
#include "datapath/proto/vxlan.h"
#include "datapath/stages/parse.h"

namespace vpcd::dp {
namespace {

using proto::FrameBuilder;

const MacAddr kUplinkMac{{0x02, 0xaa, 0, 0, 0, 1}};
const MacAddr kPeerMac{{0x02, 0xbb, 0, 0, 0, 2}};
const MacAddr kGuestA{{0x02, 0, 0, 0, 0, 0x0a}};
const MacAddr kGuestB{{0x02, 0, 0, 0, 0, 0x0b}};
const Ipv4Addr kLocal = *Ipv4Addr::parse("192.0.2.1");
const Ipv4Addr kPeer = *Ipv4Addr::parse("192.0.2.2");
const Ipv4Addr kPeerOtherVpc = *Ipv4Addr::parse("192.0.2.3");
const Ipv4Addr kStranger = *Ipv4Addr::parse("192.0.2.99");
const Ipv4Addr kIpA = *Ipv4Addr::parse("10.0.0.1");
const Ipv4Addr kIpB = *Ipv4Addr::parse("10.0.0.2");
constexpr uint32_t kVni1 = 1001, kVni2 = 1002;
constexpr uint16_t kTunnel1 = 7, kTunnel2 = 8;

const OverlayTable& table() {
  static const OverlayTable t({{kVni1, 0}, {kVni2, 1}}, {{0, kPeer, kTunnel1}, {1, kPeerOtherVpc, kTunnel2}});
  return t;
}

std::vector<uint8_t> inner_frame() {
  return FrameBuilder().eth(kGuestA, kGuestB).ipv4(kIpA, kIpB).udp(1111, 2222).payload_size(40).build();
}

struct Outer {
  Ipv4Addr src = kPeer;
  Ipv4Addr dst = kLocal;
  uint16_t dport = 4789;
  uint8_t flags = proto::kVxlanFlagI;
  uint32_t vni = kVni1;
  uint8_t rsvd = 0;       // written into every reserved byte
  std::vector<uint8_t> inner = inner_frame();
  bool udp_csum = false;  // FrameBuilder computes it; false zeroes it
  bool corrupt_csum = false;
  uint16_t frag_off = proto::kIpv4FlagDf;
};

std::vector<uint8_t> build(const Outer& o) {
  std::vector<uint8_t> v = {o.flags, o.rsvd, o.rsvd, o.rsvd, uint8_t(o.vni >> 16), uint8_t(o.vni >> 8), uint8_t(o.vni),
                            o.rsvd};
  v.insert(v.end(), o.inner.begin(), o.inner.end());
  proto::Ipv4Opts io;
  io.frag_off = o.frag_off;
  std::vector<uint8_t> f = FrameBuilder().eth(kPeerMac, kUplinkMac).ipv4(o.src, o.dst, io).udp(50001, o.dport).payload(v).build();
  if (!o.udp_csum) f[40] = f[41] = 0;
  if (o.corrupt_csum) f[40] ^= 0x5a;
  return f;
}

VxlanDecapParams params() {
  VxlanDecapParams c;
  c.local_ip = kLocal;
  c.udp_port = 4789;
  c.table = &table();
  return c;
}

constexpr DropReason kOk = DropReason::kCount;

struct Case {
  const char* name;
  std::function<void(Outer&)> edit;
  DropReason want;
  uint16_t tunnel = kTunnel1;
};

TEST(VxlanDecap, Table) {
  const std::vector<Case> cases = {
      {"good", [](Outer&) {}, kOk},
      {"good_with_udp_checksum", [](Outer& o) { o.udp_csum = true; }, kOk},
      {"reserved_bits_and_other_flags_ignored", [](Outer& o) { o.flags = 0xff; o.rsvd = 0xff; }, kOk},
      {"second_vpc", [](Outer& o) { o.vni = kVni2; o.src = kPeerOtherVpc; }, kOk, kTunnel2},
      {"i_flag_clear", [](Outer& o) { o.flags = 0xf7; }, DropReason::kVxlanBadFlags},
      {"unknown_vni", [](Outer& o) { o.vni = 4242; }, DropReason::kVxlanUnknownVni},
      {"unknown_source_vtep", [](Outer& o) { o.src = kStranger; }, DropReason::kVxlanUnknownVtep},
      {"vtep_of_another_vpc", [](Outer& o) { o.src = kPeerOtherVpc; }, DropReason::kVxlanUnknownVtep},
      {"wrong_udp_checksum", [](Outer& o) { o.udp_csum = true; o.corrupt_csum = true; }, DropReason::kVxlanBadUdpChecksum},
      {"inner_vlan",
       [](Outer& o) { o.inner = FrameBuilder().eth(kGuestA, kGuestB).vlan(5).ipv4(kIpA, kIpB).udp(1, 2).build(); },
       DropReason::kVxlanInnerVlan},
      {"inner_qinq",
       [](Outer& o) { o.inner = FrameBuilder().eth(kGuestA, kGuestB).vlan(5, 0x88a8).vlan(6).ipv4(kIpA, kIpB).build(); },
       DropReason::kVxlanInnerVlan},
      {"inner_vlan_with_garbage_after_the_tag",
       [](Outer& o) { o.inner = FrameBuilder().eth(kGuestA, kGuestB).vlan(5).ethertype(0x0806).payload_size(4).build(); },
       DropReason::kVxlanInnerVlan},
      {"inner_too_short_for_ethernet", [](Outer& o) { o.inner.resize(10); }, DropReason::kVxlanTruncated},
      {"inner_bad_ipv4", [](Outer& o) { o.inner.resize(20); }, DropReason::kTooShortIpv4},
      {"outer_fragment", [](Outer& o) { o.frag_off = proto::kIpv4FlagMf; }, DropReason::kVxlanOuterFragment},
  };
  const VxlanDecapParams c = params();
  for (const Case& k : cases) {
    SCOPED_TRACE(k.name);
    Outer o;
    k.edit(o);
    std::vector<uint8_t> f = build(o);
    Packet p = proto::make_packet(f);
    parse(p);
    ASSERT_FALSE(p.dropped()) << drop_reason_name(p.drop);
    ASSERT_TRUE(is_vxlan_to_us(p, c) || is_fragment_to_us(p, c));
    VxlanDecapResult r;
    const DropReason got = vxlan_decap(p, c, r);
    EXPECT_EQ(got == kOk ? "ok" : drop_reason_name(got), k.want == kOk ? "ok" : drop_reason_name(k.want));
    if (got != kOk || k.want != kOk) continue;
    EXPECT_EQ(r.tunnel, k.tunnel);
    EXPECT_EQ(r.remote, o.src);
    ASSERT_EQ(p.len, o.inner.size());
    EXPECT_EQ(0, std::memcmp(p.data, o.inner.data(), p.len));
    EXPECT_TRUE(p.flags & kIsUdp);
    EXPECT_EQ(p.ip4_src, kIpA);
    EXPECT_FALSE(p.flags & kHasVnet);
  }
}

TEST(VxlanDecap, NotOursIsNotVxlan) {
  const VxlanDecapParams c = params();
  for (auto edit : std::vector<std::function<void(Outer&)>>{[](Outer& o) { o.dport = 4790; },
                                                              [](Outer& o) { o.dst = kStranger; }}) {
    Outer o;
    edit(o);
    std::vector<uint8_t> f = build(o);
    Packet p = proto::make_packet(f);
    parse(p);
    EXPECT_FALSE(is_vxlan_to_us(p, c));
    EXPECT_FALSE(is_fragment_to_us(p, c));
  }
  VxlanDecapParams other = c;
  other.udp_port = 8472;  // config vxlan_port
  Outer o;
  o.dport = 8472;
  std::vector<uint8_t> f = build(o);
  Packet p = proto::make_packet(f);
  parse(p);
  EXPECT_TRUE(is_vxlan_to_us(p, other));
  EXPECT_FALSE(is_vxlan_to_us(p, c));
}

// A kernel vxlan device on this machine (udpcsum on) hands over the outer checksum still partial.
TEST(VxlanDecap, PartialOuterChecksumIsNotVerified) {
  Outer o;
  o.udp_csum = true;
  o.corrupt_csum = true;  // what the field holds: the pseudo-header sum, not a checksum
  std::vector<uint8_t> f = build(o);
  Packet p = proto::make_packet(f);
  p.flags = kHasVnet;
  p.vnet.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  p.vnet.csum_start = 34;
  p.vnet.csum_offset = 6;
  parse(p);
  ASSERT_FALSE(p.dropped()) << drop_reason_name(p.drop);
  VxlanDecapResult r;
  EXPECT_EQ(vxlan_decap(p, params(), r), kOk);
  EXPECT_FALSE(p.flags & kHasVnet);  // the inner frame's checksums are complete (LCO)
}

TEST(VxlanDecap, PartialInnerChecksumStaysPartialRebased) {
  Outer o;
  o.inner = FrameBuilder().eth(kGuestA, kGuestB).ipv4(kIpA, kIpB).tcp(1, 2).payload_size(100).build();
  std::vector<uint8_t> f = build(o);
  Packet p = proto::make_packet(f);
  p.flags = kHasVnet;
  p.vnet.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  p.vnet.csum_start = 50 + 34;
  p.vnet.csum_offset = 16;
  parse(p);
  ASSERT_FALSE(p.dropped()) << drop_reason_name(p.drop);
  VxlanDecapResult r;
  ASSERT_EQ(vxlan_decap(p, params(), r), kOk);
  EXPECT_TRUE(p.flags & kHasVnet);
  EXPECT_EQ(p.vnet.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
  EXPECT_EQ(p.vnet.csum_start, 34);
  EXPECT_EQ(p.vnet.csum_offset, 16);
}

// Every prefix of a good datagram: the outer parse drops it, or decap drops it, or (only the whole frame) accepts it;
// exact-size heap copies so ASan sees any read past the end.
TEST(VxlanDecap, TruncationSweep) {
  Outer o;
  o.udp_csum = true;
  const std::vector<uint8_t> full = build(o);
  const VxlanDecapParams c = params();
  for (size_t n = 0; n < full.size(); ++n) {
    std::unique_ptr<uint8_t[]> buf(new uint8_t[n ? n : 1]);
    std::memcpy(buf.get(), full.data(), n);
    Packet p;
    p.data = buf.get();
    p.len = p.wire_len = uint32_t(n);
    parse(p);
    if (p.dropped()) continue;  // truncated outer headers: a parse drop (too_short_*, bad_*_len)
    if (!is_vxlan_to_us(p, c)) continue;
    VxlanDecapResult r;
    EXPECT_NE(vxlan_decap(p, c, r), kOk) << n;
  }
}

}  // namespace
}  // namespace vpcd::dp
