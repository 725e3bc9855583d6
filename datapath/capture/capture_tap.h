// The workers' side of packet capture: what a port being captured carries, and the two hook calls.
//
// A port nobody captures costs one load of PortRuntime::capture per received batch (capture_rx, in Worker::service)
// and one per frame sent (capture_tx, in the output stage, on the cache line of PortRuntime::io that the output stage
// reads anyway). The load is memory_order_acquire, which on x86 and arm64 (ldar) is the same plain load as relaxed; it
// orders the reads of the list it returns after the capture thread's release store that published it.
//
// When the pointer is set, every frame is offered to each session in the list: at most CaptureTap::copy_bytes are
// copied into the session's ring for this worker, with the frame's timestamp (the kernel's, when the RX ring gave one:
// Packet::ts_ns; otherwise the time of the call). A ring that is full refuses the frame and the worker counts it in
// the session's `dropped[worker]`; nothing ever waits. Filtering (BPF) and pcap writing happen on the capture thread
// (capture_manager.h).
//
// Direction: a guest port's rx is what the guest sent, its tx what the guest receives (capture both = what tcpdump in
// the guest would see). Frames are captured as they are at that point: for rx before any stage touched them, for tx
// as the port puts them on the wire (Packet::prefix, the outer headers of an encapsulated frame, then the frame).
//
// Threading: a PortCaptureList and the CaptureTaps it names are immutable once published except for the rings (SPSC:
// worker w produces into rings[w], the capture thread consumes) and the per-worker counters (single writer: worker w
// writes [w], any thread reads relaxed). They are freed by the capture thread only after every worker has acknowledged
// a snapshot generation published after the list was unhooked (see capture_manager.h).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <span>

#include "datapath/capture/capture_ring.h"
#include "datapath/pipeline/counters.h"
#include "datapath/pipeline/packet.h"

namespace vpcd::dp {

inline constexpr unsigned kMaxCaptureSessions = 5;  // at once, on the whole box

struct alignas(64) CaptureWorkerCounters {
  std::atomic<uint64_t> offered{0};  // frames copied into the ring; written by worker w only
  std::atomic<uint64_t> dropped{0};  // frames the full ring refused; written by worker w only
};

// The datapath half of one capture session.
struct CaptureTap {
  uint32_t copy_bytes = 0;  // bytes copied per frame (>= the session's snaplen, and enough for the filter's headers)
  unsigned workers = 0;     // rings[0..workers)
  std::array<std::unique_ptr<CaptureRing>, kMaxWorkers> rings;  // [worker]
  std::array<CaptureWorkerCounters, kMaxWorkers> counters;       // [worker]
};

// The sessions capturing one port. Immutable once published (a change publishes a new list).
struct PortCaptureList {
  unsigned n = 0;
  std::array<CaptureTap*, kMaxCaptureSessions> taps{};
};

// Out of line: the rare path.
void capture_frames(const PortCaptureList& l, unsigned worker, std::span<const Packet> pkts) noexcept;
void capture_frame(const PortCaptureList& l, unsigned worker, const Packet& p) noexcept;

// Worker::service, after rx_burst: every frame the port received.
inline void capture_rx(const PortRuntime& rt, unsigned worker, std::span<const Packet> pkts) noexcept {
  if (const PortCaptureList* l = rt.capture.load(std::memory_order_acquire)) [[unlikely]]
    capture_frames(*l, worker, pkts);
}

// Output stage, after the port's ring accepted p: every frame the port sends.
inline void capture_tx(const PortRuntime& rt, unsigned worker, const Packet& p) noexcept {
  if (const PortCaptureList* l = rt.capture.load(std::memory_order_acquire)) [[unlikely]]
    capture_frame(*l, worker, p);
}

}  // namespace vpcd::dp
