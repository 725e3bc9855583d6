// VXLAN wire format and outer-header builders (datapath/proto/vxlan), the encap helpers (flow hash, source port,
// partial checksums, ICMP fragmentation-needed) and software GSO (datapath/proto/gso).
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <set>
#include <utility>
#include <vector>

#include "datapath/proto/checksum.h"
#include "datapath/proto/frame_builder.h"
#include "datapath/proto/gso.h"
#include "datapath/proto/vxlan.h"
#include "datapath/stages/parse.h"
#include "datapath/stages/vxlan_encap.h"

namespace vpcd::dp {
namespace {

using proto::FrameBuilder;
using proto::Ipv4Opts;
using proto::VxlanOuter;

const MacAddr kUplinkMac{{0x02, 0xaa, 0, 0, 0, 1}};
const MacAddr kNextHopMac{{0x02, 0xbb, 0, 0, 0, 2}};
const MacAddr kGuestA{{0x02, 0, 0, 0, 0, 0x0a}};
const MacAddr kGuestB{{0x02, 0, 0, 0, 0, 0x0b}};
const Ipv4Addr kLocal = *Ipv4Addr::parse("192.0.2.1");
const Ipv4Addr kRemote = *Ipv4Addr::parse("192.0.2.2");
const Ipv4Addr kIpA = *Ipv4Addr::parse("10.0.0.1");
const Ipv4Addr kIpB = *Ipv4Addr::parse("10.0.0.2");

std::vector<uint8_t> vxlan_payload(uint32_t vni, const std::vector<uint8_t>& inner) {
  std::vector<uint8_t> v(8);
  const proto::VxlanHdr h = proto::VxlanHdr::make(vni);
  std::memcpy(v.data(), &h, 8);
  v.insert(v.end(), inner.begin(), inner.end());
  return v;
}

proto::VxlanOuterParams params(uint32_t vni) {
  proto::VxlanOuterParams p;
  p.src_mac = kUplinkMac;
  p.dst_mac = kNextHopMac;
  p.src_ip = kLocal;
  p.dst_ip = kRemote;
  p.vni = vni;
  return p;
}

Packet parsed(std::vector<uint8_t>& buf) {
  Packet p = proto::make_packet(buf);
  parse(p);
  return p;
}

TEST(VxlanProto, HeaderLayoutAndFlags) {
  const proto::VxlanHdr h = proto::VxlanHdr::make(0xabcdef);
  uint8_t b[8];
  std::memcpy(b, &h, 8);
  const uint8_t want[8] = {0x08, 0, 0, 0, 0xab, 0xcd, 0xef, 0x00};
  EXPECT_EQ(0, std::memcmp(b, want, 8));
  EXPECT_TRUE(h.has_vni());
  EXPECT_EQ(h.vni(), 0xabcdefu);
  // Reserved bits set on the wire are ignored.
  const uint8_t noisy[8] = {0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x2a, 0xff};
  proto::VxlanHdr r;
  std::memcpy(&r, noisy, 8);
  EXPECT_TRUE(r.has_vni());
  EXPECT_EQ(r.vni(), 42u);
  const uint8_t no_i[8] = {0xf7, 0, 0, 0, 0, 0, 0x2a, 0};
  std::memcpy(&r, no_i, 8);
  EXPECT_FALSE(r.has_vni());
}

// The builder's bytes equal an independently built frame (FrameBuilder computes lengths and checksums itself).
TEST(VxlanProto, OuterHeaderMatchesReferenceFrame) {
  std::vector<uint8_t> inner = FrameBuilder().eth(kGuestA, kGuestB).ipv4(kIpA, kIpB).udp(1000, 2000).payload_size(100).build();
  for (bool csum : {false, true}) {
    SCOPED_TRACE(csum);
    VxlanOuter o = proto::build_vxlan_outer(params(4242));
    proto::finish_vxlan_outer(o, uint32_t(inner.size()), 50000);
    if (csum) o.udp.csum = proto::vxlan_udp_checksum(o, inner);
    std::vector<uint8_t> got(o.bytes(), o.bytes() + proto::kVxlanOverhead);
    got.insert(got.end(), inner.begin(), inner.end());

    Ipv4Opts df;
    df.frag_off = proto::kIpv4FlagDf;
    std::vector<uint8_t> want =
        FrameBuilder().eth(kUplinkMac, kNextHopMac).ipv4(kLocal, kRemote, df).udp(50000, 4789).payload(vxlan_payload(4242, inner)).build();
    if (!csum) want[40] = want[41] = 0;  // FrameBuilder always computes the UDP checksum
    EXPECT_EQ(got, want);
  }
}

TEST(VxlanProto, ChecksumVerifiesAndZeroMeansNone) {
  std::vector<uint8_t> inner = FrameBuilder().eth(kGuestA, kGuestB).ipv4(kIpA, kIpB).udp(1, 2).payload_size(33).build();
  VxlanOuter o = proto::build_vxlan_outer(params(7));
  proto::finish_vxlan_outer(o, uint32_t(inner.size()), 60000);
  std::vector<uint8_t> f(o.bytes(), o.bytes() + 50);
  f.insert(f.end(), inner.begin(), inner.end());
  std::span<const uint8_t> udp(f.data() + 34, f.size() - 34);
  EXPECT_TRUE(proto::vxlan_udp_checksum_ok(kLocal, kRemote, udp));  // zero: not used
  o.udp.csum = proto::vxlan_udp_checksum(o, inner);
  std::memcpy(f.data() + 40, &o.udp.csum, 2);
  EXPECT_TRUE(proto::vxlan_udp_checksum_ok(kLocal, kRemote, udp));
  f[f.size() - 1] ^= 0x01;
  EXPECT_FALSE(proto::vxlan_udp_checksum_ok(kLocal, kRemote, udp));
}

TEST(VxlanProto, SourcePortInDynamicRangeAndSpread) {
  std::set<uint16_t> seen;
  for (uint32_t h = 0; h < 100000; h += 7) {
    const uint16_t p = proto::vxlan_source_port(h * 2654435761u);
    ASSERT_GE(p, 49152);
    seen.insert(p);
  }
  EXPECT_GT(seen.size(), 8000u);
  // A hash whose low 14 bits never change still spreads (high bits folded in).
  std::set<uint16_t> high;
  for (uint32_t h = 0; h < 1024; ++h) high.insert(proto::vxlan_source_port(h << 14));
  EXPECT_GT(high.size(), 500u);
}

TEST(VxlanEncap, FlowHashStablePerFlowAndDirectional) {
  auto f1 = FrameBuilder().eth(kGuestA, kGuestB).ipv4(kIpA, kIpB).tcp(1234, 80).build();
  auto f2 = FrameBuilder().eth(kGuestA, kGuestB).ipv4(kIpA, kIpB).tcp(1234, 80).payload_size(500).build();
  auto f3 = FrameBuilder().eth(kGuestA, kGuestB).ipv4(kIpA, kIpB).tcp(1235, 80).build();
  auto arp = FrameBuilder().eth(kGuestA, kBroadcastMac).arp(1, kGuestA, kIpA, MacAddr{}, kIpB).build();
  Packet p1 = parsed(f1), p2 = parsed(f2), p3 = parsed(f3), pa = parsed(arp);
  EXPECT_EQ(inner_flow_hash(p1), inner_flow_hash(p2));
  EXPECT_NE(inner_flow_hash(p1), inner_flow_hash(p3));
  EXPECT_NE(inner_flow_hash(pa), 0u);
}

TEST(VxlanEncap, HeaderForPartialChecksumMovesCsumStart) {
  auto f = FrameBuilder().eth(kGuestA, kGuestB).ipv4(kIpA, kIpB).tcp(1234, 80).payload_size(100).build();
  Packet p = parsed(f);
  p.flags |= kHasVnet;
  p.vnet.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  p.vnet.csum_start = 34;
  p.vnet.csum_offset = 16;
  const VxlanOuter tmpl = proto::build_vxlan_outer(params(9));
  VxlanOuter o;
  vxlan_encap_header(p, tmpl, 77, /*udp_csum=*/true, o);
  EXPECT_EQ(p.vnet.csum_start, 84);
  EXPECT_EQ(o.udp.csum.raw, 0);  // inner bytes not final: no outer checksum
  EXPECT_EQ(o.udp.src_port.to_host(), proto::vxlan_source_port(77));
  EXPECT_EQ(o.ip.tot_len.to_host(), 20 + 8 + 8 + f.size());
  EXPECT_TRUE(proto::checksum_valid({reinterpret_cast<const uint8_t*>(&o.ip), 20}));
  EXPECT_EQ(o.ip.frag_off.to_host(), proto::kIpv4FlagDf);
}

TEST(VxlanEncap, FragNeededForDfOnly) {
  Ipv4Opts df;
  df.frag_off = proto::kIpv4FlagDf;
  auto big_df = FrameBuilder().eth(kGuestA, kGuestB).ipv4(kIpA, kIpB, df).udp(1, 2).payload_size(1472).build();
  auto big = FrameBuilder().eth(kGuestA, kGuestB).ipv4(kIpA, kIpB).udp(1, 2).payload_size(1472).build();
  auto fits = FrameBuilder().eth(kGuestA, kGuestB).ipv4(kIpA, kIpB, df).udp(1, 2).payload_size(1422).build();
  Packet a = parsed(big_df), b = parsed(big), c = parsed(fits);
  EXPECT_TRUE(needs_frag_needed(a, 1450));
  EXPECT_FALSE(needs_frag_needed(b, 1450));
  EXPECT_FALSE(needs_frag_needed(c, 1450));
  a.flags |= kHasVnet;
  a.vnet.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
  EXPECT_FALSE(needs_frag_needed(a, 1450));  // super-frames are segmented instead
}

TEST(VxlanEncap, IcmpFragNeededIsWellFormed) {
  Ipv4Opts df;
  df.frag_off = proto::kIpv4FlagDf;
  auto big = FrameBuilder().eth(kGuestA, kGuestB).ipv4(kIpA, kIpB, df).tcp(40000, 5201).payload_size(1460).build();
  Packet p = parsed(big);
  const MacAddr router{{0x02, 0xee, 0, 0, 0, 1}};
  const Ipv4Addr gw = *Ipv4Addr::parse("10.0.0.254");
  std::vector<uint8_t> out(1600);
  const size_t n = build_icmp_frag_needed(p, router, gw, 1450, out.data(), out.size());
  ASSERT_EQ(n, 14u + 576u);
  out.resize(n);
  Packet r = parsed(out);
  ASSERT_FALSE(r.dropped()) << drop_reason_name(r.drop);
  EXPECT_TRUE(r.flags & kIsIcmp);
  EXPECT_EQ(r.ip4_src, gw);
  EXPECT_EQ(r.ip4_dst, kIpA);
  EXPECT_EQ(MacAddr::from_bytes(r.dst_mac()), kGuestA);
  EXPECT_EQ(MacAddr::from_bytes(r.src_mac()), router);
  EXPECT_EQ(r.dst_port, (3 << 8) | 4);
  EXPECT_TRUE(proto::checksum_valid({out.data() + 14, 20}));
  EXPECT_TRUE(proto::checksum_valid({out.data() + 34, n - 34}));
  EXPECT_EQ(out[34 + 6] << 8 | out[34 + 7], 1450);
  EXPECT_EQ(0, std::memcmp(out.data() + 42, big.data() + 14, 28));  // the original IP header + 8 bytes quoted
}

// Software GSO: every segment parses, carries a valid checksum, and the payloads put back together are the original.
struct GsoCase {
  const char* name;
  bool v6;
  bool udp;
  size_t payload;
  uint16_t mss;
};

class GsoTest : public ::testing::TestWithParam<GsoCase> {};

TEST_P(GsoTest, SegmentsReassembleAndVerify) {
  const GsoCase& c = GetParam();
  const auto a6 = *proto::Ipv6Addr::parse("fd00::a");
  const auto b6 = *proto::Ipv6Addr::parse("fd00::b");
  FrameBuilder fb;
  fb.eth(kGuestA, kGuestB);
  if (c.v6) fb.ipv6(a6, b6); else fb.ipv4(kIpA, kIpB);
  proto::TcpOpts t;
  t.seq = 0xfffff000;  // wraps
  t.flags = proto::kTcpAck | proto::kTcpPsh | proto::kTcpFin | 0x80;
  if (c.udp) fb.udp(5000, 6000); else fb.tcp(40000, 5201, t);
  std::vector<uint8_t> f = fb.payload_size(c.payload).build();
  Packet p = parsed(f);
  ASSERT_FALSE(p.dropped());
  p.flags |= kHasVnet;
  p.vnet.gso_type = c.udp ? proto::kVnetGsoUdpL4 : (c.v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4);
  p.vnet.gso_size = c.mss;
  const size_t hdr = size_t(p.l4_offset) + (c.udp ? 8 : 20);
  const size_t want_n = (c.payload + c.mss - 1) / c.mss;
  ASSERT_EQ(proto::gso_segment_count(p), want_n);
  for (auto mode : {proto::GsoCsum::kSoftware, proto::GsoCsum::kPartial}) {
    SCOPED_TRACE(mode == proto::GsoCsum::kSoftware ? "software" : "partial");
    std::vector<uint8_t> out((hdr + 1) * want_n + c.payload);
    std::vector<proto::GsoSegment> segs(want_n);
    ASSERT_EQ(proto::gso_segment(p, mode, out, segs), want_n);
    std::vector<uint8_t> joined;
    for (size_t i = 0; i < want_n; ++i) {
      std::vector<uint8_t> s(out.data() + segs[i].offset, out.data() + segs[i].offset + segs[i].len);
      Packet q = parsed(s);
      ASSERT_FALSE(q.dropped()) << i << " " << drop_reason_name(q.drop);
      ASSERT_LE(s.size() - hdr, c.mss);
      if (mode == proto::GsoCsum::kPartial) {
        q.flags |= kHasVnet;
        q.vnet = segs[i].vnet;
        ASSERT_TRUE(proto::finish_partial_checksum(q));
      }
      const uint8_t l4proto = c.udp ? 17 : 6;
      std::span<const uint8_t> l4(s.data() + q.l4_offset, q.l4_len);
      if (c.v6) {
        EXPECT_TRUE(proto::checksum_valid(l4, proto::ipv6_pseudo_sum(a6, b6, l4proto, uint32_t(l4.size()))));
      } else {
        EXPECT_TRUE(proto::checksum_valid({s.data() + 14, 20}));
        EXPECT_TRUE(proto::checksum_valid(l4, proto::ipv4_pseudo_sum(kIpA, kIpB, l4proto, uint16_t(l4.size()))));
        EXPECT_EQ((s[18] << 8 | s[19]), int(i));  // ids count up from the original's 0
      }
      if (!c.udp) {
        proto::TcpHdr th;
        std::memcpy(&th, s.data() + q.l4_offset, 20);
        EXPECT_EQ(th.seq.to_host(), uint32_t(0xfffff000u + i * c.mss));
        const bool last = i + 1 == want_n;
        EXPECT_EQ((th.flags & (proto::kTcpFin | proto::kTcpPsh)) != 0, last);
        EXPECT_EQ((th.flags & 0x80) != 0, i == 0);
      }
      joined.insert(joined.end(), s.begin() + hdr, s.end());
    }
    EXPECT_EQ(joined, std::vector<uint8_t>(f.begin() + hdr, f.end()));
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, GsoTest,
                         ::testing::Values(GsoCase{"tcp4", false, false, 64000, 1398},
                                           GsoCase{"tcp4_exact", false, false, 1398 * 3, 1398},
                                           GsoCase{"tcp6", true, false, 30000, 1378},
                                           GsoCase{"udp4", false, true, 10000, 1400},
                                           GsoCase{"udp6", true, true, 5000, 1000}),
                         [](const auto& i) { return std::string(i.param.name); });

// The software checksum (payload summed while it is copied, ones_sum_copy) writes exactly the bytes of the partial
// path completed afterwards by a plain sum over the segment (finish_partial_checksum), for odd segment sizes (so
// every segment after the first starts at an odd offset of the super-frame), odd payload lengths and all-0xff data.
TEST(Gso, SoftwareChecksumEqualsPartialCompleted) {
  const auto a6 = *proto::Ipv6Addr::parse("fd00::a");
  const auto b6 = *proto::Ipv6Addr::parse("fd00::b");
  std::mt19937 rng(11);
  for (bool ff : {false, true}) {
    for (int kind = 0; kind < 3; ++kind) {  // tcp4, tcp6, udp4
      for (auto [payload, mss] : {std::pair<size_t, uint16_t>{64001, 1397}, {4191, 1398}, {3001, 999}, {1, 7}}) {
        SCOPED_TRACE(testing::Message() << "ff " << ff << " kind " << kind << " payload " << payload << " mss " << mss);
        std::vector<uint8_t> data(payload);
        for (auto& b : data) b = ff ? 0xff : uint8_t(rng());
        FrameBuilder fb;
        fb.eth(kGuestA, kGuestB);
        if (kind == 1) fb.ipv6(a6, b6); else fb.ipv4(kIpA, kIpB);
        if (kind == 2) fb.udp(5000, 6000); else fb.tcp(40000, 5201);
        std::vector<uint8_t> f = fb.payload(data).build();
        Packet p = parsed(f);
        ASSERT_FALSE(p.dropped());
        p.flags |= kHasVnet;
        p.vnet.gso_type = kind == 2 ? proto::kVnetGsoUdpL4
                                    : (kind == 1 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4);
        p.vnet.gso_size = mss;
        const size_t n = proto::gso_segment_count(p);
        ASSERT_GT(n, 0u);
        std::vector<uint8_t> sw(f.size() + n * 80), part(f.size() + n * 80);
        std::vector<proto::GsoSegment> ss(n), ps(n);
        ASSERT_EQ(proto::gso_segment(p, proto::GsoCsum::kSoftware, sw, ss), n);
        ASSERT_EQ(proto::gso_segment(p, proto::GsoCsum::kPartial, part, ps), n);
        const size_t csum_at = size_t(p.l4_offset) + (kind == 2 ? 6 : 16);
        for (size_t i = 0; i < n; ++i) {
          SCOPED_TRACE(i);
          ASSERT_EQ(ss[i].len, ps[i].len);
          std::vector<uint8_t> a(sw.data() + ss[i].offset, sw.data() + ss[i].offset + ss[i].len);
          std::vector<uint8_t> b(part.data() + ps[i].offset, part.data() + ps[i].offset + ps[i].len);
          Packet q = parsed(b);
          q.flags |= kHasVnet;
          q.vnet = ps[i].vnet;
          ASSERT_TRUE(proto::finish_partial_checksum(q));
          if (kind == 2 && b[csum_at] == 0 && b[csum_at + 1] == 0) b[csum_at] = b[csum_at + 1] = 0xff;  // RFC 768
          ASSERT_EQ(a, b);
        }
      }
    }
  }
}

TEST(Gso, RefusesWhatItCannotSegment) {
  auto f = FrameBuilder().eth(kGuestA, kGuestB).ipv4(kIpA, kIpB).udp(1, 2).payload_size(4000).build();
  Packet p = parsed(f);
  p.flags |= kHasVnet;
  p.vnet.gso_type = VIRTIO_NET_HDR_GSO_UDP;  // UFO: would need IP fragmentation
  p.vnet.gso_size = 1400;
  EXPECT_EQ(proto::gso_segment_count(p), 0u);
  p.vnet.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;  // does not match the UDP headers
  EXPECT_EQ(proto::gso_segment_count(p), 0u);
  p.vnet.gso_type = proto::kVnetGsoUdpL4;
  p.vnet.gso_size = 0;
  EXPECT_EQ(proto::gso_segment_count(p), 0u);
  p.vnet.gso_size = 1400;
  std::vector<uint8_t> small(100);
  std::vector<proto::GsoSegment> segs(3);
  EXPECT_EQ(proto::gso_segment(p, proto::GsoCsum::kSoftware, small, segs), 0u);  // output too small
}

}  // namespace
}  // namespace vpcd::dp
