// Stage "output": hands every packet it gets to its output port's transmit ring for this worker.
//
// out_port = a port id: PortIo::tx_enqueue(worker, pkt) on that port (with pkt.prefix written in front when set).
// out_port = kFloodPort: one copy to every port of the packet's VPC except its input port and except tunnel ports
// (those get their copies from vxlan-encap: head-end replication); never a port of another VPC (the flood list is
// the VPC's own). out_port = kFloodUnknownPort (unknown unicast): the same over VpcConfig::flood_unknown, the ports
// that may have unknown MACs behind them. An answer from arp-responder (out_port == in_port) goes back out of the input port.
// Counting, on the OUTPUT port's [worker] counters: tx packets/bytes for every copy enqueued, kTxRingFull for a copy
// the ring refused, kPortDown for a port whose I/O is not up (io == nullptr). A port id missing from the snapshot
// (cannot happen for a snapshot built by the Controller) is counted as kPortDown on the input port.
// A GSO super-frame vxlan-encap left whole for the uplink (kSegmentOnTx, packet.h) is cut into segments here, each
// written with its outer headers (the template at prefix, lengths and checksums stamped per segment) straight into a
// transmit ring slot (PortIo::tx_slot_acquire; one copy of the payload instead of two), or for a port without one
// built in the worker's scratch and enqueued; every segment is counted as a tx packet of the uplink.
// Enqueued ports are remembered in the WorkerContext; the caller then calls flush_outputs() (pipeline.h).
// Next: none (the last stage); it frees the pool buffers of the packets it sent (tx_enqueue copies the frame).
// Threading: the calling worker's tx rings (PortIo contract) and its own counter slots only.
#pragma once

#include <span>
#include <string_view>

#include "datapath/config/dataplane_config.h"
#include "datapath/pipeline/packet.h"
#include "datapath/pipeline/worker_context.h"

namespace vpcd::dp {

inline constexpr std::string_view kOutputStageName = "output";

struct OutputStage {
  static constexpr std::string_view kName = kOutputStageName;
  static constexpr Next kId = Next::kOutput;
  static NextSet process(WorkerContext& ctx, const DataplaneConfig& cfg, std::span<Packet* const> pkts) noexcept;
};

}  // namespace vpcd::dp
