// Software GSO: cuts a GSO super-frame (a guest's TSO/USO send, described by its virtio_net_hdr) into wire-sized
// frames, for paths that cannot hand the kernel the super-frame itself (VXLAN encapsulation: the kernel's AF_PACKET
// transmit path accepts only TCPV4/TCPV6/UDP/UDP_L4 vnet GSO types, not UDP-tunnel GSO; see docs/STATUS.md).
//
// Supported: VIRTIO_NET_HDR_GSO_TCPV4, _TCPV6 (IPv6 without extension headers) and UDP_L4 (5). Not supported (returns
// 0): GSO_UDP (UFO: would need IP fragmentation), frames whose parsed headers do not match the GSO type.
// Every segment is a full frame: the original Ethernet/IP/L4 headers, then at most gso_size payload bytes. IPv4 total
// length, id (+1 per segment) and header checksum; IPv6 payload length; TCP sequence number (+ offset), FIN/PSH only
// on the last segment, CWR only on the first; UDP length. The L4 checksum is either computed in full
// (kSoftware: "the inner checksum is done"; the payload is summed while it is copied, proto::ones_sum_copy, one pass
// over it instead of a copy and a second read) or left to the kernel/NIC as a partial checksum (kPartial: the field
// holds the pseudo-header sum and the segment's vnet header says NEEDS_CSUM at csum_start/csum_offset).
// Threading: pure function; the caller owns the output buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "datapath/pipeline/packet.h"

namespace vpcd::proto {

inline constexpr uint8_t kVnetGsoUdpL4 = 5;  // VIRTIO_NET_HDR_GSO_UDP_L4, newer than Debian 12's uapi header

enum class GsoCsum : uint8_t { kSoftware, kPartial };

struct GsoSegment {
  uint32_t offset;     // in the output buffer
  uint32_t len;        // frame bytes
  virtio_net_hdr vnet; // all zero (kSoftware) or NEEDS_CSUM (kPartial)
};

// The number of segments p (parsed, kHasVnet with a GSO type) becomes, 0 when it cannot be segmented.
size_t gso_segment_count(const dp::Packet& p) noexcept;

// Writes p's segments back to back into out and describes them in segs. Returns the segment count, or 0 when p cannot
// be segmented or out/segs are too small (need gso_segment_count(p) segments and p.len + (count - 1) * header bytes + count bytes of alignment slack).
size_t gso_segment(const dp::Packet& p, GsoCsum csum, std::span<uint8_t> out, std::span<GsoSegment> segs) noexcept;

// The largest segment p becomes (headers + gso_size), 0 when it cannot be segmented.
size_t gso_max_segment_bytes(const dp::Packet& p) noexcept;
// Writes segment i alone into out (cap >= gso_max_segment_bytes(p)); false when p cannot be segmented or i is past
// the last segment. seg->offset is 0.
bool gso_segment_one(const dp::Packet& p, size_t i, GsoCsum csum, uint8_t* out, size_t cap, GsoSegment* seg) noexcept;

// Completes a partial checksum in place (p has NEEDS_CSUM; the field at csum_start + csum_offset holds the
// pseudo-header sum) and clears NEEDS_CSUM. False when the offsets do not fit p.
bool finish_partial_checksum(dp::Packet& p) noexcept;

}  // namespace vpcd::proto
