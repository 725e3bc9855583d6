// Stage "output": hands every decided packet to its output port's transmit ring for this worker.
//
// out_port = a port id: PortIo::tx_enqueue(worker, pkt) on that port. out_port = kFloodPort: one copy to every port of
// the input port's VPC except the input port (never a port of another VPC: the flood list is the VPC's own); out_port =
// kFloodUnknownPort: the same over VpcConfig::flood_unknown (unknown unicast: port-security-off ports only). An answer
// from arp-responder (out_port == in_port) goes back out of the input port.
// Counting, on the OUTPUT port's [worker] counters: tx packets/bytes for every copy enqueued, kTxRingFull for a copy
// the ring refused, kPortDown for a port whose I/O is not up (io == nullptr). A port id missing from the snapshot
// (cannot happen for a snapshot built by the Controller) is counted as kPortDown on the input port.
// Enqueued ports are remembered in the WorkerContext; the caller then calls flush_outputs() (pipeline.h).
// Threading: the calling worker's tx rings (PortIo contract) and its own counter slots only.
#pragma once

#include <span>
#include <string_view>

#include "datapath/config/dataplane_config.h"
#include "datapath/pipeline/packet.h"
#include "datapath/pipeline/pipeline.h"

namespace vpcd::dp {

inline constexpr std::string_view kOutputStageName = "output";

// Transmits the packets of pkts that are not dropped; `in` is their input port, `vpc` its VPC.
void output(WorkerContext& ctx, const DataplaneConfig& cfg, const PortConfig& in, const VpcConfig& vpc,
            std::span<Packet* const> pkts) noexcept;

}  // namespace vpcd::dp
