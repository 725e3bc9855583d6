// Stage "port-security": on a port with port_security on, a guest may send only from its own addresses.
//
// Rules, in order, for every packet not already dropped (checked against its own input port):
//   - VLAN-tagged frame (kHasVlan): kVlanTagged. Guest NICs are untagged access ports.
//   - Ethernet source MAC != the NIC's MAC: kSpoofedSourceMac.
//   - EtherType other than IPv4, ARP, IPv6 (802.3 LLC/SNAP frames, LLDP, ...): kEthertypeNotAllowed. A NIC that needs
//     them runs with port security off.
//   - ARP: sender hardware address != the NIC's MAC, or sender IP neither one of the NIC's IPs nor 0.0.0.0 (an RFC 5227
//     probe): kSpoofedArp.
//   - IPv4: source one of the NIC's IPs, except what a DHCP client in INIT / INIT-REBOOT sends (RFC 2131 4.1, 4.4):
//     source 0.0.0.0 only for UDP 68 -> 67 to 255.255.255.255 and the broadcast MAC, not a fragment, carrying a
//     BOOTREQUEST (op 1, htype 1, hlen 6) whose chaddr is the NIC's MAC; otherwise kSpoofedSourceIp. ICMP redirects
//     (type 5) from a guest: kRaGuard.
//   - IPv6: the NIC has no configured IPv6 addresses, so only the unspecified source (::, DAD and MLD reports) and
//     link-local sources (fe80::/10: neighbour discovery, router solicitation) pass, always with the NIC's MAC (checked
//     above). Any other IPv6 source: kSpoofedSourceIp. The interface identifier is not tied to the MAC: guests use
//     RFC 7217 stable-privacy link-local addresses.
//     RA guard (RFC 6105): router advertisements (134) and redirects (137) from a guest: kRaGuard (the VPC's router
//     is the only router; a guest's RA would make the others route through it).
//     ND (RFC 4861) is checked against the NIC: router / neighbour solicitations and neighbour advertisements must be
//     well formed (their fixed part present, options of non-zero length inside the message), a source / target
//     link-layer address option must carry the NIC's MAC, NS from :: carries no source link-layer option, and an NA's
//     target must be the packet's own (link-local) source address: a guest answers only for itself. Else kSpoofedNd.
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
  static NextSet process(WorkerContext& ctx, const DataplaneConfig& cfg, std::span<Packet* const> pkts) noexcept;
};

}  // namespace vpcd::dp
