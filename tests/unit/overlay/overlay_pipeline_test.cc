// The overlay stages through fake ports (uplink-input, vxlan-encap, their ARP and replication), with the runner:
// a guest port and an uplink (FakePorts), tunnel pseudo-ports to two remote VTEPs, one VPC.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include "datapath/config/dataplane_config.h"
#include "datapath/io/fake_port.h"
#include "datapath/pipeline/pipeline.h"
#include "datapath/proto/checksum.h"
#include "datapath/proto/frame_builder.h"
#include "datapath/proto/gso.h"
#include "datapath/proto/vxlan.h"
#include "datapath/stages/parse.h"
#include "datapath/stages/uplink_input.h"
#include "tests/unit/overlay/overlay_test_net.h"

namespace vpcd::dp {
namespace {

using proto::FrameBuilder;

using namespace overlaytest;

std::vector<uint8_t> arp_reply_from_peer(Ipv4Addr ip) {
  return FrameBuilder().eth(kPeerMac, kUplinkMac).arp(2, kPeerMac, ip, kUplinkMac, kMe).pad_to(60).build();
}

// The buffers the output and uplink-input stages use for USO and GSO super-frames exist as soon as the worker's
// state does: the datapath never allocates them (a failed allocation is the worker's start-up error).
TEST(OverlayWorkerState, BuffersExistBeforeTheFirstPacket) {
  WorkerContext ctx;
  EXPECT_NE(ctx.overlay.tx_scratch, nullptr);
  EXPECT_NE(ctx.overlay.uso_buf, nullptr);
  EXPECT_NE(ctx.overlay.split, nullptr);
  EXPECT_EQ(ctx.overlay.split_used, 0u);
}

TEST(OverlayPipeline, DecapDeliversToGuestLearnsVtepAndCountsPerTunnel) {
  OverlayNet n;
  auto inner = FrameBuilder().eth(kRemoteMac, kGuestMac).ipv4(kRemoteIp, kGuestIp).udp(1, 2).payload_size(20).build();
  n.receive(n.uplink, vxlan_datagram(kPeer, kVni, inner));
  auto got = n.fakes[n.guest]->drain_bytes();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], inner);
  EXPECT_EQ(n.cfg.ports[n.t1].rt->sum().rx_packets, 1u);
  EXPECT_EQ(n.cfg.ports[n.uplink].rt->sum().rx_packets, 1u);
  MacTable::Entry e;
  ASSERT_TRUE(n.cfg.vpcs[0].learned->lookup(kRemoteMac, n.ctx.clock_s(), e));
  EXPECT_EQ(e.port, n.t1);  // learned with its source VTEP
}

TEST(OverlayPipeline, BadUnderlayTrafficCountedOnTheUplink) {
  OverlayNet n;
  auto inner = FrameBuilder().eth(kRemoteMac, kGuestMac).ipv4(kRemoteIp, kGuestIp).udp(1, 2).build();
  n.receive(n.uplink, vxlan_datagram(kPeer, 777, inner));
  n.receive(n.uplink, vxlan_datagram(*Ipv4Addr::parse("198.18.0.99"), kVni, inner));
  auto bad_flags = vxlan_datagram(kPeer, kVni, inner);
  bad_flags[42] = 0;
  n.receive(n.uplink, bad_flags);
  n.receive(n.uplink, FrameBuilder().eth(kPeerMac, kUplinkMac).ipv4(kPeer, kMe).udp(1, 53).build());
  EXPECT_EQ(n.drops(n.uplink, DropReason::kVxlanUnknownVni), 1u);
  EXPECT_EQ(n.drops(n.uplink, DropReason::kVxlanUnknownVtep), 1u);
  EXPECT_EQ(n.drops(n.uplink, DropReason::kVxlanBadFlags), 1u);
  EXPECT_EQ(n.drops(n.uplink, DropReason::kUplinkNotForUs), 1u);
  EXPECT_TRUE(n.fakes[n.guest]->drain_bytes().empty());
}

TEST(OverlayPipeline, AnswersArpForTheUplinkAddress) {
  OverlayNet n;
  n.receive(n.uplink, FrameBuilder().eth(kPeerMac, kBroadcastMac).arp(1, kPeerMac, kPeer, MacAddr{}, kMe).pad_to(60).build());
  auto out = n.fakes[n.uplink]->drain_bytes();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], FrameBuilder().eth(kUplinkMac, kPeerMac).arp(2, kUplinkMac, kMe, kPeerMac, kPeer).pad_to(60).build());
}

// Unicast to a learned remote MAC: ARP for the VTEP first (frame queued), then the queued frame goes out encapsulated;
// later frames go at once.
TEST(OverlayPipeline, EncapResolvesNextHopQueuesThenSends) {
  OverlayNet n;
  // Learn the remote MAC behind tunnel 1 (a frame from it).
  auto from_remote = FrameBuilder().eth(kRemoteMac, kGuestMac).ipv4(kRemoteIp, kGuestIp).udp(1, 2).build();
  n.receive(n.uplink, vxlan_datagram(kPeer, kVni, from_remote));
  n.fakes[n.guest]->drain_bytes();
  auto to_remote = FrameBuilder().eth(kGuestMac, kRemoteMac).ipv4(kGuestIp, kRemoteIp).udp(3, 4).payload_size(30).build();
  n.receive(n.guest, to_remote);
  // Nothing resolved the VTEP yet: the frame waits and an ARP request goes out.
  auto out = n.fakes[n.uplink]->drain_bytes();
  ASSERT_EQ(out.size(), 1u);
  Packet req = proto::make_packet(out[0]);
  parse(req);
  ASSERT_TRUE(req.flags & kIsArp);
  EXPECT_EQ(req.ip4_dst, kPeer);
  EXPECT_EQ(n.ctx.overlay.arp.queued_total(), 1u);
  n.receive(n.uplink, arp_reply_from_peer(kPeer));
  out = n.fakes[n.uplink]->drain_bytes();
  ASSERT_EQ(out.size(), 1u);
  const std::vector<uint8_t> f = out[0];
  ASSERT_EQ(f.size(), 50 + to_remote.size());
  EXPECT_EQ(MacAddr::from_bytes(f.data()), kPeerMac);
  EXPECT_EQ(MacAddr::from_bytes(f.data() + 6), kUplinkMac);
  EXPECT_EQ(0, std::memcmp(f.data() + 50, to_remote.data(), to_remote.size()));
  std::vector<uint8_t> fc = f;
  Packet op = proto::make_packet(fc);
  parse(op);
  EXPECT_EQ(op.ip4_src, kMe);
  EXPECT_EQ(op.ip4_dst, kPeer);
  EXPECT_EQ(op.dst_port, 4789);
  EXPECT_GE(op.src_port, 49152);
  EXPECT_EQ((f[20] & 0x40), 0x40);  // DF
  proto::VxlanHdr h;
  std::memcpy(&h, f.data() + 42, 8);
  EXPECT_EQ(h.vni(), kVni);
  // Resolved now: the next frame goes at once, as a prefix in front of the rx bytes.
  n.receive(n.guest, to_remote);
  out = n.fakes[n.uplink]->drain_bytes();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], f);
  EXPECT_EQ(n.cfg.ports[n.t1].rt->sum().tx_packets, 2u);
}

// Several workers: each resolves underlay next hops in its own cache, but the ARP reply reaches only the worker that
// owns the uplink's RX queue. A worker whose frames wait for that next hop adopts the answer from the box's shared
// table at its next tick (underlay_neighbors.h); without the shared table they would wait and fail.
TEST(OverlayPipeline, ArpReplyOnAnotherWorkerReleasesTheFramesThisWorkerQueued) {
  for (const bool shared : {true, false}) {
    SCOPED_TRACE(shared ? "shared table" : "no shared table");
    OverlayNet n;
    if (shared) n.cfg.overlay.neighbors = std::make_shared<UnderlayNeighbors>();
    WorkerContext w1;
    w1.worker = 1;
    auto inner = FrameBuilder().eth(kRemoteMac, kGuestMac).ipv4(kRemoteIp, kGuestIp).udp(1, 2).build();
    n.receive(n.uplink, vxlan_datagram(kPeer, kVni, inner));  // kRemoteMac learned behind t1 (the VPC's table)
    n.fakes[n.guest]->drain_bytes();
    auto to_remote = FrameBuilder().eth(kGuestMac, kRemoteMac).ipv4(kGuestIp, kRemoteIp).udp(3, 4).build();
    n.receive_on(w1, n.guest, to_remote);  // worker 1 sends: its frame waits, its ARP request goes out
    auto out = n.fakes[n.uplink]->drain_bytes();
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(w1.overlay.arp.queued_total(), 1u);
    n.receive(n.uplink, arp_reply_from_peer(kPeer));  // the reply arrives on worker 0
    EXPECT_TRUE(n.fakes[n.uplink]->drain_bytes().empty());  // worker 0 had nothing waiting
    ArpCache::State s;
    EXPECT_TRUE(n.ctx.overlay.arp.state(kPeer, &s));
    EXPECT_FALSE(w1.overlay.arp.state(kPeer, &s) && s == ArpCache::State::kReachable);
    n.tick_on(w1, monotonic_ms());
    out = n.fakes[n.uplink]->drain_bytes();
    if (!shared) {
      EXPECT_TRUE(out.empty());
      EXPECT_EQ(w1.overlay.arp.queued_total(), 1u);
      continue;
    }
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(MacAddr::from_bytes(out[0].data()), kPeerMac);
    ASSERT_EQ(out[0].size(), 50 + to_remote.size());
    EXPECT_EQ(0, std::memcmp(out[0].data() + 50, to_remote.data(), to_remote.size()));
    EXPECT_EQ(w1.overlay.arp.queued_total(), 0u);
    EXPECT_EQ(w1.pool.available(), w1.pool.capacity());
    // Resolved on worker 1 too: its next frame goes at once, no request.
    n.receive_on(w1, n.guest, to_remote);
    out = n.fakes[n.uplink]->drain_bytes();
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(MacAddr::from_bytes(out[0].data()), kPeerMac);
  }
}

TEST(UnderlayNeighbors, KeepsTheNewestResolutionAndReplacesTheOldestWhenFull) {
  UnderlayNeighbors nb;
  MacAddr mac;
  uint64_t at = 0;
  EXPECT_FALSE(nb.lookup(kPeer, &mac, &at));
  const uint64_t v0 = nb.version();
  nb.learn(kPeer, kPeerMac, 100);
  EXPECT_GT(nb.version(), v0);
  ASSERT_TRUE(nb.lookup(kPeer, &mac, &at));
  EXPECT_EQ(mac, kPeerMac);
  EXPECT_EQ(at, 100u);
  nb.learn(kPeer, kRemoteMac, 50);  // an older confirmation keeps the time, takes the MAC it names
  ASSERT_TRUE(nb.lookup(kPeer, &mac, &at));
  EXPECT_EQ(mac, kRemoteMac);
  EXPECT_EQ(at, 100u);
  const uint64_t v1 = nb.version();
  nb.learn(Ipv4Addr{0}, kPeerMac, 200);                                       // ignored: no address
  nb.learn(kRemoteIp, *MacAddr::parse("01:00:5e:00:00:01"), 200);             // ignored: multicast
  EXPECT_EQ(nb.version(), v1);
  EXPECT_FALSE(nb.lookup(kRemoteIp, &mac, &at));
  for (uint32_t i = 1; i <= UnderlayNeighbors::kCapacity; ++i) nb.learn(Ipv4Addr{0x0a000000u + i}, kPeerMac, 1000 + i);
  EXPECT_FALSE(nb.lookup(kPeer, &mac, &at));  // the oldest (time 100) made room
  EXPECT_TRUE(nb.lookup(Ipv4Addr{0x0a000001u}, &mac, &at));
  EXPECT_TRUE(nb.lookup(Ipv4Addr{0x0a000000u + UnderlayNeighbors::kCapacity}, &mac, &at));
}

TEST(OverlayPipeline, FloodReplicatesToEveryPeerButNeverBackIntoTheOverlay) {
  OverlayNet n;
  // Resolve both peers by answering the requests the first flood triggers.
  auto bcast = FrameBuilder().eth(kGuestMac, kBroadcastMac).arp(1, kGuestMac, kGuestIp, MacAddr{}, kRemoteIp).pad_to(60).build();
  n.receive(n.guest, bcast);
  auto reqs = n.fakes[n.uplink]->drain_bytes();
  EXPECT_EQ(reqs.size(), 2u);  // one ARP request per peer (frames queued)
  n.receive(n.uplink, arp_reply_from_peer(kPeer));
  n.receive(n.uplink, FrameBuilder().eth(kPeerMac, kUplinkMac).arp(2, kPeerMac, kPeer2, kUplinkMac, kMe).pad_to(60).build());
  auto sent = n.fakes[n.uplink]->drain_bytes();
  ASSERT_EQ(sent.size(), 2u);
  std::vector<Ipv4Addr> dsts;
  for (auto& f : sent) {
    Packet p = proto::make_packet(f);
    parse(p);
    dsts.push_back(p.ip4_dst);
    EXPECT_EQ(0, std::memcmp(f.data() + 50, bcast.data(), bcast.size()));
  }
  EXPECT_NE(std::find(dsts.begin(), dsts.end(), kPeer), dsts.end());
  EXPECT_NE(std::find(dsts.begin(), dsts.end(), kPeer2), dsts.end());
  // Now resolved: a flood goes to both peers at once.
  n.receive(n.guest, bcast);
  EXPECT_EQ(n.fakes[n.uplink]->drain_bytes().size(), 2u);
  // A broadcast from the overlay reaches the local guest only (split horizon).
  auto remote_bcast = FrameBuilder().eth(kRemoteMac, kBroadcastMac).arp(1, kRemoteMac, kRemoteIp, MacAddr{}, *Ipv4Addr::parse("10.0.0.99")).pad_to(60).build();
  n.receive(n.uplink, vxlan_datagram(kPeer, kVni, remote_bcast));
  EXPECT_EQ(n.fakes[n.guest]->drain_bytes().size(), 1u);
  EXPECT_TRUE(n.fakes[n.uplink]->drain_bytes().empty());
}

// Unknown unicast goes where unknown MACs may live: the VTEP peers (as the kernel's all-zeros FDB entries send it),
// never a guest with port security (its one MAC is known), never back into the overlay.
TEST(OverlayPipeline, UnknownUnicastGoesToThePeersOnly) {
  OverlayNet n;
  n.receive(n.uplink, arp_reply_from_peer(kPeer));
  n.receive(n.uplink, FrameBuilder().eth(kPeerMac, kUplinkMac).arp(2, kPeerMac, kPeer2, kUplinkMac, kMe).pad_to(60).build());
  n.fakes[n.uplink]->drain_bytes();
  const MacAddr unknown = *MacAddr::parse("02:00:00:00:99:99");
  auto to_unknown = FrameBuilder().eth(kGuestMac, unknown).ipv4(kGuestIp, kRemoteIp).udp(3, 4).payload_size(10).build();
  n.receive(n.guest, to_unknown);
  auto sent = n.fakes[n.uplink]->drain_bytes();
  ASSERT_EQ(sent.size(), 2u) << "head-end replication to both peers";
  for (auto& f : sent) EXPECT_EQ(0, std::memcmp(f.data() + 50, to_unknown.data(), to_unknown.size()));
  // From the overlay: the only local guest has port security, so nobody here can own the MAC.
  auto from_remote = FrameBuilder().eth(kRemoteMac, unknown).ipv4(kRemoteIp, kGuestIp).udp(1, 2).build();
  n.receive(n.uplink, vxlan_datagram(kPeer, kVni, from_remote));
  EXPECT_TRUE(n.fakes[n.guest]->drain_bytes().empty());
  EXPECT_TRUE(n.fakes[n.uplink]->drain_bytes().empty());
  EXPECT_EQ(n.drops(n.t1, DropReason::kUnknownUnicast), 1u);
}

TEST(OverlayPipeline, UnansweredArpDropsQueuedFramesAsFailed) {
  OverlayNet n;
  auto inner = FrameBuilder().eth(kRemoteMac, kGuestMac).ipv4(kRemoteIp, kGuestIp).udp(1, 2).build();
  n.receive(n.uplink, vxlan_datagram(kPeer, kVni, inner));  // learn kRemoteMac behind t1
  auto to_remote = FrameBuilder().eth(kGuestMac, kRemoteMac).ipv4(kGuestIp, kRemoteIp).udp(3, 4).build();
  n.receive(n.guest, to_remote);
  const uint64_t t0 = monotonic_ms();
  for (uint64_t t = t0 + 1000; t <= t0 + 4000; t += 1000) n.tick(t);
  EXPECT_EQ(n.drops(n.t1, DropReason::kUnderlayArpFailed), 1u);
  EXPECT_EQ(n.ctx.overlay.arp.queued_total(), 0u);
  EXPECT_EQ(n.ctx.pool.available(), n.ctx.pool.capacity());  // nothing leaked
}

TEST(OverlayPipeline, TooBigDfGetsFragNeededFromTheGateway) {
  OverlayNet n;
  auto inner = FrameBuilder().eth(kRemoteMac, kGuestMac).ipv4(kRemoteIp, kGuestIp).udp(1, 2).build();
  n.receive(n.uplink, vxlan_datagram(kPeer, kVni, inner));
  n.fakes[n.guest]->drain_bytes();
  proto::Ipv4Opts df;
  df.frag_off = proto::kIpv4FlagDf;
  n.cfg.ports[n.guest].mtu = 9000;  // a guest whose MTU is larger than the VPC's
  auto big = FrameBuilder().eth(kGuestMac, kRemoteMac).ipv4(kGuestIp, kRemoteIp, df).udp(3, 4).payload_size(1472).build();
  n.receive(n.guest, big);
  EXPECT_EQ(n.drops(n.t1, DropReason::kFragNeeded), 1u);
  auto back = n.fakes[n.guest]->drain_bytes();
  ASSERT_EQ(back.size(), 1u);
  Packet p = proto::make_packet(back[0]);
  parse(p);
  EXPECT_TRUE(p.flags & kIsIcmp);
  EXPECT_EQ(p.dst_port, (3 << 8) | 4);
  EXPECT_EQ(p.ip4_src, *Ipv4Addr::parse("10.0.0.1"));
  EXPECT_EQ(back[0][34 + 6] << 8 | back[0][34 + 7], 1450);
}

TEST(OverlayPipeline, GsoSuperFrameLeavesAsEncapsulatedSegments) {
  OverlayNet n;
  n.cfg.overlay.underlay->uso = false;  // the per-segment path (vxlan_uso_test.cc: USO)
  auto inner = FrameBuilder().eth(kRemoteMac, kGuestMac).ipv4(kRemoteIp, kGuestIp).udp(1, 2).build();
  n.receive(n.uplink, vxlan_datagram(kPeer, kVni, inner));
  n.receive(n.uplink, arp_reply_from_peer(kPeer));  // an ARP reply to our address resolves the VTEP
  n.fakes[n.uplink]->drain_bytes();
  auto super = FrameBuilder().eth(kGuestMac, kRemoteMac).ipv4(kGuestIp, kRemoteIp).tcp(40000, 5201).payload_size(20000).build();
  virtio_net_hdr v{};
  v.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
  v.gso_size = 1398;
  n.receive(n.guest, super, v);
  auto out = n.fakes[n.uplink]->drain_bytes();
  ASSERT_EQ(out.size(), (20000 + 1397) / 1398);
  size_t payload = 0;
  for (auto& f : out) {
    ASSERT_LE(f.size(), 50u + 14 + 1450);
    Packet p = proto::make_packet(f);
    parse(p);
    ASSERT_FALSE(p.dropped());
    std::vector<uint8_t> in(f.begin() + 50, f.end());
    Packet q = proto::make_packet(in);
    parse(q);
    ASSERT_TRUE(q.flags & kIsTcp);
    EXPECT_TRUE(proto::checksum_valid({in.data() + q.l4_offset, q.l4_len},
                                      proto::ipv4_pseudo_sum(kGuestIp, kRemoteIp, 6, q.l4_len)));
    payload += in.size() - 54;
  }
  EXPECT_EQ(payload, 20000u);
  EXPECT_EQ(n.ctx.pool.available(), n.ctx.pool.capacity());
}

// A guest's TSO frame with a partial checksum (as the kernel hands it over) to a resolved VTEP: the segments are
// written straight into the uplink's transmit slots, each with its outer headers, the inner checksum still partial
// (the vnet header points at it past the outer headers), one UDP source port for the flow, the IPv4 ids counting up.
TEST(OverlayPipeline, GsoSuperFrameSegmentsGoStraightIntoTxSlots) {
  OverlayNet n;
  n.cfg.overlay.underlay->uso = false;  // the per-segment path (vxlan_uso_test.cc: USO)
  n.fakes[n.uplink]->set_slots(true);
  auto inner = FrameBuilder().eth(kRemoteMac, kGuestMac).ipv4(kRemoteIp, kGuestIp).udp(1, 2).build();
  n.receive(n.uplink, vxlan_datagram(kPeer, kVni, inner));
  n.receive(n.uplink, arp_reply_from_peer(kPeer));
  n.fakes[n.uplink]->drain_bytes();
  auto [super, v] = tso_frame(5000);
  const uint64_t commits = n.fakes[n.uplink]->slot_commits();
  const uint64_t uplink_tx = n.cfg.ports[n.uplink].rt->sum().tx_packets;
  n.receive(n.guest, super, v);
  auto out = n.fakes[n.uplink]->drain();
  ASSERT_EQ(out.size(), 4u);  // 1398 * 3 + 806
  EXPECT_EQ(n.fakes[n.uplink]->slot_commits() - commits, 4u);
  size_t payload = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    auto& f = out[i].bytes;
    ASSERT_TRUE(out[i].vnet);
    EXPECT_EQ(out[i].vnet->flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
    EXPECT_EQ(out[i].vnet->csum_start, 50 + 34);
    EXPECT_EQ(out[i].vnet->csum_offset, 16);
    EXPECT_EQ(out[i].vnet->gso_type, VIRTIO_NET_HDR_GSO_NONE);
    Packet p = proto::make_packet(f);
    parse(p);
    ASSERT_FALSE(p.dropped());
    EXPECT_TRUE(proto::checksum_valid({f.data() + 14, 20}));  // outer IPv4 header
    EXPECT_EQ(p.dst_port, 4789);
    EXPECT_EQ(uint32_t(f[16] << 8 | f[17]), f.size() - 14);  // outer total length
    EXPECT_EQ(p.src_port, uint16_t(out[0].bytes[34] << 8 | out[0].bytes[35]));  // one source port for the flow
    std::vector<uint8_t> in(f.begin() + 50, f.end());
    // Complete the partial checksum as the kernel would, then it must verify.
    Packet q = proto::make_packet(in);
    parse(q);
    ASSERT_TRUE(q.flags & kIsTcp);
    q.flags |= kHasVnet;
    q.vnet = *out[i].vnet;
    q.vnet.csum_start = uint16_t(q.vnet.csum_start - 50);
    ASSERT_TRUE(proto::finish_partial_checksum(q));
    EXPECT_TRUE(proto::checksum_valid({in.data() + q.l4_offset, q.l4_len},
                                      proto::ipv4_pseudo_sum(kGuestIp, kRemoteIp, 6, q.l4_len)));
    EXPECT_EQ(uint32_t(in[18] << 8 | in[19]), i);  // inner IPv4 id counts up from the super-frame's 0
    payload += in.size() - 54;
  }
  EXPECT_EQ(payload, 5000u);
  EXPECT_EQ(n.cfg.ports[n.t1].rt->sum().tx_packets, 4u);
  EXPECT_EQ(n.cfg.ports[n.uplink].rt->sum().tx_packets - uplink_tx, 4u);
  EXPECT_EQ(n.ctx.pool.available(), n.ctx.pool.capacity());
}

}  // namespace
}  // namespace vpcd::dp
