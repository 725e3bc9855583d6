// The underlay ARP resolutions the workers share; see underlay_neighbors.h.
#include "datapath/tables/underlay_neighbors.h"

namespace vpcd::dp {

void UnderlayNeighbors::learn(Ipv4Addr ip, const MacAddr& mac, uint64_t now_ms) noexcept {
  if (ip.v == 0 || mac.is_multicast() || mac.is_zero()) return;
  std::scoped_lock lk(mu_);
  Entry* slot = nullptr;
  Entry* oldest = &entries_[0];
  for (Entry& e : entries_) {
    if (e.ip == ip.v) {
      slot = &e;
      break;
    }
    if (!slot && e.ip == 0) slot = &e;  // the first free one, unless ip is further on
    if (e.confirmed_ms < oldest->confirmed_ms) oldest = &e;
  }
  if (!slot) slot = oldest;
  const bool same = slot->ip == ip.v;
  slot->ip = ip.v;
  slot->mac = mac;
  slot->confirmed_ms = same && slot->confirmed_ms > now_ms ? slot->confirmed_ms : now_ms;
  version_.fetch_add(1, std::memory_order_release);
}

bool UnderlayNeighbors::lookup(Ipv4Addr ip, MacAddr* mac, uint64_t* confirmed_ms) const noexcept {
  if (ip.v == 0) return false;
  std::scoped_lock lk(mu_);
  for (const Entry& e : entries_) {
    if (e.ip != ip.v) continue;
    *mac = e.mac;
    *confirmed_ms = e.confirmed_ms;
    return true;
  }
  return false;
}

}  // namespace vpcd::dp
