// The `netns` NIC backend: a veth pair whose far end lives in a named network namespace, configured like a guest's
// NIC (MAC, MTU, IPv4 address, lo up, default route), and whose host end the datapath drives through an AfPacketPort.
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
};

// Creates the namespace when absent (and records that), the veth pair, and configures both ends. Idempotent: when the
// host end already exists (a restart) it is adopted and the far end's configuration is made to match. A far end this
// call creates is left administratively down (no carrier, no route: the guest cannot send yet), so nothing the guest
// sends is lost before the datapath polls the host end; the caller brings it up with netns_nic_set_up() once the
// port is in a snapshot every worker acknowledged. An adopted far end that is up stays up (a running guest).
bool netns_nic_ensure(const NetnsNicParams& p, std::string* err);
// Sets the far end up and installs the default route via p.gateway (which needs the link up). Idempotent.
bool netns_nic_set_up(const NetnsNicParams& p, std::string* err);
// Deletes the host end (its peer goes with it) when it is a veth carrying p.alias (or no alias yet), and the namespace
// when vpcd created it and only `lo` is left in it. Best effort; never throws.
void netns_nic_remove(const NetnsNicParams& p);
// Names of links in the calling thread's namespace whose alias starts with `prefix` (crash cleanup). An empty prefix
// matches nothing.
std::vector<std::string> links_with_alias_prefix(const std::string& prefix);

}  // namespace vpcd::dp
