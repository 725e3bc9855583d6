// OverlayTable: the VXLAN lookups of one snapshot, built by the control thread from the VPCs' VNIs, the VTEP peers
// and the remote NICs, then only read by the workers (immutable, inside the published snapshot):
//   VNI -> VPC slot                       (decap: which tenant a datagram belongs to)
//   (VPC slot, underlay IPv4) -> tunnel   (decap: the outer source must be a VTEP peer or a remote NIC's VTEP of that
//                                          VPC; the tunnel pseudo-port becomes the decapsulated frame's in_port)
// A tunnel is a PortConfig of kind kTunnel: one per (VPC, remote underlay address), shared by the VPC's VTEP peer at
// that address and its remote NICs behind it.
// Threading: immutable after construction; any number of readers.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "datapath/proto/types.h"
#include "datapath/tables/flat_map.h"

namespace vpcd::dp {

class OverlayTable {
 public:
  static constexpr uint16_t kNone = 0xffff;

  struct Tunnel {
    uint16_t vpc;      // VPC slot
    Ipv4Addr remote;   // remote VTEP underlay address
    uint16_t port;     // tunnel pseudo-port id
  };

  OverlayTable() = default;
  OverlayTable(const std::vector<std::pair<uint32_t, uint16_t>>& vni_to_vpc, const std::vector<Tunnel>& tunnels) {
    std::vector<std::pair<uint64_t, uint16_t>> v, t;
    v.reserve(vni_to_vpc.size());
    for (const auto& [vni, vpc] : vni_to_vpc) v.emplace_back(vni_key(vni), vpc);
    t.reserve(tunnels.size());
    for (const Tunnel& x : tunnels) t.emplace_back(tunnel_key(x.vpc, x.remote), x.port);
    vnis_ = FlatU64Map<uint16_t>(v);
    tunnels_ = FlatU64Map<uint16_t>(t);
  }

  // The VPC slot carrying vni, or kNone.
  uint16_t vpc_of_vni(uint32_t vni) const noexcept {
    const uint16_t* p = vnis_.find(vni_key(vni));
    return p ? *p : kNone;
  }
  // The tunnel port of (vpc, remote VTEP), or kNone when that address is not a VTEP of the VPC.
  uint16_t tunnel(uint16_t vpc, Ipv4Addr remote) const noexcept {
    const uint16_t* p = tunnels_.find(tunnel_key(vpc, remote));
    return p ? *p : kNone;
  }
  size_t vni_count() const noexcept { return vnis_.size(); }
  size_t tunnel_count() const noexcept { return tunnels_.size(); }

 private:
  static uint64_t vni_key(uint32_t vni) noexcept { return uint64_t(vni) | (uint64_t(1) << 63); }
  static uint64_t tunnel_key(uint16_t vpc, Ipv4Addr ip) noexcept {
    return (uint64_t(vpc) << 32) | ip.v | (uint64_t(1) << 63);
  }
  FlatU64Map<uint16_t> vnis_;
  FlatU64Map<uint16_t> tunnels_;
};

}  // namespace vpcd::dp
