// The `netns` NIC backend: a veth pair whose far end lives in a named network namespace, configured like a guest's
// NIC (MAC, MTU, IPv4 address, lo up, default route), and whose host end the datapath drives through an AfPacketPort.
//
// Ownership: the host end is vpcd's when it carries p.alias (set right after creation; the kernel ignores an alias in
// RTM_NEWLINK); only then is it adopted, changed or deleted. One exception for a crash between the two: an alias-less
// veth whose peer is p.ifname in a namespace vpcd created is adopted. A namespace is vpcd's when run_dir/netns/NAME marks it (vpcd created it); vpcd configures it
// fully (lo up, default route via the gateway) and deletes it once only lo is left. Any other namespace is foreign:
// refused unless its name matches one of p.foreign_netns_allowed (fnmatch patterns, e.g. "cni-*"), and never when it
// is vpcd's own namespace (same nsfs inode as /proc/self/ns/net or /proc/thread-self/ns/net). In an allowed foreign
// namespace vpcd adds only its interface with its address (the kernel adds the subnet's route with it): lo, the
// default route and every other route stay as they were, so removing the veth restores the namespace.
// The guest end gets IPv6 accept_ra = 0 before it goes up (the VPC serves no IPv6 router; a rogue RA must not
// configure it).
//
// Threading: plain functions, callable from any thread (namespace switches are done per thread, see netns.h and
// netlink.h). Two calls for the same NIC must not run concurrently.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "datapath/proto/types.h"

namespace vpcd::dp {

struct NetnsNicParams {
  std::string host_ifname;  // the veth end in vpcd's namespace (<= 15 bytes)
  std::string netns;        // namespace name under /run/netns
  std::string ifname;       // the name inside the namespace
  MacAddr mac;
  Ipv4Prefix addr;          // the NIC's address and its subnet's prefix length (addr.addr is the host address)
  std::optional<Ipv4Addr> gateway;  // default route inside the namespace
  uint32_t mtu = 1500;
  std::string alias;        // interface alias on the host end ("vpcd:<instance>:<nic id>")
  std::string run_dir;      // markers: run_dir/netns/NAME when vpcd created the namespace
  std::vector<std::string> foreign_netns_allowed;  // fnmatch patterns of existing namespaces vpcd may use
  bool threaded_napi = false;  // GRO + threaded NAPI on the far end when it goes up (guest_napi.h)
};

// "" when vpcd may put a NIC into the existing namespace `name` under `p`, else why not. Also used by netns_nic_ensure.
std::string netns_foreign_refusal(const NetnsNicParams& p);

// Creates the namespace when absent (and records that), the veth pair, and configures both ends. Idempotent: when the
// host end already exists (a restart) it is adopted and the far end's configuration is made to match. A far end this
// call creates is left administratively down (no carrier, no route: the guest cannot send yet), so nothing the guest
// sends is lost before the datapath polls the host end; the caller brings it up with netns_nic_set_up() once the
// port is in a snapshot every worker acknowledged. An adopted far end that is up stays up (a running guest).
bool netns_nic_ensure(const NetnsNicParams& p, std::string* err);
// Sets the far end up and, in a namespace vpcd created, installs the default route via p.gateway (which needs the link
// up); with p.threaded_napi also GRO and threaded NAPI on it (best effort: a failure is logged, the NIC works without).
// Idempotent.
bool netns_nic_set_up(const NetnsNicParams& p, std::string* err);
// Deletes the host end (its peer goes with it) only when it is a veth carrying p.alias, and the namespace only when
// vpcd created it (marker) and only `lo` is left in it. Best effort; never throws.
void netns_nic_remove(const NetnsNicParams& p);
// Names of links in the calling thread's namespace whose alias starts with `prefix` (crash cleanup). An empty prefix
// matches nothing.
std::vector<std::string> links_with_alias_prefix(const std::string& prefix);

}  // namespace vpcd::dp
