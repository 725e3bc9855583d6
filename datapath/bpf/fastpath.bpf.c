// The kernel fast path (datapath/io/kernel_fastpath.h): frames between two guest NICs (netns or tap) of one VPC
// subnet whose forwarding decision is known in advance go from the sender's host interface straight to the receiver
// (a netns NIC's guest end by bpf_redirect_peer, a tap's hypervisor by bpf_redirect out of the tap), without the
// AF_PACKET copies into vpcd and back out.
//
// Two programs, one decision (fp_decide):
//   - fp_ingress (tc ingress, clsact, direct action) on every such NIC's host interface (veth host end, tap): a frame
//     fp_decide takes is counted (fp_stats: rx on the input, tx on the output) and redirected; any other frame passes
//     (TC_ACT_OK).
//   - fp_sock (socket filter, SO_ATTACH_BPF) on the NIC's AF_PACKET RX sockets: returns 0 (the socket does not take
//     the frame) for a frame fp_decide takes, so vpcd does not forward it a second time. Packet taps run before tc
//     ingress in __netif_receive_skb_core, so the socket sees every frame first.
//
// What fp_decide takes is exactly what vpcd's pipeline would forward unchanged to one guest NIC and nothing else:
// the control plane (kernel_fastpath.cc) lists only NICs of VPCs without firewall stages (policy_builder.h), with
// port security on and no capture running; the program itself checks what the parse and port-security stages
// check for the frames it takes: untagged Ethernet from the NIC's own MAC to the MAC of a listed NIC of the same
// subnet, at most the receiver's MTU unless GSO, IPv4 without options, not a fragment, from one of the NIC's own addresses, carrying TCP (a valid header
// length), UDP (a valid length, or UDP GSO) or an ICMP echo request or reply. Everything else (ARP, broadcast, the
// router's MAC, IPv6, options, fragments, other ICMP, anything malformed) goes to vpcd as before.
//
// Threading: runs in softirq on any CPU; the maps are written by vpcd's control thread only.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/pkt_cls.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "datapath/bpf/fastpath_maps.h"

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, FP_MAX_PORTS);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, __u32);  // host end ifindex
  __type(value, struct fp_port);
} fp_ports SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, FP_MAX_PORTS);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct fp_mac_key);
  __type(value, __u32);  // host end ifindex of the NIC with that MAC
} fp_macs SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, FP_MAX_SOURCES);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct fp_src_key);
  __type(value, __u8);
} fp_srcs SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
  __uint(max_entries, FP_MAX_PORTS);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, __u32);  // host end ifindex
  __type(value, struct fp_counters);
} fp_stats SEC(".maps");

#define FP_IPV4_OFF 14
#define FP_L4_OFF (FP_IPV4_OFF + 20)

// The output host end's ifindex when the frame takes the fast path, else 0; *to_peer: how it leaves.
static __always_inline __u32 fp_decide(struct __sk_buff* skb, int* to_peer) {
  if (skb->vlan_present) return 0;
  __u32 in = skb->ifindex;
  struct fp_port* port = bpf_map_lookup_elem(&fp_ports, &in);
  if (!port) return 0;
  __u8 eth[14];
  if (bpf_skb_load_bytes(skb, 0, eth, sizeof eth) < 0) return 0;
  if (eth[12] != 0x08 || eth[13] != 0x00) return 0;
  // (clang 14 does not inline memcmp for BPF: compared as one 4-byte and one 2-byte load)
  __u32 s4, m4;
  __u16 s2, m2;
  __builtin_memcpy(&s4, eth + 6, 4);
  __builtin_memcpy(&s2, eth + 10, 2);
  __builtin_memcpy(&m4, port->mac, 4);
  __builtin_memcpy(&m2, port->mac + 4, 2);
  if (s4 != m4 || s2 != m2) return 0;
  struct fp_mac_key mk = {};
  mk.group = port->group;
  __builtin_memcpy(mk.mac, eth, 6);
  __u32* out = bpf_map_lookup_elem(&fp_macs, &mk);
  if (!out || *out == in) return 0;
  __u32 out_ifindex = *out;
  struct fp_port* dst = bpf_map_lookup_elem(&fp_ports, &out_ifindex);
  if (!dst || dst->group != port->group) return 0;
  if (!skb->gso_size && skb->len > dst->mtu + 14) return 0;
  *to_peer = dst->flags & FP_TO_PEER;

  __u8 ip[20];
  if (bpf_skb_load_bytes(skb, FP_IPV4_OFF, ip, sizeof ip) < 0) return 0;
  if (ip[0] != 0x45) return 0;  // IPv4, no options
  __u32 avail = skb->len - FP_IPV4_OFF;
  __u32 tot = ((__u32)ip[2] << 8) | ip[3];
  if (tot < 20 || tot > avail) return 0;
  if ((ip[6] & 0x3f) != 0 || ip[7] != 0) return 0;  // MF or a fragment offset
  struct fp_src_key sk = {};
  sk.ifindex = in;
  __builtin_memcpy(&sk.addr, ip + 12, 4);
  if (!bpf_map_lookup_elem(&fp_srcs, &sk)) return 0;

  __u32 l4 = tot - 20;
  __u8 proto = ip[9];
  if (proto == IPPROTO_TCP) {
    __u8 th[13];
    if (l4 < 20 || bpf_skb_load_bytes(skb, FP_L4_OFF, th, sizeof th) < 0) return 0;
    __u32 doff = (__u32)(th[12] >> 4) * 4;
    if (doff < 20 || doff > l4) return 0;
  } else if (proto == IPPROTO_UDP) {
    __u8 uh[8];
    if (l4 < 8 || bpf_skb_load_bytes(skb, FP_L4_OFF, uh, sizeof uh) < 0) return 0;
    __u32 ulen = ((__u32)uh[4] << 8) | uh[5];
    if (!skb->gso_size && (ulen < 8 || ulen > l4)) return 0;
  } else if (proto == IPPROTO_ICMP) {
    __u8 ih[1];
    if (l4 < 8 || bpf_skb_load_bytes(skb, FP_L4_OFF, ih, sizeof ih) < 0) return 0;
    if (ih[0] != 0 && ih[0] != 8) return 0;  // echo reply, echo request
  } else {
    return 0;
  }
  return out_ifindex;
}

static __always_inline void fp_count(__u32 ifindex, __u64 bytes, int tx) {
  struct fp_counters* c = bpf_map_lookup_elem(&fp_stats, &ifindex);
  if (!c) return;
  if (tx) {
    c->tx_packets += 1;
    c->tx_bytes += bytes;
  } else {
    c->rx_packets += 1;
    c->rx_bytes += bytes;
  }
}

SEC("tc")
int fp_ingress(struct __sk_buff* skb) {
  int to_peer = 0;
  __u32 out = fp_decide(skb, &to_peer);
  if (!out) return TC_ACT_OK;
  fp_count(skb->ifindex, skb->len, 0);
  fp_count(out, skb->len, 1);
  return to_peer ? bpf_redirect_peer(out, 0) : bpf_redirect(out, 0);
}

SEC("socket")
int fp_sock(struct __sk_buff* skb) {
  int to_peer = 0;
  return fp_decide(skb, &to_peer) ? 0 : (int)skb->len;
}

char _license[] SEC("license") = "GPL";
