// libnl-route-3 wrappers: links, veth pairs, IPv4 addresses and the default route, in any namespace. See netlink.h.
#include "datapath/io/netlink.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/rtnetlink.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/route.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <type_traits>

#include "datapath/io/netns.h"

namespace vpcd::dp {

namespace {

void set_err(std::string* err, const std::string& msg) {
  if (err) *err = msg;
}

std::string nl_text(const std::string& what, int nlerr) { return what + ": " + nl_geterror(nlerr); }

// unique_ptr over a libnl object with its release function as the deleter.
template <class T, auto Release>
using NlPtr = std::unique_ptr<T, std::integral_constant<decltype(Release), Release>>;
using LinkPtr = NlPtr<rtnl_link, &rtnl_link_put>;
using AddrPtr = NlPtr<rtnl_addr, &rtnl_addr_put>;
using NlAddrPtr = NlPtr<nl_addr, &nl_addr_put>;
using CachePtr = NlPtr<nl_cache, &nl_cache_free>;
using RoutePtr = NlPtr<rtnl_route, &rtnl_route_put>;

NlAddrPtr ipv4_nl_addr(Ipv4Addr a, int prefix_len) {
  uint32_t be = htonl(a.v);
  NlAddrPtr p(nl_addr_build(AF_INET, &be, sizeof be));
  if (p) nl_addr_set_prefixlen(p.get(), prefix_len);
  return p;
}

std::optional<Ipv4Addr> ipv4_of(nl_addr* a) {
  if (!a || nl_addr_get_family(a) != AF_INET || nl_addr_get_len(a) != 4) return std::nullopt;
  uint32_t be;
  std::memcpy(&be, nl_addr_get_binary_addr(a), 4);
  return Ipv4Addr{ntohl(be)};
}

LinkInfo to_info(rtnl_link* l) {
  LinkInfo i;
  if (const char* n = rtnl_link_get_name(l)) i.name = n;
  i.ifindex = rtnl_link_get_ifindex(l);
  if (nl_addr* a = rtnl_link_get_addr(l); a && nl_addr_get_len(a) == 6) {
    i.mac = MacAddr::from_bytes(static_cast<const uint8_t*>(nl_addr_get_binary_addr(a)));
  }
  i.mtu = rtnl_link_get_mtu(l);
  if (const char* al = rtnl_link_get_ifalias(l)) i.alias = al;
  if (const char* k = rtnl_link_get_type(l)) i.kind = k;
  i.up = (rtnl_link_get_flags(l) & IFF_UP) != 0;
  i.lower_up = (rtnl_link_get_flags(l) & IFF_LOWER_UP) != 0;
  i.link_ifindex = rtnl_link_get_link(l);
  return i;
}

}  // namespace

std::unique_ptr<Netlink> Netlink::open(std::string* err, int netns_fd) {
  std::unique_ptr<Netlink> nl(new Netlink());
  if (netns_fd >= 0) {
    nl->netns_.reset(::fcntl(netns_fd, F_DUPFD_CLOEXEC, 0));
    if (!nl->netns_) {
      set_err(err, std::string("dup namespace fd: ") + std::strerror(errno));
      return nullptr;
    }
  }
  nl->sock_ = nl_socket_alloc();
  if (!nl->sock_) {
    set_err(err, "nl_socket_alloc failed");
    return nullptr;
  }
  int rc;
  if (netns_fd >= 0) {
    NetnsGuard guard(netns_fd);
    if (!guard.ok()) {
      set_err(err, "enter namespace: " + guard.error());
      return nullptr;
    }
    rc = nl_connect(nl->sock_, NETLINK_ROUTE);
  } else {
    rc = nl_connect(nl->sock_, NETLINK_ROUTE);
  }
  if (rc < 0) {
    set_err(err, nl_text("netlink connect", rc));
    return nullptr;
  }
  return nl;
}

Netlink::~Netlink() {
  if (sock_) nl_socket_free(sock_);  // closes the socket when connected
}

std::optional<LinkInfo> Netlink::find_link(const std::string& name, std::string* err) {
  if (err) err->clear();
  if (name.empty() || name.size() >= IFNAMSIZ) {
    set_err(err, "invalid interface name '" + name + "'");
    return std::nullopt;
  }
  rtnl_link* raw = nullptr;
  int rc = rtnl_link_get_kernel(sock_, 0, name.c_str(), &raw);
  LinkPtr l(raw);
  if (rc == -NLE_OBJ_NOTFOUND || rc == -NLE_NODEV) return std::nullopt;
  if (rc < 0) {
    set_err(err, nl_text("get link " + name, rc));
    return std::nullopt;
  }
  return to_info(l.get());
}

std::optional<LinkInfo> Netlink::find_link(int ifindex, std::string* err) {
  if (err) err->clear();
  rtnl_link* raw = nullptr;
  int rc = rtnl_link_get_kernel(sock_, ifindex, nullptr, &raw);
  LinkPtr l(raw);
  if (rc == -NLE_OBJ_NOTFOUND || rc == -NLE_NODEV) return std::nullopt;
  if (rc < 0) {
    set_err(err, nl_text("get link #" + std::to_string(ifindex), rc));
    return std::nullopt;
  }
  return to_info(l.get());
}

bool Netlink::list_links(std::vector<LinkInfo>* out, std::string* err) {
  nl_cache* raw = nullptr;
  int rc = rtnl_link_alloc_cache(sock_, AF_UNSPEC, &raw);
  CachePtr cache(raw);
  if (rc < 0) {
    set_err(err, nl_text("list links", rc));
    return false;
  }
  out->clear();
  for (nl_object* o = nl_cache_get_first(cache.get()); o; o = nl_cache_get_next(o)) {
    out->push_back(to_info(reinterpret_cast<rtnl_link*>(o)));
  }
  return true;
}

bool Netlink::create_veth(const std::string& name, const std::string& peer, std::string* err, int peer_netns_fd) {
  if (name.empty() || name.size() >= IFNAMSIZ || peer.empty() || peer.size() >= IFNAMSIZ) {
    set_err(err, "invalid veth names '" + name + "'/'" + peer + "'");
    return false;
  }
  rtnl_link* link = rtnl_link_veth_alloc();
  if (!link) {
    set_err(err, "rtnl_link_veth_alloc failed");
    return false;
  }
  rtnl_link_set_name(link, name.c_str());
  rtnl_link* p = rtnl_link_veth_get_peer(link);  // takes a reference
  rtnl_link_set_name(p, peer.c_str());
  if (peer_netns_fd >= 0) rtnl_link_set_ns_fd(p, peer_netns_fd);
  // One TX and one RX queue on each end, asked for explicitly. Without them the kernel allocates one per possible CPU
  // and then sets the real counts to 1 (veth_init_queues), and netif_set_real_num_tx_queues on a registered device
  // waits for an expedited RCU grace period under the RTNL: two per pair, the largest wait in creating a netns NIC
  // (perf sched_switch stacks during bench/e2e/scale.py). The real counts (1 and 1) are the same either way.
  for (rtnl_link* end : {link, p}) {
    rtnl_link_set_num_tx_queues(end, 1);
    rtnl_link_set_num_rx_queues(end, 1);
  }
  rtnl_link_put(p);
  int rc = rtnl_link_add(sock_, link, NLM_F_CREATE | NLM_F_EXCL);
  rtnl_link_veth_release(link);
  if (rc < 0) {
    set_err(err, nl_text("create veth " + name + " <-> " + peer, rc));
    return false;
  }
  return true;
}

bool Netlink::delete_link(const std::string& name, std::string* err) {
  LinkPtr l(rtnl_link_alloc());
  rtnl_link_set_name(l.get(), name.c_str());
  int rc = rtnl_link_delete(sock_, l.get());
  if (rc < 0) {
    set_err(err, nl_text("delete link " + name, rc));
    return false;
  }
  return true;
}

namespace {

// Fetches `name` and applies `fill(changes)` with rtnl_link_change.
template <class Fill>
bool change_link(nl_sock* sock, const std::string& name, const std::string& what, std::string* err, Fill fill) {
  rtnl_link* raw = nullptr;
  int rc = rtnl_link_get_kernel(sock, 0, name.c_str(), &raw);
  LinkPtr orig(raw);
  if (rc < 0) {
    set_err(err, nl_text(what + " " + name, rc));
    return false;
  }
  LinkPtr changes(rtnl_link_alloc());
  fill(changes.get());
  rc = rtnl_link_change(sock, orig.get(), changes.get(), 0);
  if (rc < 0) {
    set_err(err, nl_text(what + " " + name, rc));
    return false;
  }
  return true;
}

}  // namespace

bool Netlink::set_up(const std::string& name, bool up, std::string* err) {
  return change_link(sock_, name, up ? "set up" : "set down", err, [&](rtnl_link* c) {
    if (up) {
      rtnl_link_set_flags(c, IFF_UP);
    } else {
      rtnl_link_unset_flags(c, IFF_UP);
    }
  });
}

bool Netlink::set_mtu(const std::string& name, uint32_t mtu, std::string* err) {
  return change_link(sock_, name, "set mtu " + std::to_string(mtu), err,
                     [&](rtnl_link* c) { rtnl_link_set_mtu(c, mtu); });
}

bool Netlink::set_mac(const std::string& name, const MacAddr& mac, std::string* err) {
  NlAddrPtr a(nl_addr_build(AF_LLC, mac.b.data(), 6));
  return change_link(sock_, name, "set mac " + mac.to_string(), err,
                     [&](rtnl_link* c) { rtnl_link_set_addr(c, a.get()); });
}

bool Netlink::set_alias(const std::string& name, const std::string& alias, std::string* err) {
  if (alias.size() >= 256) {
    set_err(err, "alias too long for " + name);
    return false;
  }
  return change_link(sock_, name, "set alias", err, [&](rtnl_link* c) { rtnl_link_set_ifalias(c, alias.c_str()); });
}

bool Netlink::rename(const std::string& name, const std::string& new_name, std::string* err) {
  if (new_name.empty() || new_name.size() >= IFNAMSIZ) {
    set_err(err, "invalid interface name '" + new_name + "'");
    return false;
  }
  return change_link(sock_, name, "rename to " + new_name, err,
                     [&](rtnl_link* c) { rtnl_link_set_name(c, new_name.c_str()); });
}

bool Netlink::move_to_netns(const std::string& name, int netns_fd, std::string* err) {
  return change_link(sock_, name, "move to namespace", err, [&](rtnl_link* c) { rtnl_link_set_ns_fd(c, netns_fd); });
}

bool Netlink::list_ipv4(const std::string& name, std::vector<Ipv4AddrInfo>* out, std::string* err) {
  std::string e;
  auto link = find_link(name, &e);
  if (!link) {
    set_err(err, e.empty() ? "no link " + name : e);
    return false;
  }
  nl_cache* raw = nullptr;
  int rc = rtnl_addr_alloc_cache(sock_, &raw);
  CachePtr cache(raw);
  if (rc < 0) {
    set_err(err, nl_text("list addresses", rc));
    return false;
  }
  out->clear();
  for (nl_object* o = nl_cache_get_first(cache.get()); o; o = nl_cache_get_next(o)) {
    auto* a = reinterpret_cast<rtnl_addr*>(o);
    if (rtnl_addr_get_ifindex(a) != link->ifindex || rtnl_addr_get_family(a) != AF_INET) continue;
    if (auto ip = ipv4_of(rtnl_addr_get_local(a))) out->push_back({*ip, uint8_t(rtnl_addr_get_prefixlen(a))});
  }
  return true;
}

namespace {

AddrPtr make_addr(int ifindex, Ipv4Addr addr, uint8_t prefix_len) {
  AddrPtr a(rtnl_addr_alloc());
  rtnl_addr_set_ifindex(a.get(), ifindex);
  rtnl_addr_set_family(a.get(), AF_INET);
  NlAddrPtr local = ipv4_nl_addr(addr, prefix_len);
  rtnl_addr_set_local(a.get(), local.get());
  rtnl_addr_set_prefixlen(a.get(), prefix_len);
  if (prefix_len < 31) {
    Ipv4Prefix p{addr, prefix_len};
    NlAddrPtr brd = ipv4_nl_addr(p.broadcast(), 32);
    rtnl_addr_set_broadcast(a.get(), brd.get());
  }
  return a;
}

}  // namespace

bool Netlink::add_ipv4(const std::string& name, Ipv4Addr addr, uint8_t prefix_len, std::string* err) {
  if (prefix_len > 32) {
    set_err(err, "invalid prefix length");
    return false;
  }
  std::string e;
  auto link = find_link(name, &e);
  if (!link) {
    set_err(err, e.empty() ? "no link " + name : e);
    return false;
  }
  AddrPtr a = make_addr(link->ifindex, addr, prefix_len);
  int rc = rtnl_addr_add(sock_, a.get(), NLM_F_CREATE | NLM_F_REPLACE);
  if (rc < 0) {
    set_err(err, nl_text("add address " + addr.to_string() + "/" + std::to_string(prefix_len) + " on " + name, rc));
    return false;
  }
  return true;
}

bool Netlink::del_ipv4(const std::string& name, Ipv4Addr addr, uint8_t prefix_len, std::string* err) {
  std::string e;
  auto link = find_link(name, &e);
  if (!link) {
    set_err(err, e.empty() ? "no link " + name : e);
    return false;
  }
  AddrPtr a = make_addr(link->ifindex, addr, prefix_len);
  int rc = rtnl_addr_delete(sock_, a.get(), 0);
  if (rc < 0) {
    set_err(err, nl_text("delete address " + addr.to_string() + " on " + name, rc));
    return false;
  }
  return true;
}

bool Netlink::replace_default_route(Ipv4Addr gateway, std::string* err) {
  RoutePtr r(rtnl_route_alloc());
  rtnl_route_set_family(r.get(), AF_INET);
  rtnl_route_set_table(r.get(), RT_TABLE_MAIN);
  rtnl_route_set_scope(r.get(), RT_SCOPE_UNIVERSE);
  rtnl_route_set_protocol(r.get(), RTPROT_BOOT);
  rtnl_route_set_type(r.get(), RTN_UNICAST);
  NlAddrPtr dst = ipv4_nl_addr(Ipv4Addr{0}, 0);
  rtnl_route_set_dst(r.get(), dst.get());
  rtnl_nexthop* nh = rtnl_route_nh_alloc();
  NlAddrPtr gw = ipv4_nl_addr(gateway, 32);
  rtnl_route_nh_set_gateway(nh, gw.get());
  rtnl_route_add_nexthop(r.get(), nh);  // the route owns nh from here
  int rc = rtnl_route_add(sock_, r.get(), NLM_F_CREATE | NLM_F_REPLACE);
  if (rc < 0) {
    set_err(err, nl_text("default route via " + gateway.to_string(), rc));
    return false;
  }
  return true;
}

std::optional<Ipv4Addr> Netlink::default_route(std::string* err) {
  if (err) err->clear();
  nl_cache* raw = nullptr;
  int rc = rtnl_route_alloc_cache(sock_, AF_INET, 0, &raw);
  CachePtr cache(raw);
  if (rc < 0) {
    set_err(err, nl_text("list routes", rc));
    return std::nullopt;
  }
  for (nl_object* o = nl_cache_get_first(cache.get()); o; o = nl_cache_get_next(o)) {
    auto* r = reinterpret_cast<rtnl_route*>(o);
    if (rtnl_route_get_table(r) != RT_TABLE_MAIN) continue;
    nl_addr* dst = rtnl_route_get_dst(r);
    if (dst && nl_addr_get_prefixlen(dst) != 0) continue;
    if (rtnl_route_get_nnexthops(r) < 1) continue;
    if (auto gw = ipv4_of(rtnl_route_nh_get_gateway(rtnl_route_nexthop_n(r, 0)))) return gw;
  }
  return std::nullopt;
}

bool Netlink::disable_ipv6(const std::string& name, std::string* err) {
  return set_ipv6_conf(name, "disable_ipv6", "1", err);
}

bool Netlink::set_ipv6_conf(const std::string& name, const std::string& key, const std::string& value,
                            std::string* err) {
  if (name.empty() || name.size() >= IFNAMSIZ || name.find('/') != std::string::npos || name == "." || name == ".." ||
      key.empty() || key.find('/') != std::string::npos || key == "." || key == "..") {
    set_err(err, "invalid interface name '" + name + "' or key '" + key + "'");
    return false;
  }
  // /proc/sys/net follows the namespace of the thread that opens the file.
  std::optional<NetnsGuard> guard;
  if (netns_.valid()) {
    guard.emplace(netns_.get());
    if (!guard->ok()) {
      set_err(err, "enter namespace: " + guard->error());
      return false;
    }
  }
  if (::access("/proc/sys/net/ipv6", F_OK) != 0) return true;  // no IPv6 in this kernel
  const std::string path = "/proc/sys/net/ipv6/conf/" + name + "/" + key;
  const std::string line = value + "\n";
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd || ::write(fd.get(), line.data(), line.size()) != ssize_t(line.size())) {
    set_err(err, path + ": " + std::strerror(errno));
    return false;
  }
  return true;
}

std::optional<LinkInfo> link_by_name(const std::string& name, std::string* err) {
  auto nl = Netlink::open(err);
  if (!nl) return std::nullopt;
  return nl->find_link(name, err);
}

}  // namespace vpcd::dp
