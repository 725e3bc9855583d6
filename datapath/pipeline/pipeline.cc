// The pipeline runner: parse -> port-security -> arp-responder -> l2-switch -> output on one batch, plus the tx flush.
// Threading: one worker's WorkerContext and batch; the snapshot is read-only (see pipeline.h).
#include "datapath/pipeline/pipeline.h"

#include <time.h>

#include "datapath/stages/arp_responder.h"
#include "datapath/stages/l2_switch.h"
#include "datapath/stages/output.h"
#include "datapath/stages/parse.h"
#include "datapath/stages/port_security.h"

namespace vpcd::dp {

uint32_t monotonic_seconds() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return uint32_t(ts.tv_sec) + 1;
}

namespace {

// Adds every drop decided so far to the input port's counters (one counter update per reason present).
void count_drops(PortWorkerCounters& c, std::span<Packet* const> pkts) noexcept {
  std::array<uint32_t, size_t(DropReason::kCount) + 1> n{};
  for (const Packet* p : pkts) ++n[size_t(p->drop)];  // kCount (not dropped) lands in the last slot
  for (size_t r = 0; r < size_t(DropReason::kCount); ++r)
    if (n[r]) c.add_drop(DropReason(r), n[r]);
}

void run_chunk(WorkerContext& ctx, const DataplaneConfig& cfg, const PortConfig& in, std::span<Packet> pkts) noexcept {
  PortWorkerCounters& c = in.rt->counters[ctx.worker];
  uint64_t bytes = 0;
  for (size_t i = 0; i < pkts.size(); ++i) {
    Packet& p = pkts[i];
    p.in_port = in.index;
    p.out_port = kInvalidPort;
    p.drop = DropReason::kCount;
    bytes += p.wire_len;
    ctx.ptrs[i] = &p;
  }
  counter_add(c.rx_packets, pkts.size());
  counter_add(c.rx_bytes, bytes);
  const std::span<Packet* const> ptrs(ctx.ptrs.data(), pkts.size());

  if (in.vpc >= cfg.vpcs.size()) [[unlikely]] {
    c.add_drop(DropReason::kNoVpc, pkts.size());
    return;
  }
  const VpcConfig& vpc = cfg.vpcs[in.vpc];

  parse_batch(ptrs);
  if (in.port_security) port_security(in, ptrs);
  arp_responder(vpc, ptrs);
  l2_switch(cfg, in, vpc, ctx.clock_s(), ptrs);
  count_drops(c, ptrs);
  output(ctx, cfg, in, vpc, ptrs);
}

}  // namespace

void run_batch(WorkerContext& ctx, const DataplaneConfig& cfg, uint16_t in_port, std::span<Packet> pkts) noexcept {
  const PortConfig* in = cfg.port(in_port);
  if (!in || ctx.worker >= kMaxWorkers) [[unlikely]] {
    ctx.unknown_port_drops += pkts.size();
    return;
  }
  if (ctx.dirty_mark.size() < cfg.ports.size()) ctx.dirty_mark.resize(cfg.ports.size(), 0);
  while (!pkts.empty()) {
    const size_t n = pkts.size() < kMaxBatch ? pkts.size() : kMaxBatch;
    run_chunk(ctx, cfg, *in, pkts.first(n));
    pkts = pkts.subspan(n);
  }
}

void flush_outputs(WorkerContext& ctx, const DataplaneConfig& cfg) noexcept {
  for (uint16_t id : ctx.dirty_ports) {
    ctx.dirty_mark[id] = 0;
    const PortConfig* p = cfg.port(id);
    if (p && p->rt->io) p->rt->io->tx_flush(ctx.worker);
  }
  ctx.dirty_ports.clear();
}

}  // namespace vpcd::dp
