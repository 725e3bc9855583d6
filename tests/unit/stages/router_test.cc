// Router logic: longest prefix match, TTL decrement with a valid incremental checksum, MAC rewrite, next hops via
// routes, blackhole/no-route/unresolved with their ICMP errors, ping to the gateway, ICMP error frames (quote,
// checksums, no errors about errors), the per-worker rate limit.
#include "datapath/stages/router.h"

#include <gtest/gtest.h>

#include "datapath/proto/checksum.h"
#include "datapath/proto/frame_builder.h"
#include "datapath/stages/parse.h"

namespace vpcd::dp {
namespace {

using proto::FrameBuilder;

Ipv4Addr ip(const char* s) { return *Ipv4Addr::parse(s); }
Ipv4Prefix cidr(const char* s) { return *Ipv4Prefix::parse(s); }
const MacAddr kRouter{{2, 0xfe, 0, 0, 0, 1}}, kMacA{{2, 0, 0, 0, 0, 0xa}}, kMacB{{2, 0, 0, 0, 0, 0xb}},
    kMacFw{{2, 0, 0, 0, 0, 0xf}};

struct Net {
  RouteTable routes;
  ArpAnswerTable arp;
  Net() {
    routes = RouteTable({
        {cidr("10.0.1.0/24"), {RouteKind::kConnected, {}, ip("10.0.1.1")}},
        {cidr("10.0.2.0/24"), {RouteKind::kConnected, {}, ip("10.0.2.1")}},
        {cidr("10.0.1.1/32"), {RouteKind::kLocal, {}, {}}},
        {cidr("10.0.2.1/32"), {RouteKind::kLocal, {}, {}}},
        {cidr("192.168.0.0/16"), {RouteKind::kVia, ip("10.0.2.9"), {}}},  // a firewall NIC
        {cidr("192.168.66.0/24"), {RouteKind::kBlackhole, {}, {}}},
        {cidr("172.16.0.0/12"), {RouteKind::kVia, ip("10.0.2.200"), {}}},  // nobody has .200
    });
    arp = ArpAnswerTable({{ip("10.0.1.5"), kMacA}, {ip("10.0.2.7"), kMacB}, {ip("10.0.2.9"), kMacFw},
                          {ip("10.0.1.1"), kRouter}, {ip("10.0.2.1"), kRouter}});
  }
};

struct Frame {
  std::vector<uint8_t> buf;
  Packet p;
  explicit Frame(std::vector<uint8_t> b) : buf(std::move(b)) {
    p = proto::make_packet(buf);
    parse(p);
    EXPECT_FALSE(p.dropped());
  }
};

std::vector<uint8_t> udp_to(const char* dst, uint8_t ttl = 64) {
  proto::Ipv4Opts o;
  o.ttl = ttl;
  return FrameBuilder().eth(kMacA, kRouter).ipv4(ip("10.0.1.5"), ip(dst), o).udp(1000, 2000).payload_size(100).build();
}

bool ip_checksum_ok(const Packet& p) {
  return proto::checksum_valid({p.data + p.l3_offset, 20});
}

TEST(RouteTable, LongestPrefixMatch) {
  Net n;
  EXPECT_EQ(n.routes.lookup(ip("10.0.2.7"))->kind, RouteKind::kConnected);
  EXPECT_EQ(n.routes.lookup(ip("192.168.66.1"))->kind, RouteKind::kBlackhole);
  EXPECT_EQ(n.routes.lookup(ip("192.168.1.1"))->kind, RouteKind::kVia);
  EXPECT_EQ(n.routes.lookup(ip("8.8.8.8")), nullptr);
  EXPECT_TRUE(n.routes.is_local(ip("10.0.1.1")));
  EXPECT_FALSE(n.routes.is_local(ip("10.0.1.5")));
  EXPECT_EQ(n.routes.source_for(ip("10.0.2.7")), ip("10.0.2.1"));
  RouteTable def({{cidr("0.0.0.0/0"), {RouteKind::kBlackhole, {}, {}}}, {cidr("10.0.0.0/8"), {RouteKind::kConnected, {}, ip("10.0.0.1")}}});
  EXPECT_EQ(def.lookup(ip("1.2.3.4"))->kind, RouteKind::kBlackhole);
  EXPECT_EQ(def.lookup(ip("10.2.3.4"))->kind, RouteKind::kConnected);
  // An explicit route on a subnet's prefix wins over the connected entry.
  RouteTable over({{cidr("10.0.1.0/24"), {RouteKind::kConnected, {}, ip("10.0.1.1")}},
                   {cidr("10.0.1.0/24"), {RouteKind::kBlackhole, {}, {}}}});
  EXPECT_EQ(over.lookup(ip("10.0.1.9"))->kind, RouteKind::kBlackhole);
}

TEST(Router, ForwardsBetweenSubnets) {
  Net n;
  Frame f(udp_to("10.0.2.7", 64));
  const RouterOutcome o = route_ipv4(n.routes, n.arp, kRouter, f.p);
  ASSERT_EQ(o.action, RouterAction::kForward);
  EXPECT_EQ(MacAddr::from_bytes(f.p.data), kMacB);
  EXPECT_EQ(MacAddr::from_bytes(f.p.data + 6), kRouter);
  EXPECT_EQ(f.p.data[f.p.l3_offset + 8], 63);
  EXPECT_TRUE(ip_checksum_ok(f.p));
  // Many hops: the incremental update stays right down to TTL 2 -> 1.
  Frame g(udp_to("10.0.2.7", 2));
  ASSERT_EQ(route_ipv4(n.routes, n.arp, kRouter, g.p).action, RouterAction::kForward);
  EXPECT_EQ(g.p.data[g.p.l3_offset + 8], 1);
  EXPECT_TRUE(ip_checksum_ok(g.p));
}

TEST(Router, StaticRouteToANic) {
  Net n;
  Frame f(udp_to("192.168.3.4"));
  ASSERT_EQ(route_ipv4(n.routes, n.arp, kRouter, f.p).action, RouterAction::kForward);
  EXPECT_EQ(MacAddr::from_bytes(f.p.data), kMacFw);
  EXPECT_EQ(f.p.ip4_dst, ip("192.168.3.4"));  // the IP destination is unchanged
}

TEST(Router, DropsWithTheirIcmpErrors) {
  Net n;
  struct Case {
    const char* dst;
    uint8_t ttl;
    DropReason drop;
    uint8_t type, code;
  } cases[] = {
      {"10.0.2.7", 1, DropReason::kTtlExceeded, 11, 0},
      {"10.0.2.7", 0, DropReason::kTtlExceeded, 11, 0},
      {"8.8.8.8", 64, DropReason::kNoRoute, 3, 0},
      {"192.168.66.1", 64, DropReason::kBlackholeRoute, 3, 0},
      {"172.16.0.1", 64, DropReason::kNextHopUnresolved, 3, 1},
      {"10.0.2.99", 64, DropReason::kNextHopUnresolved, 3, 1},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.dst);
    Frame f(udp_to(c.dst, c.ttl));
    const RouterOutcome o = route_ipv4(n.routes, n.arp, kRouter, f.p);
    EXPECT_EQ(o.action, RouterAction::kDrop);
    EXPECT_EQ(f.p.drop, c.drop);
    EXPECT_EQ(o.icmp_type, c.type);
    EXPECT_EQ(o.icmp_code, c.code);
    EXPECT_EQ(o.icmp_src, ip("10.0.1.1"));  // the sender's gateway
  }
}

TEST(Router, AnswersPingToTheGateway) {
  Net n;
  Frame f(FrameBuilder().eth(kMacA, kRouter).ipv4(ip("10.0.1.5"), ip("10.0.2.1")).icmp_echo(true, 7, 3).payload_size(56).build());
  ASSERT_EQ(route_ipv4(n.routes, n.arp, kRouter, f.p).action, RouterAction::kReply);
  Frame r(f.buf);  // parses again
  EXPECT_EQ(MacAddr::from_bytes(r.p.data), kMacA);
  EXPECT_EQ(MacAddr::from_bytes(r.p.data + 6), kRouter);
  EXPECT_EQ(r.p.ip4_src, ip("10.0.2.1"));
  EXPECT_EQ(r.p.ip4_dst, ip("10.0.1.5"));
  EXPECT_EQ(r.p.dst_port >> 8, proto::kIcmpEchoReply);
  EXPECT_TRUE(ip_checksum_ok(r.p));
  EXPECT_TRUE(proto::checksum_valid({r.p.data + r.p.l4_offset, r.p.l4_len}));
  // Anything else to the gateway is dropped.
  Frame u(udp_to("10.0.1.1"));
  EXPECT_EQ(route_ipv4(n.routes, n.arp, kRouter, u.p).action, RouterAction::kDrop);
  EXPECT_EQ(u.p.drop, DropReason::kToRouter);
}

TEST(Router, IcmpErrorFrame) {
  Frame f(udp_to("10.0.2.7", 1));
  ASSERT_TRUE(may_send_icmp_error(f.p));
  std::vector<uint8_t> out(kIcmpErrorMaxFrame);
  const size_t n = build_icmp_error(f.p, 11, 0, kRouter, ip("10.0.1.1"), out.data(), out.size());
  ASSERT_GT(n, 0u);
  out.resize(n);
  Frame e(out);
  EXPECT_EQ(MacAddr::from_bytes(e.p.data), kMacA);
  EXPECT_EQ(MacAddr::from_bytes(e.p.data + 6), kRouter);
  EXPECT_EQ(e.p.ip4_src, ip("10.0.1.1"));
  EXPECT_EQ(e.p.ip4_dst, ip("10.0.1.5"));
  EXPECT_EQ(e.p.dst_port, 11 << 8);
  EXPECT_TRUE(ip_checksum_ok(e.p));
  EXPECT_TRUE(proto::checksum_valid({e.p.data + e.p.l4_offset, e.p.l4_len}));
  // The quote is the whole offending datagram (20 + 8 + 100 bytes, under 576).
  EXPECT_EQ(e.p.l4_len, 8u + 128u);
  EXPECT_EQ(0, std::memcmp(e.p.data + e.p.l4_offset + 8, f.buf.data() + 14, 128));
  // No error about an error, a broadcast, or a non-first fragment.
  EXPECT_FALSE(may_send_icmp_error(e.p));
  Frame b(FrameBuilder().eth(kMacA, kBroadcastMac).ipv4(ip("10.0.1.5"), ip("10.0.2.7")).udp(1, 2).build());
  EXPECT_FALSE(may_send_icmp_error(b.p));
  proto::Ipv4Opts frag;
  frag.frag_off = 10;
  Frame fr(FrameBuilder().eth(kMacA, kRouter).ipv4(ip("10.0.1.5"), ip("10.0.2.7"), frag).payload_size(40).build());
  EXPECT_FALSE(may_send_icmp_error(fr.p));
  // A big datagram is quoted up to 576 bytes in all.
  Frame big(FrameBuilder().eth(kMacA, kRouter).ipv4(ip("10.0.1.5"), ip("10.0.2.7")).udp(1, 2).payload_size(1400).build());
  std::vector<uint8_t> out2(kIcmpErrorMaxFrame);
  EXPECT_EQ(build_icmp_error(big.p, 3, 0, kRouter, ip("10.0.1.1"), out2.data(), out2.size()), 14u + 576u);
}

// vpcd does not fragment: too big with DF -> frag_needed + ICMP 3/4 with the next-hop MTU (RFC 1191) from the
// sender's gateway; without DF -> too_big, no ICMP. route_decide leaves the frame as it came (the quote is the sent
// datagram), route_ipv4 rewrites it.
TEST(Router, TooBigOutcomesAndFragNeededFrame) {
  Net n;
  proto::Ipv4Opts df;
  df.frag_off = proto::kIpv4FlagDf;
  Frame f(FrameBuilder().eth(kMacA, kRouter).ipv4(ip("10.0.1.5"), ip("10.0.2.7"), df).udp(1, 2).payload_size(1472).build());
  const RouterOutcome d = route_decide(n.routes, n.arp, kRouter, f.p);
  ASSERT_EQ(d.action, RouterAction::kForward);
  ASSERT_NE(d.next_hop, nullptr);
  EXPECT_EQ(*d.next_hop, kMacB);
  EXPECT_EQ(MacAddr::from_bytes(f.p.data), kRouter);  // not rewritten yet
  EXPECT_EQ(f.p.data[f.p.l3_offset + 8], 64);
  const RouterOutcome o = too_big_outcome(n.routes, f.p, 1400);
  EXPECT_EQ(o.action, RouterAction::kDrop);
  EXPECT_EQ(f.p.drop, DropReason::kFragNeeded);
  EXPECT_EQ(o.icmp_type, 3);
  EXPECT_EQ(o.icmp_code, 4);
  EXPECT_EQ(o.icmp_src, ip("10.0.1.1"));
  EXPECT_EQ(o.next_hop_mtu, 1400);
  std::vector<uint8_t> out(kIcmpErrorMaxFrame);
  const size_t len = build_icmp_error(f.p, o.icmp_type, o.icmp_code, kRouter, o.icmp_src, out.data(), out.size(),
                                      o.next_hop_mtu);
  ASSERT_EQ(len, 14u + 576u);
  out.resize(len);
  Frame e(out);
  EXPECT_EQ(MacAddr::from_bytes(e.p.data), kMacA);
  EXPECT_EQ(e.p.dst_port, (3 << 8) | 4);
  EXPECT_EQ(out[e.p.l4_offset + 6] << 8 | out[e.p.l4_offset + 7], 1400);
  EXPECT_TRUE(proto::checksum_valid({e.p.data + e.p.l4_offset, e.p.l4_len}));
  EXPECT_FALSE(may_send_icmp_error(e.p));
  // Other errors keep bytes 4-7 zero.
  std::vector<uint8_t> te(kIcmpErrorMaxFrame);
  ASSERT_GT(build_icmp_error(f.p, 11, 0, kRouter, ip("10.0.1.1"), te.data(), te.size()), 42u);
  EXPECT_EQ(0, te[14 + 20 + 4] | te[14 + 20 + 5] | te[14 + 20 + 6] | te[14 + 20 + 7]);

  Frame nodf(FrameBuilder().eth(kMacA, kRouter).ipv4(ip("10.0.1.5"), ip("10.0.2.7")).udp(1, 2).payload_size(1472).build());
  const RouterOutcome t = too_big_outcome(n.routes, nodf.p, 1400);
  EXPECT_EQ(t.action, RouterAction::kDrop);
  EXPECT_EQ(nodf.p.drop, DropReason::kTooBig);
  EXPECT_EQ(t.icmp_type, kNoIcmp);
}

TEST(Router, IcmpRateLimiter) {
  IcmpRateLimiter rl(100, 5);
  uint64_t t = 1'000'000'000;
  int ok = 0;
  for (int i = 0; i < 20; ++i) ok += rl.allow(t);
  EXPECT_EQ(ok, 5);  // the burst
  t += 50'000'000;   // 50 ms: 5 more tokens
  ok = 0;
  for (int i = 0; i < 20; ++i) ok += rl.allow(t);
  EXPECT_EQ(ok, 5);
  t += 10'000'000'000ull;  // long idle: refilled to the burst only
  ok = 0;
  for (int i = 0; i < 20; ++i) ok += rl.allow(t);
  EXPECT_EQ(ok, 5);
}

}  // namespace
}  // namespace vpcd::dp
