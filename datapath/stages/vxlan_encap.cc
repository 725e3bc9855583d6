// VXLAN encapsulation helpers; behaviour and threading in vxlan_encap.h.
#include "datapath/stages/vxlan_encap.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <span>

#include "datapath/proto/checksum.h"
#include "datapath/proto/ethernet.h"
#include "datapath/proto/ipv4.h"
#include "datapath/proto/l4.h"

namespace vpcd::dp {
namespace {

constexpr uint32_t mix(uint32_t h, uint32_t v) noexcept {
  h ^= v + 0x9e3779b9u + (h << 6) + (h >> 2);
  return h;
}

uint32_t finalize(uint32_t h) noexcept {
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h ? h : 1;
}

}  // namespace

uint32_t inner_flow_hash(const Packet& p) noexcept {
  uint32_t h = 0x5f3759dfu;
  if (p.flags & kIsIpv4) {
    h = mix(h, p.ip4_src.v);
    h = mix(h, p.ip4_dst.v);
  } else if (p.flags & kIsIpv6) {
    uint32_t w[8];
    std::memcpy(w, p.data + p.l3_offset + 8, sizeof w);  // src and dst (parse checked the 40 bytes)
    for (uint32_t x : w) h = mix(h, x);
  } else {
    uint64_t macs = MacAddr::from_bytes(p.data).to_u64() ^ (MacAddr::from_bytes(p.data + 6).to_u64() << 3);
    h = mix(h, uint32_t(macs));
    h = mix(h, uint32_t(macs >> 32));
    return finalize(mix(h, p.ethertype));
  }
  h = mix(h, p.ip_proto);
  if (p.flags & (kIsTcp | kIsUdp)) h = mix(h, uint32_t(p.src_port) << 16 | p.dst_port);
  return finalize(h);
}

void vxlan_encap_header(Packet& p, const proto::VxlanOuter& tmpl, uint32_t hash, bool udp_csum,
                        proto::VxlanOuter& out) noexcept {
  out = tmpl;
  proto::finish_vxlan_outer(out, p.len, proto::vxlan_source_port(hash));
  if (p.flags & kHasVnet) {
    if (p.vnet.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) p.vnet.csum_start = uint16_t(p.vnet.csum_start + proto::kVxlanOverhead);
    if (p.vnet.hdr_len) p.vnet.hdr_len = uint16_t(p.vnet.hdr_len + proto::kVxlanOverhead);
    if (p.vnet.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) return;  // inner bytes not final: outer UDP checksum stays 0
    if ((p.vnet.gso_type & ~VIRTIO_NET_HDR_GSO_ECN) != VIRTIO_NET_HDR_GSO_NONE) return;
  }
  if (udp_csum) out.udp.csum = proto::vxlan_udp_checksum(out, {p.data, p.len});
}

bool needs_frag_needed(const Packet& p, uint32_t mtu) noexcept {
  if (!(p.flags & kIsIpv4)) return false;
  if ((p.flags & kHasVnet) && (p.vnet.gso_type & ~VIRTIO_NET_HDR_GSO_ECN) != VIRTIO_NET_HDR_GSO_NONE) return false;
  if (p.len <= mtu + p.l3_offset) return false;
  proto::Ipv4Hdr ip;
  std::memcpy(&ip, p.data + p.l3_offset, sizeof ip);
  return (ip.frag_off.to_host() & proto::kIpv4FlagDf) != 0;
}

size_t build_icmp_frag_needed(const Packet& p, const MacAddr& router_mac, Ipv4Addr gateway, uint16_t mtu, uint8_t* out,
                              size_t cap) noexcept {
  using namespace proto;
  if (!(p.flags & kIsIpv4)) return 0;
  constexpr size_t kMaxIcmpDatagram = 576;
  const size_t orig_ip_len = p.len - p.l3_offset;
  const size_t quoted = std::min(orig_ip_len, kMaxIcmpDatagram - kIpv4MinHdrLen - 8);
  const size_t total = kEthHdrLen + kIpv4MinHdrLen + 8 + quoted;
  if (total > cap) return 0;
  EthHdr eth;
  eth.dst = MacAddr::from_bytes(p.src_mac());
  eth.src = router_mac;
  eth.ethertype = be16::from_host(kEthTypeIpv4);
  std::memcpy(out, &eth, sizeof eth);
  Ipv4Hdr ip{};
  ip.ver_ihl = 0x45;
  ip.tot_len = be16::from_host(uint16_t(kIpv4MinHdrLen + 8 + quoted));
  ip.ttl = 64;
  ip.proto = kIpProtoIcmp;
  ip.src = gateway.to_be();
  ip.dst = p.ip4_src.to_be();
  ip.csum = internet_checksum({reinterpret_cast<const uint8_t*>(&ip), sizeof ip});
  std::memcpy(out + kEthHdrLen, &ip, sizeof ip);
  uint8_t* icmp = out + kEthHdrLen + kIpv4MinHdrLen;
  icmp[0] = kIcmpDestUnreachable;
  icmp[1] = 4;  // fragmentation needed and DF set
  icmp[2] = icmp[3] = 0;
  icmp[4] = icmp[5] = 0;  // unused
  const be16 m = be16::from_host(mtu);
  std::memcpy(icmp + 6, &m, 2);
  std::memcpy(icmp + 8, p.data + p.l3_offset, quoted);
  const be16 c = internet_checksum({icmp, 8 + quoted});
  std::memcpy(icmp + 2, &c, 2);
  return total;
}

}  // namespace vpcd::dp

// ---- the stage ----------------------------------------------------------------------------------------------------

#include "datapath/proto/gso.h"
#include "datapath/stages/uplink_arp.h"
#include "datapath/stages/uplink_input.h"

namespace vpcd::dp {
namespace {

bool is_gso_frame(const Packet& p) noexcept {
  return (p.flags & kHasVnet) && (p.vnet.gso_type & ~VIRTIO_NET_HDR_GSO_ECN) != VIRTIO_NET_HDR_GSO_NONE;
}

struct EncapRun {
  WorkerContext& ctx;
  const DataplaneConfig& cfg;
  const UnderlayConfig* u;
  uint64_t now_ms;

  void count_tx(const PortConfig& t, uint32_t bytes) noexcept {
    PortWorkerCounters& c = t.rt->counters[ctx.worker];
    counter_add(c.tx_packets, 1);
    counter_add(c.tx_bytes, bytes);
  }

  void send_arp_request(Ipv4Addr nh) noexcept {
    Packet* r = ctx.alloc_packet();
    if (!r) return;
    r->len = r->wire_len = uint32_t(build_underlay_arp_request(*u, nh, r->data));
    r->in_port = r->acct_port = r->out_port = u->port;
    ctx.emit(r, Next::kOutput);
  }

  // Outer template for tunnel t to next-hop MAC `mac`.
  proto::VxlanOuter tmpl(const PortConfig& t, const VpcConfig& vpc, const MacAddr& mac) const noexcept {
    proto::VxlanOuterParams op;
    op.src_mac = u->mac;
    op.dst_mac = mac;
    op.src_ip = u->address.addr;
    op.dst_ip = t.remote_ip;
    op.dst_port = u->vxlan_port;
    op.vni = vpc.vni;
    return proto::build_vxlan_outer(op);
  }

  // Writes the outer headers in front of a pool packet's data (headroom) and makes them part of the frame.
  static void prepend(Packet& q, const proto::VxlanOuter& hdr) noexcept {
    q.data -= proto::kVxlanOverhead;
    std::memcpy(q.data, hdr.bytes(), proto::kVxlanOverhead);
    q.len += uint32_t(proto::kVxlanOverhead);
    q.wire_len = q.len;
  }

  // Sends q (inner frame, parsed; q.vpc set) to tunnel t. `owned`: q is a pool packet whose buffer holds the frame
  // and that this stage emits itself (outer headers go into its headroom); otherwise the outer headers go to
  // hdr_room (50 bytes that live until output) as q's prefix. Afterwards q.next is kOutput (sent), kDrop (dropped, or
  // kConsumed when a pool copy waits for ARP), or kCount (owned q itself waits for ARP: the caller must not emit it).
  void send(Packet& q, const PortConfig& t, const VpcConfig& vpc, bool owned, uint8_t* hdr_room) noexcept {
    q.acct_port = t.index;
    const std::optional<Ipv4Addr> nh = u->next_hop(t.remote_ip);
    if (!nh) [[unlikely]] {
      q.drop_with(DropReason::kNoUnderlay);
      return;
    }
    const uint32_t hash = inner_flow_hash(q);
    MacAddr mac;
    bool request = false;
    bool hit = false;
    try {
      hit = ctx.overlay.arp.lookup(*nh, now_ms, &mac, &request);
    } catch (...) {
    }
    if (request) send_arp_request(*nh);
    proto::VxlanOuter hdr;
    if (hit) [[likely]] {
      vxlan_encap_header(q, tmpl(t, vpc, mac), hash, u->udp_checksum, hdr);
      if (owned) {
        prepend(q, hdr);
      } else {
        std::memcpy(hdr_room, hdr.bytes(), proto::kVxlanOverhead);
        q.prefix = hdr_room;
        q.prefix_len = uint16_t(proto::kVxlanOverhead);
      }
      q.out_port = u->port;
      q.next = Next::kOutput;
      count_tx(t, q.len + q.prefix_len);
      return;
    }
    // Not resolved: keep a pool copy with its outer headers (destination MAC filled on release) in the queue.
    Packet* w = &q;
    if (!owned) {
      w = ctx.clone_packet(q);
      if (!w) {
        q.drop_with(DropReason::kUnderlayArpQueueFull);
        return;
      }
    }
    vxlan_encap_header(*w, tmpl(t, vpc, MacAddr{}), hash, u->udp_checksum, hdr);
    prepend(*w, hdr);
    w->out_port = u->port;
    w->acct_port = t.index;
    ArpCache::Result r = ArpCache::Result::kQueueFull;
    bool req2 = false;
    try {
      r = ctx.overlay.arp.resolve(*nh, now_ms, w->buf, &mac, &req2);
    } catch (...) {
    }
    if (req2) send_arp_request(*nh);
    if (r == ArpCache::Result::kQueued) {
      ctx.overlay.waiting[w->buf] = w;
      count_tx(t, w->len);
      if (w != &q)
        q.drop_with(DropReason::kConsumed);
      else
        q.next = Next::kCount;  // held by the cache, in no queue
      return;
    }
    const DropReason why = r == ArpCache::Result::kFailed ? DropReason::kUnderlayArpFailed
                                                           : DropReason::kUnderlayArpQueueFull;
    if (w != &q) ctx.pool.free(w);
    q.drop_with(why);
  }

  // Sends GSO super-frame p to t whole when its next hop is resolved: output segments it straight into the uplink's
  // transmit ring (kSegmentOnTx; the outer header template, source port set, in hdr_room as p's prefix). False when
  // it cannot (next hop unresolved, or p not segmentable here): the caller uses send_segments.
  bool send_gso(Packet& p, const PortConfig& t, const VpcConfig& vpc, uint8_t* hdr_room) noexcept {
    const std::optional<Ipv4Addr> nh = u->next_hop(t.remote_ip);
    if (!nh || p.prefix_len != 0) return false;
    const size_t n = proto::gso_segment_count(p);
    const size_t seg_max = proto::gso_max_segment_bytes(p);
    if (n == 0 || seg_max + proto::kVxlanOverhead > PacketPool::kMaxFrame) return false;
    MacAddr mac;
    bool request = false, hit = false;
    try {
      hit = ctx.overlay.arp.lookup(*nh, now_ms, &mac, &request);
    } catch (...) {
    }
    if (request) send_arp_request(*nh);
    if (!hit) return false;
    proto::VxlanOuter o = tmpl(t, vpc, mac);
    o.udp.src_port = be16::from_host(proto::vxlan_source_port(inner_flow_hash(p)));
    std::memcpy(hdr_room, o.bytes(), proto::kVxlanOverhead);
    p.prefix = hdr_room;
    p.prefix_len = uint16_t(proto::kVxlanOverhead);
    p.flags |= kSegmentOnTx;
    p.acct_port = t.index;
    p.out_port = u->port;
    p.next = Next::kOutput;
    // What leaves per VTEP: n segments, each the headers (outer + inner) and its share of the payload.
    const size_t hdrs = seg_max - p.vnet.gso_size;
    PortWorkerCounters& c = t.rt->counters[ctx.worker];
    counter_add(c.tx_packets, n);
    counter_add(c.tx_bytes, (size_t(p.l4_offset) + p.l4_len - hdrs) + n * (hdrs + proto::kVxlanOverhead));
    return true;
  }

  // Sends p's segments (p: a GSO super-frame) to t, each as an owned pool packet emitted to output (or queued).
  void send_segments(const Packet& p, const PortConfig& t, const VpcConfig& vpc) noexcept {
    const size_t n = proto::gso_segment_count(p);
    const bool partial = (p.vnet.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) != 0;
    const auto mode = partial ? proto::GsoCsum::kPartial : proto::GsoCsum::kSoftware;
    if (n == 0 || proto::gso_max_segment_bytes(p) + proto::kVxlanOverhead > PacketPool::kMaxFrame) {
      t.rt->counters[ctx.worker].add_drop(DropReason::kGsoSegmentFailed);
      return;
    }
    for (size_t i = 0; i < n; ++i) {
      Packet* q = ctx.alloc_packet();
      if (!q) {
        t.rt->counters[ctx.worker].add_drop(DropReason::kGsoSegmentFailed, n - i);
        return;
      }
      proto::GsoSegment seg;
      proto::gso_segment_one(p, i, mode, q->data, PacketPool::kMaxFrame - proto::kVxlanOverhead, &seg);
      const uint8_t* keep_data = q->data;
      const uint16_t buf = q->buf;
      *q = p;  // metadata (ports, vpc, parse results)
      q->data = const_cast<uint8_t*>(keep_data);
      q->buf = buf;
      q->prefix = nullptr;
      q->prefix_len = 0;
      q->len = q->wire_len = seg.len;
      q->vnet = seg.vnet;
      q->flags = uint16_t((p.flags & ~kHasVnet) | (partial ? kHasVnet : 0));
      q->l4_len = uint16_t(seg.len - p.l4_offset);
      send(*q, t, vpc, /*owned=*/true, nullptr);
      if (q->next == Next::kCount) continue;  // queued for ARP
      ctx.emit(q, q->dropped() ? Next::kDrop : Next::kOutput);
    }
  }

  void too_big(Packet& p, const PortConfig& t, const VpcConfig& vpc) noexcept {
    p.acct_port = t.index;
    if (!needs_frag_needed(p, vpc.mtu)) {
      p.drop_with(DropReason::kTooBig);
      return;
    }
    // ICMP fragmentation-needed from the gateway of the sender's subnet: the gateway sharing the longest prefix
    // with the sender's address.
    Ipv4Addr gw = vpc.gateways.empty() ? Ipv4Addr{} : vpc.gateways.front();
    int best = -1;
    for (Ipv4Addr g : vpc.gateways) {
      const int common = std::countl_zero(g.v ^ p.ip4_src.v);
      if (common > best) {
        best = common;
        gw = g;
      }
    }
    if (Packet* r = ctx.alloc_packet()) {
      const size_t n = build_icmp_frag_needed(p, vpc.router_mac, gw, uint16_t(vpc.mtu), r->data, PacketPool::kMaxFrame);
      if (n) {
        r->len = r->wire_len = uint32_t(n);
        r->in_port = r->acct_port = r->out_port = p.in_port;
        r->vpc = p.vpc;
        ctx.emit(r, Next::kOutput);
      } else {
        ctx.pool.free(r);
      }
    }
    p.drop_with(DropReason::kFragNeeded);
  }
};

}  // namespace

NextSet VxlanEncapStage::process(WorkerContext& ctx, const DataplaneConfig& cfg, std::span<Packet* const> pkts) noexcept {
  const bool have = overlay_sync(ctx, cfg);
  auto& hdrs = ctx.overlay.hdrs;
  if (hdrs.size() < pkts.size()) hdrs.resize(pkts.size());
  EncapRun run{ctx, cfg, have ? &*cfg.overlay.underlay : nullptr, monotonic_ms()};
  for (size_t i = 0; i < pkts.size(); ++i) {
    Packet& p = *pkts[i];
    const VpcConfig* vpc = cfg.vpc(p.vpc);
    if (!vpc) [[unlikely]] {
      p.drop_with(DropReason::kNoVpc);
      continue;
    }
    if (p.out_port == kFloodPort || p.out_port == kFloodUnknownPort) {
      // Head-end replication to the VPC's VTEP peers (broadcast, multicast and unknown unicast, as the kernel's
      // all-zeros FDB entries do); the frame itself goes on to the local ports.
      p.next = Next::kOutput;
      const PortConfig* in = cfg.port(p.in_port);
      if (!run.u || (in && in->kind == PortKind::kTunnel)) continue;  // split horizon
      for (uint16_t tid : vpc->tunnels) {
        const PortConfig* t = cfg.port(tid);
        if (!t) continue;
        if (is_gso_frame(p)) {
          run.send_segments(p, *t, *vpc);
          continue;
        }
        Packet* q = ctx.alloc_packet();
        if (!q) break;
        uint8_t* room = q->data;  // its own buffer holds the outer headers; the frame bytes are p's
        const uint16_t buf = q->buf;
        *q = p;
        q->buf = buf;
        q->prefix = nullptr;
        q->prefix_len = 0;
        q->out_port = tid;
        run.send(*q, *t, *vpc, /*owned=*/false, room);
        if (q->next == Next::kCount) continue;
        ctx.emit(q, q->dropped() ? Next::kDrop : Next::kOutput);
      }
      continue;
    }
    const PortConfig* t = cfg.port(p.out_port);
    if (!t || t->kind != PortKind::kTunnel) [[unlikely]] {  // not for a tunnel: pass on
      p.next = Next::kOutput;
      continue;
    }
    if (!run.u) [[unlikely]] {
      p.acct_port = t->index;
      p.drop_with(DropReason::kNoUnderlay);
      continue;
    }
    if (is_gso_frame(p)) {
      if (run.send_gso(p, *t, *vpc, hdrs[i].bytes())) continue;
      run.send_segments(p, *t, *vpc);
      p.drop_with(DropReason::kConsumed);
      continue;
    }
    if (p.len > vpc->mtu + p.l3_offset) [[unlikely]] {
      run.too_big(p, *t, *vpc);
      continue;
    }
    // A pool packet keeps its outer headers in its own headroom; an rx-ring packet in this worker's scratch.
    run.send(p, *t, *vpc, /*owned=*/false, p.buf != kNoBuf ? p.data - proto::kVxlanOverhead : hdrs[i].bytes());
  }
  return kNextsUnknown;
}

}  // namespace vpcd::dp
