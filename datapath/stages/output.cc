// Stage "output"; behaviour and threading in output.h.
#include "datapath/stages/output.h"

#include "datapath/capture/capture_tap.h"

namespace vpcd::dp {
namespace {

// Accumulates tx counts for one output port at a time and writes them to its counters when the port changes, so a
// batch going to one destination costs one counter update instead of one per packet.
class TxTally {
 public:
  explicit TxTally(unsigned worker) : worker_(worker) {}
  TxTally(const TxTally&) = delete;
  TxTally& operator=(const TxTally&) = delete;
  ~TxTally() { flush(); }

  void sent(PortRuntime& rt, uint32_t bytes) noexcept {
    if (&rt != rt_) {
      flush();
      rt_ = &rt;
    }
    ++packets_;
    bytes_ += bytes;
  }
  void flush() noexcept {
    if (rt_ && packets_) {
      PortWorkerCounters& c = rt_->counters[worker_];
      counter_add(c.tx_packets, packets_);
      counter_add(c.tx_bytes, bytes_);
    }
    packets_ = bytes_ = 0;
  }

 private:
  unsigned worker_;
  PortRuntime* rt_ = nullptr;
  uint64_t packets_ = 0, bytes_ = 0;
};

inline void send(WorkerContext& ctx, const DataplaneConfig& cfg, uint16_t port_id, const Packet& p,
                 TxTally& tally) noexcept {
  const PortConfig* out = cfg.port(port_id);
  if (!out) [[unlikely]] {
    if (const PortConfig* in = cfg.port(p.in_port))
      in->rt->counters[ctx.worker].add_drop(DropReason::kPortDown);
    else
      ++ctx.unknown_port_drops;
    return;
  }
  PortRuntime& rt = *out->rt;
  if (!rt.io) [[unlikely]] {
    rt.counters[ctx.worker].add_drop(DropReason::kPortDown);
    return;
  }
  if (!rt.io->tx_enqueue(ctx.worker, p)) [[unlikely]] {
    rt.counters[ctx.worker].add_drop(rt.io->tx_drop_reason(ctx.worker));
    return;
  }
  ctx.mark_dirty(port_id);
  tally.sent(rt, p.len + p.prefix_len);
  capture_tx(rt, ctx.worker, p);
}

}  // namespace

NextSet OutputStage::process(WorkerContext& ctx, const DataplaneConfig& cfg, std::span<Packet* const> pkts) noexcept {
  TxTally tally(ctx.worker);
  for (Packet* p : pkts) {
    if (p->out_port < kFloodUnknownPort) [[likely]] {
      send(ctx, cfg, p->out_port, *p, tally);
    } else if (const VpcConfig* vpc = cfg.vpc(p->vpc)) [[likely]] {
      const auto& flood = p->out_port == kFloodPort ? vpc->ports : vpc->flood_unknown;
      for (uint16_t q : flood)
        if (q != p->in_port && cfg.ports[q].kind != PortKind::kTunnel) send(ctx, cfg, q, *p, tally);
    } else if (const PortConfig* in = cfg.port(p->in_port)) {  // l2-switch drops these first; count it anyway
      in->rt->counters[ctx.worker].add_drop(DropReason::kNoVpc);
    }
    // tx_enqueue copied the frame: a pool buffer is free again (the runner's queue is done with the packet).
    if (p->buf != kNoBuf) ctx.pool.free(p);
  }
  return kNextsUnknown;  // the last stage: nothing to distribute
}

}  // namespace vpcd::dp
