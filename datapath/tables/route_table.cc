// RouteTable construction. See route_table.h.
#include "datapath/tables/route_table.h"

#include <algorithm>

namespace vpcd::dp {

RouteTable::RouteTable(const std::vector<RouteInput>& entries) {
  // Order: connected first, then local and routes, so that later entries with the same key replace earlier ones
  // (FlatU64Map keeps the last duplicate).
  std::vector<const RouteInput*> order;
  for (const auto& e : entries)
    if (e.route.kind == RouteKind::kConnected) order.push_back(&e);
  for (const auto& e : entries)
    if (e.route.kind != RouteKind::kConnected && e.route.kind != RouteKind::kLocal) order.push_back(&e);
  for (const auto& e : entries)
    if (e.route.kind == RouteKind::kLocal) order.push_back(&e);
  std::vector<std::pair<uint64_t, Route>> items;
  for (const RouteInput* e : order) {
    const Ipv4Prefix& p = e->destination;
    items.emplace_back(key(p.len, p.addr.v & p.mask()), e->route);
    lens_ |= uint64_t(1) << p.len;
    if (e->route.kind == RouteKind::kConnected) subnets_.emplace_back(p, e->route.gateway);
  }
  map_ = FlatU64Map<Route>(items);
}

Ipv4Addr RouteTable::source_for(Ipv4Addr src) const noexcept {
  for (const auto& [p, gw] : subnets_)
    if (p.contains(src)) return gw;
  return subnets_.empty() ? Ipv4Addr{} : subnets_.front().second;
}

}  // namespace vpcd::dp
