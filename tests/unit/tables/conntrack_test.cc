// Connection tracking and stateful security groups on parsed frames: the TCP state machine and window checks (GSO
// super-frames included), loose pickup, UDP/ICMP, related ICMP errors, first-fragment tracking, rule changes cutting
// established flows, the table limit, replies through the wrong port.
#include "datapath/tables/conntrack.h"

#include <gtest/gtest.h>

#include "datapath/proto/frame_builder.h"
#include "datapath/stages/parse.h"

namespace vpcd::dp {
namespace {

using proto::FrameBuilder;
using proto::TcpOpts;

Ipv4Addr ip(const char* s) { return *Ipv4Addr::parse(s); }
Ipv4Prefix cidr(const char* s) { return *Ipv4Prefix::parse(s); }
const MacAddr kMacA{{2, 0, 0, 0, 0, 0xa}}, kMacB{{2, 0, 0, 0, 0, 0xb}};
const Ipv4Addr kA = ip("10.0.0.2"), kB = ip("10.0.1.3");
constexpr uint16_t kPortA = 0, kPortB = 1;

struct Frame {
  std::vector<uint8_t> buf;
  Packet p;
  explicit Frame(std::vector<uint8_t> b, const virtio_net_hdr* vnet = nullptr) : buf(std::move(b)) {
    p = proto::make_packet(buf);
    if (vnet) {
      p.vnet = *vnet;
      p.flags = kHasVnet;
    }
    parse(p);
    EXPECT_FALSE(p.dropped()) << drop_reason_name(p.drop);
  }
};

std::vector<uint8_t> tcp(bool a_to_b, uint32_t seq, uint32_t ack, uint8_t flags, uint16_t win = 65535,
                         size_t payload = 0, uint16_t sport = 40000, uint16_t dport = 22) {
  TcpOpts o;
  o.seq = seq;
  o.ack = ack;
  o.flags = flags;
  o.window = win;
  FrameBuilder f;
  if (a_to_b) {
    f.eth(kMacA, kMacB).ipv4(kA, kB).tcp(sport, dport, o);
  } else {
    f.eth(kMacB, kMacA).ipv4(kB, kA).tcp(dport, sport, o);
  }
  f.payload_size(payload);
  return f.build();
}

constexpr uint8_t kSyn = proto::kTcpSyn, kAck = proto::kTcpAck, kFin = proto::kTcpFin, kRst = proto::kTcpRst;

// Two local NICs A (port 0) and B (port 1) of VPC 1 (10.0.0.0/16); policies by default, or by groups.
struct Ct {
  ConnTableOptions opts;
  std::unique_ptr<ConnTable> table;
  std::shared_ptr<const SecurityPolicies> pol;
  std::vector<SgGroup> groups;
  std::vector<SgNic> nics;
  uint32_t gen = 1;
  uint32_t now = 1000;

  explicit Ct(ConnTableOptions o = {}) : opts(o) {
    opts.shards = 4;
    table = std::make_unique<ConnTable>(opts);
    nics = {SgNic{kPortA, {kA}, {}, {cidr("10.0.0.0/16")}}, SgNic{kPortB, {kB}, {}, {cidr("10.0.0.0/16")}}};
    compile();
  }
  void compile() { pol = compile_security(groups, nics, gen++); }

  CtVerdict at(CtDir dir, uint16_t port, const Packet& p, bool track = true) {
    CtRequest r;
    r.dir = dir;
    r.port = port;
    r.vpc = 1;
    r.vpc_gen = 5;
    r.now_s = now;
    r.track = track;
    return conntrack(*table, *pol, r, p);
  }
  // Both stages the way the pipeline runs them for a frame between two local NICs.
  CtVerdict send(const std::vector<uint8_t>& frame, const virtio_net_hdr* vnet = nullptr) {
    Frame f(frame, vnet);
    const bool a_to_b = f.p.ip4_src == kA;
    const CtVerdict v = at(CtDir::kEgress, a_to_b ? kPortA : kPortB, f.p);
    if (v != CtVerdict::kAllowed) return v;
    return at(CtDir::kIngress, a_to_b ? kPortB : kPortA, f.p, false);
  }
  const Conn* find(const FlowTuple& t) {
    auto lk = table->lookup(normalize(t).key);
    return lk.conn();  // test-only peek after unlocking: single-threaded
  }
  FlowTuple tcp_tuple(uint16_t sport = 40000, uint16_t dport = 22) {
    FlowTuple t;
    t.vpc = 1;
    t.vpc_gen = 5;
    t.proto = 6;
    t.src = kA;
    t.dst = kB;
    t.sport = sport;
    t.dport = dport;
    return t;
  }
  // A -> B handshake with the given windows; ISNs 1000 (A) and 5000 (B).
  void handshake(uint16_t win_a = 65535, uint16_t win_b = 65535) {
    ASSERT_EQ(send(tcp(true, 1000, 0, kSyn, win_a)), CtVerdict::kAllowed);
    ASSERT_EQ(send(tcp(false, 5000, 1001, kSyn | kAck, win_b)), CtVerdict::kAllowed);
    ASSERT_EQ(send(tcp(true, 1001, 5001, kAck, win_a)), CtVerdict::kAllowed);
  }
};

TEST(Conntrack, TcpHandshakeDataAndClose) {
  Ct ct;
  ct.handshake();
  const Conn* c = ct.find(ct.tcp_tuple());
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(ConnState(c->state), ConnState::kTcpEstablished);
  EXPECT_EQ(TimeoutClass(c->tclass), TimeoutClass::kTcpEstablished);
  EXPECT_EQ(ct.send(tcp(true, 1001, 5001, kAck, 65535, 100)), CtVerdict::kAllowed);
  EXPECT_EQ(ct.send(tcp(false, 5001, 1101, kAck, 65535, 200)), CtVerdict::kAllowed);
  EXPECT_EQ(ct.send(tcp(true, 1101, 5201, kAck | kFin)), CtVerdict::kAllowed);
  EXPECT_EQ(ConnState(c->state), ConnState::kTcpClosing);
  EXPECT_EQ(ct.send(tcp(false, 5201, 1102, kAck | kFin)), CtVerdict::kAllowed);
  EXPECT_EQ(ct.send(tcp(true, 1102, 5202, kAck)), CtVerdict::kAllowed);
  EXPECT_EQ(ConnState(c->state), ConnState::kTcpTimeWait);
  EXPECT_EQ(TimeoutClass(c->tclass), TimeoutClass::kTcpTimeWait);
  // The time-wait entry goes away after its timeout; a new SYN on the same ports starts over before that.
  EXPECT_EQ(ct.send(tcp(true, 90000, 0, kSyn)), CtVerdict::kAllowed);
  EXPECT_EQ(ConnState(ct.find(ct.tcp_tuple())->state), ConnState::kTcpSynSent);
}

TEST(Conntrack, TcpOutOfWindowAndBadAcksAreInvalid) {
  Ct ct;
  ct.handshake(65535, 65535);
  // Starts beyond what B opened (ack 1001 + 65535).
  EXPECT_EQ(ct.send(tcp(true, 1001 + 70000, 5001, kAck, 65535, 10)), CtVerdict::kInvalid);
  // Far behind (an old window).
  EXPECT_EQ(ct.send(tcp(true, 1001 - 200000, 5001, kAck, 65535, 10)), CtVerdict::kInvalid);
  // Acknowledges data B never sent.
  EXPECT_EQ(ct.send(tcp(true, 1001, 9000, kAck, 65535, 10)), CtVerdict::kInvalid);
  // No ACK flag after the handshake.
  EXPECT_EQ(ct.send(tcp(true, 1001, 0, 0, 65535, 10)), CtVerdict::kInvalid);
  // SYN+ACK that does not acknowledge the SYN.
  Ct ct2;
  ASSERT_EQ(ct2.send(tcp(true, 1000, 0, kSyn)), CtVerdict::kAllowed);
  EXPECT_EQ(ct2.send(tcp(false, 5000, 1234, kSyn | kAck)), CtVerdict::kInvalid);
  // The connection still works in-window.
  EXPECT_EQ(ct.send(tcp(true, 1001, 5001, kAck, 65535, 10)), CtVerdict::kAllowed);
}

TEST(Conntrack, WindowScaleFromSynOptions) {
  Ct ct;
  // Both SYNs carry window scale 7 (NOP, WS 3 3 7): windows of 512 mean 64 KiB.
  auto syn = FrameBuilder().eth(kMacA, kMacB).ipv4(kA, kB).tcp(40000, 22, TcpOpts{1000, 0, kSyn, 512}).build();
  auto with_ws = [](std::vector<uint8_t> f) {
    // Rebuild with options: append 4 option bytes after the TCP header (doff 6).
    const size_t tcp_off = 14 + 20;
    f.insert(f.begin() + tcp_off + 20, {1, 3, 3, 7});
    f[tcp_off + 12] = 6 << 4;
    const uint16_t tot = 20 + 24;  // (the builder padded the frame to 60 bytes)
    f[14 + 2] = uint8_t(tot >> 8);
    f[14 + 3] = uint8_t(tot);
    return f;
  };
  Frame s(with_ws(syn));
  TcpSegment seg;
  ASSERT_TRUE(read_tcp_segment(s.p, seg));
  EXPECT_EQ(seg.wscale, 7);
  ASSERT_EQ(ct.at(CtDir::kEgress, kPortA, s.p), CtVerdict::kAllowed);
  Frame sa(with_ws(FrameBuilder().eth(kMacB, kMacA).ipv4(kB, kA).tcp(22, 40000, TcpOpts{5000, 1001, kSyn | kAck, 512}).build()));
  ASSERT_EQ(ct.at(CtDir::kEgress, kPortB, sa.p), CtVerdict::kAllowed);
  ASSERT_EQ(ct.send(tcp(true, 1001, 5001, kAck, 512)), CtVerdict::kAllowed);
  // B's first scaled window: 512 << 7 = 65536 bytes from its ACK point.
  ASSERT_EQ(ct.send(tcp(false, 5001, 1001, kAck, 512)), CtVerdict::kAllowed);
  EXPECT_EQ(ct.find(ct.tcp_tuple())->peer[0].maxend, 1001u + 65536u);
  // 60000 bytes ahead is inside B's scaled window, not inside an unscaled 512.
  EXPECT_EQ(ct.send(tcp(true, 1001 + 60000, 5001, kAck, 512, 100)), CtVerdict::kAllowed);
}

// A GSO super-frame is many segments: its last segment must start inside the window, not just its first.
TEST(Conntrack, GsoSuperFrameCheckedAsItsSegments) {
  Ct ct;
  ct.handshake(65535, 2000);  // B opens only 2000 bytes
  virtio_net_hdr v{};
  v.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
  v.gso_size = 1000;
  v.hdr_len = 54;
  // 4000 bytes in 4 segments: the last starts at 1001 + 3000, beyond 1001 + 2000.
  EXPECT_EQ(ct.send(tcp(true, 1001, 5001, kAck, 65535, 4000), &v), CtVerdict::kInvalid);
  // The same bytes as one frame start in the window (a single segment is checked by its start, as TCP does).
  EXPECT_EQ(ct.send(tcp(true, 1001, 5001, kAck, 65535, 4000)), CtVerdict::kAllowed);
  // 2000 bytes in 2 segments fit.
  Ct ct2;
  ct2.handshake(65535, 2000);
  EXPECT_EQ(ct2.send(tcp(true, 1001, 5001, kAck, 65535, 2000), &v), CtVerdict::kAllowed);
  // The state advanced by the total payload: the next segment continues at 3001.
  EXPECT_EQ(ct2.find(ct2.tcp_tuple())->peer[0].end, 3001u);
}

// Sequence numbers wrap at 2^32: the window the receiver opens must follow its ACKs across the wrap (found by
// bench/e2e/firewall.py: every iperf3 connection through a security group stalled once its sequence numbers wrapped).
TEST(Conntrack, SequenceWrapKeepsTheWindowOpen) {
  Ct ct;
  const uint32_t isn = 0xFFFEF000u;  // A may send up to isn + 1 + 65535 = 0xFFFFF000 after the handshake: no wrap yet
  ASSERT_EQ(ct.send(tcp(true, isn, 0, kSyn)), CtVerdict::kAllowed);
  ASSERT_EQ(ct.send(tcp(false, 5000, isn + 1, kSyn | kAck)), CtVerdict::kAllowed);
  ASSERT_EQ(ct.send(tcp(true, isn + 1, 5001, kAck)), CtVerdict::kAllowed);
  EXPECT_EQ(ct.find(ct.tcp_tuple())->peer[0].maxend, 0xFFFFF000u);
  EXPECT_EQ(ct.send(tcp(true, isn + 1, 5001, kAck, 65535, 60000)), CtVerdict::kAllowed);
  // B acknowledges the 60000 bytes: the window it opens now ends past the wrap, at 0x0000DA60.
  const uint32_t acked = isn + 1 + 60000;
  ASSERT_EQ(ct.send(tcp(false, 5001, acked, kAck)), CtVerdict::kAllowed);
  EXPECT_EQ(ct.find(ct.tcp_tuple())->peer[0].maxend, 0x0000DA60u);
  // A segment beyond the old window end but inside the new one (the segments before it still in flight), then the
  // first bytes after the wrap.
  EXPECT_EQ(ct.send(tcp(true, 0xFFFFF100u, 5001, kAck, 65535, 1000)), CtVerdict::kAllowed);
  EXPECT_EQ(ct.send(tcp(true, 0, 5001, kAck, 65535, 1000)), CtVerdict::kAllowed);
  EXPECT_EQ(ct.send(tcp(false, 5001, 1000, kAck)), CtVerdict::kAllowed);
  EXPECT_EQ(ct.send(tcp(true, 1000, 5001, kAck, 65535, 1000)), CtVerdict::kAllowed);
  // Still checked after the wrap: beyond B's window (ack 1000 + 65535) is invalid.
  EXPECT_EQ(ct.send(tcp(true, 1000 + 70000, 5001, kAck, 65535, 10)), CtVerdict::kInvalid);
}

TEST(Conntrack, LoosePickupAfterRestart) {
  Ct ct;
  EXPECT_EQ(ct.send(tcp(true, 777777, 888888, kAck, 1000, 100)), CtVerdict::kAllowed);
  const Conn* c = ct.find(ct.tcp_tuple());
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(ConnState(c->state), ConnState::kTcpEstablished);
  EXPECT_TRUE(c->flags & kLoosePickup);
  EXPECT_EQ(ct.send(tcp(false, 888888, 777877, kAck, 1000, 50)), CtVerdict::kAllowed);
  EXPECT_EQ(ct.send(tcp(true, 777877, 888938, kAck, 1000, 100)), CtVerdict::kAllowed);
  // A RST or a bare segment without ACK does not pick up.
  EXPECT_EQ(ct.send(tcp(true, 1, 0, kRst, 1000, 0, 40001)), CtVerdict::kInvalid);
  EXPECT_EQ(ct.send(tcp(true, 1, 0, 0, 1000, 0, 40002)), CtVerdict::kInvalid);

  ConnTableOptions strict;
  strict.loose_pickup = false;
  Ct ct2(strict);
  EXPECT_EQ(ct2.send(tcp(true, 777777, 888888, kAck, 1000, 100)), CtVerdict::kInvalid);
}

TEST(Conntrack, RstClosesAndRstToSynIsAccepted) {
  Ct ct;
  ASSERT_EQ(ct.send(tcp(true, 1000, 0, kSyn)), CtVerdict::kAllowed);
  EXPECT_EQ(ct.send(tcp(false, 0, 1001, kRst | kAck)), CtVerdict::kAllowed);
  EXPECT_EQ(ConnState(ct.find(ct.tcp_tuple())->state), ConnState::kTcpClosed);
  EXPECT_EQ(TimeoutClass(ct.find(ct.tcp_tuple())->tclass), TimeoutClass::kTcpClosed);
}

TEST(Conntrack, TimeoutsExpireEntries) {
  Ct ct;
  auto udp = FrameBuilder().eth(kMacA, kMacB).ipv4(kA, kB).udp(5000, 53).payload_size(10).build();
  ASSERT_EQ(ct.send(udp), CtVerdict::kAllowed);
  FlowTuple t = ct.tcp_tuple(5000, 53);
  t.proto = 17;
  ASSERT_NE(ct.find(t), nullptr);
  EXPECT_EQ(ct.table->expire(ct.now + ct.opts.timeout_s[size_t(TimeoutClass::kUdp)] - 1, 100), 0u);
  EXPECT_EQ(ct.table->expire(ct.now + ct.opts.timeout_s[size_t(TimeoutClass::kUdp)], 100), 1u);
  EXPECT_EQ(ct.find(t), nullptr);
}

TEST(Conntrack, UdpRepliedAndIcmpEcho) {
  Ct ct;
  ASSERT_EQ(ct.send(FrameBuilder().eth(kMacA, kMacB).ipv4(kA, kB).udp(5000, 53).build()), CtVerdict::kAllowed);
  ASSERT_EQ(ct.send(FrameBuilder().eth(kMacB, kMacA).ipv4(kB, kA).udp(53, 5000).build()), CtVerdict::kAllowed);
  FlowTuple t = ct.tcp_tuple(5000, 53);
  t.proto = 17;
  EXPECT_EQ(ConnState(ct.find(t)->state), ConnState::kUdpReplied);
  EXPECT_EQ(TimeoutClass(ct.find(t)->tclass), TimeoutClass::kUdpReplied);

  // An echo reply without a request is invalid; with one it passes.
  EXPECT_EQ(ct.send(FrameBuilder().eth(kMacB, kMacA).ipv4(kB, kA).icmp_echo(false, 9, 1).build()), CtVerdict::kInvalid);
  EXPECT_EQ(ct.send(FrameBuilder().eth(kMacA, kMacB).ipv4(kA, kB).icmp_echo(true, 9, 1).build()), CtVerdict::kAllowed);
  EXPECT_EQ(ct.send(FrameBuilder().eth(kMacB, kMacA).ipv4(kB, kA).icmp_echo(false, 9, 1).build()), CtVerdict::kAllowed);
  // A reply in the request's direction is not.
  EXPECT_EQ(ct.send(FrameBuilder().eth(kMacA, kMacB).ipv4(kA, kB).icmp_echo(false, 9, 2).build()), CtVerdict::kInvalid);
}

std::vector<uint8_t> icmp_error_about(const std::vector<uint8_t>& offending, Ipv4Addr from, Ipv4Addr to,
                                      uint8_t type = 3, uint8_t code = 3) {
  std::vector<uint8_t> quote(offending.begin() + 14, offending.begin() + 14 + 28);
  return FrameBuilder().eth(kMacB, kMacA).ipv4(from, to).icmp(type, code).payload(quote).build();
}

TEST(Conntrack, IcmpErrorsAreRelatedToTheirFlow) {
  Ct ct;
  const auto req = FrameBuilder().eth(kMacA, kMacB).ipv4(kA, kB).udp(5000, 53).build();
  ASSERT_EQ(ct.send(req), CtVerdict::kAllowed);
  // Port unreachable from B back to A about A's datagram: related.
  EXPECT_EQ(ct.send(icmp_error_about(req, kB, kA)), CtVerdict::kAllowed);
  // About a flow that does not exist: invalid.
  const auto other = FrameBuilder().eth(kMacA, kMacB).ipv4(kA, kB).udp(5001, 53).build();
  EXPECT_EQ(ct.send(icmp_error_about(other, kB, kA)), CtVerdict::kInvalid);
  // Sent towards the wrong host (not the quoted source): invalid.
  EXPECT_EQ(ct.send(icmp_error_about(req, kA, kB)), CtVerdict::kInvalid);
}

TEST(Conntrack, FirstFragmentTracking) {
  Ct ct;
  proto::Ipv4Opts first;
  first.id = 77;
  first.frag_off = proto::kIpv4FlagMf;
  // First fragment: UDP header + 1472 payload bytes (the datagram says more).
  auto f1 = FrameBuilder().eth(kMacA, kMacB).ipv4(kA, kB, first).udp(5000, 9000).payload_size(1472).build();
  ASSERT_EQ(ct.send(f1), CtVerdict::kAllowed);
  proto::Ipv4Opts later;
  later.id = 77;
  later.frag_off = 185;  // 1480 / 8
  later.proto = 17;
  auto f2 = FrameBuilder().eth(kMacA, kMacB).ipv4(kA, kB, later).payload_size(600).build();
  EXPECT_EQ(ct.send(f2), CtVerdict::kAllowed);
  later.id = 78;  // its first fragment never passed
  auto f3 = FrameBuilder().eth(kMacA, kMacB).ipv4(kA, kB, later).payload_size(600).build();
  EXPECT_EQ(ct.send(f3), CtVerdict::kNoFirstFragment);
}

// B is in group "web": ingress TCP 22 from 10.0.0.0/24 and ICMP from anywhere; no egress rule. A keeps the default.
struct GroupCt : Ct {
  GroupCt() {
    SgGroup web{"web", {}};
    web.rules.push_back(SgRule{SgDirection::kIngress, SgProto::kTcp, 22, 22, cidr("10.0.0.0/24"), ""});
    web.rules.push_back(SgRule{SgDirection::kIngress, SgProto::kIcmp, 0, 65535, cidr("0.0.0.0/0"), ""});
    groups = {web};
    nics[1].group_ids = {"web"};
    compile();
  }
};

TEST(Conntrack, GroupsAllowDenyAndReplies) {
  GroupCt ct;
  ct.handshake();  // A -> B:22 allowed by B's ingress rule, B's replies pass (stateful)
  EXPECT_EQ(ct.send(tcp(false, 5001, 1001, kAck, 65535, 10)), CtVerdict::kAllowed);
  // A -> B:23: no rule.
  EXPECT_EQ(ct.send(tcp(true, 1000, 0, kSyn, 65535, 0, 40001, 23)), CtVerdict::kDenied);
  // A's egress allowed it, so the entry exists, recording B's ingress denial: its replies are denied too.
  EXPECT_EQ(ct.send(tcp(false, 7000, 1001, kSyn | kAck, 65535, 0, 40001, 23)), CtVerdict::kDenied);
  // Denied by the first stage that sees it (B's egress): no entry at all.
  EXPECT_EQ(ct.send(tcp(false, 1000, 0, kSyn, 65535, 0, 41001, 80)), CtVerdict::kDenied);
  FlowTuple b_to_a = ct.tcp_tuple(41001, 80).reversed();
  EXPECT_EQ(ct.find(b_to_a), nullptr);
  // B -> A: B has no egress rule.
  EXPECT_EQ(ct.send(tcp(false, 1000, 0, kSyn, 65535, 0, 41000, 80)), CtVerdict::kDenied);
  // A pings B (ICMP rule), and the replies pass.
  EXPECT_EQ(ct.send(FrameBuilder().eth(kMacA, kMacB).ipv4(kA, kB).icmp_echo(true, 3, 1).build()), CtVerdict::kAllowed);
  EXPECT_EQ(ct.send(FrameBuilder().eth(kMacB, kMacA).ipv4(kB, kA).icmp_echo(false, 3, 1).build()), CtVerdict::kAllowed);
  // UDP to B: no rule.
  EXPECT_EQ(ct.send(FrameBuilder().eth(kMacA, kMacB).ipv4(kA, kB).udp(1, 53).build()), CtVerdict::kDenied);
}

TEST(Conntrack, RemovedRuleCutsEstablishedFlow) {
  GroupCt ct;
  ct.handshake();
  EXPECT_EQ(ct.send(tcp(true, 1001, 5001, kAck, 65535, 10)), CtVerdict::kAllowed);
  ct.groups[0].rules.erase(ct.groups[0].rules.begin());  // drop the TCP 22 rule
  ct.compile();
  EXPECT_EQ(ct.send(tcp(true, 1011, 5001, kAck, 65535, 10)), CtVerdict::kDenied);
  EXPECT_EQ(ct.send(tcp(false, 5001, 1011, kAck, 65535, 10)), CtVerdict::kDenied);
  // The rule back: the same connection continues.
  ct.groups[0].rules.push_back(SgRule{SgDirection::kIngress, SgProto::kTcp, 22, 22, cidr("10.0.0.0/24"), ""});
  ct.compile();
  EXPECT_EQ(ct.send(tcp(true, 1011, 5001, kAck, 65535, 10)), CtVerdict::kAllowed);
}

TEST(Conntrack, RemoteGroupFollowsMembership) {
  Ct ct;
  SgGroup db{"db", {SgRule{SgDirection::kIngress, SgProto::kTcp, 5432, 5432, std::nullopt, "app"}}};
  SgGroup app{"app", {SgRule{SgDirection::kEgress, SgProto::kAny, 0, 65535, cidr("0.0.0.0/0"), ""}}};
  ct.groups = {db, app};
  ct.nics[1].group_ids = {"db"};
  ct.compile();
  EXPECT_EQ(ct.send(tcp(true, 1000, 0, kSyn, 65535, 0, 40000, 5432)), CtVerdict::kDenied);  // A not in "app"
  ct.nics[0].group_ids = {"app"};
  ct.compile();
  EXPECT_EQ(ct.send(tcp(true, 1000, 0, kSyn, 65535, 0, 40000, 5432)), CtVerdict::kAllowed);
  ct.nics[0].group_ids = {};
  ct.compile();
  EXPECT_EQ(ct.send(tcp(false, 5000, 1001, kSyn | kAck, 65535, 0, 40000, 5432)), CtVerdict::kDenied);
}

TEST(Conntrack, TableFullDropsNewFlowsOnly) {
  ConnTableOptions o;
  o.max_conns = 2;
  Ct ct(o);
  ct.handshake();
  ASSERT_EQ(ct.send(FrameBuilder().eth(kMacA, kMacB).ipv4(kA, kB).udp(1, 53).build()), CtVerdict::kAllowed);
  EXPECT_EQ(ct.send(FrameBuilder().eth(kMacA, kMacB).ipv4(kA, kB).udp(2, 53).build()), CtVerdict::kTableFull);
  EXPECT_EQ(ct.send(tcp(true, 1000, 0, kSyn, 65535, 0, 40009)), CtVerdict::kTableFull);
  EXPECT_EQ(ct.send(tcp(true, 1001, 5001, kAck, 65535, 10)), CtVerdict::kAllowed);
  EXPECT_EQ(ct.send(tcp(false, 5001, 1011, kAck, 65535, 10)), CtVerdict::kAllowed);
}

TEST(Conntrack, ReplyFromAnotherPortIsInvalid) {
  Ct ct;
  ct.handshake();
  Frame reply(tcp(false, 5001, 1001, kAck));
  EXPECT_EQ(ct.at(CtDir::kEgress, 7, reply.p), CtVerdict::kInvalid);
  EXPECT_EQ(ct.at(CtDir::kEgress, kPortB, reply.p), CtVerdict::kAllowed);
}

}  // namespace
}  // namespace vpcd::dp
