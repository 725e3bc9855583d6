// Security group compilation and lookup. See security_groups.h.
#include "datapath/tables/security_groups.h"

#include <algorithm>
#include <map>
#include <set>

#include "datapath/proto/ipv4.h"

namespace vpcd::dp {

using Range = std::pair<uint32_t, uint32_t>;

AddrSet::AddrSet(std::vector<Range> r) {
  std::sort(r.begin(), r.end());
  for (const auto& [lo, hi] : r) {
    if (!hi_.empty() && (hi_.back() == 0xffffffffu || lo <= hi_.back() + 1)) {
      hi_.back() = std::max(hi_.back(), hi);
    } else {
      lo_.push_back(lo);
      hi_.push_back(hi);
    }
  }
}

bool AddrSet::contains(Ipv4Addr a) const noexcept {
  // The last range starting at or before a.
  auto it = std::upper_bound(lo_.begin(), lo_.end(), a.v);
  if (it == lo_.begin()) return false;
  const size_t i = size_t(it - lo_.begin()) - 1;
  return a.v <= hi_[i];
}

namespace {
Range range_of(const Ipv4Prefix& p) { return {p.addr.v & p.mask(), (p.addr.v & p.mask()) | ~p.mask()}; }

// A rule reduced to what a RuleSet needs.
struct FlatRule {
  SgProto proto;
  uint32_t port_min, port_max;
  std::vector<Range> addrs;
};
}  // namespace

class RuleSetBuilder {
 public:
  RuleSet build(const std::vector<FlatRule>& rules) {
    build_ports(rules, SgProto::kTcp, rs_.tcp_);
    build_ports(rules, SgProto::kUdp, rs_.udp_);
    rs_.icmp_ = set_for(rules, [](const FlatRule& r) { return r.proto == SgProto::kAny || r.proto == SgProto::kIcmp; });
    rs_.other_ = set_for(rules, [](const FlatRule& r) { return r.proto == SgProto::kAny; });
    return std::move(rs_);
  }

 private:
  uint32_t intern(std::vector<Range> ranges) {
    if (ranges.empty()) return RuleSet::kNone;
    AddrSet s(std::move(ranges));
    auto key = std::make_pair(s.lows(), s.highs());
    auto it = ids_.find(key);
    if (it != ids_.end()) return it->second;
    const uint32_t id = uint32_t(rs_.sets_.size());
    rs_.sets_.push_back(std::move(s));
    ids_.emplace(std::move(key), id);
    return id;
  }
  template <class Pred>
  uint32_t set_for(const std::vector<FlatRule>& rules, Pred pred) {
    std::vector<Range> all;
    for (const auto& r : rules)
      if (pred(r)) all.insert(all.end(), r.addrs.begin(), r.addrs.end());
    return intern(std::move(all));
  }
  void build_ports(const std::vector<FlatRule>& rules, SgProto p, RuleSet::PortTable& out) {
    std::vector<const FlatRule*> rs;
    std::set<uint32_t> cuts = {0};
    for (const auto& r : rules) {
      if (r.proto != p && r.proto != SgProto::kAny) continue;
      if (r.addrs.empty()) continue;
      rs.push_back(&r);
      cuts.insert(r.port_min);
      if (r.port_max + 1 <= 65535) cuts.insert(r.port_max + 1);
    }
    for (uint32_t start : cuts) {
      std::vector<Range> u;
      for (const FlatRule* r : rs)
        if (r->port_min <= start && start <= r->port_max) u.insert(u.end(), r->addrs.begin(), r->addrs.end());
      const uint32_t id = intern(std::move(u));
      // Merge with the previous interval when it maps to the same set.
      if (!out.set.empty() && out.set.back() == id) continue;
      out.starts.push_back(start);
      out.set.push_back(id);
    }
  }

  RuleSet rs_;
  std::map<std::pair<std::vector<uint32_t>, std::vector<uint32_t>>, uint32_t> ids_;
};

bool RuleSet::allows(uint8_t ip_proto, Ipv4Addr remote, uint16_t dport) const noexcept {
  uint32_t id;
  if (ip_proto == proto::kIpProtoTcp || ip_proto == proto::kIpProtoUdp) {
    const PortTable& t = ip_proto == proto::kIpProtoTcp ? tcp_ : udp_;
    auto it = std::upper_bound(t.starts.begin(), t.starts.end(), uint32_t(dport));
    if (it == t.starts.begin()) return false;
    id = t.set[size_t(it - t.starts.begin()) - 1];
  } else {
    id = ip_proto == proto::kIpProtoIcmp ? icmp_ : other_;
  }
  return id != kNone && sets_[id].contains(remote);
}

std::shared_ptr<const SecurityPolicies> compile_security(const std::vector<SgGroup>& groups,
                                                         const std::vector<SgNic>& nics, uint32_t gen) {
  // Members of each group: the addresses of its NICs.
  std::map<std::string, std::vector<Range>> members;
  for (const auto& n : nics)
    for (const auto& g : n.group_ids)
      for (auto ip : n.ips) members[g].push_back({ip.v, ip.v});
  std::map<std::string, const SgGroup*> by_id;
  for (const auto& g : groups) by_id[g.id] = &g;

  auto flatten = [&](const std::vector<std::string>& ids, SgDirection dir) {
    std::vector<FlatRule> out;
    for (const auto& gid : ids) {
      auto g = by_id.find(gid);
      if (g == by_id.end()) continue;
      for (const auto& r : g->second->rules) {
        if (r.direction != dir) continue;
        FlatRule f{r.proto, r.port_min, r.port_max, {}};
        if (r.proto != SgProto::kTcp && r.proto != SgProto::kUdp) f.port_min = 0, f.port_max = 65535;
        if (r.cidr) {
          f.addrs.push_back(range_of(*r.cidr));
        } else if (auto m = members.find(r.remote_group_id); m != members.end()) {
          f.addrs = m->second;
        }
        out.push_back(std::move(f));
      }
    }
    return out;
  };

  auto out = std::make_shared<SecurityPolicies>();
  out->gen = gen;
  std::map<std::string, std::shared_ptr<const NicPolicy>> cache;  // by sorted group set, or by VPC CIDRs
  for (const auto& n : nics) {
    std::vector<std::string> ids = n.group_ids;
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    std::string key;
    if (ids.empty()) {
      key = "default:";
      for (const auto& c : n.vpc_cidrs) key += c.to_string() + ",";
    } else {
      for (const auto& id : ids) key += id + ",";
    }
    auto& pol = cache[key];
    if (!pol) {
      auto p = std::make_shared<NicPolicy>();
      if (ids.empty()) {
        p->is_default = true;
        p->egress = RuleSetBuilder().build({FlatRule{SgProto::kAny, 0, 65535, {{0u, 0xffffffffu}}}});
        FlatRule in{SgProto::kAny, 0, 65535, {}};
        for (const auto& c : n.vpc_cidrs) in.addrs.push_back(range_of(c));
        p->ingress = RuleSetBuilder().build({in});
      } else {
        p->ingress = RuleSetBuilder().build(flatten(ids, SgDirection::kIngress));
        p->egress = RuleSetBuilder().build(flatten(ids, SgDirection::kEgress));
      }
      pol = std::move(p);
    }
    if (n.port >= out->by_port.size()) out->by_port.resize(size_t(n.port) + 1);
    out->by_port[n.port] = pol;
  }
  return out;
}

}  // namespace vpcd::dp
