// Stage "l2-switch": the forwarding decision of a VPC's virtual switch (VPP l2-fwd + l2-learn + l2-flood in one pass).
//
// For every packet it gets (each carries its input port and VPC; a batch may mix ports and VPCs after decapsulation):
//   - destination broadcast/multicast: flood (out_port = kFloodPort) to every other port of the VPC;
//   - destination = the VPC router MAC: IPv4 goes to the router stage (which picks the port); anything else, or a
//     VPC without a route table, is kNotRouted (counted);
//   - destination = a NIC's MAC (static FIB) or a live learned MAC: that port; if that is the input port, kHairpin;
//   - otherwise (unknown unicast, or a learned entry that is aged, or whose port seq no longer matches the snapshot, or
//     that points at a port of another VPC): out_port = kFloodUnknownPort, flooded only to VpcConfig::flood_unknown,
//     the ports that may have unknown MACs behind them (port security off, and the VTEP peers' tunnel ports), never to
//     a NIC whose one MAC is known (AWS delivers only to known destinations); with no such port other than the input:
//     kUnknownUnicast;
//   - a multicast MLD or IGMP membership report (MLDv1 report / done, MLDv2 report; IGMPv1/v2/v3 report, IGMPv2
//     leave): kMembershipReport, never flooded. Reports are for multicast routers only (RFC 4541 2.1.1, as a snooping
//     bridge does) and a VPC has none: its router does not route multicast, and guests are hosts. Flooding them cost
//     a lot: every guest sends 3-4 when its link comes up, each copied to every other port of the VPC; with 800 guests
//     of 100-NIC VPCs brought up in one reconcile pass that was ~300k copies the worker sent one by one (each running
//     the receiving guest's IPv6 input inside its sendto), and unicast waited seconds behind them (issue 12, scale
//     ping). Queries (MLD 130, IGMP 0x11) and all other multicast are flooded as before;
//   - a broadcast/multicast flood in a VPC with no other port: kFloodEmpty;
//   - floods from a local port go to vxlan-encap first when the VPC has VTEP peers (head-end replication there); a
//     flood that came from the overlay reaches local ports only (split horizon), so from a tunnel port a VPC whose
//     other ports are all tunnels is kFloodEmpty / kUnknownUnicast;
//   - a frame longer than the output's MTU + its L2 header (the port's MTU; the VPC MTU when flooding) that is not a
//     GSO super-frame (vnet gso_type NONE or no vnet header): kTooBig.
// Learning: on ports with port_security off (and tunnel ports), the unicast, non-zero source MAC of every frame that is
// not a NIC's own MAC is learned on the input port (lock-free MacTable, refreshed at most once a second, moves
// relearned). The VPC's router MAC is never learned: frames another box's router routed to us through the overlay
// carry it as their source (every box of a VPC routes with the same MAC, router_mac_for(vni)), and frames to it go
// to the router stage here anyway. Ports with port_security on need no learning: their only source MAC is in the static FIB.
// Per-run caches (VPP l2-fwd style): the input port and VPC of the previous packet, the last destination looked up
// and the last source learned; valid for one call, reset when the VPC changes.
// Next: the output port's first egress stage (PortConfig::out_features; output at least), vxlan-encap or output for a
// flood (out_port kFloodPort or kFloodUnknownPort), or
// kDrop with a reason.
// Threading: reads the snapshot; writes the calling worker's packets and the VPC's learned MacTable (lock-free).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "datapath/config/dataplane_config.h"
#include "datapath/pipeline/packet.h"
#include "datapath/pipeline/worker_context.h"

namespace vpcd::dp {

inline constexpr std::string_view kL2SwitchStageName = "l2-switch";

// The port a unicast MAC of the VPC is at (static FIB, then a live learned entry), or kInvalidPort. The router uses it
// for the next hop's MAC.
inline uint16_t l2_lookup_unicast(const DataplaneConfig& cfg, const VpcConfig& vpc, const MacAddr& dst, uint32_t now_s) noexcept {
  uint16_t port = vpc.fib->find(dst);
  if (port != kInvalidPort) return cfg.port(port) ? port : kInvalidPort;
  MacTable::Entry e;
  if (!vpc.learned->lookup(dst, now_s, e)) return kInvalidPort;
  const PortConfig* out = cfg.port(e.port);
  if (!out || uint32_t(out->rt->seq) != e.seq32 || out->vpc != vpc.index) return kInvalidPort;  // stale: flood
  return e.port;
}

// Whether a parsed packet is an MLD (v1 report / done, v2 report) or IGMP (v1/v2/v3 report, v2 leave) membership
// report: what the switch never floods.
bool is_membership_report(const Packet& p) noexcept;

struct L2SwitchStage {
  static constexpr std::string_view kName = kL2SwitchStageName;
  static constexpr Next kId = Next::kL2Switch;
  static NextSet process(WorkerContext& ctx, const DataplaneConfig& cfg, std::span<Packet* const> pkts) noexcept;
};

}  // namespace vpcd::dp
