// What vpcd does to an uplink interface so that it, and not the kernel stack, handles the underlay frames:
//
//   - GRO and LRO off (ethtool): otherwise the kernel merges received VXLAN datagrams into UDP-tunnel GSO super-frames
//     that an AF_PACKET socket cannot describe with its 10-byte vnet header (the kernel drops them at the socket);
//   - an ingress qdisc with a matchall filter whose action is drop ("tc qdisc add dev U ingress; tc filter add dev U
//     ingress matchall action drop"): packet sockets receive a frame before tc ingress runs, so vpcd still sees every
//     frame while the kernel's IP stack never does: no ICMP port unreachable for VXLAN, no ARP answers, no forwarding,
//     no IPv6 autoconfiguration replies. vpcd's own transmissions bypass the qdisc layer (PACKET_QDISC_BYPASS).
//     Kernels without cls_matchall/act_gact get the same effect from an nftables netdev ingress chain with policy drop
//     (table "netdev vpcd_uplink_<ifindex>", through libnftables), and kernels without nf_tables too the sysctls of
//     UplinkMute::kSysctl;
//   - the link set up. The uplink's address is never configured in the kernel: vpcd answers ARP for it itself.
// The filter is tagged with its own priority (kUplinkFilterPrio) so remove_uplink_filter() deletes only what vpcd added.
//
// Threading: control thread only; acts in the calling thread's network namespace.
#pragma once

#include <cstdint>
#include <string>

namespace vpcd::dp {

inline constexpr unsigned kUplinkFilterPrio = 0xc0de;

// How the kernel stack was kept away from the uplink's frames.
enum class UplinkMute : uint8_t {
  kTcDrop,  // ingress matchall drop (the kernel sees nothing)
  // No cls_matchall/act_gact (as on this test machine's kernel), but nf_tables: an nftables netdev ingress chain with
  // policy drop (the kernel sees nothing either).
  kNftDrop,
  // The kernel has neither cls_matchall/act_gact (CONFIG_NET_CLS_MATCHALL, CONFIG_NET_ACT_GACT) nor nf_tables' netdev
  // family (CONFIG_NF_TABLES_NETDEV): /proc/sys/net/ipv4/conf/IF/{forwarding=0, arp_ignore=8, accept_local=0}, ipv6 disable_ipv6=1. With no
  // kernel address on the uplink (vpcd owns it) the stack then neither forwards, answers ARP, nor sends ICMP errors
  // (ip_error stays silent when forwarding is off on the input device).
  kSysctl,
};

// GRO/LRO off, ingress drop filter installed (replacing an earlier one of ours; nftables, then the sysctls, when the
// kernel lacks the classifier), link up. false + *err on failure.
bool prepare_uplink(const std::string& ifname, std::string* err, UplinkMute* how = nullptr);
// Removes the ingress drop filter or nftables table (the kernel sees the interface's frames again). Best effort.
void release_uplink(const std::string& ifname);
// GRO state as ethtool reports it: 1 on, 0 off, -1 unknown.
int uplink_gro(const std::string& ifname);

}  // namespace vpcd::dp
