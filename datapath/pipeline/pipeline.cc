// The pipeline runner; contract in pipeline.h, stage order in stage.h.
// Threading: one worker's WorkerContext and batch; the snapshot is read-only (see pipeline.h).
#include "datapath/pipeline/pipeline.h"

#include <time.h>

#include <bit>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "datapath/stages/arp_responder.h"
#include "datapath/stages/firewall.h"
#include "datapath/stages/l2_switch.h"
#include "datapath/stages/output.h"
#include "datapath/stages/parse.h"
#include "datapath/stages/port_security.h"
#include "datapath/stages/router.h"
#include "datapath/stages/tcp_coalesce.h"
#include "datapath/stages/uplink_input.h"
#include "datapath/stages/vxlan_encap.h"

namespace vpcd::dp {

uint32_t monotonic_seconds() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return uint32_t(ts.tv_sec) + 1;
}

namespace {

using StageFn = NextSet (*)(WorkerContext&, const DataplaneConfig&, std::span<Packet* const>) noexcept;

template <class S>
constexpr std::pair<Next, StageFn> entry() {
  static_assert(S::kName == stage_name(S::kId), "a stage's name is the one stage.h gives its id");
  return {S::kId, &S::process};
}

// The stages this build carries out, by id. An id without an entry has no code yet: nothing may send packets there
// (feature bitmaps only name stages that exist), and the runner drops any that arrive as kNoStage.
constexpr std::array<StageFn, kStageCount> make_table() {
  std::array<StageFn, kStageCount> t{};
  for (auto [id, fn] : {entry<ParseStage>(), entry<UplinkInputStage>(), entry<PortSecurityStage>(),
                        entry<FirewallEgressStage>(), entry<ArpResponderStage>(), entry<L2SwitchStage>(),
                        entry<RouterStage>(), entry<FirewallIngressStage>(), entry<VxlanEncapStage>(),
                        entry<TcpCoalesceStage>(), entry<OutputStage>()})
    t[size_t(id)] = fn;
  return t;
}
constexpr std::array<StageFn, kStageCount> kStages = make_table();
static_assert(kStages[size_t(Next::kDrop)] == nullptr, "drop is the runner's own");

inline void push(PacketQueue& q, Packet* p) noexcept { q.v[q.n++] = p; }

// Charges every packet of the drop queue to its acct_port, frees pool buffers, empties the queue.
void run_drops(WorkerContext& ctx, const DataplaneConfig& cfg) noexcept {
  PacketQueue& q = *ctx.queues[size_t(Next::kDrop)];
  counter_add(ctx.stage_packets[size_t(Next::kDrop)], q.n);
  for (unsigned i = 0; i < q.n; ++i) {
    Packet* p = q.v[i];
    const PortConfig* acct = cfg.port(p->acct_port);
    if (p->drop == DropReason::kConsumed) {
      // used up by a stage (not a drop): nothing to count
    } else if (acct) [[likely]]
      acct->rt->counters[ctx.worker].add_drop(p->drop == DropReason::kCount ? DropReason::kNoStage : p->drop);
    else
      ++ctx.unknown_port_drops;
    if (p->buf != kNoBuf) ctx.pool.free(p);
  }
  q.n = 0;
}

// The stage all n packets of q go to when that is one stage after s, else Next::kCount. `claim`: the stage's NextSet.
Next single_next(const PacketQueue& q, unsigned n, size_t s, NextSet claim) noexcept {
  Next first;
  if (claim != kNextsUnknown) {
#ifdef VPCD_STAGE_CHECKS
    NextSet actual = 0;
    for (unsigned i = 0; i < n; ++i) actual |= stage_bit(q.v[i]->next);
    if (actual != claim) {
      std::fprintf(stderr, "vpcd: stage %s claimed next set %#x, its packets name %#x\n",
                   std::string(stage_name(Next(s))).c_str(), claim, actual);
      std::abort();
    }
#endif
    if (!std::has_single_bit(claim)) return Next::kCount;
    first = Next(std::countr_zero(claim));
  } else {
    first = q.v[0]->next;
    for (unsigned i = 1; i < n; ++i)
      if (q.v[i]->next != first) return Next::kCount;
  }
  return size_t(first) > s && first < Next::kCount ? first : Next::kCount;
}

void run_queues(WorkerContext& ctx, const DataplaneConfig& cfg) noexcept {
  for (size_t s = 0; s <= size_t(Next::kOutput); ++s) {
    PacketQueue& q = *ctx.queues[s];
    if (q.n == 0) continue;
    const unsigned n = q.n;
    counter_add(ctx.stage_packets[s], n);
    const StageFn fn = kStages[s];
    NextSet claim = kNextsUnknown;
    if (!fn) [[unlikely]] {
      for (unsigned i = 0; i < n; ++i) q.v[i]->drop_with(DropReason::kNoStage);
    } else {
      ctx.running = Next(s);
      claim = fn(ctx, cfg, q.span());
      ctx.running = Next::kCount;
    }
    if (s == size_t(Next::kOutput)) {  // output freed the pool buffers of what it sent
      q.n = 0;
      break;
    }
    // Distribute to the stages named next (emit() refuses packets for this stage while it runs, so the queue holds
    // exactly its n packets). Common case: every packet goes to the same later stage, whose queue is empty: hand
    // the whole queue over by swapping pointers (VPP's enqueue_to_next fast path).
    const Next first = single_next(q, n, s, claim);
    if (first != Next::kCount && ctx.queues[size_t(first)]->n == 0) [[likely]] {
      std::swap(ctx.queues[s], ctx.queues[size_t(first)]);
      continue;
    }
    for (unsigned i = 0; i < n; ++i) {
      Packet* p = q.v[i];
      if (size_t(p->next) <= s || p->next >= Next::kCount) [[unlikely]]
        p->drop_with(p->dropped() ? p->drop : DropReason::kNoStage);
      push(*ctx.queues[size_t(p->next)], p);
    }
    q.n = 0;
  }
  run_drops(ctx, cfg);
}

void run_chunk(WorkerContext& ctx, const DataplaneConfig& cfg, const PortConfig& in, std::span<Packet> pkts) noexcept {
  PortWorkerCounters& c = in.rt->counters[ctx.worker];
  uint64_t bytes = 0;
  const bool no_vpc = in.kind == PortKind::kGuest && !cfg.vpc(in.vpc);
  PacketQueue& q = *ctx.queues[size_t(no_vpc ? Next::kDrop : Next::kParse)];
  for (Packet& p : pkts) {
    p.in_port = in.index;
    p.acct_port = in.index;
    p.out_port = kInvalidPort;
    p.vpc = in.vpc;
    p.next = no_vpc ? Next::kDrop : Next::kParse;
    p.drop = no_vpc ? DropReason::kNoVpc : DropReason::kCount;
    p.buf = kNoBuf;
    p.prefix_len = 0;  // (prefix is read only when prefix_len is set, so the runner leaves the cold bytes alone)
    bytes += p.wire_len;
    push(q, &p);
  }
  counter_add(c.rx_packets, pkts.size());
  counter_add(c.rx_bytes, bytes);
  run_queues(ctx, cfg);
}

}  // namespace

void WorkerContext::emit(Packet* p, Next to) noexcept {
  if (!p) [[unlikely]] return;
  if (to >= Next::kCount || (running != Next::kCount && to <= running)) [[unlikely]] {
    p->drop_with(DropReason::kNoStage);  // a stage sending backwards: a bug, counted
    to = Next::kDrop;
  }
  p->next = to;
  if (p->acct_port == kInvalidPort) p->acct_port = p->in_port;
  push(*queues[size_t(to)], p);
}

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

void run_pending(WorkerContext& ctx, const DataplaneConfig& cfg) noexcept {
  bool any = false;
  for (const PacketQueue* q : ctx.queues) any |= q->n != 0;
  if (!any || ctx.worker >= kMaxWorkers) return;
  if (ctx.dirty_mark.size() < cfg.ports.size()) ctx.dirty_mark.resize(cfg.ports.size(), 0);
  run_queues(ctx, cfg);
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
