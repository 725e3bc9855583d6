// The switching pipeline for one received batch: parse -> port-security -> arp-responder -> l2-switch -> output.
//
// A worker calls run_batch() for every batch it takes from one (port, queue), then flush_outputs() once it has no more
// batches to run in this poll round (or after every batch), with the SAME snapshot it passed to run_batch: the
// WorkerContext remembers which ports' tx rings it filled by port id.
//
// Counting: rx packets/bytes and every drop decided before output are counted on the input port's counters (by
// DropReason); tx packets/bytes and output drops (kTxRingFull, kPortDown) on the output port's counters. All counters
// are the [ctx.worker] slot of PortRuntime::counters (single writer).
//
// Threading: a WorkerContext belongs to one worker thread. run_batch takes no lock and reads the snapshot only; it writes
// the packets of its batch, its own counters, and the VPC's learned MacTable (lock-free, see mac_table.h).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "datapath/config/dataplane_config.h"
#include "datapath/pipeline/packet.h"

namespace vpcd::dp {

inline constexpr unsigned kMaxBatch = 256;  // run_batch splits larger spans

// CLOCK_MONOTONIC_COARSE in whole seconds, plus 1 (never 0: 0 means "never" in the MAC table).
uint32_t monotonic_seconds() noexcept;

struct WorkerContext {
  unsigned worker = 0;                                  // < kMaxWorkers: tx ring and counter slot
  uint32_t (*clock_s)() noexcept = &monotonic_seconds;  // injectable for aging tests

  // Frames dropped with no port counters to put them on: an input port id the snapshot does not have, or a worker
  // index >= kMaxWorkers (a bug in the caller). Written by this worker only.
  uint64_t unknown_port_drops = 0;

  // Scratch, owned by the pipeline.
  std::array<Packet*, kMaxBatch> ptrs{};
  std::vector<uint16_t> dirty_ports;  // port ids with frames enqueued since the last flush_outputs
  std::vector<uint8_t> dirty_mark;    // [port id] != 0 when in dirty_ports

  void mark_dirty(uint16_t port) {
    if (port >= dirty_mark.size()) dirty_mark.resize(size_t(port) + 1, 0);
    if (!dirty_mark[port]) {
      dirty_mark[port] = 1;
      dirty_ports.push_back(port);
    }
  }
};

// Runs the pipeline on pkts, all received on port in_port. The snapshot is read once per call; each Packet needs only
// data/len/wire_len/vnet/flags(kHasVnet) set (as PortIo::rx_burst leaves them); the rest is (re)initialised here.
void run_batch(WorkerContext& ctx, const DataplaneConfig& cfg, uint16_t in_port, std::span<Packet> pkts) noexcept;

// tx_flush(ctx.worker) on every port run_batch enqueued to since the last call.
void flush_outputs(WorkerContext& ctx, const DataplaneConfig& cfg) noexcept;

}  // namespace vpcd::dp
