// The overlay half of the snapshot builder (issue 8): from the desired state's uplinks, VTEP peers and remote NICs
// and the ports the controller bound for them, it fills DataplaneConfig::overlay (the underlay uplink, VNI -> VPC and
// (VPC, VTEP) -> tunnel lookups), gives tunnel ports their egress feature (vxlan-encap), keeps only VTEP peers in each
// VPC's head-end replication list, and adds remote NICs to their VPC's static FIB (MAC -> the tunnel of their VTEP)
// and ARP answer table (their IPs, answered locally instead of flooded across the underlay).
//
// Pure: no OS objects; called by SnapshotBuilder::build on the control thread.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "datapath/config/dataplane_config.h"
#include "datapath/spec.h"

namespace vpcd::dp {

struct PortBinding;

// "VPC id/underlay IP": the object id of a tunnel port (PortBinding::object_id, Stats::tunnels key).
std::string tunnel_key(const std::string& vpc_id, Ipv4Addr underlay_ip);

void build_overlay(const DesiredState& d, const std::vector<PortBinding>& ports,
                   const std::map<std::string, uint16_t>& vpc_slots, uint16_t vxlan_port, DataplaneConfig& cfg);

}  // namespace vpcd::dp
