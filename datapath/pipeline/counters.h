// Per-port, per-worker datapath counters and the runtime object that owns a port's I/O.
//
// Threading: PortWorkerCounters has exactly one writer, the worker whose index it sits at; that worker updates with a
// relaxed load + relaxed store (no lock prefix: as cheap as a plain add on x86, STYLE.md section 3). Any thread may read
// with relaxed loads at any time (PortRuntime::sum(), from the control/REST thread); a reader sees each counter
// monotonically but not a consistent cut across counters.
// PortRuntime is created by the control thread and shared (shared_ptr) by every snapshot that names the port, so it
// lives as long as the newest snapshot still holding it; workers never destroy it (the control thread frees retired
// snapshots).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "datapath/io/port.h"
#include "datapath/pipeline/drop_reason.h"
#include "datapath/stats.h"

namespace vpcd::dp {

struct PortCaptureList;  // datapath/capture/capture_tap.h

inline constexpr unsigned kMaxWorkers = 16;

// Single-writer increment: relaxed load + relaxed store (the owning worker is the only writer).
inline void counter_add(std::atomic<uint64_t>& c, uint64_t n) noexcept {
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

struct alignas(64) PortWorkerCounters {
  std::atomic<uint64_t> rx_packets{0};  // written by the owning worker only
  std::atomic<uint64_t> rx_bytes{0};    // wire bytes (Packet::wire_len), without the vnet header
  std::atomic<uint64_t> tx_packets{0};
  std::atomic<uint64_t> tx_bytes{0};
  std::array<std::atomic<uint64_t>, size_t(DropReason::kCount)> drops{};  // indexed by DropReason

  void add_drop(DropReason r, uint64_t n = 1) noexcept { counter_add(drops[size_t(r)], n); }
  // Relaxed snapshot of this worker's counters, added into `out`.
  void accumulate(PortCounters& out) const noexcept {
    out.rx_packets += rx_packets.load(std::memory_order_relaxed);
    out.rx_bytes += rx_bytes.load(std::memory_order_relaxed);
    out.tx_packets += tx_packets.load(std::memory_order_relaxed);
    out.tx_bytes += tx_bytes.load(std::memory_order_relaxed);
    for (size_t i = 0; i < drops.size(); ++i) out.drops[i] += drops[i].load(std::memory_order_relaxed);
  }
};

// One datapath port as long as it exists: its I/O and its counters. Immutable after publication except for the
// counters (see above) and whatever PortIo does internally under its own threading contract.
struct PortRuntime {
  std::string nic_id;           // set by the control thread before publication
  std::unique_ptr<PortIo> io;   // may be null for a port whose backend is not up (output counts kPortDown)
  // Capture sessions on this port, null when none (the usual case: one load per batch, see capture_tap.h). Written
  // (release) by the capture thread only; the lists it points to are owned and freed by the CaptureManager.
  std::atomic<const PortCaptureList*> capture{nullptr};
  // Identity of this port incarnation. The Controller must give every PortRuntime it ever creates a distinct seq
  // (a process-wide counter): the learned MAC table stores the low 32 bits to detect entries that point at a port
  // index that has since been reused by another port (stale -> flood).
  uint64_t seq = 0;
  std::array<PortWorkerCounters, kMaxWorkers> counters;  // [worker]

  PortCounters sum() const noexcept {
    PortCounters out;
    for (const auto& c : counters) c.accumulate(out);
    if (io) {
      io->add_io_drops(out.drops);
      io->add_offloaded(out);
    }
    return out;
  }
};

}  // namespace vpcd::dp
