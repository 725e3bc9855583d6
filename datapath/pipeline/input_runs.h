// for_each_input_run(): how a stage looks up its packets' input port and VPC once per run of packets instead of once
// per packet.
//
// The runner hands stages chunks received on one port (run_batch), so on the common path every packet of a stage's
// span shares its in_port and vpc, and the runner knows it (WorkerContext::chunk_port, kept per queue as
// PacketQueue::in_port): the stage gets one run and compares nothing per packet. Spans that mix inputs (frames
// emitted by stages, decapsulated frames, chunks that met packets emitted between batches) are split into maximal
// runs of equal (in_port, vpc).
//
// Threading: as the stage calling it (one worker's context and packets).
#pragma once

#include <cstdint>
#include <span>

#include "datapath/pipeline/packet.h"
#include "datapath/pipeline/stage.h"
#include "datapath/pipeline/worker_context.h"

namespace vpcd::dp {

// Calls fn(in_port, vpc, run) for each run of pkts sharing (in_port, vpc), in order, and returns the union of the
// NextSets fn returns. fn must return the real set of its run (never kNextsUnknown: the union would lose it).
template <class Fn>
[[gnu::always_inline]] inline NextSet for_each_input_run(const WorkerContext& ctx, std::span<Packet* const> pkts,
                                                         Fn&& fn) noexcept {
  if (ctx.chunk_port != kInvalidPort) [[likely]]
    return fn(ctx.chunk_port, ctx.chunk_vpc, pkts);
  NextSet nexts = 0;
  for (size_t i = 0; i < pkts.size();) {
    const uint16_t port = pkts[i]->in_port, vpc = pkts[i]->vpc;
    size_t j = i + 1;
    while (j < pkts.size() && pkts[j]->in_port == port && pkts[j]->vpc == vpc) ++j;
    nexts |= fn(port, vpc, pkts.subspan(i, j - i));
    i = j;
  }
  return nexts;
}

}  // namespace vpcd::dp
