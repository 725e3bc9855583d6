// VXLAN decapsulation (RFC 7348), the core of the "uplink-input" stage: turns a parsed underlay datagram into the
// inner frame of one VPC, received on the tunnel pseudo-port of (VPC, source VTEP).
//
// Checks, in this order, each failure one DropReason (counted on the uplink):
//   - outer IPv4 fragment                                   kVxlanOuterFragment (never reassembled: senders set DF)
//   - UDP payload < VXLAN header + inner Ethernet header    kVxlanTruncated (truncated outer IPv4/UDP headers are
//                                                            already parse drops: too_short_ipv4, too_short_udp, ...)
//   - UDP checksum non-zero and wrong                       kVxlanBadUdpChecksum (skipped when the kernel marked the
//                                                            frame DATA_VALID, or when the checksum is still partial:
//                                                            NEEDS_CSUM at the outer UDP, a sender on this machine)
//   - I flag clear                                          kVxlanBadFlags (checked before the VNI is read; every
//                                                            other flag and reserved bit is ignored)
//   - VNI not a VPC of this box                             kVxlanUnknownVni
//   - outer source not a VTEP peer / remote NIC VTEP of it  kVxlanUnknownVtep
//   - inner frame VLAN-tagged (802.1Q or 802.1ad)           kVxlanInnerVlan
//   - inner frame fails the parser                          its parse DropReason
// On success the Packet views the inner frame (data/len/wire_len moved past the 50 outer bytes, parsed again; the vnet
// header cleared, except a partial inner checksum (NEEDS_CSUM with csum_start inside the inner frame), which stays
// partial, re-based) and the result names the VPC slot and the tunnel port.
// VXLAN carried as one UDP segmentation offload super-frame (vnet gso_type UDP_L4: another vpcd's USO transmit,
// datapath/stages/vxlan_uso.h, across a veth or any underlay that kept the GSO skb whole): the UDP payload is cut
// at gso_size into chunks, and each chunk is decapsulated exactly as the datagram the kernel's segmentation would have
// made of it (vxlan_decap_uso_segment: the same checks from the VXLAN header on, the same drop reasons). The
// super-frame as a whole (vxlan_uso_check) is refused as kVxlanBadGso when gso_size cannot hold a VXLAN header and
// an inner Ethernet header, when it has more than kUsoMaxSegments chunks, or when its outer UDP checksum cannot stand
// for its datagrams (NEEDS_CSUM anywhere but the outer UDP checksum; finished and non-zero without DATA_VALID);
// a NEEDS_CSUM checksum is not verified (it was never computed: the sender is on this machine), DATA_VALID was
// verified by the kernel. The UDP length field of a super-frame is not read (the kernel rewrites it per segment);
// the IPv4 total length bounds the payload. A chunk shorter than VXLAN + Ethernet (only the last one can be) is
// kVxlanTruncated.
// Threading: pure function of the packet and the immutable snapshot tables.
#pragma once

#include <cstdint>

#include "datapath/pipeline/drop_reason.h"
#include "datapath/pipeline/packet.h"
#include "datapath/proto/types.h"
#include "datapath/tables/overlay_table.h"

namespace vpcd::dp {

struct VxlanDecapParams {
  Ipv4Addr local_ip;                    // the underlay uplink's own address
  uint16_t udp_port = 4789;             // config vxlan_port
  const OverlayTable* table = nullptr;  // never null
};

struct VxlanDecapResult {
  uint16_t vpc = OverlayTable::kNone;     // VPC slot
  uint16_t tunnel = OverlayTable::kNone;  // tunnel pseudo-port id
  Ipv4Addr remote;                        // outer source (the VTEP)
};

// True when parsed p is an IPv4/UDP datagram to local_ip:udp_port (what the uplink hands to decap).
inline bool is_vxlan_to_us(const Packet& p, const VxlanDecapParams& c) noexcept {
  return (p.flags & (kIsIpv4 | kIsUdp)) == (kIsIpv4 | kIsUdp) && p.dst_port == c.udp_port && p.ip4_dst == c.local_ip;
}
// Outer IPv4 fragments of VXLAN to us: their first fragment parses as UDP, later ones do not; both are counted.
inline bool is_fragment_to_us(const Packet& p, const VxlanDecapParams& c) noexcept {
  return (p.flags & (kIsIpv4 | kIsFragment)) == (kIsIpv4 | kIsFragment) && p.ip4_dst == c.local_ip &&
         p.ip_proto == 17;
}

inline constexpr unsigned kUsoMaxSegments = 128;  // Linux's UDP_MAX_SEGMENTS (64 before 6.x): more is refused

// True when p carries a vnet header with gso_type UDP_L4 (a USO super-frame).
bool is_udp_gso_frame(const Packet& p) noexcept;
// p: parsed, is_vxlan_to_us (or a fragment to us) and is_udp_gso_frame. Returns kCount and the number of datagrams
// in *segments, or why the whole super-frame is dropped.
DropReason vxlan_uso_check(const Packet& p, unsigned* segments) noexcept;
// Decapsulates datagram i (< the vxlan_uso_check count) of super-frame `super` into c, which holds a copy of super's
// metadata (outer addresses and ports): as vxlan_decap for a datagram of its own.
DropReason vxlan_decap_uso_segment(Packet& c, const Packet& super, unsigned i, const VxlanDecapParams& params,
                                   VxlanDecapResult& out) noexcept;

// p must be parsed and is_vxlan_to_us (or a fragment to us). Returns DropReason::kCount on success (p rewritten,
// out filled) or the drop reason (for inner-frame drops p already views the inner frame).
DropReason vxlan_decap(Packet& p, const VxlanDecapParams& c, VxlanDecapResult& out) noexcept;

}  // namespace vpcd::dp
