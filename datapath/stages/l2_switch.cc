// Stage "l2-switch"; behaviour and threading in l2_switch.h.
#include "datapath/stages/l2_switch.h"

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

NextSet L2SwitchStage::process(WorkerContext& ctx, const DataplaneConfig& cfg, std::span<Packet* const> pkts) noexcept {
  const uint32_t now_s = ctx.clock_s();
  uint16_t last_in = kInvalidPort, last_vpc = kNoVpcIndex;
  const PortConfig* in = nullptr;
  const VpcConfig* vpc = nullptr;
  bool learn = false, can_flood = false, can_flood_unknown = false;
  // Head-end replication to the VPC's VTEP peers happens in vxlan-encap; never for frames that came from the overlay
  // (split horizon).
  Next flood_next = Next::kOutput;
  uint64_t last_src = 0;       // learn cache: MAC (bit 63 set when valid)
  uint64_t last_dst = 0;       // lookup cache: MAC (bit 63 set when valid) -> last_out
  uint16_t last_out = kInvalidPort;
  NextSet nexts = 0;
  const auto one = [&](Packet* p) noexcept {
    if (p->in_port != last_in || p->vpc != last_vpc) [[unlikely]] {
      if (p->vpc != last_vpc) {
        last_vpc = p->vpc;
        vpc = cfg.vpc(last_vpc);
        last_dst = 0;
      }
      last_in = p->in_port;
      in = cfg.port(last_in);
      learn = in && (in->kind == PortKind::kTunnel || !in->port_security);
      flood_next = vpc && !vpc->tunnels.empty() && in && in->kind != PortKind::kTunnel ? Next::kVxlanEncap : Next::kOutput;
      // A flood reaches some port other than `in` (from the overlay: some local port, split horizon); unknown unicast
      // only the ports that may have unknown MACs behind them.
      can_flood = vpc && reaches_another(cfg, vpc->ports, last_in, flood_next == Next::kVxlanEncap);
      can_flood_unknown = vpc && reaches_another(cfg, vpc->flood_unknown, last_in, flood_next == Next::kVxlanEncap);
      last_src = 0;
    }
    if (!in || !vpc) [[unlikely]] {
      p->drop_with(!vpc ? DropReason::kNoVpc : DropReason::kPortDown);
      return;
    }

    if (learn) {
      const MacAddr src = MacAddr::from_bytes(p->src_mac());
      const uint64_t key = src.to_u64() | (uint64_t(1) << 63);
      if (key != last_src) {
        last_src = key;
        if (!src.is_zero() && !src.is_multicast() && src != vpc->router_mac && vpc->fib->find(src) == kInvalidPort)
          vpc->learned->learn(src, in->index, in->rt->seq, now_s);
      }
    }

    const MacAddr dst = MacAddr::from_bytes(p->dst_mac());
    uint16_t out;
    if (dst.is_multicast()) {
      out = kFloodPort;
    } else {
      const uint64_t key = dst.to_u64() | (uint64_t(1) << 63);
      if (key == last_dst) {
        out = last_out;
      } else if (dst == vpc->router_mac) [[unlikely]] {
        if (!vpc->routes || !(p->flags & kIsIpv4)) {
          p->drop_with(DropReason::kNotRouted);
        } else {
          p->next = Next::kRouter;  // the router picks the output port itself
        }
        return;
      } else {
        out = l2_lookup_unicast(cfg, *vpc, dst, now_s);
        if (out == kInvalidPort) out = kFloodUnknownPort;
        last_dst = key;
        last_out = out;
      }
    }

    uint32_t mtu;
    Next next;
    if (out == kFloodPort) {
      if ((p->flags & (kIsIpv6 | kIsIpv4)) && is_membership_report(*p)) [[unlikely]] {
        p->drop_with(DropReason::kMembershipReport);
        return;
      }
      if (!can_flood) [[unlikely]] {
        p->drop_with(DropReason::kFloodEmpty);
        return;
      }
      mtu = vpc->mtu;
      next = flood_next;
    } else if (out == kFloodUnknownPort) {
      if (!can_flood_unknown) {
        p->drop_with(DropReason::kUnknownUnicast);
        return;
      }
      mtu = vpc->mtu;
      next = flood_next;
    } else {
      if (out == in->index) [[unlikely]] {
        p->drop_with(DropReason::kHairpin);
        return;
      }
      const PortConfig& o = cfg.ports[out];
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
  };
  for (Packet* p : pkts) {
    one(p);
    nexts |= stage_bit(p->next);
  }
  return nexts;
}

}  // namespace vpcd::dp
