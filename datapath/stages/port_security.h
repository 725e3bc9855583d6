// Stage "port-security": on a port with port_security on, a guest may send only from its own addresses.
//
// Rules, in order, for every packet not already dropped (all packets of a batch come from the same port):
//   - VLAN-tagged frame (kHasVlan): kVlanTagged. Guest NICs are untagged access ports.
//   - Ethernet source MAC != the NIC's MAC: kSpoofedSourceMac.
//   - ARP: sender hardware address != the NIC's MAC, or sender IP neither one of the NIC's IPs nor 0.0.0.0 (an RFC 5227
//     probe): kSpoofedArp.
//   - IPv4: source one of the NIC's IPs; 0.0.0.0 only for a DHCP client datagram (UDP 68 -> 67, not a fragment);
//     otherwise kSpoofedSourceIp.
//   - IPv6: the NIC has no configured IPv6 addresses, so only the unspecified source (::, DAD and MLD reports) and
//     link-local sources (fe80::/10: neighbour discovery, router solicitation) pass, always with the NIC's MAC (checked
//     above). Any other IPv6 source: kSpoofedSourceIp. The interface identifier is not tied to the MAC: guests use
//     RFC 7217 stable-privacy link-local addresses.
//   - Other EtherTypes (LLDP, ...) pass once the source MAC matched: they stay inside the VPC's L2 domain.
// Ports with port_security off are not checked here (the switch learns their source MACs instead): the stage runs only
// for ports whose feature bitmap has it (default_features(): guest NICs with port_security on).
// Next: the next stage the input port enables (arp-responder at least), or kDrop with a reason.
// Threading: reads the snapshot's PortConfig and the packets of the calling worker's batch only.
#pragma once

#include <span>
#include <string_view>

#include "datapath/config/dataplane_config.h"
#include "datapath/pipeline/packet.h"
#include "datapath/pipeline/worker_context.h"

namespace vpcd::dp {

inline constexpr std::string_view kPortSecurityStageName = "port-security";

// Checks every packet received on `in` (sets drop only; for tests and the stage).
void port_security(const PortConfig& in, std::span<Packet* const> pkts) noexcept;

struct PortSecurityStage {
  static constexpr std::string_view kName = kPortSecurityStageName;
  static constexpr Next kId = Next::kPortSecurity;
  static void process(WorkerContext& ctx, const DataplaneConfig& cfg, std::span<Packet* const> pkts) noexcept;
};

}  // namespace vpcd::dp
