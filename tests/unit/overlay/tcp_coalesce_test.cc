// Stage tcp-coalesce through fake ports: TCP segments decapsulated from the uplink in one batch, on their way to a
// guest port that takes GSO super-frames (overlay_test_net.h), are joined by the rules of tcp_coalesce.h or left
// alone (every "do not merge" rule), never reordered within a flow.
#include <gtest/gtest.h>

#include <cstring>
#include <optional>
#include <vector>

#include "datapath/io/fake_port.h"
#include "datapath/pipeline/pipeline.h"
#include "datapath/proto/checksum.h"
#include "datapath/proto/frame_builder.h"
#include "datapath/proto/gso.h"
#include "datapath/proto/ipv4.h"
#include "datapath/proto/l4.h"
#include "datapath/proto/vxlan.h"
#include "datapath/stages/parse.h"
#include "datapath/stages/tcp_coalesce.h"
#include "tests/unit/overlay/overlay_test_net.h"

namespace vpcd::dp {
namespace {

using namespace overlaytest;
using proto::FrameBuilder;

constexpr uint8_t kAck = proto::kTcpAck;
constexpr uint8_t kPsh = proto::kTcpPsh;
constexpr uint32_t kMss = 1398;
constexpr uint32_t kSeq0 = 0xfffff000u;  // wraps during the tests' runs

const proto::Ipv6Addr kRemote6 = *proto::Ipv6Addr::parse("fd00::20");
const proto::Ipv6Addr kGuest6 = *proto::Ipv6Addr::parse("fd00::10");

// Payload byte i of a flow: a pattern, so joined payloads can be checked.
uint8_t pattern(uint32_t i) { return uint8_t(i * 7 + 3); }

struct SegSpec {
  uint32_t off = 0;       // payload offset in the flow (seq = kSeq0 + off)
  uint32_t len = kMss;
  uint8_t flags = kAck;
  uint16_t sport = 5201;
  uint32_t ack = 77;
  uint16_t window = 500;
  bool v6 = false;
  uint8_t tos = 0;
  std::optional<uint8_t> fill;  // every payload byte this value instead of pattern()
};

std::vector<uint8_t> segment(const SegSpec& s) {
  std::vector<uint8_t> pl(s.len);
  for (uint32_t i = 0; i < s.len; ++i) pl[i] = s.fill ? *s.fill : pattern(s.off + i);
  proto::TcpOpts t;
  t.seq = kSeq0 + s.off;
  t.ack = s.ack;
  t.flags = s.flags;
  t.window = s.window;
  FrameBuilder b;
  b.eth(kRemoteMac, kGuestMac);
  if (s.v6) {
    b.ipv6(kRemote6, kGuest6);
  } else {
    proto::Ipv4Opts o;
    o.frag_off = proto::kIpv4FlagDf;
    o.tos = s.tos;
    o.id = uint16_t(s.off / kMss);
    b.ipv4(kRemoteIp, kGuestIp, o);
  }
  return b.tcp(s.sport, 40000, t).payload(pl).build();
}

// Inserts 12 bytes of TCP options (NOP, NOP, timestamp tsval/1) after the 20-byte TCP header of an IPv4 frame and
// fixes the lengths and checksums.
std::vector<uint8_t> with_timestamp(std::vector<uint8_t> f, uint32_t tsval) {
  const size_t l4 = 14 + 20;
  const uint8_t opt[12] = {1, 1, 8, 10, uint8_t(tsval >> 24), uint8_t(tsval >> 16), uint8_t(tsval >> 8),
                           uint8_t(tsval), 0, 0, 0, 1};
  f.insert(f.begin() + l4 + 20, opt, opt + 12);
  f[l4 + 12] = uint8_t((32 / 4) << 4);
  const uint16_t tl = uint16_t(f.size() - 14);
  f[16] = uint8_t(tl >> 8);
  f[17] = uint8_t(tl);
  f[24] = f[25] = 0;
  const be16 ic = proto::internet_checksum({f.data() + 14, 20});
  std::memcpy(&f[24], &ic, 2);
  f[l4 + 16] = f[l4 + 17] = 0;
  const be16 tc = proto::l4_checksum_ipv4(kRemoteIp, kGuestIp, 6, {f.data() + l4, f.size() - l4});
  std::memcpy(&f[l4 + 16], &tc, 2);
  return f;
}

// The inner frame in VXLAN from kPeer to us (as overlay_pipeline_test.cc builds it).
std::vector<uint8_t> vxlan(const std::vector<uint8_t>& inner) {
  std::vector<uint8_t> v(8);
  const proto::VxlanHdr h = proto::VxlanHdr::make(kVni);
  std::memcpy(v.data(), &h, 8);
  v.insert(v.end(), inner.begin(), inner.end());
  proto::Ipv4Opts df;
  df.frag_off = proto::kIpv4FlagDf;
  auto f = FrameBuilder().eth(kPeerMac, kUplinkMac).ipv4(kPeer, kMe, df).udp(50000, 4789).payload(v).build();
  f[40] = f[41] = 0;
  return f;
}

// Runs all frames through the pipeline as one batch from the uplink; returns what the guest port sent.
std::vector<FakeFrame> run(OverlayNet& n, const std::vector<std::vector<uint8_t>>& inner,
                           std::optional<virtio_net_hdr> vnet = std::nullopt) {
  for (const auto& f : inner) n.fakes[n.uplink]->inject(vxlan(f), vnet);
  std::vector<Packet> pkts(inner.size());
  const unsigned got = n.fakes[n.uplink]->rx_burst(0, pkts.data(), unsigned(pkts.size()));
  EXPECT_EQ(got, inner.size());
  run_batch(n.ctx, n.cfg, n.uplink, std::span<Packet>(pkts.data(), got));
  flush_outputs(n.ctx, n.cfg);
  n.fakes[n.uplink]->rx_release(0);
  return n.fakes[n.guest]->drain();
}

bool is_super(const FakeFrame& f) {
  return f.vnet && f.vnet->gso_type != VIRTIO_NET_HDR_GSO_NONE;
}

// Checks a super-frame of `segs` segments holding payload [off, off + len) of the flow: vnet header, IP and TCP headers,
// the payload bytes, and that completing the partial checksum gives a valid one.
void expect_super(const FakeFrame& f, bool v6, uint32_t off, uint32_t len, uint8_t tcp_flags, uint32_t mss = kMss) {
  ASSERT_TRUE(is_super(f));
  const size_t l3 = 14, l4 = v6 ? 14 + 40 : 14 + 20, hdr = l4 + 20;
  EXPECT_EQ(f.vnet->gso_type, v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4);
  EXPECT_EQ(f.vnet->gso_size, mss);
  EXPECT_EQ(f.vnet->hdr_len, hdr);
  EXPECT_EQ(f.vnet->flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
  EXPECT_EQ(f.vnet->csum_start, l4);
  EXPECT_EQ(f.vnet->csum_offset, 16);
  ASSERT_EQ(f.bytes.size(), hdr + len);
  std::vector<uint8_t> b = f.bytes;
  Packet p = proto::make_packet(b);
  p.vnet = *f.vnet;
  p.flags |= kHasVnet;
  parse(p);
  ASSERT_FALSE(p.dropped());
  ASSERT_TRUE(p.flags & kIsTcp);
  EXPECT_EQ(p.l4_len, 20 + len);
  if (!v6) {
    EXPECT_TRUE(proto::checksum_valid({b.data() + l3, 20}));
  }
  uint32_t seq;
  std::memcpy(&seq, &b[l4 + 4], 4);
  EXPECT_EQ(__builtin_bswap32(seq), kSeq0 + off);
  EXPECT_EQ(b[l4 + 13], tcp_flags);
  for (uint32_t i = 0; i < len; ++i)
    if (b[hdr + i] != pattern(off + i)) {
      ADD_FAILURE() << "payload byte " << i << " differs";
      break;
    }
  ASSERT_TRUE(proto::finish_partial_checksum(p));
  const uint32_t pseudo = v6 ? proto::ipv6_pseudo_sum(kRemote6, kGuest6, 6, 20 + len)
                             : proto::ipv4_pseudo_sum(kRemoteIp, kGuestIp, 6, uint16_t(20 + len));
  EXPECT_TRUE(proto::checksum_valid({b.data() + l4, 20 + len}, pseudo));
}

uint32_t seq_of(const FakeFrame& f, size_t l4 = 34) {
  uint32_t s;
  std::memcpy(&s, &f.bytes[l4 + 4], 4);
  return __builtin_bswap32(s) - kSeq0;
}

std::vector<std::vector<uint8_t>> flow(unsigned count, SegSpec s = {}) {
  std::vector<std::vector<uint8_t>> v;
  for (unsigned i = 0; i < count; ++i) {
    s.off = i * s.len;
    v.push_back(segment(s));
  }
  return v;
}

TEST(TcpCoalesce, JoinsInOrderSegmentsIntoOneSuperFrame) {
  OverlayNet n;
  auto out = run(n, flow(10));
  ASSERT_EQ(out.size(), 1u);
  expect_super(out[0], false, 0, 10 * kMss, kAck);
  EXPECT_EQ(n.ctx.coalesce.frames.load(), 1u);
  EXPECT_EQ(n.ctx.coalesce.segments.load(), 10u);
  auto sum = n.cfg.ports[n.guest].rt->sum();
  EXPECT_EQ(sum.tx_packets, 1u);
  for (uint64_t d : n.cfg.ports[n.t1].rt->sum().drops) EXPECT_EQ(d, 0u);  // joined segments are not drops
  EXPECT_EQ(n.ctx.pool.available(), n.ctx.pool.capacity());
}

TEST(TcpCoalesce, PartialChecksumSegmentsJoin) {
  OverlayNet n;
  // As a vpcd or kernel sender across a veth underlay leaves them: the inner TCP checksum partial (the field holds
  // the pseudo-header sum), the vnet header on the outer frame pointing at it.
  std::vector<std::vector<uint8_t>> segs = flow(4);
  for (auto& f : segs) {
    const uint16_t l4_len = uint16_t(f.size() - 34);
    const be16 c = be16::from_host(proto::fold_sum(proto::ipv4_pseudo_sum(kRemoteIp, kGuestIp, 6, l4_len)));
    std::memcpy(&f[34 + 16], &c, 2);
  }
  virtio_net_hdr v{};
  v.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  v.csum_start = 50 + 34;
  v.csum_offset = 16;
  auto out = run(n, segs, v);
  ASSERT_EQ(out.size(), 1u);
  expect_super(out[0], false, 0, 4 * kMss, kAck);
}

TEST(TcpCoalesce, Ipv6SegmentsJoin) {
  OverlayNet n;
  SegSpec s;
  s.v6 = true;
  s.len = 1450 - 40 - 20;  // the VPC MTU
  auto out = run(n, flow(5, s));
  ASSERT_EQ(out.size(), 1u);
  expect_super(out[0], true, 0, 5 * s.len, kAck, s.len);
}

TEST(TcpCoalesce, PshJoinsAndEndsTheGroup) {
  OverlayNet n;
  auto segs = flow(5);
  SegSpec s;
  s.off = 2 * kMss;
  s.flags = kAck | kPsh;
  segs[2] = segment(s);
  auto out = run(n, segs);
  ASSERT_EQ(out.size(), 2u);
  expect_super(out[0], false, 0, 3 * kMss, kAck | kPsh);
  expect_super(out[1], false, 3 * kMss, 2 * kMss, kAck);
}

TEST(TcpCoalesce, ShortSegmentEndsTheGroupAndLongerOneStartsANewOne) {
  OverlayNet n;
  std::vector<std::vector<uint8_t>> segs;
  SegSpec s;
  segs.push_back(segment(s));
  s.off = kMss;
  s.len = 500;
  segs.push_back(segment(s));  // short: joins, ends the group
  s.off = kMss + 500;
  s.len = kMss;
  segs.push_back(segment(s));
  auto out = run(n, segs);
  ASSERT_EQ(out.size(), 2u);
  ASSERT_TRUE(is_super(out[0]));
  EXPECT_EQ(out[0].bytes.size(), 54 + kMss + 500);
  EXPECT_FALSE(is_super(out[1]));
  EXPECT_EQ(seq_of(out[1]), kMss + 500);
}

TEST(TcpCoalesce, OutOfOrderSegmentsAreNeitherJoinedNorReordered) {
  OverlayNet n;
  auto segs = flow(4);
  std::swap(segs[1], segs[2]);  // 0, 2, 1, 3
  auto out = run(n, segs);
  // 0 alone (2 does not follow it), 2 alone (1 does not follow it), then 1 and 3 do not join either.
  ASSERT_EQ(out.size(), 4u);
  const uint32_t want[] = {0, 2 * kMss, kMss, 3 * kMss};
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_FALSE(is_super(out[i]));
    EXPECT_EQ(seq_of(out[i]), want[i]);
  }
  EXPECT_EQ(n.ctx.coalesce.frames.load(), 0u);
}

TEST(TcpCoalesce, InterleavedFlowsJoinSeparatelyNeverAcross) {
  OverlayNet n;
  SegSpec a, b;
  b.sport = 5202;
  std::vector<std::vector<uint8_t>> segs;
  for (uint32_t i = 0; i < 3; ++i) {
    a.off = b.off = i * kMss;
    segs.push_back(segment(a));
    segs.push_back(segment(b));
  }
  auto out = run(n, segs);
  ASSERT_EQ(out.size(), 2u);
  expect_super(out[0], false, 0, 3 * kMss, kAck);
  expect_super(out[1], false, 0, 3 * kMss, kAck);
  EXPECT_EQ(out[0].bytes[34 + 1], 5201 & 0xff);
  EXPECT_EQ(out[1].bytes[34 + 1], 5202 & 0xff);
}

// A segment with flag f in the middle of a flow: joins nothing, and nothing after it overtakes it.
void expect_flag_stops_merging(uint8_t f) {
  OverlayNet n;
  auto segs = flow(5);
  SegSpec s;
  s.off = 2 * kMss;
  s.flags = uint8_t(kAck | f);
  segs[2] = segment(s);
  auto out = run(n, segs);
  ASSERT_EQ(out.size(), 3u) << "flag " << int(f);
  expect_super(out[0], false, 0, 2 * kMss, kAck);
  EXPECT_FALSE(is_super(out[1]));
  EXPECT_EQ(seq_of(out[1]), 2 * kMss);
  EXPECT_EQ(out[1].bytes, segs[2]);  // untouched
  expect_super(out[2], false, 3 * kMss, 2 * kMss, kAck);
}

TEST(TcpCoalesce, FinRstSynUrgEceCwrNeverJoin) {
  for (uint8_t f : {proto::kTcpFin, proto::kTcpRst, proto::kTcpSyn, proto::kTcpUrg, uint8_t(0x40), uint8_t(0x80)})
    expect_flag_stops_merging(f);
}

TEST(TcpCoalesce, BadChecksumIsNeitherJoinedNorTouched) {
  OverlayNet n;
  auto segs = flow(5);
  segs[2][60] ^= 0x5a;  // a payload byte: the checksum no longer verifies
  auto out = run(n, segs);
  ASSERT_EQ(out.size(), 3u);
  expect_super(out[0], false, 0, 2 * kMss, kAck);
  EXPECT_EQ(out[1].bytes, segs[2]);
  expect_super(out[2], false, 3 * kMss, 2 * kMss, kAck);
}

// The verification fused into the copy (tcp_coalesce.h): a bad segment found while copying is passed on untouched
// and the rest grouped exactly as verifying first would, wherever it is and however many there are.
TEST(TcpCoalesce, BadChecksumInTheMiddleOfALongRunSplitsItThere) {
  OverlayNet n;
  auto segs = flow(20);
  segs[9][60] ^= 0x01;
  auto out = run(n, segs);
  ASSERT_EQ(out.size(), 3u);
  expect_super(out[0], false, 0, 9 * kMss, kAck);
  EXPECT_EQ(out[1].bytes, segs[9]);
  expect_super(out[2], false, 10 * kMss, 10 * kMss, kAck);
  EXPECT_EQ(n.ctx.coalesce.frames.load(), 2u);
  EXPECT_EQ(n.ctx.coalesce.segments.load(), 19u);
  EXPECT_EQ(n.ctx.coalesce.no_room.load(), 0u);
  for (uint64_t d : n.cfg.ports[n.t1].rt->sum().drops) EXPECT_EQ(d, 0u);
  EXPECT_EQ(n.ctx.pool.available(), n.ctx.pool.capacity());
}

TEST(TcpCoalesce, BadChecksumOnTheFirstOrLastOrSeveralSegments) {
  {
    OverlayNet n;
    auto segs = flow(5);
    segs[0][34 + 16] ^= 0x80;  // the checksum field itself
    auto out = run(n, segs);
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out[0].bytes, segs[0]);
    expect_super(out[1], false, kMss, 4 * kMss, kAck);
  }
  {
    OverlayNet n;
    auto segs = flow(5);
    segs[4].back() ^= 0x10;
    auto out = run(n, segs);
    ASSERT_EQ(out.size(), 2u);
    expect_super(out[0], false, 0, 4 * kMss, kAck);
    EXPECT_EQ(out[1].bytes, segs[4]);
  }
  {
    OverlayNet n;
    auto segs = flow(12);
    for (int b : {2, 3, 7}) segs[size_t(b)][100] ^= 0x22;
    auto out = run(n, segs);
    // 0-1 joined, 2 and 3 untouched, 4-6 joined, 7 untouched, 8-11 joined
    ASSERT_EQ(out.size(), 6u);
    expect_super(out[0], false, 0, 2 * kMss, kAck);
    EXPECT_EQ(out[1].bytes, segs[2]);
    EXPECT_EQ(out[2].bytes, segs[3]);
    expect_super(out[3], false, 4 * kMss, 3 * kMss, kAck);
    EXPECT_EQ(out[4].bytes, segs[7]);
    expect_super(out[5], false, 8 * kMss, 4 * kMss, kAck);
    EXPECT_EQ(n.ctx.coalesce.segments.load(), 9u);
  }
}

TEST(TcpCoalesce, OddLengthSegmentsVerifyAndJoin) {
  OverlayNet n;
  SegSpec s;
  s.len = 1397;
  auto segs = flow(6, s);
  auto out = run(n, segs);
  ASSERT_EQ(out.size(), 1u);
  expect_super(out[0], false, 0, 6 * 1397, kAck, 1397);
  // A flipped odd last byte (summed as the high byte of a zero-padded word) is found.
  OverlayNet m;
  segs[3].back() ^= 0x01;
  out = run(m, segs);
  ASSERT_EQ(out.size(), 3u);
  expect_super(out[0], false, 0, 3 * 1397, kAck, 1397);
  EXPECT_EQ(out[1].bytes, segs[3]);
  expect_super(out[2], false, 4 * 1397, 2 * 1397, kAck, 1397);
}

TEST(TcpCoalesce, AllOnesPayloadsVerifyAndJoin) {
  OverlayNet n;
  SegSpec s;
  s.fill = 0xff;
  auto segs = flow(4, s);
  auto out = run(n, segs);
  ASSERT_EQ(out.size(), 1u);
  ASSERT_TRUE(is_super(out[0]));
  ASSERT_EQ(out[0].bytes.size(), 54 + 4 * kMss);
  for (size_t i = 54; i < out[0].bytes.size(); ++i) ASSERT_EQ(out[0].bytes[i], 0xff) << i;
  std::vector<uint8_t> b = out[0].bytes;
  Packet p = proto::make_packet(b);
  p.vnet = *out[0].vnet;
  p.flags |= kHasVnet;
  parse(p);
  ASSERT_TRUE(proto::finish_partial_checksum(p));
  EXPECT_TRUE(proto::checksum_valid({b.data() + 34, b.size() - 34},
                                    proto::ipv4_pseudo_sum(kRemoteIp, kGuestIp, 6, uint16_t(b.size() - 34))));
  // 0xff -> 0xfe in one byte of the all-ones payload is still found.
  OverlayNet m;
  segs[1][54 + 500] = 0xfe;
  out = run(m, segs);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_FALSE(is_super(out[0]));
  EXPECT_EQ(out[1].bytes, segs[1]);
  EXPECT_TRUE(is_super(out[2]));
}

// The stage alone (decap clears the outer vnet header, so DATA_VALID reaches it only from other inputs): segments
// whose checksum needs no verification here (DATA_VALID, or partial) join even with a checksum field that would not
// verify; the same bytes without the vnet header are verified and the bad one is not joined.
std::vector<FakeFrame> run_stage(std::vector<std::vector<uint8_t>>& frames, std::optional<virtio_net_hdr> vnet,
                                 WorkerContext& ctx) {
  std::vector<Packet> pkts;
  for (auto& f : frames) {
    Packet p = proto::make_packet(f);
    if (vnet) {
      p.vnet = *vnet;
      p.flags |= kHasVnet;
    }
    parse(p);
    p.in_port = 1;
    p.out_port = 2;
    p.vpc = 0;
    pkts.push_back(p);
  }
  std::vector<Packet*> ptrs;
  for (auto& p : pkts) ptrs.push_back(&p);
  DataplaneConfig cfg;
  TcpCoalesceStage::process(ctx, cfg, ptrs);
  std::vector<FakeFrame> out;
  for (auto& p : pkts) {
    if (p.dropped()) {
      EXPECT_EQ(p.drop, DropReason::kConsumed);
      continue;
    }
    FakeFrame f;
    f.bytes.assign(p.data, p.data + p.len);
    if (p.flags & kHasVnet) f.vnet = p.vnet;
    out.push_back(f);
  }
  return out;
}

TEST(TcpCoalesce, DataValidAndPartialSegmentsJoinWithoutVerification) {
  auto segs = flow(4);
  segs[2][34 + 16] ^= 0xff;  // a wrong checksum field
  {
    WorkerContext ctx;
    virtio_net_hdr v{};
    v.flags = VIRTIO_NET_HDR_F_DATA_VALID;
    auto copy = segs;
    auto out = run_stage(copy, v, ctx);
    ASSERT_EQ(out.size(), 1u);
    ASSERT_TRUE(is_super(out[0]));
    EXPECT_EQ(out[0].bytes.size(), 54 + 4 * kMss);
    EXPECT_EQ(ctx.coalesce.segments.load(), 4u);
  }
  {
    WorkerContext ctx;
    virtio_net_hdr v{};
    v.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    v.csum_start = 34;
    v.csum_offset = 16;
    auto copy = segs;
    auto out = run_stage(copy, v, ctx);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_TRUE(is_super(out[0]));
  }
  {
    WorkerContext ctx;
    auto copy = segs;
    auto out = run_stage(copy, std::nullopt, ctx);
    ASSERT_EQ(out.size(), 3u);
    expect_super(out[0], false, 0, 2 * kMss, kAck);
    EXPECT_EQ(out[1].bytes, segs[2]);
    EXPECT_FALSE(out[1].vnet);
    EXPECT_EQ(out[2].bytes, segs[3]);
  }
}

TEST(TcpCoalesce, AnUnverifiedBadSegmentTakesNoFlowSlot) {
  // 17 flows: flow 0 one bad segment, flows 1-16 two good ones each. Verifying first, the bad one never opens a
  // group, so the 16 others have the 16 slots and all join.
  OverlayNet n;
  std::vector<std::vector<uint8_t>> segs;
  SegSpec s;
  s.sport = 6000;
  segs.push_back(segment(s));
  segs.back()[60] ^= 0x40;
  for (uint32_t r = 0; r < 2; ++r)
    for (uint16_t f = 1; f <= 16; ++f) {
      s.sport = uint16_t(6000 + f);
      s.off = r * kMss;
      segs.push_back(segment(s));
    }
  auto out = run(n, segs);
  ASSERT_EQ(out.size(), 17u);
  EXPECT_EQ(out[0].bytes, segs[0]);
  for (size_t i = 1; i < 17; ++i) expect_super(out[i], false, 0, 2 * kMss, kAck);
  EXPECT_EQ(n.ctx.coalesce.frames.load(), 16u);
  EXPECT_EQ(n.ctx.coalesce.segments.load(), 32u);
}

TEST(TcpCoalesce, DifferentAckWindowTosOrOptionsDoNotJoin) {
  for (int what = 0; what < 4; ++what) {
    OverlayNet n;
    std::vector<std::vector<uint8_t>> segs;
    SegSpec s;
    segs.push_back(segment(s));
    s.off = kMss;
    if (what == 0) s.ack = 78;
    if (what == 1) s.window = 501;
    if (what == 2) s.tos = 3;  // ECN CE
    segs.push_back(segment(s));
    if (what == 3) {
      segs[0] = with_timestamp(segs[0], 1);
      segs[1] = with_timestamp(segs[1], 2);
    }
    auto out = run(n, segs);
    ASSERT_EQ(out.size(), 2u) << what;
    EXPECT_EQ(out[0].bytes, segs[0]) << what;
    EXPECT_EQ(out[1].bytes, segs[1]) << what;
  }
  // Identical options join (a TSO send: every segment carries the same timestamp).
  OverlayNet n;
  auto segs = flow(3);
  for (auto& f : segs) f = with_timestamp(f, 9);
  auto out = run(n, segs);
  ASSERT_EQ(out.size(), 1u);
  ASSERT_TRUE(is_super(out[0]));
  EXPECT_EQ(out[0].bytes.size(), 14 + 20 + 32 + 3 * kMss);
  EXPECT_EQ(out[0].vnet->hdr_len, 14 + 20 + 32);
}

TEST(TcpCoalesce, PureAcksAndOtherTrafficPassInOrder) {
  OverlayNet n;
  auto segs = flow(2);
  SegSpec ack;
  ack.len = 0;
  ack.off = 2 * kMss;
  segs.push_back(segment(ack));  // a pure ACK of the flow: closes the group, passes
  SegSpec more;
  more.off = 2 * kMss;
  segs.push_back(segment(more));
  segs.push_back(FrameBuilder().eth(kRemoteMac, kGuestMac).ipv4(kRemoteIp, kGuestIp).udp(1, 2).payload_size(30).build());
  more.off = 3 * kMss;
  segs.push_back(segment(more));  // joins over the UDP datagram (another protocol is not in the flow's way)
  auto out = run(n, segs);
  // A group goes out where its first segment was: the datagram after the second super-frame.
  ASSERT_EQ(out.size(), 4u);
  expect_super(out[0], false, 0, 2 * kMss, kAck);
  EXPECT_EQ(out[1].bytes, segs[2]);
  expect_super(out[2], false, 2 * kMss, 2 * kMss, kAck);
  EXPECT_EQ(out[3].bytes, segs[4]);
}

TEST(TcpCoalesce, SuperFramesStayWithin64KiB) {
  OverlayNet n;
  auto out = run(n, flow(60));
  ASSERT_EQ(out.size(), 2u);
  const uint32_t first = (65535 - 40) / kMss;  // segments whose IPv4 packet fits 65535 bytes
  expect_super(out[0], false, 0, first * kMss, kAck);
  expect_super(out[1], false, first * kMss, (60 - first) * kMss, kAck);
}

TEST(TcpCoalesce, ArenaIsAllocatedWithTheWorkerStateNotInTheDatapath) {
  WorkerContext ctx;
  ASSERT_NE(ctx.coalesce.arena, nullptr);
  const uint8_t* before = ctx.coalesce.arena.get();
  OverlayNet n;
  ASSERT_NE(n.ctx.coalesce.arena, nullptr);
  const uint8_t* arena = n.ctx.coalesce.arena.get();
  auto out = run(n, flow(4));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(n.ctx.coalesce.arena.get(), arena);  // process() used it, did not replace it
  EXPECT_EQ(ctx.coalesce.arena.get(), before);
}

TEST(TcpCoalesce, PortsWithoutTheFeatureGetSegmentsAsTheyCame) {
  OverlayNet n;
  n.cfg.ports[n.guest].out_features &= ~stage_bit(Next::kTcpCoalesce);
  auto segs = flow(4);
  auto out = run(n, segs);
  ASSERT_EQ(out.size(), 4u);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(out[i].bytes, segs[i]);
}

}  // namespace
}  // namespace vpcd::dp
