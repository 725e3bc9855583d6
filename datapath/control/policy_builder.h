// PolicyBuilder: the routing and security part of a snapshot (issue 9), kept apart from SnapshotBuilder: each VPC's
// RouteTable (subnets, gateways, routes), the compiled security groups of every guest NIC, the firewall feature bits,
// and the connection table the firewall stages share.
//
// When a VPC gets firewalls: a NIC of it has security groups, or a NIC has port security off, or the VPC has routes.
// Only then can a NIC receive traffic from outside the VPC's CIDRs or be subject to rules; then every guest NIC of
// the VPC gets firewall-egress (features) and firewall-ingress (out_features), the default policy included. A plain
// VPC of protected NICs skips both stages: its default policy (all egress, ingress only from the VPC) allows
// everything its port security lets in, so the fast path pays nothing for it.
//
// Generations: SecurityPolicies::gen is bumped whenever the inputs of the compilation change (rules, NIC groups,
// NIC addresses, ports, VPC CIDRs), so conntrack entries reclassify at their next packet; unchanged inputs reuse the
// last compiled object. Remote groups count local NICs only (remote NICs carry no group membership in the API).
// The ConnTable is created on first need and kept for the builder's life (connections survive config changes).
//
// Threading: control thread only.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>

#include "datapath/config/dataplane_config.h"
#include "datapath/spec.h"

namespace vpcd::dp {

// The VPCs whose guest ports get the firewall stages: a NIC with security groups or with port security off, or a
// route. In the others every frame between two NICs with port security on is allowed (the default policy), which
// the kernel fast path relies on (kernel_fastpath.h).
std::set<std::string> firewalled_vpcs(const DesiredState& d);

class PolicyBuilder {
 public:
  explicit PolicyBuilder(ConnTableOptions opts = {}) : opts_(opts) {}
  void set_conntrack_options(const ConnTableOptions& o) { opts_ = o; }

  // Fills cfg.vpcs[*].routes, cfg.security, cfg.conns and the guest ports' firewall bits. cfg's ports and VPC slots
  // must be set; vpc_slots maps VPC ids to slots.
  void build(const DesiredState& d, DataplaneConfig& cfg, const std::map<std::string, uint16_t>& vpc_slots);

  const std::shared_ptr<ConnTable>& conns() const noexcept { return conns_; }

 private:
  ConnTableOptions opts_;
  std::shared_ptr<ConnTable> conns_;
  std::string last_key_;  // canonical text of the last compilation's inputs
  std::shared_ptr<const SecurityPolicies> last_;
  uint32_t gen_ = 0;
};

// The RouteTable of one VPC: connected subnets, gateways (local), routes (address -> via, blackhole). Routes to a
// NAT gateway are left out (NAT is not carried yet; the API refuses them).
std::shared_ptr<const RouteTable> build_route_table(const VpcSpec& vpc, const std::vector<RouteSpec>& routes);

}  // namespace vpcd::dp
