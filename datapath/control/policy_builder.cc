// PolicyBuilder; see policy_builder.h.
#include "datapath/control/policy_builder.h"

#include <set>
#include <unordered_map>

namespace vpcd::dp {

std::shared_ptr<const RouteTable> build_route_table(const VpcSpec& vpc, const std::vector<RouteSpec>& routes) {
  std::vector<RouteInput> in;
  for (const auto& s : vpc.subnets) {
    in.push_back({Ipv4Prefix{Ipv4Addr{s.cidr.addr.v & s.cidr.mask()}, s.cidr.len}, {RouteKind::kConnected, {}, s.gateway}});
    in.push_back({Ipv4Prefix{s.gateway, 32}, {RouteKind::kLocal, {}, {}}});
  }
  for (const auto& r : routes) {
    if (r.vpc_id != vpc.id) continue;
    const Ipv4Prefix dst{Ipv4Addr{r.destination.addr.v & r.destination.mask()}, r.destination.len};
    if (r.next_hop_kind == NextHopKind::kAddress) {
      in.push_back({dst, {RouteKind::kVia, r.next_hop, {}}});
    } else if (r.next_hop_kind == NextHopKind::kBlackhole) {
      in.push_back({dst, {RouteKind::kBlackhole, {}, {}}});
    }
  }
  return std::make_shared<const RouteTable>(in);
}

std::set<std::string> firewalled_vpcs(const DesiredState& d) {
  std::set<std::string> out;
  for (const auto& n : d.nics)
    if (!n.security_group_ids.empty() || !n.port_security) out.insert(n.vpc_id);
  for (const auto& r : d.routes) out.insert(r.vpc_id);
  return out;
}

namespace {
SgRule to_rule(const SecurityRuleSpec& r) {
  SgRule o;
  o.direction = r.direction == RuleDirection::kIngress ? SgDirection::kIngress : SgDirection::kEgress;
  o.proto = r.protocol == RuleProtocol::kTcp ? SgProto::kTcp
            : r.protocol == RuleProtocol::kUdp ? SgProto::kUdp
            : r.protocol == RuleProtocol::kIcmp ? SgProto::kIcmp
                                                 : SgProto::kAny;
  o.port_min = r.port_min;
  o.port_max = r.port_max;
  o.cidr = r.cidr;
  o.remote_group_id = r.remote_group_id;
  return o;
}
}  // namespace

void PolicyBuilder::build(const DesiredState& d, DataplaneConfig& cfg,
                          const std::map<std::string, uint16_t>& vpc_slots) {
  std::unordered_map<std::string, const NicSpec*> nics;
  for (const auto& n : d.nics) nics.emplace(n.id, &n);
  const std::set<std::string> firewalled = firewalled_vpcs(d);

  for (const auto& v : d.vpcs) {
    auto slot = vpc_slots.find(v.id);
    if (slot == vpc_slots.end() || slot->second >= cfg.vpcs.size()) continue;
    cfg.vpcs[slot->second].routes = build_route_table(v, d.routes);
  }

  std::vector<SgNic> sg_nics;
  std::string key;
  std::unordered_map<std::string, const VpcSpec*> vpcs;
  for (const auto& v : d.vpcs) vpcs.emplace(v.id, &v);
  for (auto& pc : cfg.ports) {
    if (!pc.present() || pc.kind != PortKind::kGuest) continue;
    auto n = nics.find(pc.rt->nic_id);
    if (n == nics.end() || !firewalled.count(n->second->vpc_id)) continue;
    auto v = vpcs.find(n->second->vpc_id);
    if (v == vpcs.end()) continue;
    pc.features |= stage_bit(Next::kFirewallEgress);
    pc.out_features |= stage_bit(Next::kFirewallIngress);
    SgNic s{pc.index, n->second->ips, n->second->security_group_ids, v->second->cidrs};
    key += std::to_string(pc.index) + ":";
    for (auto a : s.ips) key += a.to_string() + ",";
    key += "|";
    for (const auto& g : s.group_ids) key += g + ",";
    key += "|";
    for (const auto& c : s.vpc_cidrs) key += c.to_string() + ",";
    key += ";";
    sg_nics.push_back(std::move(s));
  }
  if (sg_nics.empty()) {
    cfg.security = nullptr;
    cfg.conns = conns_;  // kept (connections of NICs that come back), unused while no port has a firewall
    return;
  }
  std::vector<SgGroup> groups;
  for (const auto& g : d.security_groups) {
    SgGroup sg{g.id, {}};
    key += "G" + g.id + ":";
    for (const auto& r : g.rules) {
      sg.rules.push_back(to_rule(r));
      key += std::to_string(int(r.direction)) + "/" + std::to_string(int(r.protocol)) + "/" +
             std::to_string(r.port_min) + "-" + std::to_string(r.port_max) + "/" +
             (r.cidr ? r.cidr->to_string() : "g:" + r.remote_group_id) + ",";
    }
    groups.push_back(std::move(sg));
  }
  if (!last_ || key != last_key_) {
    last_ = compile_security(groups, sg_nics, ++gen_);
    last_key_ = std::move(key);
  }
  cfg.security = last_;
  if (!conns_) conns_ = std::make_shared<ConnTable>(opts_);
  cfg.conns = conns_;
}

}  // namespace vpcd::dp
