// Stage "tcp-coalesce": software GRO towards a guest NIC. Consecutive in-order TCP segments of one flow that a batch
// carries to the same output port (typically decapsulated from the uplink: a remote guest's TSO send, cut into
// 1450-byte frames for the underlay) are joined into one GSO super-frame with a virtio_net_hdr (GSO_TCPV4 /
// GSO_TCPV6, gso_size = the segment payload, NEEDS_CSUM at the TCP checksum), up to 64 KiB, so the guest's kernel
// receives one skb instead of ~45 and the port sends one frame instead of ~45 (AfPacketPort: one sendmsg).
//
// Enabled (PortConfig::out_features) on guest ports whose PortIo takes GSO super-frames with vnet headers
// (PortConfig::gso_tx: tap and netns NICs, AF_PACKET with PACKET_VNET_HDR; not vhost-user, whose guest may not have
// negotiated TSO) in VPCs with tunnels (overlay_builder). Only packets going to one port (not floods) are considered.
//
// A segment S may join the group G (same flow, still open) that precedes it when, all of them:
//   - S is TCP over IPv4 without options or IPv6 without extension headers, not a fragment, no VLAN tag, not a GSO
//     frame itself, not truncated, no prefix (outer headers), with 1 or more payload bytes;
//   - its TCP flags are ACK or ACK|PSH (FIN, SYN, RST, URG, ECE, CWR never merge);
//   - its checksum is known good: partial (vnet NEEDS_CSUM at the TCP checksum), DATA_VALID, or verified here;
//   - same output port, input port, VPC, MACs, IP addresses, TCP ports; IPv4 TOS, TTL, DF/flags, protocol identical;
//     IPv6 version/traffic class/flow label, next header, hop limit identical; TCP ack, window, data offset and
//     options byte for byte identical (timestamps included, as Linux GRO requires);
//   - S.seq == end of G's last segment; G's segments so far each carried exactly gso_size (the first segment's
//     payload) bytes and no PSH; S carries at most gso_size; the result stays within 65535 L3 bytes.
// A segment with PSH or fewer than gso_size bytes ends its group. A TCP packet of the same flow that does not join
// closes the group (so nothing of a flow is ever reordered); a packet of another flow or protocol does not. A group
// is emitted where its first segment was, the later segments are consumed (DropReason::kConsumed, not counted as
// drops). The super-frame's IPv4 id is the first segment's; its TCP flags the first's plus PSH if the last had it;
// its checksum field the pseudo-header sum (partial, the guest's kernel treats CHECKSUM_PARTIAL as verified and
// completes it if it forwards the frame).
//
// Verifying here is fused with the copy into the super-frame: a segment whose checksum must be verified is assumed
// good while grouping, and its payload is summed as it is copied into the arena (proto::ones_sum_copy, one pass
// instead of a sum and a memcpy); pseudo-header + TCP header + payload sums decide. One found bad discards the copies
// (arena position back to 0) and the batch is regrouped with it known bad, so the result (frames, counters, the bad
// segment passed on untouched) is exactly that of verifying first. Where a not yet verified segment could change the
// grouping without joining anything (all kMaxOpen flow slots taken; the groups not fitting the arena) the batch is
// grouped again verifying every checksum first.
//
// Super-frames are built in the worker's arena (CoalesceWorkerState, allocated with the worker's state): valid until
// the next process() call, which is after output sent them (the runner runs output before the next chunk). A group
// the arena has no room for is left as it was (counted no_room).
// Next: output (kConsumed drops for joined segments).
// Threading: the worker's own packets, arena and counters; the snapshot read-only.
#pragma once

#include <span>
#include <string_view>

#include "datapath/config/dataplane_config.h"
#include "datapath/pipeline/packet.h"
#include "datapath/pipeline/stage.h"
#include "datapath/pipeline/worker_context.h"

namespace vpcd::dp {

struct TcpCoalesceStage {
  static constexpr std::string_view kName = "tcp-coalesce";
  static constexpr Next kId = Next::kTcpCoalesce;
  static NextSet process(WorkerContext& ctx, const DataplaneConfig& cfg, std::span<Packet* const> pkts) noexcept;
};

}  // namespace vpcd::dp
