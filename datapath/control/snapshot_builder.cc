// SnapshotBuilder; see snapshot_builder.h.
#include "datapath/control/snapshot_builder.h"

#include <set>
#include <variant>
#include <unordered_map>

#include "datapath/control/overlay_builder.h"

namespace vpcd::dp {

uint16_t SnapshotBuilder::vpc_slot(const std::string& id) const {
  auto it = vpc_slots_.find(id);
  return it == vpc_slots_.end() ? kNoVpcIndex : it->second;
}

void SnapshotBuilder::assign_vpc_slots(const DesiredState& d) {
  std::set<std::string> present;
  for (const auto& v : d.vpcs) present.insert(v.id);
  for (auto it = vpc_slots_.begin(); it != vpc_slots_.end();) {
    if (present.count(it->first)) {
      ++it;
      continue;
    }
    free_slots_.push_back(it->second);
    it = vpc_slots_.erase(it);
  }
  for (const auto& v : d.vpcs) {
    if (vpc_slots_.count(v.id)) continue;
    uint16_t slot;
    if (!free_slots_.empty()) {
      slot = free_slots_.back();
      free_slots_.pop_back();
    } else {
      slot = uint16_t(slot_gen_.size());
      slot_gen_.push_back(0);
    }
    ++slot_gen_[slot];
    vpc_slots_.emplace(v.id, slot);
  }
}

std::shared_ptr<DatapathSnapshot> SnapshotBuilder::build(const DesiredState& d, const std::vector<PortBinding>& ports,
                                                         size_t port_slots, uint64_t generation) {
  auto cfg = std::make_shared<DataplaneConfig>();
  cfg->generation = generation;
  cfg->ports.resize(port_slots);
  auto snap = std::make_shared<DatapathSnapshot>();
  snap->rx.resize(workers_);

  assign_vpc_slots(d);
  cfg->vpcs.resize(slot_gen_.size());
  std::unordered_map<std::string, const VpcSpec*> vpcs;
  for (const auto& v : d.vpcs) {
    vpcs.emplace(v.id, &v);
    const uint16_t slot = vpc_slots_.at(v.id);
    VpcConfig& vc = cfg->vpcs[slot];
    vc.index = slot;
    vc.gen = slot_gen_[slot];
    vc.id = v.id;
    vc.vni = v.vni;
    vc.mtu = v.mtu;
    vc.router_mac = router_mac_for(v.vni);
  }
  std::unordered_map<std::string, const NicSpec*> nics;
  for (const auto& n : d.nics) nics.emplace(n.id, &n);
  std::set<std::string> uplinks;
  for (const auto& u : d.uplinks) uplinks.insert(u.id);

  for (const PortBinding& b : ports) {
    if (!b.rt || b.port >= port_slots) continue;
    PortConfig pc;
    pc.index = b.port;
    pc.kind = b.kind;
    pc.rt = b.rt;
    switch (b.kind) {
      case PortKind::kGuest: {
        auto n = nics.find(b.object_id);
        if (n == nics.end()) continue;
        const NicSpec& spec = *n->second;
        auto v = vpcs.find(spec.vpc_id);
        pc.vpc = v == vpcs.end() ? kNoVpcIndex : vpc_slots_.at(spec.vpc_id);
        pc.mac = spec.mac;
        pc.ips = spec.ips;
        pc.port_security = spec.port_security;
        pc.mtu = v == vpcs.end() ? 1500 : v->second->mtu;
        pc.gso_tx = !std::holds_alternative<VhostUserBackend>(spec.backend);  // tap, netns: AF_PACKET ports
        break;
      }
      case PortKind::kUplink:
        if (!uplinks.count(b.object_id)) continue;
        break;
      case PortKind::kTunnel: {
        auto v = vpcs.find(b.vpc_id);
        if (v == vpcs.end()) continue;
        pc.vpc = vpc_slots_.at(b.vpc_id);
        pc.mtu = v->second->mtu;
        pc.port_security = false;
        pc.remote_ip = b.remote_ip;
        pc.uplink = b.uplink;
        break;
      }
    }
    pc.features = default_features(pc);
    cfg->ports[b.port] = std::move(pc);
    for (unsigned q = 0; q < b.queue_worker.size(); ++q)
      if (b.queue_worker[q] < workers_) snap->rx[b.queue_worker[q]].push_back(RxQueueRef{b.port, uint16_t(q)});
  }

  std::map<std::string, VpcTables> next_tables;
  for (const VpcSpec& vs : d.vpcs) {
    VpcConfig& vc = cfg->vpcs[vpc_slots_.at(vs.id)];
    VpcTables t;
    t.spec = vs;
    for (const auto& pc : cfg->ports)
      if (pc.present() && pc.vpc == vc.index) t.members.emplace_back(pc.index, pc.mac, pc.ips);
    auto old = tables_.find(vs.id);
    if (old != tables_.end()) t.learned = old->second.learned;  // learned MACs live as long as the VPC
    if (old != tables_.end() && old->second.spec == vs && old->second.members == t.members) {
      VpcTables& o = old->second;
      t.fib = o.fib;
      t.arp = o.arp;
      t.ports = o.ports;
      t.tunnels = o.tunnels;
      t.gateways = o.gateways;
      vc.fib = t.fib;
      vc.arp = t.arp;
      vc.ports = t.ports;
      vc.tunnels = t.tunnels;
      vc.gateways = t.gateways;
      vc.learned = t.learned;
      build_vpc_flood_unknown(*cfg, vc);  // port security is not among the members: computed every time
    } else {
      std::vector<Ipv4Addr> gateways;
      for (const auto& s : vs.subnets) gateways.push_back(s.gateway);
      vc.learned = t.learned;
      build_vpc_tables(*cfg, vc, gateways);
      t.fib = vc.fib;
      t.arp = vc.arp;
      t.ports = vc.ports;
      t.tunnels = vc.tunnels;
      t.gateways = vc.gateways;
      t.learned = vc.learned;
    }
    next_tables.emplace(vs.id, std::move(t));
  }
  tables_ = std::move(next_tables);
  policy_.build(d, *cfg, vpc_slots_);
  build_overlay(d, ports, vpc_slots_, vxlan_port_, *cfg);
  if (cfg->overlay.underlay) {
    UnderlayConfig& u = *cfg->overlay.underlay;
    u.uso = vxlan_uso_;
    std::string key = u.id + "/" + u.mac.to_string() + "/" + u.address.addr.to_string();
    if (!neighbors_ || key != neighbors_key_) {
      neighbors_ = std::make_shared<UnderlayNeighbors>();
      neighbors_key_ = std::move(key);
    }
    cfg->overlay.neighbors = neighbors_;
  }
  snap->config = std::move(cfg);
  return snap;
}

}  // namespace vpcd::dp
