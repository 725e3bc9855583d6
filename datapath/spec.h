// The desired state the control plane hands the datapath: plain values, no behaviour. Every stored kind the datapath
// serves has its spec here. The lower layers (pipeline, io, stages) include this header and stats.h, never
// controller.h.
//
// Threading: values; copied freely.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "datapath/proto/types.h"

namespace vpcd::dp {

struct SubnetSpec {
  std::string id;  // UUID text
  Ipv4Prefix cidr;
  Ipv4Addr gateway;  // answered (ARP, ping) by the VPC's router
  friend bool operator==(const SubnetSpec&, const SubnetSpec&) = default;
};

struct VpcSpec {
  std::string id;  // UUID text
  uint32_t vni = 0;
  uint32_t mtu = 1450;  // guest MTU
  std::vector<Ipv4Prefix> cidrs;
  std::vector<SubnetSpec> subnets;
  friend bool operator==(const VpcSpec&, const VpcSpec&) = default;
};

// A persistent multiqueue tap the guest's hypervisor opens by name; vpcd drives its kernel side.
struct TapBackend {
  std::string ifname;  // <= 15 bytes
  uint16_t queues = 1;
  std::optional<uid_t> owner;  // TUNSETOWNER
  std::optional<gid_t> group;  // TUNSETGROUP
  friend bool operator==(const TapBackend&, const TapBackend&) = default;
};

// A veth pair: the far end moved into a named network namespace (created when absent) and configured with the NIC's
// MAC, first IPv4 address, MTU and default route via the subnet gateway; the near end is driven by the datapath.
struct NetnsBackend {
  std::string netns;            // name under /run/netns
  std::string ifname = "eth0";  // name inside the namespace
  friend bool operator==(const NetnsBackend&, const NetnsBackend&) = default;
};

// A vhost-user socket: vpcd is the virtio-net device backend for a QEMU / DPDK virtio-user front-end
// (datapath/io/vhost_user/, datapath/control/vhost_user_nic.cc). Client mode (default): the hypervisor listens on
// `socket` and vpcd connects and reconnects; server mode: vpcd creates the socket with owner/group.
struct VhostUserBackend {
  std::string socket;  // absolute path
  bool server = false;
  uint16_t queues = 1;  // queue pairs
  std::optional<uid_t> owner;
  std::optional<gid_t> group;
  friend bool operator==(const VhostUserBackend&, const VhostUserBackend&) = default;
};

using Backend = std::variant<TapBackend, NetnsBackend, VhostUserBackend>;

struct NicSpec {
  std::string id;  // UUID text
  std::string vpc_id;
  std::string subnet_id;
  MacAddr mac;
  std::vector<Ipv4Addr> ips;
  bool port_security = true;
  std::vector<std::string> security_group_ids;  // empty: the default policy (API.md security-groups)
  Backend backend;
  friend bool operator==(const NicSpec&, const NicSpec&) = default;
};

enum class UplinkRole : uint8_t { kUnderlay, kExternal, kBoth };

// An interface the datapath drives for the underlay (VXLAN) and/or the outside (NAT). vpcd owns `address` on it.
struct UplinkSpec {
  std::string id;
  std::string ifname;
  Ipv4Prefix address;  // the datapath's own address and the on-link prefix (addr is the host address, not canonical)
  std::optional<Ipv4Addr> gateway;  // next hop for off-link destinations
  UplinkRole role = UplinkRole::kUnderlay;
  friend bool operator==(const UplinkSpec&, const UplinkSpec&) = default;
};

// A remote box that carries this VPC: receives its flooded frames (head-end replication).
struct VtepPeerSpec {
  std::string id;
  std::string vpc_id;
  Ipv4Addr underlay_ip;
  friend bool operator==(const VtepPeerSpec&, const VtepPeerSpec&) = default;
};

// A guest on another box: unicast goes straight to its VTEP, its ARP is answered locally.
struct RemoteNicSpec {
  std::string id;
  std::string vpc_id;
  MacAddr mac;
  std::vector<Ipv4Addr> ips;
  Ipv4Addr underlay_ip;
  friend bool operator==(const RemoteNicSpec&, const RemoteNicSpec&) = default;
};

enum class NextHopKind : uint8_t { kAddress, kNatGateway, kBlackhole };

struct RouteSpec {
  std::string id;
  std::string vpc_id;
  Ipv4Prefix destination;
  NextHopKind next_hop_kind = NextHopKind::kAddress;
  Ipv4Addr next_hop;  // when kAddress
  friend bool operator==(const RouteSpec&, const RouteSpec&) = default;
};

enum class RuleDirection : uint8_t { kIngress, kEgress };  // the guest's: egress = what the NIC sends
enum class RuleProtocol : uint8_t { kAny, kTcp, kUdp, kIcmp };

struct SecurityRuleSpec {
  RuleDirection direction = RuleDirection::kIngress;
  RuleProtocol protocol = RuleProtocol::kAny;
  uint16_t port_min = 0, port_max = 65535;  // TCP/UDP only
  std::optional<Ipv4Prefix> cidr;           // exactly one of cidr / remote_group_id
  std::string remote_group_id;
  friend bool operator==(const SecurityRuleSpec&, const SecurityRuleSpec&) = default;
};

struct SecurityGroupSpec {
  std::string id;
  std::string vpc_id;
  std::vector<SecurityRuleSpec> rules;
  friend bool operator==(const SecurityGroupSpec&, const SecurityGroupSpec&) = default;
};

struct DesiredState {
  std::vector<VpcSpec> vpcs;
  std::vector<NicSpec> nics;
  std::vector<UplinkSpec> uplinks;
  std::vector<VtepPeerSpec> vtep_peers;
  std::vector<RemoteNicSpec> remote_nics;
  std::vector<RouteSpec> routes;
  std::vector<SecurityGroupSpec> security_groups;
  friend bool operator==(const DesiredState&, const DesiredState&) = default;
};

enum class NicStatus : uint8_t { kUp, kDown, kError };
constexpr std::string_view nic_status_name(NicStatus s) {
  return s == NicStatus::kUp ? "up" : s == NicStatus::kDown ? "down" : "error";
}

struct NicState {
  NicStatus status = NicStatus::kDown;
  std::string detail;  // human-readable: why down or error ("namespace ns1: permission denied", "no carrier")
  std::string host_ifname;  // the interface the datapath drives (tap name, or the veth near end)
  friend bool operator==(const NicState&, const NicState&) = default;
};

}  // namespace vpcd::dp
