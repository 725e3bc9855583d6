// Counters the datapath reports to the control plane (Controller::stats()): plain values summed from the workers'
// single-writer counters. Lower layers include this header, never controller.h.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "datapath/capture/capture_types.h"
#include "datapath/pipeline/drop_reason.h"

namespace vpcd::dp {

struct PortCounters {
  uint64_t rx_packets = 0, rx_bytes = 0, tx_packets = 0, tx_bytes = 0;
  std::array<uint64_t, size_t(DropReason::kCount)> drops{};
  uint64_t total_drops() const {
    uint64_t n = 0;
    for (auto d : drops) n += d;
    return n;
  }
  void add(const PortCounters& b) {
    rx_packets += b.rx_packets;
    rx_bytes += b.rx_bytes;
    tx_packets += b.tx_packets;
    tx_bytes += b.tx_bytes;
    for (size_t i = 0; i < drops.size(); ++i) drops[i] += b.drops[i];
  }
};

struct WorkerCounters {
  uint64_t batches = 0, packets = 0, wakeups = 0, snapshot_generation = 0;
  // Busy polling (busy-poll, worker_poll.h): loop turns that polled without sleeping and received no frame; adaptive
  // mode's switches from sleeping to polling (after frames) and back (budget passed since the last frame).
  uint64_t empty_polls = 0, spin_starts = 0, spin_stops = 0;
  int cpu = -1;  // the CPU the worker is pinned to (worker-cpus); -1 = not pinned
  std::vector<uint64_t> stage_packets;  // [stage id] (datapath/pipeline/stage.h: stage_name(i)) packets processed
  uint64_t pool_exhausted = 0;          // generated frames not made: the worker's PacketPool was empty
  uint64_t icmp_rate_limited = 0;       // router ICMP errors not sent: over the worker's rate limit (icmp-error-*)
  // tcp-coalesce (software GRO towards guests): super-frames built, and the TCP segments joined into them.
  uint64_t tcp_coalesced_frames = 0, tcp_coalesced_segments = 0;
  // VXLAN by UDP segmentation offload (datapath/stages/vxlan_uso.h, uplink_input.h): super-frames received and their
  // datagrams; guest super-frames sent as USO frames, those frames, their datagrams, and super-frames that fell back
  // to one frame per segment.
  uint64_t vxlan_uso_rx_frames = 0, vxlan_uso_rx_segments = 0;
  uint64_t vxlan_uso_tx_superframes = 0, vxlan_uso_tx_frames = 0, vxlan_uso_tx_segments = 0, vxlan_uso_tx_fallbacks = 0;
};

// The kernel fast path (Options::kernel_fastpath).
struct FastPathStats {
  bool enabled = false;  // configured on and loaded
  std::string error;     // why it is off although configured on (the kernel refused the programs)
  uint64_t ports = 0;    // NICs it carries now
};

struct Stats {
  std::map<std::string, PortCounters> nics;     // by NIC id
  std::map<std::string, PortCounters> uplinks;  // by uplink id
  std::map<std::string, PortCounters> tunnels;  // by "VPC id/underlay IP": one per remote VTEP of a VPC
  std::vector<WorkerCounters> workers;
  PortCounters totals;  // all ports, including removed ones' history
  uint64_t snapshot_generation = 0;
  CaptureStats capture;  // packet capture sessions and their frame counts
  FastPathStats fastpath;
};

}  // namespace vpcd::dp
