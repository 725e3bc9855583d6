// DataplaneConfig: the immutable snapshot of everything the workers need to switch frames. The Controller (control
// thread) builds one per generation and publishes it; once published nothing in it is mutated, except through the
// members that say so (PortRuntime counters, the learned MacTable), which have their own lock-free contracts.
//
// Sharing between generations (STYLE.md section 4): per-VPC tables are held by shared_ptr, so a builder reuses an
// unchanged VPC's FIB and ARP table (and must reuse its learned MacTable while the VPC exists); a port's PortRuntime
// (its I/O and counters) is shared by every generation that contains the port.
//
// Indexes: DataplaneConfig::ports is indexed by port id (holes allowed: a hole has rt == nullptr); vpcs by VPC slot
// (holes allowed: gen == 0). A VPC keeps its slot for its whole life; when a slot is reused by another VPC its gen
// changes, so per-worker state keyed by VPC (VpcConfig::key()) never mixes tenants.
// Packet::in_port / out_port are port ids; PortConfig::vpc and Packet::vpc are VPC slots.
//
// Port kinds: kGuest (a NIC: tap, netns, vhost-user), kUplink (an interface the datapath owns an underlay/external
// address on; in no VPC), kTunnel (a remote VTEP of one VPC as a pseudo-port of that VPC: no PortIo of its own, its
// frames leave through `uplink` after vxlan-encap; learning, flooding and counters treat it like any port).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "datapath/config/overlay_config.h"
#include "datapath/pipeline/counters.h"
#include "datapath/proto/types.h"
#include "datapath/tables/flat_map.h"
#include "datapath/tables/conn_table.h"
#include "datapath/tables/mac_table.h"
#include "datapath/tables/route_table.h"
#include "datapath/tables/security_groups.h"

namespace vpcd::dp {

enum class PortKind : uint8_t { kGuest, kUplink, kTunnel };

struct PortConfig {
  uint16_t index = kInvalidPort;  // == position in DataplaneConfig::ports
  PortKind kind = PortKind::kGuest;
  uint16_t vpc = kNoVpcIndex;     // VPC slot; kNoVpcIndex: attached to no VPC (guest: kNoVpc; uplinks: always)
  MacAddr mac;                    // the NIC's MAC (uplink: the interface's MAC)
  std::vector<Ipv4Addr> ips;      // the NIC's IPv4 addresses (port security, ARP answers)
  bool port_security = true;
  uint32_t mtu = 1500;            // L3 MTU of the guest interface; frames up to mtu + L2 header pass
  // Stage bitmaps (stage.h): features = stages a packet received on this port meets (e.g. port-security);
  // out_features = stages a packet on its way to this port meets (e.g. firewall-ingress, vxlan-encap).
  uint32_t features = 0;
  uint32_t out_features = 0;
  // kGuest: the port's PortIo takes GSO super-frames with a vnet header (AF_PACKET with PACKET_VNET_HDR: tap and
  // netns NICs), so tcp-coalesce may hand it what it joined (overlay_builder enables it in VPCs with tunnels).
  bool gso_tx = false;
  Ipv4Addr remote_ip;              // kTunnel: the remote VTEP's underlay address
  uint16_t uplink = kInvalidPort;  // kTunnel: the uplink port its encapsulated frames leave through
  std::shared_ptr<PortRuntime> rt;  // null = hole (no such port); kTunnel: rt->io is null (counters only)

  bool present() const noexcept { return rt != nullptr; }
  bool has_ip(Ipv4Addr a) const noexcept {
    for (auto ip : ips)
      if (ip == a) return true;
    return false;
  }
};

// MAC -> port id of the NICs of one VPC (their configured MACs).
class StaticMacFib {
 public:
  StaticMacFib() = default;
  explicit StaticMacFib(const std::vector<std::pair<MacAddr, uint16_t>>& entries);
  // kInvalidPort when mac is not a NIC's MAC.
  uint16_t find(const MacAddr& mac) const noexcept {
    const uint16_t* p = map_.find(key(mac));
    return p ? *p : kInvalidPort;
  }
  size_t size() const noexcept { return map_.size(); }

 private:
  static uint64_t key(const MacAddr& m) noexcept { return m.to_u64() | (uint64_t(1) << 63); }
  FlatU64Map<uint16_t> map_;
};

// IPv4 -> MAC the VPC answers ARP requests for: every NIC IP -> the NIC's MAC, every subnet gateway -> router MAC.
class ArpAnswerTable {
 public:
  ArpAnswerTable() = default;
  explicit ArpAnswerTable(const std::vector<std::pair<Ipv4Addr, MacAddr>>& entries);
  const MacAddr* find(Ipv4Addr ip) const noexcept { return map_.find(key(ip)); }
  size_t size() const noexcept { return map_.size(); }

 private:
  static uint64_t key(Ipv4Addr a) noexcept { return uint64_t(a.v) | (uint64_t(1) << 32); }
  FlatU64Map<MacAddr> map_;
};

struct VpcConfig {
  uint16_t index = kNoVpcIndex;  // slot == position in DataplaneConfig::vpcs
  uint32_t gen = 0;              // 0 = empty slot; changes when the slot is given to another VPC
  std::string id;                // UUID text
  uint32_t vni = 0;
  uint32_t mtu = 1450;           // guest MTU (used for flooded frames)
  std::vector<uint16_t> ports;   // port ids attached to this VPC, tunnel ports included (broadcast/multicast flood list)
  std::vector<uint16_t> tunnels;  // the tunnel ports among them (head-end replication list)
  // Port ids that may have MACs behind them the VPC does not know: guest ports with port security off (nested VMs,
  // appliances) and tunnel ports. The flood list for unknown unicast: a NIC with port security has one MAC, in the FIB,
  // and never gets unknown unicast.
  std::vector<uint16_t> flood_unknown;
  std::vector<Ipv4Addr> gateways;  // subnet gateways (answered by the router)
  std::shared_ptr<const StaticMacFib> fib;      // never null in a published snapshot
  std::shared_ptr<const ArpAnswerTable> arp;    // never null in a published snapshot
  MacAddr router_mac;            // the VPC router's MAC (gateways answer with it); frames to it are routed
  std::shared_ptr<MacTable> learned;            // never null; shared by all workers and kept across generations
  std::shared_ptr<const RouteTable> routes;     // the router's table (subnets, gateways, routes); null: no router

  bool present() const noexcept { return gen != 0; }
  // (slot, gen): the identity per-worker tables key VPC state by.
  uint64_t key() const noexcept { return (uint64_t(gen) << 16) | index; }
};

struct DataplaneConfig {
  uint64_t generation = 0;
  std::vector<PortConfig> ports;  // index = port id, holes allowed
  std::vector<VpcConfig> vpcs;    // index = VPC index
  // Security groups compiled per port (firewall stages); null when no port has a firewall.
  std::shared_ptr<const SecurityPolicies> security;
  // The connection table (sharded, locked per shard: conn_table.h), shared by every worker and kept across
  // generations for the datapath's whole life; null when no port has a firewall feature.
  std::shared_ptr<ConnTable> conns;
  OverlayConfig overlay;          // the underlay uplink and the VXLAN tables (overlay_config.h)

  const PortConfig* port(uint16_t id) const noexcept {
    return id < ports.size() && ports[id].present() ? &ports[id] : nullptr;
  }
  const VpcConfig* vpc(uint16_t slot) const noexcept {
    return slot < vpcs.size() && vpcs[slot].present() ? &vpcs[slot] : nullptr;
  }
};

// Fills vpc.flood_unknown from the ports in `cfg` that name it (id order): guest ports with port security off and
// tunnel ports. build_vpc_tables calls it; a builder that reuses a VPC's tables calls it again (port security is not
// part of what the FIB and ARP table are built from).
void build_vpc_flood_unknown(const DataplaneConfig& cfg, VpcConfig& vpc);

// The feature bitmaps a port gets from its kind and settings (port security on a guest NIC, ...). The snapshot
// builder calls it for every port; features that need more (security groups, encap) add their bits there.
uint32_t default_features(const PortConfig& p) noexcept;

// Builds the VPC's shared tables from the ports in `cfg` that name it (vpc.ports, vpc.tunnels, flood_unknown, fib, arp) plus the
// given gateways (also stored in vpc.gateways). Convenience for the Controller and tests; keeps `learned` (creates one
// when null) and fills vpc.ports in id order. Tunnel ports enter the flood lists, not the FIB (their MACs are learned).
void build_vpc_tables(const DataplaneConfig& cfg, VpcConfig& vpc, const std::vector<Ipv4Addr>& gateways);

}  // namespace vpcd::dp
