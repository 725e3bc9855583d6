// Stage "arp-responder": answers ARP requests for the VPC's known addresses in place, so they are never flooded.
//
// A packet is answered when it is an ARP request (op 1) whose target IP is in the VPC's ArpAnswerTable (a NIC's IP ->
// that NIC's MAC, a subnet gateway -> the router MAC), except:
//   - gratuitous ARP (sender IP == target IP) and requests for unknown IPs go on to the switch unchanged;
//   - a request whose answer would be the asker's own MAC (sender hardware address == the known MAC: a guest probing
//     or announcing its own address) goes on to the switch: answering it would make the guest see an address conflict.
// The answer is written over the request (RFC 826 reply): Ethernet dst = the request's Ethernet source, Ethernet src =
// the known MAC, op 2, sender = (known MAC, target IP), target = the request's sender (hardware and protocol address).
// VLAN tags and padding stay as they were; the vnet header is cleared (no offloads on an ARP frame). The packet's
// out_port becomes its in_port, which tells l2-switch the decision is made.
// Next: output with out_port = in_port (answered), or l2-switch. Drops: kNoVpc for a packet of no VPC (the runner
// never sends one).
// Threading: reads the snapshot; writes only the frames of the calling worker's batch.
#pragma once

#include <span>
#include <string_view>

#include "datapath/config/dataplane_config.h"
#include "datapath/pipeline/packet.h"
#include "datapath/pipeline/worker_context.h"

namespace vpcd::dp {

inline constexpr std::string_view kArpResponderStageName = "arp-responder";

// Answers the requests among pkts (all of VPC vpc) in place: out_port = in_port on the answered ones.
void arp_responder(const VpcConfig& vpc, std::span<Packet* const> pkts) noexcept;

struct ArpResponderStage {
  static constexpr std::string_view kName = kArpResponderStageName;
  static constexpr Next kId = Next::kArpResponder;
  static NextSet process(WorkerContext& ctx, const DataplaneConfig& cfg, std::span<Packet* const> pkts) noexcept;
};

}  // namespace vpcd::dp
