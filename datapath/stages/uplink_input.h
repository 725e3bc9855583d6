// Stage "uplink-input": every frame received on an uplink (PortKind::kUplink; feature bit set by default_features).
//
//   - ARP (uplink_arp.h): requests for the uplink's address answered (out of the uplink, next output), replies to us
//     learned into the worker's ArpCache (frames waiting for that next hop are sent), the rest uplink_not_for_us;
//   - VXLAN to our address and the configured UDP port (vxlan_decap.h): decapsulated; the inner frame continues as a
//     frame received on the tunnel pseudo-port of (VPC, source VTEP): in_port = acct_port = that tunnel, vpc = its
//     slot, next = the tunnel's first ingress feature (arp-responder: ARP for local and remote NICs answered, then
//     l2-switch, which learns the source MAC on the tunnel: MAC -> source VTEP, aged like every learned MAC).
//     The tunnel's rx counters count it (per-VTEP counters). Split horizon: l2-switch never sends a frame that came
//     from a tunnel to vxlan-encap's head-end replication, so the overlay never floods back into the overlay;
//     A UDP GSO super-frame (vnet gso_type UDP_L4: another vpcd's USO transmit) is split at gso_size into its
//     datagrams, each decapsulated as if received alone (vxlan_decap.h: the same checks, drop reasons and per-VTEP
//     counters; the whole frame dropped as vxlan_bad_gso when it is no sequence of datagrams). The datagrams are
//     Packets of OverlayWorkerState::split viewing the super-frame's bytes, handed on with emit(); the other packets of
//     that run are re-homed the same way so the run keeps its order (their slots become uncounted `consumed` drops).
//     Counted per worker: uso_rx_frames / uso_rx_segments. The uplink's rx counters count the datagrams (packets,
//     and bytes with the outer headers each had on the wire), as its tx counters do, once the frame passed the
//     check (a frame dropped whole as vxlan_bad_gso counts as one);
//   - everything else, and everything on an uplink that is not the underlay one: uplink_not_for_us.
// Drops are charged to the uplink (decap failures, vxlan_* reasons) or, after decap, to the tunnel.
// Next: output (ARP replies), the tunnel's ingress stage, or drop.
// Threading: the worker's own packets, OverlayWorkerState and counters; the snapshot read-only.
#pragma once

#include <span>
#include <string_view>

#include "datapath/config/dataplane_config.h"
#include "datapath/pipeline/stage.h"
#include "datapath/pipeline/worker_context.h"

namespace vpcd::dp {

struct UplinkInputStage {
  static constexpr std::string_view kName = "uplink-input";
  static constexpr Next kId = Next::kUplinkInput;
  static constexpr bool kRewritesInput = true;  // decapsulated frames continue on a tunnel port in their VPC
  static NextSet process(WorkerContext& ctx, const DataplaneConfig& cfg, std::span<Packet* const> pkts) noexcept;
};

// Milliseconds of CLOCK_MONOTONIC_COARSE (the underlay ARP cache's clock).
uint64_t monotonic_ms() noexcept;

// Sends the frames waiting for next hops that have been resolved (tokens in ctx.overlay.released) out of the
// underlay uplink: their outer Ethernet destination is filled in and they are emitted to output.
void release_waiting(WorkerContext& ctx, const UnderlayConfig& u, const std::vector<uint32_t>& tokens,
                     const MacAddr& next_hop_mac) noexcept;

// Makes sure ctx.overlay's ARP cache belongs to the current underlay (another uplink or address empties it and drops
// what waited in it). Returns false when there is no underlay.
bool overlay_sync(WorkerContext& ctx, const DataplaneConfig& cfg) noexcept;

// About every 10 ms from the worker loop: resolutions other workers learned adopted (after the shared table's
// version moved: OverlayConfig::neighbors, underlay_neighbors.h; the frames waiting for them sent), ARP retries and
// aging for the underlay; frames whose next hop failed are dropped (underlay_arp_failed). Emits the ARP requests and
// released frames; the caller then runs run_pending() and flush_outputs().
void overlay_tick(WorkerContext& ctx, const DataplaneConfig& cfg, uint64_t now_ms) noexcept;

}  // namespace vpcd::dp
