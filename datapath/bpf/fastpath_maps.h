// The maps' keys and values of datapath/bpf/fastpath.bpf.c, shared with the loader (datapath/io/kernel_fastpath.cc).
// Plain C, fixed-width kernel types, no padding the two compilers could lay out differently.
#pragma once

#include <linux/types.h>

#define FP_MAX_PORTS 65536
#define FP_MAX_SOURCES 262144

// A NIC the fast path may carry (both ends of a frame must be listed).
#define FP_TO_PEER 1  // frames for this NIC go into its veth peer's ingress (bpf_redirect_peer), else out of it

struct fp_port {
  __u8 mac[6];  // the NIC's MAC: the only source MAC it may send from
  __u16 flags;  // FP_TO_PEER
  __u32 group;  // its VPC subnet: frames to a NIC's MAC pass only between NICs of one group
  __u32 mtu;    // its VPC's MTU: a larger frame that is not GSO is the pipeline's (dropped there as too_big)
  __u8 router_mac[6];  // its VPC's router: frames to it are routed to the NIC holding the destination (fp_hosts)
  __u16 pad;
  __u32 vpc;  // its VPC (the VNI): frames are routed only between NICs of one VPC
};

struct fp_mac_key {
  __u32 group;
  __u8 mac[6];
  __u16 pad;
};

// One of a NIC's own IPv4 addresses (network byte order).
struct fp_src_key {
  __u32 ifindex;
  __u32 addr;
};

// One of a NIC's own IPv4 addresses in its VPC (network byte order): where a routed frame to it goes.
struct fp_host_key {
  __u32 vpc;
  __u32 addr;
};

struct fp_counters {
  __u64 rx_packets, rx_bytes, tx_packets, tx_bytes;
};
