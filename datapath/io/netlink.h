// RAII wrappers over libnl-route-3 for the link, address and route operations vpcd needs on the host and inside guest
// namespaces.
//
// A Netlink object is one NETLINK_ROUTE socket. A netlink socket stays in the namespace it was created in, so
// Netlink::open(netns_fd) opens it while the calling thread is temporarily setns()'d into that namespace and then
// returns to the original one: every later call acts inside that namespace, from any thread.
//
// Threading: one Netlink object must not be used by two threads at the same time (libnl sockets are not thread-safe);
// separate objects are independent.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "datapath/io/unique_fd.h"
#include "datapath/proto/types.h"

struct nl_sock;

namespace vpcd::dp {

struct LinkInfo {
  std::string name;
  int ifindex = 0;
  MacAddr mac;
  uint32_t mtu = 0;
  std::string alias;
  std::string kind;  // "veth", "tun", "" for a device without rtnl_link_ops kind (lo, physical NICs)
  bool up = false;   // IFF_UP (administratively up)
  bool lower_up = false;  // IFF_LOWER_UP: carrier (netif_carrier_ok, at once; IFF_RUNNING follows via linkwatch)
  int link_ifindex = 0;  // IFLA_LINK: a veth's peer ifindex (in the peer's namespace), 0 when absent
};

struct Ipv4AddrInfo {
  Ipv4Addr addr;
  uint8_t prefix_len = 0;
};

class Netlink {
 public:
  // netns_fd < 0: the calling thread's current namespace. Returns nullptr and sets *err on failure.
  static std::unique_ptr<Netlink> open(std::string* err, int netns_fd = -1);
  ~Netlink();
  Netlink(const Netlink&) = delete;
  Netlink& operator=(const Netlink&) = delete;

  // nullopt when there is no such link (*err left empty) or on error (*err set).
  std::optional<LinkInfo> find_link(const std::string& name, std::string* err = nullptr);
  std::optional<LinkInfo> find_link(int ifindex, std::string* err = nullptr);
  bool list_links(std::vector<LinkInfo>* out, std::string* err);

  // Creates a veth pair `name` <-> `peer`. With peer_netns_fd >= 0 the peer is created directly inside that namespace.
  bool create_veth(const std::string& name, const std::string& peer, std::string* err, int peer_netns_fd = -1);
  bool delete_link(const std::string& name, std::string* err);
  bool set_up(const std::string& name, bool up, std::string* err);
  bool set_mtu(const std::string& name, uint32_t mtu, std::string* err);
  bool set_mac(const std::string& name, const MacAddr& mac, std::string* err);
  bool set_alias(const std::string& name, const std::string& alias, std::string* err);
  bool rename(const std::string& name, const std::string& new_name, std::string* err);
  // Moves the link into the namespace `netns_fd` (it keeps its name there).
  bool move_to_netns(const std::string& name, int netns_fd, std::string* err);

  // IPv4 addresses on a link.
  bool list_ipv4(const std::string& name, std::vector<Ipv4AddrInfo>* out, std::string* err);
  // Adds (or replaces) addr/prefix_len with its broadcast address.
  bool add_ipv4(const std::string& name, Ipv4Addr addr, uint8_t prefix_len, std::string* err);
  bool del_ipv4(const std::string& name, Ipv4Addr addr, uint8_t prefix_len, std::string* err);
  // Adds or replaces the main table's IPv4 default route via `gateway`.
  bool replace_default_route(Ipv4Addr gateway, std::string* err);
  // The main table's IPv4 default route gateway, if any.
  std::optional<Ipv4Addr> default_route(std::string* err = nullptr);

  // Stops the kernel from generating IPv6 addresses or sending IPv6 (router solicitations, MLD, DAD) on the link:
  // /proc/sys/net/ipv6/conf/NAME/disable_ipv6 = 1, written inside this object's namespace. Succeeds when the kernel
  // has no IPv6 at all.
  bool disable_ipv6(const std::string& name, std::string* err);
  // Writes /proc/sys/net/ipv6/conf/NAME/KEY = value inside this object's namespace (e.g. accept_ra 0). Succeeds when
  // the kernel has no IPv6 at all.
  bool set_ipv6_conf(const std::string& name, const std::string& key, const std::string& value, std::string* err);

  // The namespace this socket lives in (-1 when opened in the caller's current namespace).
  int netns_fd() const noexcept { return netns_.get(); }

 private:
  Netlink() = default;
  struct ::nl_sock* sock_ = nullptr;
  UniqueFd netns_;  // dup of the namespace fd given to open(); invalid for "current"
};

// Convenience: one-shot lookups in the calling thread's namespace.
std::optional<LinkInfo> link_by_name(const std::string& name, std::string* err = nullptr);

}  // namespace vpcd::dp
