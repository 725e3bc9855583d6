// SnapshotBuilder: the pure half of the controller. From the desired state and the ports the controller has opened
// (PortBinding), it builds the DatapathSnapshot the workers run: port configs with their kinds and feature bitmaps,
// VPC slots with generations, the per-VPC tables and the rx queue assignment. It touches no OS object, so it is
// unit-tested without root (tests/unit/control/snapshot_builder_test.cc).
//
// Kept across builds (STYLE.md section 4, Snabb's app.configure diffing): a VPC keeps its slot for its whole life
// (a slot reused by another VPC gets a new gen), its learned MacTable as long as it exists, and its FIB / ARP tables
// while neither the VPC nor its member ports changed, so an edit elsewhere does not copy every FIB.
//
// Threading: control thread only.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "datapath/config/dataplane_config.h"
#include "datapath/control/policy_builder.h"
#include "datapath/pipeline/worker.h"
#include "datapath/router_mac.h"
#include "datapath/spec.h"

namespace vpcd::dp {

// A port the controller opened for an object of the desired state.
struct PortBinding {
  std::string object_id;  // the NIC id (guest), uplink id (uplink), or "VPC id/underlay IP" (tunnel)
  PortKind kind = PortKind::kGuest;
  uint16_t port = kInvalidPort;      // port id
  std::shared_ptr<PortRuntime> rt;   // io may be null (tunnel ports; ports whose backend is not up)
  std::vector<unsigned> queue_worker;  // [rx queue] -> worker polling it
  // kTunnel:
  std::string vpc_id;
  Ipv4Addr remote_ip;
  uint16_t uplink = kInvalidPort;
  // kUplink: the interface's MAC and MTU (the overlay builder's underlay config).
  MacAddr mac;
  uint32_t mtu = 1500;
};

class SnapshotBuilder {
 public:
  explicit SnapshotBuilder(unsigned workers) : workers_(workers) {}

  // The snapshot for `d` with `ports` bound (ports naming objects `d` does not have are left out), stamped with
  // `generation`. `port_slots` is the size of the port id space (DataplaneConfig::ports.size()).
  std::shared_ptr<DatapathSnapshot> build(const DesiredState& d, const std::vector<PortBinding>& ports,
                                          size_t port_slots, uint64_t generation);

  // UDP port of VXLAN (config vxlan_port) put into the snapshots' overlay config.
  void set_vxlan_port(uint16_t port) { vxlan_port_ = port; }
  // UnderlayConfig::uso (config vxlan-uso) put into the snapshots' overlay config.
  void set_vxlan_uso(bool on) { vxlan_uso_ = on; }

  // The slot VPC `id` has now, or kNoVpcIndex.
  uint16_t vpc_slot(const std::string& id) const;

  // Routes, security groups and connection tracking (policy_builder.h).
  PolicyBuilder& policy() noexcept { return policy_; }

 private:
  struct VpcTables {
    VpcSpec spec;
    std::vector<std::tuple<uint16_t, MacAddr, std::vector<Ipv4Addr>>> members;  // what fib/arp were built from
    std::shared_ptr<const StaticMacFib> fib;
    std::shared_ptr<const ArpAnswerTable> arp;
    std::vector<uint16_t> ports, tunnels;
    std::vector<Ipv4Addr> gateways;
    std::shared_ptr<MacTable> learned;
  };

  void assign_vpc_slots(const DesiredState& d);

  unsigned workers_;
  uint16_t vxlan_port_ = 4789;
  bool vxlan_uso_ = true;
  // Underlay ARP resolutions the workers share (OverlayConfig::neighbors), for the underlay named by neighbors_key_
  // (uplink id, MAC and address): a new table when that changes.
  std::shared_ptr<UnderlayNeighbors> neighbors_;
  std::string neighbors_key_;
  std::map<std::string, VpcTables> tables_;     // by VPC id
  std::map<std::string, uint16_t> vpc_slots_;   // VPC id -> slot, while the VPC exists
  std::vector<uint32_t> slot_gen_;              // [slot] -> gen of its current (or last) VPC
  std::vector<uint16_t> free_slots_;
  PolicyBuilder policy_;
};

// The VPC router's MAC, router_mac_for(vni), comes from datapath/router_mac.h (shared with the API, which refuses
// it as a guest's MAC).

}  // namespace vpcd::dp
