// RouteTable: one VPC's IPv4 routing table, longest prefix match, built by the control thread and read by every
// worker from the snapshot (immutable after build).
//
// Entries: every subnet (kConnected: the destination itself is the next hop), every subnet gateway as a /32 kLocal
// (the router's own address: pinged, never forwarded), and the VPC's routes: next hop an address in the VPC
// (kVia: resolved per packet to the NIC that owns it through the VPC's ARP table) or kBlackhole. A route whose
// destination equals a subnet replaces the connected entry (an explicit route wins on the same prefix).
//
// Lookup: one FlatU64Map per table keyed by (prefix length, masked address), probed from the longest length present
// down to the shortest (a bitmask of the lengths present skips the others): a handful of probes for real tables.
//
// Threading: immutable after construction.
#pragma once

#include <cstdint>
#include <vector>

#include "datapath/proto/types.h"
#include "datapath/tables/flat_map.h"

namespace vpcd::dp {

enum class RouteKind : uint8_t { kConnected, kLocal, kVia, kBlackhole };

struct Route {
  RouteKind kind = RouteKind::kConnected;
  Ipv4Addr via;        // kVia: the next hop address
  Ipv4Addr gateway;    // kConnected: the subnet's gateway (source of ICMP errors about it)
};

struct RouteInput {
  Ipv4Prefix destination;
  Route route;
};

class RouteTable {
 public:
  RouteTable() = default;
  explicit RouteTable(const std::vector<RouteInput>& entries);

  // The longest-prefix route for dst, or nullptr.
  const Route* lookup(Ipv4Addr dst) const noexcept {
    uint64_t lens = lens_;
    while (lens) {
      const unsigned len = 63 - unsigned(__builtin_clzll(lens));
      lens &= ~(uint64_t(1) << len);
      const uint32_t mask = len == 0 ? 0 : ~uint32_t(0) << (32 - len);
      if (const Route* r = map_.find(key(len, dst.v & mask))) return r;
    }
    return nullptr;
  }
  // Is a the router's own address (a gateway)?
  bool is_local(Ipv4Addr a) const noexcept {
    const Route* r = map_.find(key(32, a.v));
    return r && r->kind == RouteKind::kLocal;
  }
  // A gateway address to send ICMP errors from for a packet from src: the gateway of src's subnet, else the first.
  Ipv4Addr source_for(Ipv4Addr src) const noexcept;
  size_t size() const noexcept { return map_.size(); }

 private:
  static uint64_t key(unsigned len, uint32_t addr) noexcept { return (uint64_t(len + 1) << 32) | addr; }
  FlatU64Map<Route> map_;
  uint64_t lens_ = 0;  // bit n set: some entry has prefix length n
  std::vector<std::pair<Ipv4Prefix, Ipv4Addr>> subnets_;  // (subnet, gateway) for source_for
};

}  // namespace vpcd::dp
