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

#include <span>
#include <string_view>

#include "datapath/config/dataplane_config.h"
#include "datapath/pipeline/packet.h"
#include "datapath/pipeline/stage.h"
#include "datapath/pipeline/worker_context.h"
#include "datapath/proto/types.h"
#include "datapath/proto/vxlan.h"

namespace vpcd::dp {

// Stage "vxlan-encap": packets l2-switch (or arp-responder) decided to send to a tunnel port (its out_features), and
// floods of a VPC that has tunnels, from a local port (split horizon: floods from a tunnel never come here).
//   - unicast to a tunnel (a remote NIC's or a learned MAC's VTEP): the VPC MTU is checked (inner IPv4 DF too big:
//     ICMP fragmentation-needed from the VPC gateway back to the sender, frag_needed; other too-big frames too_big),
//     the underlay next hop resolved (the VTEP when on-link, else the uplink's gateway; no_underlay otherwise) in the
//     worker's ArpCache, the 50 outer bytes written (the packet's prefix for frames still in the rx ring, in the pool
//     buffer's headroom for pool frames), out_port = the uplink, next output. Unresolved: a pool copy waits in the
//     cache's bounded queue (underlay_arp_queue_full beyond it) and an ARP request goes out;
//   - flood: head-end replication, one pool packet per tunnel in VpcConfig::tunnels (the VPC's VTEP peers), sharing
//     the rx frame's bytes and carrying its own outer headers; the packet itself goes on to output for the local ports;
//   - GSO super-frames: segmented in software (datapath/proto/gso.h; the inner checksum completed per segment, or left
//     partial for the kernel when the frame's was partial). Unicast with the next hop resolved: the super-frame goes
//     on whole with the outer header template as its prefix and kSegmentOnTx, and output writes the segments straight
//     into the uplink's transmit ring; otherwise (floods, next hop unresolved) each segment becomes a pool packet and
//     the super-frame is consumed.
// Tunnel tx counters count what leaves per VTEP (per-VTEP counters); drops are charged to the tunnel.
struct VxlanEncapStage {
  static constexpr std::string_view kName = "vxlan-encap";
  static constexpr Next kId = Next::kVxlanEncap;
  static NextSet process(WorkerContext& ctx, const DataplaneConfig& cfg, std::span<Packet* const> pkts) noexcept;
};

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
