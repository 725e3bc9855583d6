// Threaded NAPI with GRO on a veth end inside another network namespace (a netns NIC's guest end), so the receiving
// guest's network stack runs on a kernel thread ("napi/<ifname>-<id>") the scheduler can put on another core, instead
// of inside the datapath worker's send system call.
//
// What the kernel needs for veth to take its NAPI path (drivers/net/veth.c, veth_xmit): the receiving end must have
// NAPI (GRO enabled on it: veth creates its NAPI instances when the device opens, or at once when GRO is switched on
// while it is up), and the skb must be eligible: either the sending end (vpcd's host end) has no TSO, or the skb is
// owned by a socket through sock_wfree (what a plain sendmsg on a packet socket builds; TX-ring skbs carry
// tpacket_destruct_skb instead) and the receiving end has rx-gro-list or rx-udp-gro-forwarding. vpcd keeps TSO on its
// host ends (GSO super-frames must pass whole), so the super-frames it sends with sendmsg go through the guest's
// NAPI thread, and the small frames it sends through its TX ring keep the backlog path (processed in the sender's
// softirq). Without GRO the skb goes through netif_rx and the per-CPU backlog, on the sending CPU.
//
// veth_threaded_napi sets rx-gro and rx-udp-gro-forwarding (ETHTOOL_SFEATURES) and writes 1 to the device's
// sysfs "threaded" attribute. sysfs shows the devices of the namespace of whoever mounted it, so this is done on a
// short-lived thread that enters the guest's namespace, unshares its mount namespace (private propagation) and mounts
// a sysfs of its own over /sys there; nothing of it is visible outside that thread, and it all goes away when the
// thread ends. "threaded" needs the NAPI instances to exist: call it with the device up.
//
// Threading: callable from any thread (the work happens on its own thread, joined before returning).
#pragma once

#include <string>

namespace vpcd::dp {

// GRO + rx-udp-gro-forwarding + threaded NAPI on `ifname` in the namespace `netns_fd`. false with *err when any step
// failed (what succeeded stays: the device works either way).
bool veth_threaded_napi(int netns_fd, const std::string& ifname, std::string* err);

}  // namespace vpcd::dp
