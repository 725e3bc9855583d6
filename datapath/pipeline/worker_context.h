// WorkerContext: everything one worker thread owns and keeps across snapshot generations (STYLE.md section 3): its
// index, clock, the PacketPool for generated frames, the runner's per-stage queues and per-stage counters, and one
// member per feature that needs mutable per-worker state (ARP cache of the uplink, connection table, ...). Entries
// of such tables that are keyed by VPC carry the VPC's (slot, gen) (VpcConfig::key()), so a slot reused by another
// VPC never sees the old VPC's entries.
//
// Threading: owned and written by one worker thread. The atomics (stage_packets, pool_exhausted) have that worker as
// their only writer; other threads read them relaxed (Worker::counters()).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <vector>

#include "datapath/pipeline/counters.h"
#include "datapath/pipeline/packet.h"
#include "datapath/pipeline/packet_pool.h"
#include "datapath/pipeline/stage.h"
#include "datapath/tables/icmp_rate_limiter.h"
#include "datapath/stages/overlay_state.h"
#include "datapath/stages/tcp_coalesce_state.h"

namespace vpcd::dp {

class PortIo;

// run_batch splits larger spans into chunks of at most this many packets, each run through every stage before the
// next: 64 packets (80 bytes of Packet and the frame's first cache line each) stay in L1 across the stages, where 256
// were evicted between stages (bm_parse_switch: 9 L1 misses per packet at 256, 3 at 64; cachegrind).
inline constexpr unsigned kMaxBatch = 64;

// CLOCK_MONOTONIC_COARSE in whole seconds, plus 1 (never 0: 0 means "never" in the MAC table).
uint32_t monotonic_seconds() noexcept;

// The packets waiting for one stage. Capacity covers a whole batch plus every pool buffer plus the datagrams
// uplink-input may split UDP GSO super-frames into (kSplitPackets, overlay_state.h), so a push never fails.
struct PacketQueue {
  static constexpr unsigned kCapacity = kMaxBatch + PacketPool::kDefaultBuffers + kSplitPackets;
  std::array<Packet*, kCapacity> v;
  unsigned n = 0;
  // When in_port != kInvalidPort, every packet in the queue has this in_port and this vpc: the queue holds (part of)
  // one chunk from one port, as it does on the common path. kInvalidPort: mixed or unknown. Kept by the runner.
  uint16_t in_port = kInvalidPort;
  uint16_t vpc = kNoVpcIndex;
  std::span<Packet* const> span() const noexcept { return {v.data(), n}; }
};

struct WorkerContext {
  explicit WorkerContext(unsigned pool_buffers = PacketPool::kDefaultBuffers) : pool(pool_buffers) {}
  WorkerContext(const WorkerContext&) = delete;
  WorkerContext& operator=(const WorkerContext&) = delete;

  unsigned worker = 0;                                  // < kMaxWorkers: tx ring and counter slot
  uint32_t (*clock_s)() noexcept = &monotonic_seconds;  // injectable for aging tests

  // Frames dropped with no port counters to put them on: an input port id the snapshot does not have, or a worker
  // index >= kMaxWorkers (a bug in the caller). Written by this worker only.
  uint64_t unknown_port_drops = 0;

  PacketPool pool;  // generated and kept frames
  OverlayWorkerState overlay;  // uplink-input / vxlan-encap: underlay ARP cache, frames waiting for it (overlay_state.h)
  CoalesceWorkerState coalesce;  // tcp-coalesce: the arena super-frames are built in, counters (tcp_coalesce_state.h)

  // Per-stage packets processed (single writer: this worker), and generated frames refused for lack of a buffer.
  std::array<std::atomic<uint64_t>, kStageCount> stage_packets{};
  std::atomic<uint64_t> pool_exhausted{0};

  // Router: ICMP errors this worker may still send (token bucket), and those it suppressed (single writer).
  IcmpRateLimiter icmp_limiter;
  std::atomic<uint64_t> icmp_rate_limited{0};

  // A fresh pool packet for a generated frame (data = an empty buffer with headroom), or nullptr (counted).
  Packet* alloc_packet() noexcept {
    Packet* p = pool.alloc();
    if (!p) [[unlikely]] counter_add(pool_exhausted, 1);
    return p;
  }
  // A pool copy of p that outlives the batch (frames waiting for ARP), or nullptr (counted).
  Packet* clone_packet(const Packet& p) noexcept {
    Packet* c = pool.clone(p);
    if (!c) [[unlikely]] counter_add(pool_exhausted, 1);
    return c;
  }
  // Hands a generated (or kept) pool packet to stage `to`, which must come after the stage running now (any stage
  // between runs). The runner frees the packet's buffer after output or drop. in_port/vpc/acct_port must be set.
  void emit(Packet* p, Next to) noexcept;

  // ---- runner state (pipeline.cc) ----
  // [stage] -> the packets waiting for it. Pointers into queue_bufs, so the runner can hand a whole queue to the
  // next stage by swapping two pointers when every packet goes the same way.
  std::array<PacketQueue, kStageCount> queue_bufs{};
  std::array<PacketQueue*, kStageCount> queues = [this] {
    std::array<PacketQueue*, kStageCount> q{};
    for (size_t i = 0; i < kStageCount; ++i) q[i] = &queue_bufs[i];
    return q;
  }();
  Next running = Next::kCount;                     // the stage being run, kCount between runs
  // While a stage runs: the input port and VPC that every packet of its span shares (PacketQueue::in_port/vpc), or
  // kInvalidPort when they differ. Stages use it through for_each_input_run() (pipeline/input_runs.h).
  uint16_t chunk_port = kInvalidPort;
  uint16_t chunk_vpc = kNoVpcIndex;
  std::vector<uint16_t> dirty_ports;  // port ids with frames enqueued since the last flush_outputs
  std::vector<uint8_t> dirty_mark;    // [port id] != 0 when in dirty_ports
  // Ports whose tx_flush left frames pending (PortIo::tx_pending), retried by retry_flushes() (pipeline.h) until
  // they go out or kTxRetryLimitMs pass. `io` is valid while the snapshot that contained `port` is held; the worker
  // rebases the list (rebase_tx_retries) before it lets go of a snapshot.
  struct TxRetry {
    PortIo* io;
    uint16_t port;
    uint64_t since_ms;  // monotonic_ms() of the first flush that left frames behind
  };
  std::vector<TxRetry> tx_retry;
  uint64_t tx_retry_limit_ms = 100;  // kTxRetryLimitMs (pipeline.h); tests set it before the worker starts

  // Once per frame sent (output): inline, with the rare parts out of line. run_batch sizes dirty_mark for the
  // snapshot's ports, so the resize is for callers outside a batch.
  [[gnu::always_inline]] void mark_dirty(uint16_t port) {
    if (port >= dirty_mark.size()) [[unlikely]]
      grow_dirty_mark(port);
    if (!dirty_mark[port]) [[unlikely]]
      add_dirty(port);
  }
  [[gnu::noinline]] void grow_dirty_mark(uint16_t port) { dirty_mark.resize(size_t(port) + 1, 0); }
  [[gnu::noinline]] void add_dirty(uint16_t port) {
    dirty_mark[port] = 1;
    dirty_ports.push_back(port);
  }
};

}  // namespace vpcd::dp
