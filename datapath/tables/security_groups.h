// Security groups compiled for the datapath: per NIC port, one RuleSet per direction (the guest's directions: egress =
// what the NIC sends, ingress = what it receives), answering "does a rule allow (protocol, remote address, port)?".
//
// Semantics (API.md): allow rules only. A NIC with no group gets the default policy: all egress, ingress only from the
// VPC's own CIDRs. A NIC with groups: a flow passes where a rule of one of its groups allows it in that direction (a
// direction with no rule denies everything). A rule names a protocol (tcp, udp, icmp, any; ports only for tcp/udp:
// the destination port of the flow's opening packet), and either a CIDR or a remote group, which stands for the
// addresses of the NICs that are members of that group now (so the compiled sets follow NICs joining and leaving).
//
// Lookup structure (built once per snapshot by the control thread, then read-only): per direction and protocol, the
// port space is cut into elementary intervals at every rule's port_min and port_max + 1; each interval points to the
// union of the address ranges of the rules that cover it, stored as sorted disjoint [lo, hi] ranges. A lookup is two
// binary searches (the port interval, then the address range), independent of the number of rules' order. Identical
// address sets are stored once. NICs with the same groups (and the same VPC for the default) share one NicPolicy.
//
// Generations: SecurityPolicies::gen changes whenever anything that can change a verdict changes (rules, membership,
// NIC addresses, ports). Conntrack entries remember the gen they were classified with and are reclassified when it
// differs (conntrack.h), which is how a removed rule cuts established flows at their next packet.
//
// Threading: compile_security() runs on the control thread; the result is immutable and shared by snapshots.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "datapath/proto/types.h"

namespace vpcd::dp {

enum class SgDirection : uint8_t { kIngress, kEgress };
enum class SgProto : uint8_t { kAny, kTcp, kUdp, kIcmp };

struct SgRule {
  SgDirection direction = SgDirection::kIngress;
  SgProto proto = SgProto::kAny;
  uint16_t port_min = 0, port_max = 65535;  // tcp/udp only
  std::optional<Ipv4Prefix> cidr;           // set, or remote_group_id is
  std::string remote_group_id;
};

struct SgGroup {
  std::string id;
  std::vector<SgRule> rules;
};

// A NIC as the compiler needs it: its datapath port, addresses, groups, and its VPC's CIDRs (for the default policy).
struct SgNic {
  uint16_t port = 0xffff;
  std::vector<Ipv4Addr> ips;
  std::vector<std::string> group_ids;  // empty: the default policy
  std::vector<Ipv4Prefix> vpc_cidrs;
};

// Sorted disjoint inclusive address ranges.
class AddrSet {
 public:
  AddrSet() = default;
  explicit AddrSet(std::vector<std::pair<uint32_t, uint32_t>> ranges);  // merges and sorts
  bool contains(Ipv4Addr a) const noexcept;
  bool empty() const noexcept { return lo_.empty(); }
  const std::vector<uint32_t>& lows() const noexcept { return lo_; }
  const std::vector<uint32_t>& highs() const noexcept { return hi_; }

 private:
  std::vector<uint32_t> lo_, hi_;
};

// One direction of one policy.
class RuleSet {
 public:
  // Protocols: TCP, UDP (by port), ICMP and every other IP protocol (no ports).
  bool allows(uint8_t ip_proto, Ipv4Addr remote, uint16_t dport) const noexcept;
  size_t address_sets() const noexcept { return sets_.size(); }

 private:
  friend class RuleSetBuilder;
  struct PortTable {
    std::vector<uint32_t> starts;  // sorted; interval i is [starts[i], starts[i+1]) (the last ends at 65536)
    std::vector<uint32_t> set;     // [interval] -> index into sets_, or kNone
  };
  static constexpr uint32_t kNone = 0xffffffff;
  PortTable tcp_, udp_;
  uint32_t icmp_ = kNone, other_ = kNone;
  std::vector<AddrSet> sets_;
};

struct NicPolicy {
  bool is_default = false;
  RuleSet ingress, egress;
  const RuleSet& dir(SgDirection d) const noexcept { return d == SgDirection::kIngress ? ingress : egress; }
};

struct SecurityPolicies {
  uint32_t gen = 0;
  std::vector<std::shared_ptr<const NicPolicy>> by_port;  // [port id]; null: no firewall on that port

  const NicPolicy* port(uint16_t id) const noexcept { return id < by_port.size() ? by_port[id].get() : nullptr; }
};

// Builds the policies of every NIC. Rules naming an unknown remote group match nothing. gen is stored as given.
std::shared_ptr<const SecurityPolicies> compile_security(const std::vector<SgGroup>& groups,
                                                         const std::vector<SgNic>& nics, uint32_t gen);

}  // namespace vpcd::dp
