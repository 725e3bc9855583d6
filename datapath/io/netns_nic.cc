// The netns NIC backend recipe: namespace (with a "we created it" marker), veth pair, guest-side configuration, and
// its removal. See netns_nic.h.
//
// The far end is created directly inside the namespace (IFLA_NET_NS_FD on the veth peer) under its final name, rather
// than created under a temporary name in our namespace, moved and renamed: one netlink request, so a crash can never
// leave a half-configured far end in vpcd's own namespace, and the name (often "eth0") never clashes with ours.
#include "datapath/io/netns_nic.h"

#include <fcntl.h>
#include <fnmatch.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "datapath/io/guest_napi.h"
#include "datapath/io/netlink.h"
#include "datapath/io/netns.h"
#include "datapath/io/unique_fd.h"

namespace vpcd::dp {

namespace {

bool ifname_ok(const std::string& n) {
  return !n.empty() && n.size() < 16 && n.find('/') == std::string::npos && n != "." && n != "..";
}

std::string marker_path(const NetnsNicParams& p) { return p.run_dir + "/netns/" + p.netns; }

bool mkdir_p(const std::string& path, std::string* err) {
  for (size_t pos = 1; pos <= path.size(); ++pos) {
    if (pos != path.size() && path[pos] != '/') continue;
    const std::string part = path.substr(0, pos);
    if (::mkdir(part.c_str(), 0755) != 0 && errno != EEXIST) {
      *err = "mkdir " + part + ": " + std::strerror(errno);
      return false;
    }
  }
  return true;
}

bool write_marker(const std::string& path, std::string* err) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) {
    *err = "marker " + path + ": " + std::strerror(errno);
    return false;
  }
  return true;
}

bool same_inode(int fd, const char* path) {
  struct stat a{}, b{};
  return ::fstat(fd, &a) == 0 && ::stat(path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

bool have_marker(const NetnsNicParams& p) { return ::access(marker_path(p).c_str(), F_OK) == 0; }

// Makes the far end (inside the namespace) match p: MAC, MTU, exactly one IPv4 address, accept_ra 0; in a namespace
// vpcd owns (`own`) also lo up, and when the far end is already up (adopted) the default route. Bringing the far end
// up is netns_nic_set_up's job (after the workers acknowledged the port).
bool configure_far_end(Netlink& ns, const NetnsNicParams& p, bool own, std::string* err) {
  std::string e;
  auto far = ns.find_link(p.ifname, &e);
  if (!far) {
    *err = e.empty() ? "namespace " + p.netns + ": no interface " + p.ifname : e;
    return false;
  }
  if (far->mac != p.mac) {
    if (far->up && !ns.set_up(p.ifname, false, err)) return false;
    if (!ns.set_mac(p.ifname, p.mac, err)) return false;
  }
  if (far->mtu != p.mtu && !ns.set_mtu(p.ifname, p.mtu, err)) return false;
  std::vector<Ipv4AddrInfo> addrs;
  if (!ns.list_ipv4(p.ifname, &addrs, err)) return false;
  bool have = false;
  for (const auto& a : addrs) {
    if (a.addr == p.addr.addr && a.prefix_len == p.addr.len) {
      have = true;
    } else if (!ns.del_ipv4(p.ifname, a.addr, a.prefix_len, err)) {
      return false;
    }
  }
  if (!have && !ns.add_ipv4(p.ifname, p.addr.addr, p.addr.len, err)) return false;
  if (!ns.set_ipv6_conf(p.ifname, "accept_ra", "0", err)) return false;
  if (!own) return true;  // a foreign namespace: its lo and routes are not ours to change
  if (!ns.set_up("lo", true, err)) return false;
  // A link that was down (or taken down for the MAC change) stays down until netns_nic_set_up.
  const bool up = far->up && far->mac == p.mac;
  if (up && p.gateway) {
    if (ns.default_route(&e) != p.gateway && !ns.replace_default_route(*p.gateway, err)) return false;
  }
  return true;
}

// Sets the far end up; in a namespace vpcd owns also the default route (a foreign one keeps its routes).
bool far_end_up(Netlink& ns, const NetnsNicParams& p, bool own, std::string* err) {
  if (!ns.set_up(p.ifname, true, err)) return false;
  std::string e;
  if (own && p.gateway && ns.default_route(&e) != p.gateway && !ns.replace_default_route(*p.gateway, err))
    return false;
  return true;
}

}  // namespace

std::string netns_foreign_refusal(const NetnsNicParams& p) {
  bool allowed = false;
  for (const auto& pat : p.foreign_netns_allowed)
    if (::fnmatch(pat.c_str(), p.netns.c_str(), 0) == 0) allowed = true;
  if (!allowed)
    return "namespace " + p.netns + " exists and vpcd did not create it (allow it with netns_allow in the config)";
  return "";
}

bool netns_nic_ensure(const NetnsNicParams& p, std::string* err) {
  if (!ifname_ok(p.host_ifname) || !ifname_ok(p.ifname)) {
    *err = "invalid interface name '" + p.host_ifname + "' or '" + p.ifname + "'";
    return false;
  }
  if (!netns_name_valid(p.netns)) {
    *err = "invalid namespace name '" + p.netns + "'";
    return false;
  }
  if (p.alias.empty()) {
    *err = "no ownership marker (alias) for " + p.host_ifname;
    return false;
  }
  if (p.addr.len > 32 || p.mtu < 68 || p.mtu > 65535) {
    *err = "invalid address prefix or MTU";
    return false;
  }
  if (p.run_dir.empty() || !mkdir_p(p.run_dir + "/netns", err)) {
    if (p.run_dir.empty()) *err = "run_dir not set";
    return false;
  }
  bool own = have_marker(p);
  if (netns_exists(p.netns) && !own) {
    if (std::string why = netns_foreign_refusal(p); !why.empty()) {
      *err = why;
      return false;
    }
  }
  if (!netns_exists(p.netns)) {
    own = true;
    // Marker first: a crash between the two leaves a marker without a namespace, which removal tolerates, never a
    // namespace we created without a marker.
    if (!write_marker(marker_path(p), err)) return false;
    if (!netns_create(p.netns, err)) {
      ::unlink(marker_path(p).c_str());
      return false;
    }
  }
  UniqueFd ns_fd = netns_open(p.netns, err);
  if (!ns_fd) return false;
  if (same_inode(ns_fd.get(), "/proc/self/ns/net") || same_inode(ns_fd.get(), "/proc/thread-self/ns/net")) {
    *err = "namespace " + p.netns + " is vpcd's own network namespace; refused";
    return false;
  }
  auto host = Netlink::open(err);
  if (!host) return false;
  auto ns = Netlink::open(err, ns_fd.get());
  if (!ns) return false;

  std::string e;
  auto near = host->find_link(p.host_ifname, &e);
  if (!e.empty()) {
    *err = e;
    return false;
  }
  if (near) {
    if (near->kind != "veth") {
      *err = "interface " + p.host_ifname + " exists and is not a veth; not vpcd's, left alone";
      return false;
    }
    auto far = ns->find_link(p.ifname, &e);
    const bool paired = far && far->kind == "veth" && far->link_ifindex == near->ifindex &&
                        near->link_ifindex == far->ifindex;
    // The kernel ignores an alias in RTM_NEWLINK, so it is set right after creation; a veth a crash left without it
    // is ours only when its peer is the NIC's interface in a namespace vpcd created.
    const bool crash_orphan = near->alias.empty() && own && paired;
    if (near->alias != p.alias && !crash_orphan) {
      *err = "interface " + p.host_ifname + " exists with alias '" + near->alias + "'; not vpcd's, left alone";
      return false;
    }
    if (!paired) {
      // A host end whose peer is not p.ifname in p.netns (the namespace was recreated, or the far end renamed):
      // start over.
      if (!host->delete_link(p.host_ifname, err)) return false;
      near.reset();
    }
  }
  // The alias is set once: every RTM_NEWLINK with an alias is a netdev event that walks every AF_PACKET socket of
  // the host namespace (packet_notifier), even when the alias does not change.
  bool alias_set = near && near->alias == p.alias;
  if (!near) {
    if (ns->find_link(p.ifname, &e)) {
      *err = "namespace " + p.netns + " already has an interface " + p.ifname;
      return false;
    }
    if (!host->create_veth(p.host_ifname, p.ifname, err, ns_fd.get())) return false;
    if (!host->set_alias(p.host_ifname, p.alias, err)) return false;  // the marker first
    alias_set = true;
  }
  if (!configure_far_end(*ns, p, own, err)) return false;
  if ((!alias_set && !host->set_alias(p.host_ifname, p.alias, err)) || !host->set_mtu(p.host_ifname, p.mtu, err) ||
      !host->disable_ipv6(p.host_ifname, err) || !host->set_up(p.host_ifname, true, err)) {
    return false;
  }
  return true;
}

bool netns_nic_set_up(const NetnsNicParams& p, std::string* err) {
  if (!ifname_ok(p.ifname) || !netns_name_valid(p.netns)) {
    *err = "invalid interface or namespace name";
    return false;
  }
  UniqueFd ns_fd = netns_open(p.netns, err);
  if (!ns_fd) return false;
  auto ns = Netlink::open(err, ns_fd.get());
  if (!ns) return false;
  if (!far_end_up(*ns, p, have_marker(p), err)) return false;
  std::string e;
  if (p.threaded_napi && !veth_threaded_napi(ns_fd.get(), p.ifname, &e)) {
    std::fprintf(stderr, "vpcd: namespace %s: threaded NAPI on %s: %s (the receiving stack stays in the sender)\n",
                 p.netns.c_str(), p.ifname.c_str(), e.c_str());
  }
  return true;
}

void netns_nic_remove(const NetnsNicParams& p) {
  std::string err;
  if (auto host = Netlink::open(&err)) {
    if (ifname_ok(p.host_ifname)) {
      auto near = host->find_link(p.host_ifname, &err);
      // Only our veth: it carries our alias (set in the request that created it).
      if (near && near->kind == "veth" && !p.alias.empty() && near->alias == p.alias) {
        host->delete_link(p.host_ifname, &err);
      }
    }
  }
  if (!netns_name_valid(p.netns) || p.run_dir.empty()) return;
  const std::string marker = marker_path(p);
  if (::access(marker.c_str(), F_OK) != 0) return;  // not ours: leave the namespace alone
  if (!netns_exists(p.netns)) {
    ::unlink(marker.c_str());
    return;
  }
  UniqueFd ns_fd = netns_open(p.netns, &err);
  if (!ns_fd) return;
  auto ns = Netlink::open(&err, ns_fd.get());
  if (!ns) return;
  std::vector<LinkInfo> links;
  if (!ns->list_links(&links, &err)) return;
  for (const auto& l : links) {
    if (l.name != "lo") return;  // someone else put an interface there: keep it
  }
  ns.reset();
  ns_fd.reset();
  if (netns_delete(p.netns, &err)) ::unlink(marker.c_str());
}

std::vector<std::string> links_with_alias_prefix(const std::string& prefix) {
  std::vector<std::string> out;
  std::string err;
  auto nl = Netlink::open(&err);
  if (!nl) return out;
  std::vector<LinkInfo> links;
  if (!nl->list_links(&links, &err)) return out;
  for (const auto& l : links) {
    if (!prefix.empty() && l.alias.compare(0, prefix.size(), prefix) == 0) out.push_back(l.name);
  }
  return out;
}

}  // namespace vpcd::dp
