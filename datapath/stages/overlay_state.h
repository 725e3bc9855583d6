// OverlayWorkerState: the per-worker state of the overlay stages (uplink-input, vxlan-encap), a member of the
// WorkerContext, so it survives snapshot swaps: the underlay ARP cache, the frames waiting for it (pool packets
// whose outer headers are written except the next hop's MAC), and the scratch the encap stage writes outer headers
// into for packets that keep their rx-ring bytes (valid until the same run's output stage has sent them).
//
// Threading: owned by one worker; the ArpCache counters may be read relaxed by other threads.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "datapath/pipeline/packet.h"
#include "datapath/proto/vxlan.h"
#include "datapath/tables/arp_cache.h"

namespace vpcd::dp {

// uplink-input: Packets one stage run may hand on for the datagrams of UDP GSO super-frames (and the other frames of
// that run, re-homed to keep their order); beyond it a datagram is a counted vxlan_split_budget drop. 8 super-frames
// of Linux's 128 segments (an AF_PACKET V2 queue copies at most kRxCopyBuffers = 8 super-frames per burst).
inline constexpr unsigned kSplitPackets = 1024;

struct OverlayWorkerState {
  ArpCache arp;                           // underlay next hops (this worker's)
  std::vector<Packet*> waiting;           // [pool buffer index] -> a frame queued in `arp` (token = buffer index)
  std::vector<proto::VxlanOuter> hdrs;    // encap scratch: [position in the stage's span]
  // Allocates (and zeroes, so their pages are mapped now) tx_scratch, uso_buf and split: the datapath never allocates
  // them. Throws std::bad_alloc; the worker that owns this state then fails to start (Worker::Worker).
  OverlayWorkerState();
  OverlayWorkerState(const OverlayWorkerState&) = delete;
  OverlayWorkerState& operator=(const OverlayWorkerState&) = delete;

  // output: a segment of a kSegmentOnTx super-frame for a port without tx_slot_acquire (PacketPool::kBufBytes).
  std::unique_ptr<uint8_t[]> tx_scratch;
  // output: the USO frame being built (vxlan_uso.h, kUsoFrameBytes).
  std::unique_ptr<uint8_t[]> uso_buf;
  std::vector<uint32_t> released, failed; // scratch for ArpCache results
  std::vector<Ipv4Addr> requests;         // scratch for ArpCache::tick
  std::vector<std::pair<Ipv4Addr, uint64_t>> unconfirmed;  // scratch for ArpCache::unconfirmed
  uint64_t neighbors_seen = ~uint64_t{0};  // UnderlayNeighbors::version() last adopted from (overlay_tick)
  uint64_t last_tick_ms = 0;
  // uplink-input: [kSplitPackets] Packets viewing the bytes of the run's rx frames (valid until the run's output stage
  // is done, like the rx frames themselves); split_used: taken in this run.
  std::unique_ptr<Packet[]> split;
  unsigned split_used = 0;
  // UDP segmentation offload across the underlay (single writer: this worker; other threads read relaxed):
  // super-frames received (uplink-input) and the datagrams they held; super-frames sent as one USO frame each
  // (output, vxlan_uso.h) or more when one does not fit 64 KiB, the USO frames and the datagrams in them; super-frames
  // towards a tunnel that took the per-segment path although USO is on (did not fit the limits).
  std::atomic<uint64_t> uso_rx_frames{0}, uso_rx_segments{0};
  std::atomic<uint64_t> uso_tx_superframes{0}, uso_tx_frames{0}, uso_tx_segments{0}, uso_tx_fallbacks{0};
  // The underlay the cache was filled for: a change (another uplink, another address) empties it.
  uint16_t underlay_port = 0xffff;
  uint32_t underlay_addr = 0;
};

}  // namespace vpcd::dp
