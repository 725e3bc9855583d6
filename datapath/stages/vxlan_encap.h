// VXLAN encapsulation (RFC 7348), the core of the "vxlan-encap" stage: the per-packet work of sending an inner frame
// of a VPC to a remote VTEP through the underlay uplink.
//
//   - inner_flow_hash(): a hash of the inner flow (IPv4/IPv6 addresses + protocol + ports, else the MACs and
//     EtherType), the same for every packet of a flow, for the outer UDP source port (49152..65535) and handoff;
//   - vxlan_encap_header(): the 50 outer bytes for one packet (the caller keeps them alive until output: they become
//     the packet's prefix), DF set, outer UDP checksum 0 or computed; a partial inner checksum (vnet NEEDS_CSUM) stays
//     partial with csum_start moved past the outer headers (the kernel's local checksum offload fills it in);
//   - build_icmp_frag_needed(): ICMP "fragmentation needed" (type 3 code 4, RFC 1191) from the VPC gateway back to the
//     sender of an inner IPv4 DF packet that does not fit the VPC MTU.
// GSO super-frames are segmented before encapsulation (datapath/proto/gso.h): the underlay gets MTU-sized frames.
// Drop reasons decided by the stage: kNoUnderlay, kUnderlayArpQueueFull, kUnderlayArpFailed, kFragNeeded (an ICMP
// error was sent instead), kGsoSegmentFailed.
// Threading: pure functions of the packet; the caller owns the buffers.
#pragma once

#include <cstddef>
#include <cstdint>

#include "datapath/pipeline/packet.h"
#include "datapath/proto/types.h"
#include "datapath/proto/vxlan.h"

namespace vpcd::dp {

// Parsed inner packet p's flow hash (never 0).
uint32_t inner_flow_hash(const Packet& p) noexcept;

// Writes the outer headers for inner packet p into out: tmpl (built once per remote VTEP and next hop) with the
// lengths, IPv4 checksum and source port (from hash) stamped in; with udp_csum the UDP checksum over the inner frame
// (not for partial or GSO frames, whose bytes are not final: then it stays 0). Adjusts p.vnet for the 50 outer bytes.
void vxlan_encap_header(Packet& p, const proto::VxlanOuter& tmpl, uint32_t hash, bool udp_csum,
                        proto::VxlanOuter& out) noexcept;

// True when p is an IPv4 packet with DF that does not fit mtu (L3 bytes) and is not a GSO super-frame.
bool needs_frag_needed(const Packet& p, uint32_t mtu) noexcept;

// Writes into out (capacity cap bytes; 14 + 20 + 8 + 576 suffice) the ICMP fragmentation-needed answer to p: Ethernet
// from router_mac to p's source MAC, IPv4 from gateway to p's source, next-hop MTU mtu, and as much of p's IP packet
// as keeps the ICMP datagram within 576 bytes (RFC 1812 4.3.2.3). Returns the frame length, 0 if p is not IPv4.
size_t build_icmp_frag_needed(const Packet& p, const MacAddr& router_mac, Ipv4Addr gateway, uint16_t mtu, uint8_t* out,
                              size_t cap) noexcept;

}  // namespace vpcd::dp
