// The kernel fast path (datapath/io/kernel_fastpath.h): frames between two guest NICs (netns or tap) whose forwarding
// decision is known in advance go from the sender's host interface straight to the receiver (a netns NIC's guest end
// by bpf_redirect_peer, a tap's hypervisor by bpf_redirect out of the tap), without the AF_PACKET copies into vpcd
// and back out: frames within one VPC subnet unchanged, and frames routed between two subnets of one VPC rewritten as
// the pipeline's router does.
//
// Two programs, one decision (fp_decide):
//   - fp_ingress (tc ingress, clsact, direct action) on every such NIC's host interface (veth host end, tap): a frame
//     fp_decide takes is rewritten when routed, counted (fp_stats: rx on the input, tx on the output) and
//     redirected; any other frame passes (TC_ACT_OK).
//   - fp_sock (socket filter, SO_ATTACH_BPF) on the NIC's AF_PACKET RX sockets: returns 0 (the socket does not take
//     the frame) for a frame fp_decide takes, so vpcd does not forward it a second time. Packet taps run before tc
//     ingress in __netif_receive_skb_core, so the socket sees every frame first.
//
// What fp_decide takes is exactly what vpcd's pipeline would forward to one guest NIC, and nothing else: the control
// plane (kernel_fastpath.cc) lists only NICs of VPCs without firewall stages (policy_builder.h: no security groups,
// no routes, port security on everywhere), with port security on and no capture running; the program itself checks
// what the parse, port-security and router stages check for the frames it takes: untagged Ethernet from the NIC's
// own MAC, IPv4 without options, not a fragment, from one of the NIC's own addresses, carrying TCP (a valid header
// length), UDP (a valid length, or UDP GSO) or an ICMP echo request or reply, at most the receiver's MTU unless GSO;
// and either
//   - to the MAC of a listed NIC of the same subnet (fp_macs): forwarded unchanged; or
//   - to the VPC router's MAC with a TTL above 1, to an address a listed NIC of the same VPC holds (fp_hosts, its own
//     addresses in its subnet): routed (router.cc forward_rewrite: to the NIC's MAC from the router's, TTL one
//     less, the header checksum updated).
// Everything else (ARP, broadcast, the router's own addresses, TTL 1, addresses of no listed NIC, IPv6, options,
// fragments, other ICMP, anything malformed) goes to vpcd as before.
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
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, FP_MAX_SOURCES);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct fp_host_key);
  __type(value, __u32);  // host end ifindex of the NIC with that address in that VPC
} fp_hosts SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
  __uint(max_entries, FP_MAX_PORTS);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, __u32);  // host end ifindex
  __type(value, struct fp_counters);
} fp_stats SEC(".maps");

#define FP_IPV4_OFF 14
#define FP_L4_OFF (FP_IPV4_OFF + 20)

// Where a frame fp_decide takes goes, and what fp_ingress rewrites on a routed one.
struct fp_verdict {
  __u32 out;      // the receiver's host end ifindex
  int to_peer;    // into its veth peer (netns NIC), else out of it (tap)
  int routed;     // to the router's MAC: the MACs and the TTL are rewritten as the pipeline's router does
  __u16 ttl_word;  // the routed frame's IPv4 (ttl, protocol) word, as on the wire
  __u8 macs[12];  // the routed frame's new destination (the receiver's MAC) and source (the router's MAC)
};

static __always_inline int fp_mac_eq(const __u8* a, const __u8* b) {
  // (clang 14 does not inline memcmp for BPF: compared as one 4-byte and one 2-byte load)
  __u32 a4, b4;
  __u16 a2, b2;
  __builtin_memcpy(&a4, a, 4);
  __builtin_memcpy(&a2, a + 4, 2);
  __builtin_memcpy(&b4, b, 4);
  __builtin_memcpy(&b2, b + 4, 2);
  return a4 == b4 && a2 == b2;
}

// 1 when the frame takes the fast path (*v says where), else 0.
static __always_inline int fp_decide(struct __sk_buff* skb, struct fp_verdict* v) {
  if (skb->vlan_present) return 0;
  __u32 in = skb->ifindex;
  struct fp_port* port = bpf_map_lookup_elem(&fp_ports, &in);
  if (!port) return 0;
  __u8 eth[14];
  if (bpf_skb_load_bytes(skb, 0, eth, sizeof eth) < 0) return 0;
  if (eth[12] != 0x08 || eth[13] != 0x00) return 0;
  if (!fp_mac_eq(eth + 6, port->mac)) return 0;
  const __u32 group = port->group, vpc = port->vpc;
  v->routed = fp_mac_eq(eth, port->router_mac);
  if (v->routed) {
    __builtin_memcpy(v->macs + 6, port->router_mac, 6);
  } else {
    struct fp_mac_key mk = {};
    mk.group = group;
    __builtin_memcpy(mk.mac, eth, 6);
    __u32* out = bpf_map_lookup_elem(&fp_macs, &mk);
    if (!out) return 0;
    v->out = *out;
  }

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

  if (v->routed) {
    if (ip[8] <= 1) return 0;  // the pipeline answers with time exceeded
    struct fp_host_key hk = {};
    hk.vpc = vpc;
    __builtin_memcpy(&hk.addr, ip + 16, 4);
    __u32* out = bpf_map_lookup_elem(&fp_hosts, &hk);
    if (!out) return 0;
    v->out = *out;
    __builtin_memcpy(&v->ttl_word, ip + 8, 2);
  }
  if (v->out == in) return 0;
  __u32 out_ifindex = v->out;
  struct fp_port* dst = bpf_map_lookup_elem(&fp_ports, &out_ifindex);
  if (!dst || dst->vpc != vpc || (!v->routed && dst->group != group)) return 0;
  if (!skb->gso_size && skb->len > dst->mtu + 14) return 0;
  v->to_peer = dst->flags & FP_TO_PEER;
  if (v->routed) __builtin_memcpy(v->macs, dst->mac, 6);

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
  return 1;
}

// A routed frame leaves as the pipeline's router sends it (router.cc forward_rewrite): to the receiver's MAC from
// the router's, its TTL one less (the header checksum updated incrementally).
static __always_inline int fp_rewrite(struct __sk_buff* skb, const struct fp_verdict* v) {
  if (bpf_skb_store_bytes(skb, 0, v->macs, sizeof v->macs, 0) < 0) return -1;
  __u8 w[2];
  __builtin_memcpy(w, &v->ttl_word, 2);
  w[0] -= 1;
  __u16 to;
  __builtin_memcpy(&to, w, 2);
  if (bpf_l3_csum_replace(skb, FP_IPV4_OFF + 10, v->ttl_word, to, 2) < 0) return -1;
  return bpf_skb_store_bytes(skb, FP_IPV4_OFF + 8, &to, 2, 0);
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
  struct fp_verdict v = {};
  if (!fp_decide(skb, &v)) return TC_ACT_OK;
  // The socket filter let a frame through only because it takes this path: one that cannot be rewritten is dropped
  // here (counted in the clsact qdisc's drops, `tc -s qdisc show dev IF`), not handed to a pipeline that never saw it;
  // bpf_skb_store_bytes fails only when the kernel cannot make the header writable (out of memory).
  if (v.routed && fp_rewrite(skb, &v) < 0) return TC_ACT_SHOT;
  fp_count(skb->ifindex, skb->len, 0);
  fp_count(v.out, skb->len, 1);
  return v.to_peer ? bpf_redirect_peer(v.out, 0) : bpf_redirect(v.out, 0);
}

SEC("socket")
int fp_sock(struct __sk_buff* skb) {
  struct fp_verdict v = {};
  return fp_decide(skb, &v) ? 0 : (int)skb->len;
}

char _license[] SEC("license") = "GPL";
