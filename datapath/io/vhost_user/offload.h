// Software versions of the offloads a guest may not have negotiated: completing a partial checksum
// (VIRTIO_NET_HDR_F_NEEDS_CSUM for a guest without GUEST_CSUM) and TCP segmentation (a GSO frame for a guest without
// GUEST_TSO4/6). Used by VhostUserPort::tx_enqueue.
//
// Both work on a frame the parser has accepted (its l3/l4 offsets and flags are in the Packet) and re-check every
// offset they use against the length, so a frame from an unparsed source can at worst be refused.
//
// Threading: pure functions; the caller owns the output buffer.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "datapath/pipeline/packet.h"

namespace vpcd::dp::vhost {

// Writes the checksum of frame[csum_start, len) at csum_start + csum_offset (whose 16 bits hold the pseudo-header sum,
// as NEEDS_CSUM frames carry it). false when the offsets do not fit the frame.
bool complete_checksum(uint8_t* frame, uint32_t len, uint32_t csum_start, uint32_t csum_offset) noexcept;

// Splits the TCP GSO frame p into segments of at most p.vnet.gso_size payload bytes, each a complete frame with
// correct IPv4 total length / id / header checksum (or IPv6 payload length), TCP sequence number, flags (FIN/PSH only
// on the last, CWR only on the first) and TCP checksum; calls emit(frame, len) for each. `scratch` is the buffer the
// segments are built in. false (nothing emitted) when p is not an IPv4/IPv6 TCP frame with consistent headers.
bool segment_tcp(const Packet& p, std::vector<uint8_t>& scratch,
                 const std::function<bool(const uint8_t*, uint32_t)>& emit) noexcept;

}  // namespace vpcd::dp::vhost
