// The pipeline runner: runs the stages of stage.h in their fixed order over the packets queued for each, VPP style
// (a stage gets exactly the packets whose `next` is its id, then its packets are distributed to the queues of the
// stages they name next). See stage.h for the order and the feature bitmaps, worker_context.h for the per-worker
// state the stages may keep.
//
// A worker calls run_batch() for every batch it takes from one (port, queue), then flush_outputs() once it has no more
// batches to run in this poll round (or after every batch), with the SAME snapshot it passed to run_batch: the
// WorkerContext remembers which ports' tx rings it filled by port id. run_pending() runs packets stages emitted
// outside a batch (timers).
//
// Counting: rx packets/bytes on the receiving port's counters; every drop on its acct_port's counters (the input port
// unless an egress stage charged the output port), by DropReason; tx packets/bytes and output drops (kTxRingFull,
// kPortDown) on the output port's counters. All counters are the [ctx.worker] slot of PortRuntime::counters (single
// writer). Packets each stage processed: ctx.stage_packets.
//
// Threading: a WorkerContext belongs to one worker thread. The runner takes no lock and reads the snapshot only; the
// stages write the packets of the batch, the worker's own state and counters, and lock-free shared tables (the VPC's
// learned MacTable, see mac_table.h).
#pragma once

#include <cstdint>
#include <span>

#include "datapath/config/dataplane_config.h"
#include "datapath/pipeline/packet.h"
#include "datapath/pipeline/worker_context.h"

namespace vpcd::dp {

// Runs the pipeline on pkts, all received on port in_port. The snapshot is read once per call; each Packet needs only
// data/len/wire_len/vnet/flags(kHasVnet) (and ts_ns) set, as PortIo::rx_burst leaves them; the rest is (re)initialised
// here.
void run_batch(WorkerContext& ctx, const DataplaneConfig& cfg, uint16_t in_port, std::span<Packet> pkts) noexcept;

// Runs whatever stages emitted between batches (ctx.emit() with no run in progress). A no-op when nothing waits.
void run_pending(WorkerContext& ctx, const DataplaneConfig& cfg) noexcept;

// tx_flush(ctx.worker) on every port the runner enqueued to since the last call. A port whose flush left frames
// pending (the kernel refused some: full send buffer or backlog) goes on ctx.tx_retry.
void flush_outputs(WorkerContext& ctx, const DataplaneConfig& cfg) noexcept;

// How long a worker keeps retrying a port's pending frames before it discards them (counted as kTxStalled on the
// port). The worker waits at most kTxRetryIntervalMs in epoll while a retry is pending, so a frame the kernel
// refused goes out within about a millisecond once the kernel takes it, even if no other frame follows.
inline constexpr uint64_t kTxRetryLimitMs = 100;
inline constexpr int kTxRetryIntervalMs = 1;

// tx_flush again on every port of ctx.tx_retry; drops the ports that have nothing pending any more and discards the
// frames of those still pending ctx.tx_retry_limit_ms (kTxRetryLimitMs) after their first refusal. `cfg` is the
// snapshot of the last flush_outputs. A no-op when nothing is pending.
void retry_flushes(WorkerContext& ctx, const DataplaneConfig& cfg, uint64_t now_ms) noexcept;

// Before the worker replaces snapshot `old` by `next` (null: none): one last flush of each pending port; a port that
// `next` carries with the same PortIo under the same id stays on ctx.tx_retry, the others' frames are discarded and
// counted (their PortIo may be destroyed once the worker acked `next`).
void rebase_tx_retries(WorkerContext& ctx, const DataplaneConfig& old, const DataplaneConfig* next) noexcept;

}  // namespace vpcd::dp
