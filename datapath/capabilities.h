// What the datapath carries out, in one table. The API refuses writes of a kind (or a field) whose capability is not
// carried (501 problem+json naming it), GET /v1/whoami lists the table for the dashboard (which hides the forms of
// what is not carried), and the OpenAPI document marks the refused operations. House rule: the API never accepts what
// the box would silently ignore.
//
// Whoever makes the datapath carry a capability flips its `carried` to true in the same change (with the tests that
// show the datapath doing it); nothing else in the server or the dashboard needs to change.
//
// Threading: compile-time constants.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace vpcd::dp {

enum class Capability : uint8_t {
  kVpcs,            // VPCs: isolated L2 domains with their VNI and MTU
  kSubnets,         // subnets and their gateway address (ARP answered)
  kNics,            // guest NICs with port security
  kNicTap,          // NIC backend "tap"
  kNicNetns,        // NIC backend "netns"
  kNicVhostUser,    // NIC backend "vhost-user"
  kSecurityGroups,  // security groups and NICs' security_group_ids (stateful firewall)
  kUplinks,         // uplinks driven by the datapath
  kVtepPeers,       // VXLAN head-end replication to VTEP peers
  kRemoteNics,      // VXLAN unicast to remote NICs
  kRoutes,          // VPC routes (the router stage)
  kNatGateways,     // SNAT through an uplink
  kFloatingIps,     // 1:1 NAT through an uplink
  kCount
};

struct CapabilityInfo {
  Capability id;
  std::string_view name;    // API name: the kind's URL segment, or "nic-backend-TYPE"
  bool carried;             // true once the datapath carries it out
  std::string_view what;    // for messages: "the datapath does not carry out WHAT yet"
};

inline constexpr std::array<CapabilityInfo, size_t(Capability::kCount)> kCapabilities{{
    {Capability::kVpcs, "vpcs", true, "VPCs"},
    {Capability::kSubnets, "subnets", true, "subnets"},
    {Capability::kNics, "nics", true, "NICs"},
    {Capability::kNicTap, "nic-backend-tap", true, "tap NIC backends"},
    {Capability::kNicNetns, "nic-backend-netns", true, "netns NIC backends"},
    {Capability::kNicVhostUser, "nic-backend-vhost-user", true, "vhost-user NIC backends"},
    {Capability::kSecurityGroups, "security-groups", true, "security groups"},
    {Capability::kUplinks, "uplinks", true, "uplinks"},
    {Capability::kVtepPeers, "vtep-peers", true, "VTEP peers (VXLAN)"},
    {Capability::kRemoteNics, "remote-nics", true, "remote NICs (VXLAN)"},
    {Capability::kRoutes, "routes", true, "routes"},
    {Capability::kNatGateways, "nat-gateways", false, "NAT gateways"},
    {Capability::kFloatingIps, "floating-ips", false, "floating IPs"},
}};

constexpr bool capabilities_in_order() {
  for (size_t i = 0; i < kCapabilities.size(); ++i)
    if (size_t(kCapabilities[i].id) != i) return false;
  return true;
}
static_assert(capabilities_in_order(), "kCapabilities must list every Capability once, in enum order");

constexpr const CapabilityInfo& capability_info(Capability c) { return kCapabilities[size_t(c)]; }
constexpr bool carries(Capability c) { return capability_info(c).carried; }

}  // namespace vpcd::dp
