// Stage "l2-switch": the forwarding decision of a VPC's virtual switch (VPP l2-fwd + l2-learn + l2-flood in one pass).
//
// For every packet not dropped and not already decided (out_port == kInvalidPort; arp-responder decides its answers):
//   - destination broadcast/multicast: flood (out_port = kFloodPort) to every other port of the VPC;
//   - destination = the VPC router MAC: kNotRouted (no router stage yet; counted);
//   - destination = a NIC's MAC (static FIB) or a live learned MAC: that port; if that is the input port, kHairpin;
//   - otherwise (unknown unicast, or a learned entry that is aged, or whose port seq no longer matches the snapshot, or
//     that points at a port of another VPC): out_port = kFloodUnknownPort, flooded only to VpcConfig::flood_unknown,
//     the ports that may have unknown MACs behind them (port security off), never to a NIC whose one MAC is known
//     (AWS delivers only to known destinations); with no such port other than the input: kUnknownUnicast;
//   - a broadcast/multicast flood in a VPC with no other port: kFloodEmpty;
//   - a frame longer than the output's MTU + its L2 header (the port's MTU; the VPC MTU when flooding) that is not a
//     GSO super-frame (vnet gso_type NONE or no vnet header): kTooBig.
// Learning: on ports with port_security off, the unicast, non-zero source MAC of every frame that is not a NIC's own
// MAC is learned on the input port (lock-free MacTable, refreshed at most once a second, moves relearned). Ports with
// port_security on need no learning: their only source MAC is in the static FIB.
// Per-batch caches (VPP l2-fwd style): the last destination looked up and the last source learned, valid for one call.
// Next: out_port = a port id, kFloodPort or kFloodUnknownPort, or a drop reason.
// Threading: reads the snapshot; writes the calling worker's packets and the VPC's learned MacTable (lock-free).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "datapath/config/dataplane_config.h"
#include "datapath/pipeline/packet.h"

namespace vpcd::dp {

inline constexpr std::string_view kL2SwitchStageName = "l2-switch";

// `in` is the input port of every packet in pkts, `vpc` its VPC; now_s the worker's monotonic second (aging).
void l2_switch(const DataplaneConfig& cfg, const PortConfig& in, const VpcConfig& vpc, uint32_t now_s,
               std::span<Packet* const> pkts) noexcept;

}  // namespace vpcd::dp
