// DataplaneConfig: the immutable snapshot of everything the workers need to switch frames. The Controller (control
// thread) builds one per generation and publishes it; once published nothing in it is mutated, except through the
// members that say so (PortRuntime counters, the learned MacTable), which have their own lock-free contracts.
//
// Sharing between generations (STYLE.md section 4): per-VPC tables are held by shared_ptr, so a builder reuses an
// unchanged VPC's FIB and ARP table (and must reuse its learned MacTable while the VPC exists); a port's PortRuntime
// (its I/O and counters) is shared by every generation that contains the port.
//
// Indexes: DataplaneConfig::ports is indexed by port id (holes allowed: a hole has rt == nullptr); vpcs by VPC index.
// Packet::in_port / out_port are port ids; PortConfig::vpc is a VPC index.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "datapath/pipeline/counters.h"
#include "datapath/proto/types.h"
#include "datapath/tables/flat_map.h"
#include "datapath/tables/mac_table.h"

namespace vpcd::dp {

inline constexpr uint16_t kNoVpcIndex = 0xffff;

struct PortConfig {
  uint16_t index = kInvalidPort;  // == position in DataplaneConfig::ports
  uint16_t vpc = kNoVpcIndex;     // index into DataplaneConfig::vpcs; kNoVpcIndex: attached to no VPC (kNoVpc)
  MacAddr mac;                    // the NIC's MAC
  std::vector<Ipv4Addr> ips;      // the NIC's IPv4 addresses (port security, ARP answers)
  bool port_security = true;
  uint32_t mtu = 1500;            // L3 MTU of the guest interface; frames up to mtu + L2 header pass
  std::shared_ptr<PortRuntime> rt;  // null = hole (no such port)

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
  uint16_t index = kNoVpcIndex;  // == position in DataplaneConfig::vpcs
  std::string id;                // UUID text
  uint32_t vni = 0;
  uint32_t mtu = 1450;           // guest MTU (used for flooded frames)
  std::vector<uint16_t> ports;   // port ids attached to this VPC (flood list for broadcast / multicast)
  // Port ids that may have MACs behind them the VPC does not know (port security off: nested VMs, appliances): the
  // flood list for unknown unicast. A NIC with port security has one MAC, in the FIB, and never gets unknown unicast.
  std::vector<uint16_t> flood_unknown;
  std::shared_ptr<const StaticMacFib> fib;      // never null in a published snapshot
  std::shared_ptr<const ArpAnswerTable> arp;    // never null in a published snapshot
  MacAddr router_mac;            // the VPC router's MAC (gateways answer with it); frames to it are routed
  std::shared_ptr<MacTable> learned;            // never null; shared by all workers and kept across generations
};

struct DataplaneConfig {
  uint64_t generation = 0;
  std::vector<PortConfig> ports;  // index = port id, holes allowed
  std::vector<VpcConfig> vpcs;    // index = VPC index

  const PortConfig* port(uint16_t id) const noexcept {
    return id < ports.size() && ports[id].present() ? &ports[id] : nullptr;
  }
};

// Fills vpc.flood_unknown from the ports in `cfg` that name it (id order).
void build_vpc_flood_unknown(const DataplaneConfig& cfg, VpcConfig& vpc);

// Builds the VPC's shared tables from the ports in `cfg` that name it (vpc.ports, flood_unknown, fib, arp) plus the
// given gateways.
// Convenience for the Controller and tests; keeps `learned` (creates one when null) and fills vpc.ports in id order.
void build_vpc_tables(const DataplaneConfig& cfg, VpcConfig& vpc, const std::vector<Ipv4Addr>& gateways);

}  // namespace vpcd::dp
