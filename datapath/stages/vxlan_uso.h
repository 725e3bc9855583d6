// VXLAN by UDP segmentation offload (USO) towards the underlay: a guest's GSO super-frame that vxlan-encap sends to a
// tunnel whole (kSegmentOnTx) is segmented in software as on the per-segment path (inner headers and inner checksums
// per segment, datapath/proto/gso.h), but the segments are laid out as ONE frame:
//
//   outer Ethernet + IPv4 (DF) + UDP (42 bytes, once) | VXLAN + inner segment 0 | VXLAN + inner segment 1 | ...
//
// each chunk exactly gso_size = 8 + the largest inner segment bytes (only the last one shorter), handed to the uplink
// with the vnet header {NEEDS_CSUM, csum_start = the outer UDP header (34), csum_offset 6, gso_type UDP_L4, gso_size,
// hdr_len 42}. The kernel's UDP GSO (__udp_gso_segment, or the NIC) gives every chunk its own copy of the outer
// headers with IPv4 length / ID / checksum and UDP length / checksum fixed per datagram, so every datagram on the wire
// is exactly one RFC 7348 VXLAN packet (the outer UDP checksum is always set: computed by the kernel, or left partial
// across a veth), and the underlay carries one skb per USO frame instead of one per 1.5 KB (veth passes
// SKB_GSO_UDP_L4 skbs whole; a NIC without USO gets them segmented by the kernel before its driver).
// bench/e2e/probe_uso_vxlan.py shows a kernel vxlan device receiving such frames correctly.
//
// Limits (respected here; a super-frame that does not fit goes the per-segment way, counted uso_tx_fallbacks):
//   - AF_PACKET's virtio_net_hdr_to_skb: NEEDS_CSUM required for UDP_L4, csum_offset 6, payload <= gso_size *
//     UDP_MAX_SEGMENTS (64 before Linux 6.x, 128 since): at most kUsoTxMaxSegments chunks per frame;
//   - __udp_gso_segment: csum_start must be the UDP header; the payload must exceed one gso_size (a frame of one chunk
//     is sent as a plain datagram, gso_type NONE with NEEDS_CSUM);
//   - the IPv4 total length (65535) and the device's gso_max_size (64 KiB by default: a GSO skb of 65536 bytes or
//     more is segmented in software before the driver, and a veth drops it; tests/integration
//     io_af_packet_big_ring_test.cc saw it for sendmsg and the TX ring alike): frames stay within kUsoMaxFrameBytes,
//     and a super-frame whose chunks do not fit one is sent as several USO frames;
//   - the inner checksums cannot stay partial (one csum_start per frame): always completed in software.
// Threading: pure functions; the caller owns the buffer.
#pragma once

#include <cstddef>
#include <cstdint>

#include "datapath/pipeline/packet.h"
#include "datapath/proto/vxlan.h"

namespace vpcd::dp {

inline constexpr size_t kUsoTxMaxSegments = 64;
inline constexpr size_t kUsoOuterBytes = 42;  // Ethernet + IPv4 + UDP
inline constexpr size_t kUsoMaxIpLen = 65535;
inline constexpr size_t kUsoMaxFrameBytes = 65535;  // Ethernet header included: below a 64 KiB gso_max_size
// A buffer that holds any USO frame: the outer headers and at most 64 KiB of IPv4 packet.
inline constexpr size_t kUsoFrameBytes = 14 + kUsoMaxIpLen;

struct UsoPlan {
  size_t segments = 0;   // inner segments of the super-frame
  size_t chunk = 0;      // gso_size: VXLAN header + the largest inner segment
  size_t per_frame = 0;  // chunks per USO frame
};

// How super-frame p (parsed, a GSO type gso.h segments) is laid out; segments == 0 when it cannot be (then the
// per-segment path applies).
UsoPlan vxlan_uso_plan(const Packet& p) noexcept;

// Writes the USO frame for segments [first, first + count) of p into out (cap >= kUsoFrameBytes): outer headers from
// tmpl (a finished-template: MACs, addresses, TTL, DF, source port; VXLAN header with the VNI), then the chunks.
// Fills *vnet. Returns the frame length, 0 on failure (count 0, count > plan.per_frame, a segment not as planned).
size_t vxlan_uso_frame(const Packet& p, const UsoPlan& plan, const proto::VxlanOuter& tmpl, size_t first, size_t count,
                       uint8_t* out, size_t cap, virtio_net_hdr* vnet) noexcept;

}  // namespace vpcd::dp
