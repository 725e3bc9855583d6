// Every reason the datapath drops a frame, as data (STYLE.md section 2). Each has a stable snake_case name used in
// counters, /metrics and the REST stats. Add new reasons before kCount and give each one a parser or stage test.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace vpcd::dp {

#define VPCD_FOREACH_DROP_REASON(X)                                                        \
  /* parse */                                                                              \
  X(kTooShortEthernet, "too_short_ethernet")                                               \
  X(kTooShortVlan, "too_short_vlan")                                                       \
  X(kTooManyVlanTags, "too_many_vlan_tags")                                                \
  X(kTooShortArp, "too_short_arp")                                                         \
  X(kBadArpFormat, "bad_arp_format")                                                       \
  X(kTooShortIpv4, "too_short_ipv4")                                                       \
  X(kBadIpv4Version, "bad_ipv4_version")                                                   \
  X(kBadIpv4HeaderLen, "bad_ipv4_header_len")                                              \
  X(kBadIpv4TotalLen, "bad_ipv4_total_len")                                                \
  X(kTooShortIpv6, "too_short_ipv6")                                                       \
  X(kBadIpv6Version, "bad_ipv6_version")                                                   \
  X(kBadIpv6PayloadLen, "bad_ipv6_payload_len")                                            \
  X(kBadIpv6ExtHeader, "bad_ipv6_ext_header") /* truncated or too many */                  \
  X(kTooShortTcp, "too_short_tcp")                                                         \
  X(kBadTcpHeaderLen, "bad_tcp_header_len")                                                \
  X(kTooShortUdp, "too_short_udp")                                                         \
  X(kBadUdpLen, "bad_udp_len")                                                             \
  X(kTooShortIcmp, "too_short_icmp")                                                       \
  X(kBadVnetHeader, "bad_vnet_header")                                                     \
  X(kTruncated, "truncated") /* the ring gave us less than the frame (snaplen) */          \
  X(kRxQueueFull, "rx_queue_full") /* larger than a slot, cut to it: the recvmsg queue was full */ \
  X(kSourceMacMulticast, "source_mac_multicast")                                           \
  /* port security */                                                                      \
  X(kSpoofedSourceMac, "spoofed_source_mac")                                               \
  X(kSpoofedSourceIp, "spoofed_source_ip")                                                 \
  X(kSpoofedArp, "spoofed_arp")                                                            \
  X(kVlanTagged, "vlan_tagged") /* guests' NICs are untagged access ports */               \
  X(kRaGuard, "ra_guard") /* a guest sent a router advertisement or a redirect */          \
  X(kSpoofedNd, "spoofed_nd") /* ND with another MAC / target, or malformed */             \
  X(kEthertypeNotAllowed, "ethertype_not_allowed") /* not IPv4/ARP/IPv6 (LLC, LLDP...) */  \
  /* switch */                                                                             \
  X(kNoVpc, "no_vpc") /* the port belongs to no VPC (being removed) */                     \
  X(kHairpin, "hairpin") /* destination learned on the input port */                       \
  X(kFloodEmpty, "flood_no_ports") /* broadcast with no other port in the VPC */           \
  X(kUnknownUnicast, "unknown_unicast") /* no port may have the unknown MAC behind it */    \
  X(kNotRouted, "not_routed") /* to the router MAC but not IPv4 (or the VPC has no router) */ \
  X(kTooBig, "too_big") /* larger than the output port's MTU */                            \
  X(kMembershipReport, "membership_report") /* MLD/IGMP report: no multicast router listens */ \
  /* output */                                                                             \
  X(kTxRingFull, "tx_ring_full")                                                           \
  X(kTxError, "tx_error")                                                                  \
  X(kTxStalled, "tx_stalled") /* in the TX ring, but the kernel refused it until the retry limit */ \
  X(kPortDown, "port_down")                                                                \
  /* input ring */                                                                         \
  X(kRxRingFull, "rx_ring_full") /* the kernel found the port's RX ring full */            \
  /* runner */                                                                             \
  X(kNoStage, "no_stage") /* sent to a stage this build does not carry out (a bug) */      \
  /* router */                                                                             \
  X(kTtlExceeded, "ttl_exceeded") /* routed with TTL <= 1 (time exceeded sent) */          \
  X(kNoRoute, "no_route") /* no route to the destination (net unreachable sent) */         \
  X(kBlackholeRoute, "blackhole_route") /* a blackhole route (net unreachable sent) */     \
  X(kNextHopUnresolved, "next_hop_unresolved") /* no NIC owns the next hop */              \
  X(kToRouter, "to_router") /* to a gateway address, not an echo request */                \
  /* firewall (security groups, conntrack) */                                              \
  X(kDeniedByRule, "denied_by_rule") /* no security-group rule allows the flow */          \
  X(kCtInvalid, "ct_invalid") /* fails TCP state/window checks, or an unmatched reply */   \
  X(kCtTableFull, "ct_table_full") /* a new flow over the connection limit */              \
  X(kFragmentNoFirst, "fragment_no_first") /* a later fragment without its first */ \
  /* uplink input, vxlan decap (RFC 7348) */                                               \
  X(kUplinkNotForUs, "uplink_not_for_us") /* neither ARP for us nor VXLAN to our address */ \
  X(kVxlanOuterFragment, "vxlan_outer_fragment") /* outer IPv4 fragment: not reassembled */ \
  X(kVxlanTruncated, "vxlan_truncated") /* UDP payload shorter than VXLAN + Ethernet */     \
  X(kVxlanBadUdpChecksum, "vxlan_bad_udp_checksum") /* non-zero and wrong */               \
  X(kVxlanBadFlags, "vxlan_bad_flags") /* I flag clear */                                  \
  X(kVxlanUnknownVni, "vxlan_unknown_vni")                                                 \
  X(kVxlanUnknownVtep, "vxlan_unknown_vtep") /* outer source not a VTEP of that VPC */     \
  X(kVxlanInnerVlan, "vxlan_inner_vlan")                                                   \
  X(kVxlanBadGso, "vxlan_bad_gso") /* a UDP GSO super-frame that is no sequence of datagrams */ \
  X(kVxlanSplitBudget, "vxlan_split_budget") /* more datagrams in a batch's super-frames than a run holds */ \
  /* vxlan encap, underlay ARP */                                                          \
  X(kNoUnderlay, "no_underlay") /* no underlay uplink configured or up */                  \
  X(kUnderlayArpQueueFull, "underlay_arp_queue_full") /* next hop unresolved, queue full */ \
  X(kUnderlayArpFailed, "underlay_arp_failed") /* next hop did not answer ARP */            \
  X(kFragNeeded, "frag_needed") /* inner IPv4 DF too big: ICMP sent back */               \
  X(kGsoSegmentFailed, "gso_segment_failed") /* a super-frame that cannot be segmented */    \
  /* vhost-user */                                                                         \
  X(kVhostBadDescriptor, "vhost_bad_descriptor") /* a guest's invalid descriptor chain */  \
  X(kVhostFrameTooLong, "vhost_frame_too_long") /* a guest sent more than 64 KiB */        \
  X(kVhostNoRxBuffers, "vhost_no_rx_buffers") /* the guest's RX ring had no room */        \
  X(kVhostRxBufferTooSmall, "vhost_rx_buffer_too_small") /* no MRG_RXBUF, chain too small */ \
  X(kVhostOffloadUnsupported, "vhost_offload_unsupported") /* the guest cannot take it */ \
  /* not a drop: the frame was used up (an ARP reply learned, a super-frame sent as segments, a frame queued for */ \
  /* ARP as a pool copy); the runner frees it without counting */                           \
  X(kConsumed, "consumed")

enum class DropReason : uint8_t {
#define VPCD_X(sym, str) sym,
  VPCD_FOREACH_DROP_REASON(VPCD_X)
#undef VPCD_X
      kCount
};

inline constexpr std::array<std::string_view, size_t(DropReason::kCount)> kDropReasonNames = {
#define VPCD_X(sym, str) str,
    VPCD_FOREACH_DROP_REASON(VPCD_X)
#undef VPCD_X
};
static_assert(kDropReasonNames.size() == size_t(DropReason::kCount));

constexpr std::string_view drop_reason_name(DropReason r) noexcept { return kDropReasonNames[size_t(r)]; }

}  // namespace vpcd::dp
