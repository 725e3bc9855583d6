// VXLAN by UDP segmentation offload (datapath/stages/vxlan_uso.h, the USO split in uplink-input): through fake ports.
//
// Transmit: a guest's TSO frame to a resolved VTEP leaves as one UDP_L4 GSO frame; cut at gso_size by a small
// reference splitter that does what the kernel's __udp_gso_segment does (outer headers copied per chunk, IPv4 length,
// id + k and checksum, UDP length and full checksum), it gives exactly the datagrams the per-segment path sends
// (once their partial inner checksums are completed and the outer UDP checksum computed: the USO path always
// completes both). Receive: such a frame on the uplink delivers exactly what its datagrams, received one by one, do.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "datapath/io/fake_port.h"
#include "datapath/pipeline/pipeline.h"
#include "datapath/proto/checksum.h"
#include "datapath/proto/frame_builder.h"
#include "datapath/proto/gso.h"
#include "datapath/proto/vxlan.h"
#include "datapath/stages/parse.h"
#include "datapath/stages/vxlan_decap.h"
#include "datapath/stages/vxlan_uso.h"
#include "tests/unit/overlay/overlay_test_net.h"

namespace vpcd::dp {
namespace {

using proto::FrameBuilder;
using namespace overlaytest;
using Bytes = std::vector<uint8_t>;

constexpr uint8_t kUdpL4 = proto::kVnetGsoUdpL4;

// Learns kRemoteMac behind tunnel t1 and resolves kPeer, so frames to kRemoteMac go unicast to a resolved VTEP.
void prime(OverlayNet& n) {
  n.receive(n.uplink, vxlan_datagram(kPeer, kVni, FrameBuilder().eth(kRemoteMac, kGuestMac).ipv4(kRemoteIp, kGuestIp).udp(1, 2).build()));
  n.receive(n.uplink, FrameBuilder().eth(kPeerMac, kUplinkMac).arp(2, kPeerMac, kPeer, kUplinkMac, kMe).pad_to(60).build());
  n.fakes[n.uplink]->drain();
  n.fakes[n.guest]->drain();
}

uint16_t rd16(const Bytes& f, size_t off) { return uint16_t(f[off] << 8 | f[off + 1]); }
Ipv4Addr ip_at(const Bytes& f, size_t off) {
  return Ipv4Addr{uint32_t(f[off]) << 24 | uint32_t(f[off + 1]) << 16 | uint32_t(f[off + 2]) << 8 | f[off + 3]};
}
void wr16(Bytes& f, size_t off, uint16_t v) {
  f[off] = uint8_t(v >> 8);
  f[off + 1] = uint8_t(v);
}

// The kernel's UDP GSO, for a frame with a 20-byte IPv4 header: one datagram per gso_size chunk of the UDP payload.
std::vector<Bytes> reference_split(const Bytes& f, const virtio_net_hdr& v) {
  EXPECT_EQ(f[14], 0x45);
  EXPECT_EQ(v.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
  EXPECT_EQ(v.csum_start, 34);
  EXPECT_EQ(v.csum_offset, 6);
  std::vector<Bytes> out;
  const size_t gso = v.gso_type == kUdpL4 ? v.gso_size : f.size() - 42;
  const uint16_t id = rd16(f, 18);
  const Ipv4Addr src = ip_at(f, 26), dst = ip_at(f, 30);
  for (size_t off = 42, k = 0; off < f.size(); off += gso, ++k) {
    const size_t len = std::min(gso, f.size() - off);
    Bytes d(f.begin(), f.begin() + 42);
    d.insert(d.end(), f.begin() + long(off), f.begin() + long(off + len));
    wr16(d, 16, uint16_t(28 + len));
    wr16(d, 18, uint16_t(id + k));
    wr16(d, 24, 0);
    const be16 ic = proto::internet_checksum({d.data() + 14, 20});
    std::memcpy(&d[24], &ic, 2);
    wr16(d, 38, uint16_t(8 + len));
    wr16(d, 40, 0);
    const be16 uc = proto::udp_checksum_ipv4(src, dst, {d.data() + 34, 8 + len});
    std::memcpy(&d[40], &uc, 2);
    out.push_back(std::move(d));
  }
  return out;
}

// A per-segment datagram with its partial inner checksum completed and the outer UDP checksum computed.
Bytes completed(const FakeFrame& ff) {
  Bytes f = ff.bytes;
  if (ff.vnet && (ff.vnet->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM)) {
    Packet q = proto::make_packet(f);
    q.flags = kHasVnet;
    q.vnet = *ff.vnet;
    EXPECT_TRUE(proto::finish_partial_checksum(q));
  }
  wr16(f, 40, 0);
  const be16 uc = proto::udp_checksum_ipv4(ip_at(f, 26), ip_at(f, 30), {f.data() + 34, f.size() - 34});
  std::memcpy(&f[40], &uc, 2);
  return f;
}

// Sends a guest TSO frame of `payload` bytes with USO on or off; returns what the uplink sent. big_slots: the
// uplink's big transmit slots between flushes (FakePort::set_big_slots; 0 = none, USO frames built in the buffer).
std::vector<FakeFrame> send_tso(bool uso, size_t payload, OverlayWorkerState** st_out = nullptr,
                                std::unique_ptr<OverlayNet>* keep = nullptr, unsigned big_slots = 0) {
  auto n = std::make_unique<OverlayNet>();
  n->cfg.overlay.underlay->uso = uso;
  n->fakes[n->uplink]->set_slots(true);
  n->fakes[n->uplink]->set_big_slots(big_slots);
  prime(*n);
  auto [super, v] = tso_frame(payload);
  n->receive(n->guest, super, v);
  auto out = n->fakes[n->uplink]->drain();
  if (st_out) *st_out = &n->ctx.overlay;
  EXPECT_EQ(n->ctx.pool.available(), n->ctx.pool.capacity());
  if (keep) *keep = std::move(n);
  return out;
}

TEST(VxlanUso, SuperFrameLeavesAsOneUdpGsoFrameGivingThePerSegmentDatagrams) {
  std::unique_ptr<OverlayNet> m;
  auto per_seg = send_tso(false, 20000, nullptr, &m);
  ASSERT_EQ(per_seg.size(), 15u);  // 14 * 1398 + 428
  std::unique_ptr<OverlayNet> n;
  OverlayWorkerState* st = nullptr;
  auto uso = send_tso(true, 20000, &st, &n);
  ASSERT_EQ(uso.size(), 1u);
  ASSERT_TRUE(uso[0].vnet);
  const virtio_net_hdr& v = *uso[0].vnet;
  EXPECT_EQ(v.gso_type, kUdpL4);
  EXPECT_EQ(v.gso_size, 8 + 14 + 20 + 20 + 1398);
  EXPECT_EQ(v.hdr_len, 42);
  EXPECT_EQ(st->uso_tx_superframes.load(), 1u);
  EXPECT_EQ(st->uso_tx_frames.load(), 1u);
  EXPECT_EQ(st->uso_tx_segments.load(), 15u);
  EXPECT_EQ(st->uso_tx_fallbacks.load(), 0u);
  // Counters count the datagrams on the wire, as on the per-segment path.
  EXPECT_EQ(n->cfg.ports[n->t1].rt->sum().tx_packets, 15u);
  EXPECT_EQ(n->cfg.ports[n->uplink].rt->sum().tx_packets, m->cfg.ports[m->uplink].rt->sum().tx_packets);
  EXPECT_EQ(n->cfg.ports[n->uplink].rt->sum().tx_bytes, m->cfg.ports[m->uplink].rt->sum().tx_bytes);
  // The outer UDP checksum field holds the pseudo-header sum over the whole length (NEEDS_CSUM).
  const Bytes& f = uso[0].bytes;
  EXPECT_EQ(rd16(f, 38), f.size() - 34);
  EXPECT_EQ(rd16(f, 16), f.size() - 14);
  EXPECT_TRUE(proto::checksum_valid({f.data() + 14, 20}));
  auto split = reference_split(f, v);
  ASSERT_EQ(split.size(), per_seg.size());
  for (size_t i = 0; i < split.size(); ++i) {
    Bytes a = completed(per_seg[i]);
    Bytes& b = split[i];
    ASSERT_EQ(a.size(), b.size()) << i;
    EXPECT_TRUE(proto::checksum_valid({b.data() + 14, 20}));
    // The per-segment path leaves the outer IPv4 id 0; the kernel's USO counts it up: compare without id / checksum.
    for (size_t off : {18, 19, 24, 25}) a[off] = b[off] = 0;
    EXPECT_EQ(a, b) << "datagram " << i;
    EXPECT_EQ(f[20] & 0x40, 0x40);  // DF
    EXPECT_EQ(rd16(b, 34), rd16(f, 34));  // one outer source port for the flow
  }
}

TEST(VxlanUso, SuperFrameLargerThanOneIpPacketTakesTwoUsoFrames) {
  auto per_seg = send_tso(false, 64000);
  std::unique_ptr<OverlayNet> n;
  OverlayWorkerState* st = nullptr;
  auto uso = send_tso(true, 64000, &st, &n);
  // 46 segments of 1460-byte chunks: 65507 / 1460 = 44 fit one IPv4 packet.
  ASSERT_EQ(per_seg.size(), 46u);
  ASSERT_EQ(uso.size(), 2u);
  EXPECT_EQ(st->uso_tx_frames.load(), 2u);
  EXPECT_EQ(st->uso_tx_segments.load(), 46u);
  std::vector<Bytes> split;
  for (const auto& u : uso) {
    ASSERT_LE(u.bytes.size(), 14u + 65535u);
    for (auto& d : reference_split(u.bytes, *u.vnet)) split.push_back(std::move(d));
  }
  ASSERT_EQ(uso[1].vnet->gso_type, kUdpL4);  // 2 chunks: still GSO
  ASSERT_EQ(split.size(), 46u);
  for (size_t i = 0; i < split.size(); ++i) {
    Bytes a = completed(per_seg[i]);
    for (size_t off : {18, 19, 24, 25}) a[off] = split[i][off] = 0;
    EXPECT_EQ(a, split[i]) << "datagram " << i;
  }
}

// The same USO frames, built straight in the uplink's big transmit slots (AfPacketPort's big TX ring) instead of the
// worker's buffer: byte for byte, vnet header and counters included; a full big ring falls back to the buffer.
TEST(VxlanUso, UsoFramesBuiltInBigSlotsEqualThoseFromTheBuffer) {
  struct Run {
    std::vector<FakeFrame> out;
    std::unique_ptr<OverlayNet> n;
    OverlayWorkerState* st = nullptr;
  };
  auto run = [](unsigned big_slots) {
    Run r;
    r.out = send_tso(true, 64000, &r.st, &r.n, big_slots);
    return r;
  };
  Run buf = run(0), slots = run(4), one = run(1);
  EXPECT_EQ(buf.n->fakes[buf.n->uplink]->big_slot_commits(), 0u);
  EXPECT_EQ(slots.n->fakes[slots.n->uplink]->big_slot_commits(), 2u);  // both USO frames of the super-frame
  EXPECT_EQ(one.n->fakes[one.n->uplink]->big_slot_commits(), 1u);      // the second found the ring full
  ASSERT_EQ(buf.out.size(), 2u);
  for (const Run* r : {&slots, &one}) {
    ASSERT_EQ(r->out.size(), buf.out.size());
    for (size_t i = 0; i < buf.out.size(); ++i) {
      EXPECT_EQ(r->out[i].bytes, buf.out[i].bytes) << i;
      ASSERT_TRUE(r->out[i].vnet && buf.out[i].vnet);
      EXPECT_EQ(std::memcmp(&*r->out[i].vnet, &*buf.out[i].vnet, sizeof(virtio_net_hdr)), 0) << i;
    }
    EXPECT_EQ(r->st->uso_tx_frames.load(), buf.st->uso_tx_frames.load());
    EXPECT_EQ(r->st->uso_tx_segments.load(), buf.st->uso_tx_segments.load());
    EXPECT_EQ(r->st->uso_tx_superframes.load(), 1u);
    EXPECT_EQ(r->st->uso_tx_fallbacks.load(), 0u);
    const auto a = r->n->cfg.ports[r->n->uplink].rt->sum(), b = buf.n->cfg.ports[buf.n->uplink].rt->sum();
    EXPECT_EQ(a.tx_packets, b.tx_packets);
    EXPECT_EQ(a.tx_bytes, b.tx_bytes);
  }
}

// A run of guest frames in one batch keeps its order on the uplink when the super-frame in it goes out of a big slot
// (AfPacketPort sends the small ring before it): small frames before and after it.
TEST(VxlanUso, BigSlotFramesKeepTheirPlaceAmongSmallOnes) {
  OverlayNet n;
  n.fakes[n.uplink]->set_slots(true);
  n.fakes[n.uplink]->set_big_slots(4);
  prime(n);
  auto small = [](uint16_t port) {
    return FrameBuilder().eth(kGuestMac, kRemoteMac).ipv4(kGuestIp, kRemoteIp).udp(port, 9).build();
  };
  auto [super, v] = tso_frame(5000);
  n.fakes[n.guest]->inject(small(1));
  n.fakes[n.guest]->inject(super, v);
  n.fakes[n.guest]->inject(small(2));
  std::vector<Packet> pkts(4);
  const unsigned got = n.fakes[n.guest]->rx_burst(0, pkts.data(), 4);
  ASSERT_EQ(got, 3u);
  run_batch(n.ctx, n.cfg, n.guest, std::span<Packet>(pkts.data(), got));
  flush_outputs(n.ctx, n.cfg);
  n.fakes[n.guest]->rx_release(0);
  auto out = n.fakes[n.uplink]->drain();
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(n.fakes[n.uplink]->big_slot_commits(), 1u);
  EXPECT_EQ(out[0].bytes[50 + 23], 17);  // outer 50 bytes (Ethernet, IPv4, UDP, VXLAN), then the inner frame
  EXPECT_EQ(rd16(out[0].bytes, 50 + 34), 1);
  ASSERT_TRUE(out[1].vnet);
  EXPECT_EQ(out[1].vnet->gso_type, kUdpL4);
  EXPECT_EQ(rd16(out[2].bytes, 50 + 34), 2);
  EXPECT_EQ(n.ctx.pool.available(), n.ctx.pool.capacity());
}

// No USO frame reaches 64 KiB (kUsoMaxFrameBytes): a veth (gso_max_size 65536) drops such a GSO skb. MSS 1362 makes
// 1424-byte chunks, 46 of which would fit one IPv4 packet (a 65546-byte frame): 45 go in the first frame.
TEST(VxlanUso, UsoFramesStayBelow64KiB) {
  for (unsigned big_slots : {0u, 4u}) {
    OverlayNet n;
    n.fakes[n.uplink]->set_slots(true);
    n.fakes[n.uplink]->set_big_slots(big_slots);
    prime(n);
    auto [super, v] = tso_frame(46 * 1362);
    v.gso_size = 1362;
    n.receive(n.guest, super, v);
    auto out = n.fakes[n.uplink]->drain();
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out[0].bytes.size(), 42u + 45u * 1424u);
    EXPECT_EQ(out[1].bytes.size(), 42u + 1424u);
    for (const auto& f : out) EXPECT_LE(f.bytes.size(), kUsoMaxFrameBytes);
    EXPECT_EQ(n.ctx.overlay.uso_tx_segments.load(), 46u);
  }
}

TEST(VxlanUso, OffSendsOneFramePerSegment) {
  OverlayWorkerState* st = nullptr;
  std::unique_ptr<OverlayNet> n;
  auto out = send_tso(false, 5000, &st, &n);
  EXPECT_EQ(out.size(), 4u);
  EXPECT_EQ(st->uso_tx_superframes.load(), 0u);
  EXPECT_EQ(st->uso_tx_fallbacks.load(), 0u);
}

// ---- receive ----

// A USO frame as another vpcd at kPeer sends it: the guest-bound super-frame from kRemote to kGuest.
std::pair<Bytes, virtio_net_hdr> uso_from_peer(size_t payload) {
  auto [super, v] = tso_frame(payload, kRemoteMac, kGuestMac, kRemoteIp, kGuestIp);
  Packet p = proto::make_packet(super);
  p.flags = kHasVnet;
  p.vnet = v;
  parse(p);
  EXPECT_FALSE(p.dropped());
  proto::VxlanOuterParams op;
  op.src_mac = kPeerMac;
  op.dst_mac = kUplinkMac;
  op.src_ip = kPeer;
  op.dst_ip = kMe;
  op.vni = kVni;
  proto::VxlanOuter tmpl = proto::build_vxlan_outer(op);
  tmpl.udp.src_port = be16::from_host(50001);
  const UsoPlan plan = vxlan_uso_plan(p);
  Bytes out(kUsoFrameBytes);
  virtio_net_hdr ov{};
  const size_t len = vxlan_uso_frame(p, plan, tmpl, 0, plan.segments, out.data(), out.size(), &ov);
  EXPECT_GT(len, 0u);
  out.resize(len);
  return {out, ov};
}

struct Rx {
  std::vector<FakeFrame> guest;
  uint64_t tunnel_rx = 0, tunnel_bytes = 0;
  uint64_t uplink_rx = 0, uplink_bytes = 0;
};

// Receives frames on the uplink in one batch; no tcp-coalesce on the guest, so every datagram's frame is seen.
Rx receive(const std::vector<std::pair<Bytes, std::optional<virtio_net_hdr>>>& frames, OverlayNet& n) {
  n.cfg.ports[n.guest].out_features &= ~stage_bit(Next::kTcpCoalesce);
  for (const auto& [f, v] : frames) n.fakes[n.uplink]->inject(f, v);
  std::vector<Packet> pkts(frames.size() + 1);
  unsigned got = n.fakes[n.uplink]->rx_burst(0, pkts.data(), unsigned(pkts.size()));
  run_batch(n.ctx, n.cfg, n.uplink, std::span<Packet>(pkts.data(), got));
  flush_outputs(n.ctx, n.cfg);
  n.fakes[n.uplink]->rx_release(0);
  Rx r;
  r.guest = n.fakes[n.guest]->drain();
  r.tunnel_rx = n.cfg.ports[n.t1].rt->sum().rx_packets;
  r.tunnel_bytes = n.cfg.ports[n.t1].rt->sum().rx_bytes;
  r.uplink_rx = n.cfg.ports[n.uplink].rt->sum().rx_packets;
  r.uplink_bytes = n.cfg.ports[n.uplink].rt->sum().rx_bytes;
  return r;
}

TEST(VxlanUso, ReceivedSuperFrameDeliversWhatItsDatagramsDo) {
  auto [f, v] = uso_from_peer(20000);
  ASSERT_EQ(v.gso_type, kUdpL4);
  std::vector<std::pair<Bytes, std::optional<virtio_net_hdr>>> one_by_one;
  for (auto& d : reference_split(f, v)) one_by_one.push_back({d, std::nullopt});
  OverlayNet a, b;
  Rx ra = receive(one_by_one, a);
  Rx rb = receive({{f, v}}, b);
  ASSERT_EQ(ra.guest.size(), 15u);
  ASSERT_EQ(rb.guest.size(), ra.guest.size());
  for (size_t i = 0; i < ra.guest.size(); ++i) {
    EXPECT_EQ(ra.guest[i].bytes, rb.guest[i].bytes) << i;
    EXPECT_FALSE(rb.guest[i].vnet && rb.guest[i].vnet->gso_type != VIRTIO_NET_HDR_GSO_NONE);
  }
  EXPECT_EQ(ra.tunnel_rx, rb.tunnel_rx);
  EXPECT_EQ(ra.tunnel_bytes, rb.tunnel_bytes);
  // The uplink counts datagrams either way (as on transmit): 15 packets, each with its outer headers.
  EXPECT_EQ(ra.uplink_rx, 15u);
  EXPECT_EQ(rb.uplink_rx, ra.uplink_rx);
  EXPECT_EQ(rb.uplink_bytes, ra.uplink_bytes);
  EXPECT_EQ(rb.uplink_bytes, f.size() + 14 * 42);
  EXPECT_EQ(b.ctx.overlay.uso_rx_frames.load(), 1u);
  EXPECT_EQ(b.ctx.overlay.uso_rx_segments.load(), 15u);
  EXPECT_EQ(a.ctx.overlay.uso_rx_frames.load(), 0u);
  // The inner TCP checksums were completed by the sender: they verify.
  for (const auto& g : rb.guest) {
    const Bytes& x = g.bytes;
    const size_t l4 = x.size() - 34;
    EXPECT_TRUE(proto::checksum_valid({x.data() + 34, l4}, proto::ipv4_pseudo_sum(kRemoteIp, kGuestIp, 6, uint16_t(l4))));
  }
}

TEST(VxlanUso, RunWithASuperFrameKeepsItsOrder) {
  auto [f, v] = uso_from_peer(3 * 1398);
  auto dgram = [](uint16_t port) {
    return vxlan_datagram(kPeer, kVni, FrameBuilder().eth(kRemoteMac, kGuestMac).ipv4(kRemoteIp, kGuestIp).udp(port, 9).build());
  };
  OverlayNet n;
  Rx r = receive({{dgram(1), std::nullopt}, {f, v}, {dgram(2), std::nullopt}}, n);
  ASSERT_EQ(r.guest.size(), 5u);
  EXPECT_EQ(r.guest[0].bytes[23], 17);
  EXPECT_EQ(rd16(r.guest[0].bytes, 34), 1);
  for (size_t i = 1; i <= 3; ++i) {
    EXPECT_EQ(r.guest[i].bytes[23], 6);
    EXPECT_EQ(rd16(r.guest[i].bytes, 18), i - 1);  // inner IPv4 ids of the segments, in order
  }
  EXPECT_EQ(rd16(r.guest[4].bytes, 34), 2);
  EXPECT_EQ(n.ctx.pool.available(), n.ctx.pool.capacity());
}

TEST(VxlanUso, MalformedSuperFramesAreCountedDrops) {
  auto [f, v] = uso_from_peer(5 * 1398);
  auto run = [&](Bytes frame, virtio_net_hdr hdr) {
    OverlayNet n;
    Rx r = receive({{frame, hdr}}, n);
    return std::make_pair(r.guest.size(), std::move(n.cfg));
  };
  auto drops = [&](const DataplaneConfig& cfg, uint16_t port, DropReason why) {
    return cfg.ports[port].rt->sum().drops[size_t(why)];
  };
  OverlayNet ids;  // port numbers (the same in every OverlayNet)
  {  // gso_size 0: the vnet header itself is refused by parse
    virtio_net_hdr h = v;
    h.gso_size = 0;
    auto [got, cfg] = run(f, h);
    EXPECT_EQ(got, 0u);
    EXPECT_EQ(drops(cfg, ids.uplink, DropReason::kBadVnetHeader), 1u);
  }
  {  // a chunk too small for VXLAN + Ethernet
    virtio_net_hdr h = v;
    h.gso_size = 21;
    auto [got, cfg] = run(f, h);
    EXPECT_EQ(got, 0u);
    EXPECT_EQ(drops(cfg, ids.uplink, DropReason::kVxlanBadGso), 1u);
  }
  {  // more than 128 chunks
    virtio_net_hdr h = v;
    h.gso_size = 22;
    auto [got, cfg] = run(f, h);
    EXPECT_EQ(drops(cfg, ids.uplink, DropReason::kVxlanBadGso), 1u);
  }
  {  // NEEDS_CSUM somewhere else than the outer UDP checksum
    virtio_net_hdr h = v;
    h.csum_start = 50 + 34;
    h.csum_offset = 16;
    auto [got, cfg] = run(f, h);
    EXPECT_EQ(drops(cfg, ids.uplink, DropReason::kVxlanBadGso), 1u);
  }
  {  // no NEEDS_CSUM, no DATA_VALID, a non-zero finished checksum: stands for no single datagram
    virtio_net_hdr h = v;
    h.flags = 0;
    auto [got, cfg] = run(f, h);
    EXPECT_EQ(drops(cfg, ids.uplink, DropReason::kVxlanBadGso), 1u);
  }
  {  // DATA_VALID: taken (the kernel verified it)
    virtio_net_hdr h = v;
    h.flags = VIRTIO_NET_HDR_F_DATA_VALID;
    auto [got, cfg] = run(f, h);
    EXPECT_EQ(got, 5u);
  }
  {  // the I flag cleared in the third chunk: that datagram alone is dropped, as it would be on its own
    Bytes g = f;
    g[42 + 2 * v.gso_size] = 0;
    auto [got, cfg] = run(g, v);
    EXPECT_EQ(got, 4u);
    EXPECT_EQ(drops(cfg, ids.uplink, DropReason::kVxlanBadFlags), 1u);
  }
  {  // the last chunk cut to 5 bytes (IPv4 length shortened): that datagram is vxlan_truncated
    const size_t keep = 42 + 4 * v.gso_size + 5;
    Bytes g(f.begin(), f.begin() + long(keep));
    wr16(g, 16, uint16_t(keep - 14));
    wr16(g, 24, 0);
    const be16 ic = proto::internet_checksum({g.data() + 14, 20});
    std::memcpy(&g[24], &ic, 2);
    auto [got, cfg] = run(g, v);
    EXPECT_EQ(got, 4u);
    EXPECT_EQ(drops(cfg, ids.uplink, DropReason::kVxlanTruncated), 1u);
  }
}

}  // namespace
}  // namespace vpcd::dp
