// Stage "l2-switch"; behaviour and threading in l2_switch.h.
#include "datapath/stages/l2_switch.h"

#include "datapath/pipeline/input_runs.h"

namespace vpcd::dp {

// The unicast destination's port: static FIB first, then a live, current learned entry; kInvalidPort if unknown.
namespace {

// Whether `ports` holds a port other than `in` a flood would reach (tunnel ports only when `to_tunnels`).
bool reaches_another(const DataplaneConfig& cfg, const std::vector<uint16_t>& ports, uint16_t in,
                     bool to_tunnels) noexcept {
  for (uint16_t q : ports)
    if (q != in && (to_tunnels || cfg.ports[q].kind != PortKind::kTunnel)) return true;
  return false;
}

bool is_gso(const Packet& p) noexcept {
  return (p.flags & kHasVnet) && (p.vnet.gso_type & ~VIRTIO_NET_HDR_GSO_ECN) != VIRTIO_NET_HDR_GSO_NONE;
}

}  // namespace

bool is_membership_report(const Packet& p) noexcept {
  // ICMPv6 types (RFC 2710, RFC 3810) and IGMP types (RFC 1112, RFC 2236, RFC 3376).
  constexpr uint8_t kMldV1Report = 131, kMldV1Done = 132, kMldV2Report = 143;
  constexpr uint8_t kIpProtoIgmp = 2;
  constexpr uint8_t kIgmpV1Report = 0x12, kIgmpV2Report = 0x16, kIgmpV2Leave = 0x17, kIgmpV3Report = 0x22;
  if ((p.flags & (kIsIpv6 | kIsIcmp)) == (kIsIpv6 | kIsIcmp)) {
    const uint8_t type = uint8_t(p.dst_port >> 8);  // parse: ICMPv6 type << 8 | code
    return type == kMldV1Report || type == kMldV1Done || type == kMldV2Report;
  }
  if ((p.flags & kIsIpv4) && p.ip_proto == kIpProtoIgmp && !(p.flags & kIsFragment)) {
    const size_t igmp = size_t(p.l3_offset) + size_t(p.data[p.l3_offset] & 0x0f) * 4;  // parse checked the IHL
    if (igmp >= p.len) return false;
    const uint8_t type = p.data[igmp];
    return type == kIgmpV1Report || type == kIgmpV2Report || type == kIgmpV2Leave || type == kIgmpV3Report;
  }
  return false;
}

namespace {

// What a run of packets from one input shares, looked up once (for_each_input_run).
struct RunInput {
  const DataplaneConfig& cfg;
  const PortConfig& in;
  const VpcConfig& vpc;
  uint32_t now_s;
  // Head-end replication to the VPC's VTEP peers happens in vxlan-encap; never for frames that came from the overlay
  // (split horizon).
  Next flood_next;
  // A flood reaches some port other than `in` (from the overlay: some local port, split horizon); unknown unicast
  // only the ports that may have unknown MACs behind them.
  bool can_flood, can_flood_unknown;
};

// The per-run caches: the last source MAC learned and the last destination looked up (MAC with bit 63 set when
// valid), so a run of frames of one flow learns and looks up once.
struct RunCache {
  uint64_t last_src = 0;
  uint64_t last_dst = 0;
  uint16_t last_out = kInvalidPort;
};

template <bool kLearn>
[[gnu::always_inline]] inline void switch_one(const RunInput& r, RunCache& c, Packet* p) noexcept {
  if constexpr (kLearn) {
    const MacAddr src = MacAddr::from_bytes(p->src_mac());
    const uint64_t key = src.to_u64() | (uint64_t(1) << 63);
    if (key != c.last_src) {
      c.last_src = key;
      if (!src.is_zero() && !src.is_multicast() && src != r.vpc.router_mac && r.vpc.fib->find(src) == kInvalidPort)
        r.vpc.learned->learn(src, r.in.index, r.in.rt->seq, r.now_s);
    }
  }

  const MacAddr dst = MacAddr::from_bytes(p->dst_mac());
  uint16_t out;
  if (dst.is_multicast()) {
    out = kFloodPort;
  } else {
    const uint64_t key = dst.to_u64() | (uint64_t(1) << 63);
    if (key == c.last_dst) {
      out = c.last_out;
    } else if (dst == r.vpc.router_mac) [[unlikely]] {
      if (!r.vpc.routes || !(p->flags & kIsIpv4)) {
        p->drop_with(DropReason::kNotRouted);
      } else {
        p->next = Next::kRouter;  // the router picks the output port itself
      }
      return;
    } else {
      out = l2_lookup_unicast(r.cfg, r.vpc, dst, r.now_s);
      if (out == kInvalidPort) out = kFloodUnknownPort;
      c.last_dst = key;
      c.last_out = out;
    }
  }

  uint32_t mtu;
  Next next;
  if (out == kFloodPort) {
    if ((p->flags & (kIsIpv6 | kIsIpv4)) && is_membership_report(*p)) [[unlikely]] {
      p->drop_with(DropReason::kMembershipReport);
      return;
    }
    if (!r.can_flood) [[unlikely]] {
      p->drop_with(DropReason::kFloodEmpty);
      return;
    }
    mtu = r.vpc.mtu;
    next = r.flood_next;
  } else if (out == kFloodUnknownPort) {
    if (!r.can_flood_unknown) {
      p->drop_with(DropReason::kUnknownUnicast);
      return;
    }
    mtu = r.vpc.mtu;
    next = r.flood_next;
  } else {
    if (out == r.in.index) [[unlikely]] {
      p->drop_with(DropReason::kHairpin);
      return;
    }
    const PortConfig& o = r.cfg.ports[out];
    mtu = o.mtu;
    next = egress_stage(o.out_features);
  }
  // vxlan-encap checks the VPC MTU itself, and answers too-big IPv4 DF packets with ICMP fragmentation-needed.
  if (p->len > mtu + p->l3_offset && !is_gso(*p) && next != Next::kVxlanEncap) [[unlikely]] {
    p->drop_with(DropReason::kTooBig);
    return;
  }
  p->out_port = out;
  p->next = next;
}

template <bool kLearn>
NextSet switch_run(const RunInput& r, std::span<Packet* const> run) noexcept {
  RunCache c;
  NextSet nexts = 0;
  for (Packet* p : run) {
    switch_one<kLearn>(r, c, p);
    nexts |= stage_bit(p->next);
  }
  return nexts;
}

}  // namespace

NextSet L2SwitchStage::process(WorkerContext& ctx, const DataplaneConfig& cfg, std::span<Packet* const> pkts) noexcept {
  const uint32_t now_s = ctx.clock_s();
  return for_each_input_run(ctx, pkts, [&](uint16_t in_port, uint16_t vpc_slot, std::span<Packet* const> run) noexcept {
    const PortConfig* in = cfg.port(in_port);
    const VpcConfig* vpc = cfg.vpc(vpc_slot);
    if (!in || !vpc) [[unlikely]] {
      for (Packet* p : run) p->drop_with(!vpc ? DropReason::kNoVpc : DropReason::kPortDown);
      return stage_bit(Next::kDrop);
    }
    const Next flood_next = !vpc->tunnels.empty() && in->kind != PortKind::kTunnel ? Next::kVxlanEncap : Next::kOutput;
    const bool to_tunnels = flood_next == Next::kVxlanEncap;
    const RunInput r{cfg,
                     *in,
                     *vpc,
                     now_s,
                     flood_next,
                     reaches_another(cfg, vpc->ports, in_port, to_tunnels),
                     reaches_another(cfg, vpc->flood_unknown, in_port, to_tunnels)};
    const bool learn = in->kind == PortKind::kTunnel || !in->port_security;
    return learn ? switch_run<true>(r, run) : switch_run<false>(r, run);
  });
}

}  // namespace vpcd::dp
