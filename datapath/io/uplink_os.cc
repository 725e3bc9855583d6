// Uplink OS preparation (ethtool GRO/LRO, tc or nftables ingress drop); see uplink_os.h.
#include "datapath/io/uplink_os.h"

#include <linux/ethtool.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <netlink/netlink.h>
#include <netlink/route/act/gact.h>
#include <netlink/route/action.h>
#include <netlink/route/classifier.h>
#include <netlink/route/cls/matchall.h>
#include <netlink/route/link.h>
#include <netlink/route/qdisc.h>
#include <netlink/route/tc.h>
#include <nftables/libnftables.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <utility>
#include <cstring>
#include <memory>
#include <type_traits>

#include "datapath/io/unique_fd.h"

namespace vpcd::dp {
namespace {

template <class T, auto Release>
using NlPtr = std::unique_ptr<T, std::integral_constant<decltype(Release), Release>>;
using SockPtr = NlPtr<nl_sock, &nl_socket_free>;
using QdiscPtr = NlPtr<rtnl_qdisc, &rtnl_qdisc_put>;
using ClsPtr = NlPtr<rtnl_cls, &rtnl_cls_put>;
using ActPtr = NlPtr<rtnl_act, &rtnl_act_put>;
using LinkPtr = NlPtr<rtnl_link, &rtnl_link_put>;

constexpr uint32_t kIngressHandle = TC_H_MAKE(TC_H_INGRESS, 0);  // ffff:0000
constexpr uint32_t kIngressParent = TC_H_MAKE(TC_H_INGRESS, 0);

std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }

bool ethtool_rw(const std::string& ifname, uint32_t cmd, uint32_t* data, std::string* err) {
  UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) {
    if (err) *err = errno_text("socket");
    return false;
  }
  struct ethtool_value ev{};
  ev.cmd = cmd;
  ev.data = *data;
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
  ifr.ifr_data = reinterpret_cast<char*>(&ev);
  if (::ioctl(fd.get(), SIOCETHTOOL, &ifr) != 0) {
    if (err) *err = errno_text("ethtool " + ifname);
    return false;
  }
  *data = ev.data;
  return true;
}

// LRO lives in the legacy flags word (ETH_FLAG_LRO).
bool lro_off(const std::string& ifname, std::string* err) {
  uint32_t flags = 0;
  if (!ethtool_rw(ifname, ETHTOOL_GFLAGS, &flags, err)) return errno == EOPNOTSUPP;
  if (!(flags & ETH_FLAG_LRO)) return true;
  flags &= ~uint32_t(ETH_FLAG_LRO);
  return ethtool_rw(ifname, ETHTOOL_SFLAGS, &flags, err);
}

using NftPtr = NlPtr<nft_ctx, &nft_ctx_free>;

// The nftables table of an uplink: netdev family, one per interface, named by ifindex (always a valid identifier).
std::string nft_table(int ifindex) { return "vpcd_uplink_" + std::to_string(ifindex); }

// Runs one nft command (libnftables, the library the nft tool is built on). false + *err with nft's message.
bool nft_run(const std::string& cmd, std::string* err) {
  NftPtr ctx(nft_ctx_new(NFT_CTX_DEFAULT));
  if (!ctx) {
    if (err) *err = "nft_ctx_new failed";
    return false;
  }
  nft_ctx_buffer_output(ctx.get());
  nft_ctx_buffer_error(ctx.get());
  if (nft_run_cmd_from_buffer(ctx.get(), cmd.c_str()) != 0) {
    if (err) {
      std::string msg = nft_ctx_get_error_buffer(ctx.get());
      while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
      *err = "nft: " + msg;
    }
    return false;
  }
  return true;
}

// Second choice, for kernels without cls_matchall / act_gact but with nf_tables: a netdev-family ingress chain on
// the interface whose policy is drop. Ingress hooks run after the packet taps, like tc ingress: packet sockets
// still get every frame, the IP stack none.
bool mute_by_nft(const std::string& ifname, int ifindex, std::string* err) {
  // The name goes into nft's command language: only the characters the API allows (validate.cc need_ifname).
  for (char c : ifname) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                    c == '.' || c == '-';
    if (!ok) {
      if (err) *err = "interface name " + ifname + " has characters nft commands cannot carry";
      return false;
    }
  }
  const std::string t = nft_table(ifindex);
  return nft_run("add table netdev " + t + "\n" + "add chain netdev " + t +
                     " ingress { type filter hook ingress device \"" + ifname + "\" priority -500; policy drop; }\n",
                 err);
}

// Last resort, for kernels without cls_matchall / act_gact and nf_tables: the interface carries no kernel address (vpcd owns it), so
// the stack would only forward what arrives or answer for other local addresses. Forwarding off for frames that
// arrive on it (ip_error then sends no ICMP either), never answer ARP on it, no IPv6 on it.
bool mute_by_sysctl(const std::string& ifname, std::string* err) {
  const std::pair<std::string, const char*> knobs[] = {
      {"/proc/sys/net/ipv4/conf/" + ifname + "/forwarding", "0"},
      {"/proc/sys/net/ipv4/conf/" + ifname + "/arp_ignore", "8"},
      {"/proc/sys/net/ipv4/conf/" + ifname + "/accept_local", "0"},
      {"/proc/sys/net/ipv6/conf/" + ifname + "/disable_ipv6", "1"},
  };
  for (const auto& [path, value] : knobs) {
    FILE* f = std::fopen(path.c_str(), "w");
    if (!f) {
      if (path.find("ipv6") != std::string::npos) continue;  // a kernel without IPv6
      *err = errno_text(path);
      return false;
    }
    const bool ok = std::fputs(value, f) >= 0;
    if (std::fclose(f) != 0 || !ok) {
      *err = errno_text(path);
      return false;
    }
  }
  return true;
}

}  // namespace

int uplink_gro(const std::string& ifname) {
  uint32_t v = 0;
  return ethtool_rw(ifname, ETHTOOL_GGRO, &v, nullptr) ? int(v != 0) : -1;
}

bool prepare_uplink(const std::string& ifname, std::string* err, UplinkMute* how) {
  const int ifindex = int(::if_nametoindex(ifname.c_str()));
  if (ifindex == 0) {
    *err = "uplink interface " + ifname + " does not exist";
    return false;
  }
  uint32_t off = 0;
  if (!ethtool_rw(ifname, ETHTOOL_SGRO, &off, err) && errno != EOPNOTSUPP) return false;
  if (!lro_off(ifname, err)) return false;

  SockPtr sk(nl_socket_alloc());
  if (!sk) {
    *err = "nl_socket_alloc failed";
    return false;
  }
  if (int e = nl_connect(sk.get(), NETLINK_ROUTE); e < 0) {
    *err = std::string("netlink: ") + nl_geterror(e);
    return false;
  }
  // The ingress qdisc (NLM_F_CREATE only: an existing one is fine).
  QdiscPtr q(rtnl_qdisc_alloc());
  rtnl_tc_set_ifindex(TC_CAST(q.get()), ifindex);
  rtnl_tc_set_parent(TC_CAST(q.get()), TC_H_INGRESS);
  rtnl_tc_set_handle(TC_CAST(q.get()), kIngressHandle);
  if (int e = rtnl_tc_set_kind(TC_CAST(q.get()), "ingress"); e < 0) {
    *err = std::string("tc ingress qdisc: ") + nl_geterror(e);
    return false;
  }
  if (int e = rtnl_qdisc_add(sk.get(), q.get(), NLM_F_CREATE); e < 0 && e != -NLE_EXIST) {
    *err = std::string("tc ingress qdisc on ") + ifname + ": " + nl_geterror(e);
    return false;
  }
  // matchall, action gact drop, at our priority (replaced if present).
  ClsPtr cls(rtnl_cls_alloc());
  rtnl_tc_set_ifindex(TC_CAST(cls.get()), ifindex);
  rtnl_tc_set_parent(TC_CAST(cls.get()), kIngressParent);
  rtnl_tc_set_handle(TC_CAST(cls.get()), 1);
  rtnl_cls_set_prio(cls.get(), uint16_t(kUplinkFilterPrio));
  rtnl_cls_set_protocol(cls.get(), ETH_P_ALL);
  if (int e = rtnl_tc_set_kind(TC_CAST(cls.get()), "matchall"); e < 0) {
    *err = std::string("tc matchall: ") + nl_geterror(e);
    return false;
  }
  ActPtr act(rtnl_act_alloc());
  rtnl_tc_set_kind(TC_CAST(act.get()), "gact");
  rtnl_gact_set_action(act.get(), TC_ACT_SHOT);
  if (int e = rtnl_mall_append_action(cls.get(), act.get()); e < 0) {
    *err = std::string("tc matchall action: ") + nl_geterror(e);
    return false;
  }
  if (int e = rtnl_cls_add(sk.get(), cls.get(), NLM_F_CREATE | NLM_F_REPLACE); e < 0) {
    if (e != -NLE_OBJ_NOTFOUND && e != -NLE_OPNOTSUPP && e != -NLE_NOATTR) {
      *err = std::string("tc ingress drop filter on ") + ifname + ": " + nl_geterror(e);
      return false;
    }
    // This kernel has no cls_matchall / act_gact ("TC classifier not found"): an nftables ingress drop instead, or
    // when that is missing too, the sysctls.
    std::string nft_err;
    if (mute_by_nft(ifname, ifindex, &nft_err)) {
      if (how) *how = UplinkMute::kNftDrop;
    } else {
      if (!mute_by_sysctl(ifname, err)) return false;
      if (how) *how = UplinkMute::kSysctl;
    }
  } else if (how) {
    *how = UplinkMute::kTcDrop;
  }
  // Link up.
  LinkPtr change(rtnl_link_alloc());
  LinkPtr orig(rtnl_link_alloc());
  rtnl_link_set_ifindex(orig.get(), ifindex);
  rtnl_link_set_flags(change.get(), IFF_UP);
  if (int e = rtnl_link_change(sk.get(), orig.get(), change.get(), 0); e < 0) {
    *err = std::string("set ") + ifname + " up: " + nl_geterror(e);
    return false;
  }
  return true;
}

void release_uplink(const std::string& ifname) {
  const int ifindex = int(::if_nametoindex(ifname.c_str()));
  if (ifindex == 0) return;
  SockPtr sk(nl_socket_alloc());
  if (!sk || nl_connect(sk.get(), NETLINK_ROUTE) < 0) return;
  ClsPtr cls(rtnl_cls_alloc());
  rtnl_tc_set_ifindex(TC_CAST(cls.get()), ifindex);
  rtnl_tc_set_parent(TC_CAST(cls.get()), kIngressParent);
  rtnl_cls_set_prio(cls.get(), uint16_t(kUplinkFilterPrio));
  rtnl_cls_set_protocol(cls.get(), ETH_P_ALL);
  rtnl_tc_set_kind(TC_CAST(cls.get()), "matchall");
  rtnl_cls_delete(sk.get(), cls.get(), 0);
  std::string ignored;
  nft_run("delete table netdev " + nft_table(ifindex) + "\n", &ignored);  // absent unless the nft arrangement ran
}

}  // namespace vpcd::dp
