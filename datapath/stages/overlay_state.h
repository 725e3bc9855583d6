// OverlayWorkerState: the per-worker state of the overlay stages (uplink-input, vxlan-encap), a member of the
// WorkerContext, so it survives snapshot swaps: the underlay ARP cache, the frames waiting for it (pool packets
// whose outer headers are written except the next hop's MAC), and the scratch the encap stage writes outer headers
// into for packets that keep their rx-ring bytes (valid until the same run's output stage has sent them).
//
// Threading: owned by one worker; the ArpCache counters may be read relaxed by other threads.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "datapath/proto/vxlan.h"
#include "datapath/tables/arp_cache.h"

namespace vpcd::dp {

struct Packet;

struct OverlayWorkerState {
  ArpCache arp;                           // underlay next hops (this worker's)
  std::vector<Packet*> waiting;           // [pool buffer index] -> a frame queued in `arp` (token = buffer index)
  std::vector<proto::VxlanOuter> hdrs;    // encap scratch: [position in the stage's span]
  // output: a segment of a kSegmentOnTx super-frame for a port without tx_slot_acquire (PacketPool::kBufBytes,
  // allocated on first use).
  std::unique_ptr<uint8_t[]> tx_scratch;
  std::vector<uint32_t> released, failed; // scratch for ArpCache results
  std::vector<Ipv4Addr> requests;         // scratch for ArpCache::tick
  uint64_t last_tick_ms = 0;
  // The underlay the cache was filled for: a change (another uplink, another address) empties it.
  uint16_t underlay_port = 0xffff;
  uint32_t underlay_addr = 0;
};

}  // namespace vpcd::dp
