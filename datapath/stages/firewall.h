// Stages "firewall-egress" and "firewall-ingress": stateful security groups (datapath/tables/conntrack.h).
//
// firewall-egress runs for packets a guest NIC sends (PortConfig::features): the guest's egress, checked against the
// NIC's egress rules for a new flow. firewall-ingress runs for packets on their way to a guest NIC
// (PortConfig::out_features): the guest's ingress, checked against its ingress rules. A packet between two local NICs
// meets both; the state machine runs once (the first stage marks the packet kCtTracked). Replies and related ICMP
// errors of allowed flows pass; see conntrack.h for TCP, UDP, ICMP and fragments. Which ports get the stages:
// datapath/control/policy_builder.h.
// Not IPv4: ARP and other non-IP frames pass; IPv6 passes a NIC with the default policy and is denied
// (denied_by_rule) on a NIC with groups (rules are IPv4 CIDRs). Frames flooded by the switch (broadcast, unknown
// unicast) do not meet firewall-ingress.
// Drops (charged to the stage's port: in_port for egress, out_port for ingress): denied_by_rule, ct_invalid,
// ct_table_full, fragment_no_first.
// Next: the port's next enabled stage (next_stage of its bitmap), or kDrop.
// Threading: reads the snapshot; the connection table is shared and locked per shard (conn_table.h).
#pragma once

#include <span>
#include <string_view>

#include "datapath/config/dataplane_config.h"
#include "datapath/pipeline/packet.h"
#include "datapath/pipeline/worker_context.h"

namespace vpcd::dp {

struct FirewallEgressStage {
  static constexpr std::string_view kName = "firewall-egress";
  static constexpr Next kId = Next::kFirewallEgress;
  static NextSet process(WorkerContext& ctx, const DataplaneConfig& cfg, std::span<Packet* const> pkts) noexcept;
};

struct FirewallIngressStage {
  static constexpr std::string_view kName = "firewall-ingress";
  static constexpr Next kId = Next::kFirewallIngress;
  static NextSet process(WorkerContext& ctx, const DataplaneConfig& cfg, std::span<Packet* const> pkts) noexcept;
};

// The firewall decision for one packet at one stage: kCount (pass) or the drop reason. Shared by both stages.
DropReason firewall_check(const DataplaneConfig& cfg, Packet& p, bool egress, uint16_t port, uint32_t now_s) noexcept;

}  // namespace vpcd::dp
