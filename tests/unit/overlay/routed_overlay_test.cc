// Routing through the overlay (issue 9): a box whose VPC has subnet A here (a guest NIC) and subnet B on another box
// (a remote NIC behind the VTEP 198.18.0.2). The whole snapshot is built by SnapshotBuilder (policy_builder's route
// table, overlay_builder's tunnel port and the remote NIC's FIB and ARP entries) and run through the runner with fake
// ports, as a worker would.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include "datapath/control/overlay_builder.h"
#include "datapath/control/snapshot_builder.h"
#include "datapath/io/fake_port.h"
#include "datapath/pipeline/pipeline.h"
#include "datapath/pipeline/worker.h"
#include "datapath/proto/checksum.h"
#include "datapath/proto/frame_builder.h"
#include "datapath/proto/vxlan.h"
#include "datapath/router_mac.h"
#include "datapath/stages/parse.h"
#include "datapath/stages/uplink_input.h"

namespace vpcd::dp {
namespace {

using proto::FrameBuilder;

Ipv4Addr ip(const char* s) { return *Ipv4Addr::parse(s); }
Ipv4Prefix cidr(const char* s) { return *Ipv4Prefix::parse(s); }

constexpr uint32_t kVni = 4242;
const MacAddr kRouter = router_mac_for(kVni);
const MacAddr kUplinkMac{{0x02, 0xaa, 0, 0, 0, 1}};
const MacAddr kPeerMac{{0x02, 0xbb, 0, 0, 0, 2}};
const MacAddr kGuestMac{{0x02, 0, 0, 0, 0, 0x0a}};
const MacAddr kRemoteMac{{0x02, 0, 0, 0, 0, 0x0b}};
const Ipv4Addr kMe = ip("198.18.0.1");
const Ipv4Addr kPeer = ip("198.18.0.2");
const Ipv4Addr kGuestIp = ip("10.0.1.10");
const Ipv4Addr kRemoteIp = ip("10.0.2.20");

struct RoutedBox {
  enum : uint16_t { kGuestPort = 0, kUplinkPort = 1, kTunnelPort = 2 };

  RoutedBox() {
    VpcSpec v;
    v.id = "v";
    v.vni = kVni;
    v.mtu = 1450;
    v.cidrs = {cidr("10.0.0.0/16")};
    v.subnets = {{"sa", cidr("10.0.1.0/24"), ip("10.0.1.1")}, {"sb", cidr("10.0.2.0/24"), ip("10.0.2.1")}};
    d.vpcs = {v};
    NicSpec n;
    n.id = "ga";
    n.vpc_id = "v";
    n.subnet_id = "sa";
    n.mac = kGuestMac;
    n.ips = {kGuestIp};
    n.backend = NetnsBackend{"ns-ga", "eth0"};
    d.nics = {n};
    UplinkSpec u;
    u.id = "u";
    u.ifname = "up0";
    u.address = Ipv4Prefix{kMe, 24};
    d.uplinks = {u};
    RemoteNicSpec r;
    r.id = "rb";
    r.vpc_id = "v";
    r.mac = kRemoteMac;
    r.ips = {kRemoteIp};
    r.underlay_ip = kPeer;
    d.remote_nics = {r};

    auto guest_io = std::make_unique<FakePort>("g0");
    auto uplink_io = std::make_unique<FakePort>("up0");
    guest = guest_io.get();
    uplink = uplink_io.get();
    PortBinding g;
    g.object_id = "ga";
    g.kind = PortKind::kGuest;
    g.port = kGuestPort;
    g.rt = std::make_shared<PortRuntime>();
    g.rt->nic_id = "ga";
    g.rt->seq = 1;
    g.rt->io = std::move(guest_io);
    g.queue_worker = {0};
    PortBinding up;
    up.object_id = "u";
    up.kind = PortKind::kUplink;
    up.port = kUplinkPort;
    up.rt = std::make_shared<PortRuntime>();
    up.rt->io = std::move(uplink_io);
    up.rt->seq = 2;
    up.queue_worker = {0};
    up.mac = kUplinkMac;
    up.mtu = 1500;
    PortBinding t;
    t.object_id = tunnel_key("v", kPeer);
    t.kind = PortKind::kTunnel;
    t.port = kTunnelPort;
    t.rt = std::make_shared<PortRuntime>();
    t.rt->seq = 3;
    t.vpc_id = "v";
    t.remote_ip = kPeer;
    t.uplink = kUplinkPort;
    bindings = {std::move(g), std::move(up), std::move(t)};
    rebuild();
  }

  void rebuild() { snap = sb.build(d, bindings, 3, ++gen); }
  const DataplaneConfig& cfg() const { return *snap->config; }

  void receive(uint16_t in, const std::vector<uint8_t>& frame) {
    FakePort* f = in == kGuestPort ? guest : uplink;
    f->inject(frame);
    std::vector<Packet> pkts(2);
    const unsigned n = f->rx_burst(0, pkts.data(), 2);
    run_batch(ctx, cfg(), in, std::span<Packet>(pkts.data(), n));
    flush_outputs(ctx, cfg());
    f->rx_release(0);
  }
  uint64_t drops(uint16_t port, DropReason r) const { return cfg().ports[port].rt->sum().drops[size_t(r)]; }

  // Resolves the VTEP's underlay MAC (an ARP reply to our address) and forgets what the uplink sent so far.
  void resolve_peer() {
    receive(kUplinkPort, FrameBuilder().eth(kPeerMac, kUplinkMac).arp(2, kPeerMac, kPeer, kUplinkMac, kMe).pad_to(60).build());
    uplink->drain_bytes();
  }

  DesiredState d;
  SnapshotBuilder sb{1};
  std::vector<PortBinding> bindings;
  std::shared_ptr<DatapathSnapshot> snap;
  uint64_t gen = 0;
  WorkerContext ctx;
  FakePort* guest = nullptr;
  FakePort* uplink = nullptr;
};

std::vector<uint8_t> vxlan_from_peer(const std::vector<uint8_t>& inner) {
  std::vector<uint8_t> v(8);
  const proto::VxlanHdr h = proto::VxlanHdr::make(kVni);
  std::memcpy(v.data(), &h, 8);
  v.insert(v.end(), inner.begin(), inner.end());
  auto f = FrameBuilder().eth(kPeerMac, kUplinkMac).ipv4(kPeer, kMe).udp(50000, 4789).payload(v).build();
  f[40] = f[41] = 0;  // no outer UDP checksum
  return f;
}

std::vector<uint8_t> guest_udp_to(Ipv4Addr dst, uint8_t ttl = 64, size_t payload = 100, bool df = false) {
  proto::Ipv4Opts o;
  o.ttl = ttl;
  if (df) o.frag_off = proto::kIpv4FlagDf;
  return FrameBuilder().eth(kGuestMac, kRouter).ipv4(kGuestIp, dst, o).udp(1000, 2000).payload_size(payload).build();
}

Packet parsed(std::vector<uint8_t>& f) {
  Packet p = proto::make_packet(f);
  parse(p);
  return p;
}

TEST(RoutedOverlay, SnapshotResolvesTheRemoteNicToItsTunnel) {
  RoutedBox b;
  const VpcConfig& v = *b.cfg().vpc(b.cfg().ports[RoutedBox::kGuestPort].vpc);
  ASSERT_TRUE(v.routes);
  const Route* r = v.routes->lookup(kRemoteIp);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->kind, RouteKind::kConnected);
  ASSERT_NE(v.arp->find(kRemoteIp), nullptr);
  EXPECT_EQ(*v.arp->find(kRemoteIp), kRemoteMac);
  EXPECT_EQ(v.fib->find(kRemoteMac), RoutedBox::kTunnelPort);
  EXPECT_EQ(egress_stage(b.cfg().ports[RoutedBox::kTunnelPort].out_features), Next::kVxlanEncap);
}

// Guest in subnet A -> its gateway's MAC -> routed to the remote NIC of subnet B: rewritten (destination MAC = the
// remote NIC's, source MAC = the router's, TTL - 1) and sent encapsulated to the remote NIC's VTEP, after the underlay
// ARP for that VTEP.
TEST(RoutedOverlay, RoutesToARemoteNicThroughVxlan) {
  RoutedBox b;
  auto frame = guest_udp_to(kRemoteIp);
  b.receive(RoutedBox::kGuestPort, frame);
  auto out = b.uplink->drain_bytes();
  ASSERT_EQ(out.size(), 1u);  // the ARP request for the VTEP; the routed frame waits for the answer
  EXPECT_TRUE(parsed(out[0]).flags & kIsArp);
  b.receive(RoutedBox::kUplinkPort,
            FrameBuilder().eth(kPeerMac, kUplinkMac).arp(2, kPeerMac, kPeer, kUplinkMac, kMe).pad_to(60).build());
  out = b.uplink->drain_bytes();
  ASSERT_EQ(out.size(), 1u);
  ASSERT_EQ(out[0].size(), 50 + frame.size());
  Packet outer = parsed(out[0]);
  EXPECT_EQ(outer.ip4_src, kMe);
  EXPECT_EQ(outer.ip4_dst, kPeer);
  EXPECT_EQ(outer.dst_port, 4789);
  proto::VxlanHdr h;
  std::memcpy(&h, out[0].data() + 42, 8);
  EXPECT_EQ(h.vni(), kVni);
  std::vector<uint8_t> inner(out[0].begin() + 50, out[0].end());
  Packet p = parsed(inner);
  ASSERT_FALSE(p.dropped());
  EXPECT_EQ(MacAddr::from_bytes(inner.data()), kRemoteMac);
  EXPECT_EQ(MacAddr::from_bytes(inner.data() + 6), kRouter);
  EXPECT_EQ(p.ip4_src, kGuestIp);
  EXPECT_EQ(p.ip4_dst, kRemoteIp);
  EXPECT_EQ(inner[p.l3_offset + 8], 63);  // TTL
  EXPECT_TRUE(proto::checksum_valid({inner.data() + p.l3_offset, 20}));
  EXPECT_EQ(0, std::memcmp(inner.data() + p.l4_offset, frame.data() + p.l4_offset, frame.size() - p.l4_offset));
  EXPECT_EQ(b.cfg().ports[RoutedBox::kTunnelPort].rt->sum().tx_packets, 1u);
  EXPECT_TRUE(b.guest->drain_bytes().empty());
  // Resolved now: the next routed frame goes at once.
  b.receive(RoutedBox::kGuestPort, frame);
  EXPECT_EQ(b.uplink->drain_bytes().size(), 1u);
  EXPECT_EQ(b.ctx.pool.available(), b.ctx.pool.capacity());
}

// The other box routed a reply to us: it arrives from the tunnel with the (shared) router MAC as its source, is
// delivered to the local guest unchanged, and the router MAC is not learned on the tunnel.
TEST(RoutedOverlay, RoutedFrameFromTheOverlayIsDeliveredAndTheRouterMacNotLearned) {
  RoutedBox b;
  proto::Ipv4Opts o;
  o.ttl = 63;
  auto inner = FrameBuilder().eth(kRouter, kGuestMac).ipv4(kRemoteIp, kGuestIp, o).udp(2000, 1000).payload_size(50).build();
  b.receive(RoutedBox::kUplinkPort, vxlan_from_peer(inner));
  auto got = b.guest->drain_bytes();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], inner);
  MacTable::Entry e;
  const VpcConfig& v = *b.cfg().vpc(b.cfg().ports[RoutedBox::kGuestPort].vpc);
  EXPECT_FALSE(v.learned->lookup(kRouter, b.ctx.clock_s(), e));
  // A frame with another source MAC from the same tunnel is learned as before.
  const MacAddr other{{0x02, 0, 0, 0, 0, 0x0c}};
  auto other_inner = FrameBuilder().eth(other, kGuestMac).ipv4(ip("10.0.1.30"), kGuestIp).udp(1, 2).build();
  b.receive(RoutedBox::kUplinkPort, vxlan_from_peer(other_inner));
  ASSERT_TRUE(v.learned->lookup(other, b.ctx.clock_s(), e));
  EXPECT_EQ(e.port, RoutedBox::kTunnelPort);
}

// A kernel VTEP's guest that uses this box's gateway sends to the router MAC through the tunnel: routed here, and an
// ICMP error about it goes back through that tunnel.
TEST(RoutedOverlay, FrameToTheRouterFromTheOverlayIsRoutedAndErrorsGoBackThroughTheTunnel) {
  RoutedBox b;
  b.resolve_peer();
  proto::Ipv4Opts o;
  o.ttl = 1;
  auto inner = FrameBuilder().eth(kRemoteMac, kRouter).ipv4(kRemoteIp, kGuestIp, o).udp(2000, 1000).build();
  b.receive(RoutedBox::kUplinkPort, vxlan_from_peer(inner));
  EXPECT_TRUE(b.guest->drain_bytes().empty());
  EXPECT_EQ(b.drops(RoutedBox::kTunnelPort, DropReason::kTtlExceeded), 1u);
  auto out = b.uplink->drain_bytes();
  ASSERT_EQ(out.size(), 1u);
  std::vector<uint8_t> err(out[0].begin() + 50, out[0].end());
  Packet e = parsed(err);
  EXPECT_EQ(MacAddr::from_bytes(err.data()), kRemoteMac);
  EXPECT_EQ(e.ip4_src, ip("10.0.2.1"));  // the gateway of the sender's subnet
  EXPECT_EQ(e.ip4_dst, kRemoteIp);
  EXPECT_EQ(e.dst_port, 11 << 8);
  // TTL 64: routed to the local guest.
  o.ttl = 64;
  inner = FrameBuilder().eth(kRemoteMac, kRouter).ipv4(kRemoteIp, kGuestIp, o).udp(2000, 1000).build();
  b.receive(RoutedBox::kUplinkPort, vxlan_from_peer(inner));
  auto got = b.guest->drain_bytes();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(MacAddr::from_bytes(got[0].data()), kGuestMac);
  EXPECT_EQ(MacAddr::from_bytes(got[0].data() + 6), kRouter);
  EXPECT_EQ(got[0][14 + 8], 63);
}

// TTL 1 towards a remote NIC: time exceeded back to the guest, nothing into the overlay. Once the remote NIC is
// removed, its address resolves to nothing: next_hop_unresolved and host unreachable.
TEST(RoutedOverlay, ErrorsAboutRemoteDestinations) {
  RoutedBox b;
  b.resolve_peer();
  b.receive(RoutedBox::kGuestPort, guest_udp_to(kRemoteIp, 1));
  EXPECT_TRUE(b.uplink->drain_bytes().empty());
  EXPECT_EQ(b.drops(RoutedBox::kGuestPort, DropReason::kTtlExceeded), 1u);
  auto back = b.guest->drain_bytes();
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(parsed(back[0]).dst_port, 11 << 8);

  b.d.remote_nics.clear();
  b.rebuild();
  b.receive(RoutedBox::kGuestPort, guest_udp_to(kRemoteIp));
  EXPECT_TRUE(b.uplink->drain_bytes().empty());
  EXPECT_EQ(b.drops(RoutedBox::kGuestPort, DropReason::kNextHopUnresolved), 1u);
  back = b.guest->drain_bytes();
  ASSERT_EQ(back.size(), 1u);
  Packet e = parsed(back[0]);
  EXPECT_EQ(e.dst_port, (3 << 8) | 1);
  EXPECT_EQ(e.ip4_src, ip("10.0.1.1"));
}

// Too big for the tunnel (VPC MTU 1450; a tap or vhost-user guest can send more than its MTU): vpcd does not fragment.
// DF: ICMP fragmentation needed from the sender's gateway with next-hop MTU 1450, quoting the datagram as sent (TTL
// 64, not yet decremented), counted frag_needed; rate-limited like the other errors (suppressed ones counted per
// worker). Without DF: too_big, no ICMP. Nothing reaches the overlay.
TEST(RoutedOverlay, TooBigRoutedFramesGetFragNeededOrAreDropped) {
  RoutedBox b;
  b.resolve_peer();
  auto big_df = guest_udp_to(kRemoteIp, 64, 1472, /*df=*/true);  // IP 1500 bytes > 1450
  b.receive(RoutedBox::kGuestPort, big_df);
  EXPECT_TRUE(b.uplink->drain_bytes().empty());
  EXPECT_EQ(b.drops(RoutedBox::kGuestPort, DropReason::kFragNeeded), 1u);
  auto back = b.guest->drain_bytes();
  ASSERT_EQ(back.size(), 1u);
  Packet e = parsed(back[0]);
  ASSERT_FALSE(e.dropped());
  EXPECT_EQ(MacAddr::from_bytes(back[0].data()), kGuestMac);
  EXPECT_EQ(MacAddr::from_bytes(back[0].data() + 6), kRouter);
  EXPECT_EQ(e.ip4_src, ip("10.0.1.1"));
  EXPECT_EQ(e.ip4_dst, kGuestIp);
  EXPECT_EQ(e.dst_port, (3 << 8) | 4);
  const uint8_t* icmp = back[0].data() + e.l4_offset;
  EXPECT_EQ(icmp[6] << 8 | icmp[7], 1450);
  EXPECT_TRUE(proto::checksum_valid({icmp, e.l4_len}));
  EXPECT_EQ(0, std::memcmp(icmp + 8, big_df.data() + 14, 28));  // the original IP + UDP headers, TTL 64
  EXPECT_EQ(e.l4_len, 576u - 20u);  // quoted up to a 576-byte datagram

  // Without DF: dropped and counted, no ICMP.
  b.receive(RoutedBox::kGuestPort, guest_udp_to(kRemoteIp, 64, 1472, /*df=*/false));
  EXPECT_EQ(b.drops(RoutedBox::kGuestPort, DropReason::kTooBig), 1u);
  EXPECT_TRUE(b.guest->drain_bytes().empty());
  EXPECT_TRUE(b.uplink->drain_bytes().empty());

  // Exactly MTU-sized: forwarded.
  b.receive(RoutedBox::kGuestPort, guest_udp_to(kRemoteIp, 64, 1450 - 28, /*df=*/true));
  EXPECT_EQ(b.uplink->drain_bytes().size(), 1u);

  // Rate limit: one token, then suppressed and counted.
  b.ctx.icmp_limiter = IcmpRateLimiter(1, 1);
  const uint64_t limited = b.ctx.icmp_rate_limited.load();
  for (int i = 0; i < 3; ++i) b.receive(RoutedBox::kGuestPort, big_df);
  EXPECT_EQ(b.guest->drain_bytes().size(), 1u);
  EXPECT_EQ(b.ctx.icmp_rate_limited.load(), limited + 2);
  EXPECT_EQ(b.drops(RoutedBox::kGuestPort, DropReason::kFragNeeded), 4u);
  EXPECT_EQ(b.ctx.pool.available(), b.ctx.pool.capacity());
}

}  // namespace
}  // namespace vpcd::dp
