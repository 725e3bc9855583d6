// The overlay part of a DataplaneConfig snapshot: the underlay uplink (the one uplink with role underlay or both, API
// rule) and the VXLAN lookup tables. Built by the control thread (snapshot builder) from the uplinks, VPCs, VTEP peers
// and remote NICs; immutable once published.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "datapath/pipeline/packet.h"
#include "datapath/proto/types.h"
#include "datapath/tables/overlay_table.h"
#include "datapath/tables/underlay_neighbors.h"

namespace vpcd::dp {

struct UnderlayConfig {
  uint16_t port = kInvalidPort;  // the uplink's port id (PortKind::kUplink)
  std::string id;                // the uplink object's UUID
  MacAddr mac;                   // the interface's MAC (frames vpcd sends on the underlay come from it)
  Ipv4Prefix address;            // vpcd's own underlay address and its on-link prefix (addr = the host address)
  std::optional<Ipv4Addr> gateway;  // next hop for remote VTEPs off the prefix
  uint16_t vxlan_port = 4789;    // config vxlan_port
  uint32_t mtu = 1500;           // the interface's MTU (VPC mtu + 50 must fit: API rule)
  bool udp_checksum = false;     // compute outer UDP checksums (0 = none is allowed for IPv4, RFC 7348 section 5)
  // Config vxlan-uso: GSO super-frames towards a tunnel leave as UDP segmentation offload frames (one per super-frame,
  // datapath/stages/vxlan_uso.h; their datagrams always carry a UDP checksum), else one frame per segment.
  bool uso = true;

  // The underlay next hop for a remote VTEP: itself when on-link, else the gateway; nullopt when unreachable.
  std::optional<Ipv4Addr> next_hop(Ipv4Addr remote) const noexcept {
    if (Ipv4Prefix{Ipv4Addr{address.addr.v & address.mask()}, address.len}.contains(remote)) return remote;
    return gateway;
  }
};

struct OverlayConfig {
  std::optional<UnderlayConfig> underlay;  // none: no VXLAN (frames to tunnels are dropped as kNoUnderlay)
  std::shared_ptr<const OverlayTable> table = std::make_shared<const OverlayTable>();  // never null
  // Underlay ARP resolutions shared by the workers (one table per underlay, kept across snapshots by the snapshot
  // builder); null: each worker resolves on its own (a single worker, tests).
  std::shared_ptr<UnderlayNeighbors> neighbors;
};

}  // namespace vpcd::dp
