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

struct StageEntry {
  Next id = Next::kCount;
  StageFn fn = nullptr;
  // The stage may change a packet's in_port or vpc in place (decapsulation): its queue is no longer one input's.
  // Every other stage leaves both alone (checked in the sanitizer trees, VPCD_STAGE_CHECKS).
  bool rewrites_input = false;
};

template <class S>
constexpr StageEntry entry() {
  static_assert(S::kName == stage_name(S::kId), "a stage's name is the one stage.h gives its id");
  if constexpr (requires { S::kRewritesInput; })
    return {S::kId, &S::process, S::kRewritesInput};
  else
    return {S::kId, &S::process, false};
}

// The stages this build carries out, by id. An id without an entry has no code yet: nothing may send packets there
// (feature bitmaps only name stages that exist), and the runner drops any that arrive as kNoStage.
constexpr std::array<StageEntry, kStageCount> make_table() {
  std::array<StageEntry, kStageCount> t{};
  for (StageEntry e : {entry<ParseStage>(), entry<UplinkInputStage>(), entry<PortSecurityStage>(),
                       entry<FirewallEgressStage>(), entry<ArpResponderStage>(), entry<L2SwitchStage>(),
                       entry<RouterStage>(), entry<FirewallIngressStage>(), entry<VxlanEncapStage>(),
                       entry<TcpCoalesceStage>(), entry<OutputStage>()})
    t[size_t(e.id)] = e;
  return t;
}
constexpr std::array<StageEntry, kStageCount> kStages = make_table();
static_assert(kStages[size_t(Next::kDrop)].fn == nullptr, "drop is the runner's own");

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
    if ((claim & (claim - 1)) != 0) return Next::kCount;  // (std::has_single_bit: a libgcc call without -mpopcnt)
    first = Next(std::countr_zero(claim));
  } else {
    first = q.v[0]->next;
    for (unsigned i = 1; i < n; ++i)
      if (q.v[i]->next != first) return Next::kCount;
  }
  return size_t(first) > s && first < Next::kCount ? first : Next::kCount;
}

#ifdef VPCD_STAGE_CHECKS
// Aborts unless every packet of q has the input (in_port, vpc) the queue claims to be uniform in.
void check_uniform(const PacketQueue& q, size_t s, const char* when) noexcept {
  if (q.in_port == kInvalidPort) return;
  for (unsigned i = 0; i < q.n; ++i)
    if (q.v[i]->in_port != q.in_port || q.v[i]->vpc != q.vpc) {
      std::fprintf(stderr, "vpcd: queue of stage %s claims input (%u, %u) %s, a packet has (%u, %u)\n",
                   std::string(stage_name(Next(s))).c_str(), q.in_port, q.vpc, when, q.v[i]->in_port, q.v[i]->vpc);
      std::abort();
    }
}
#endif

void run_queues(WorkerContext& ctx, const DataplaneConfig& cfg) noexcept {
  for (size_t s = 0; s <= size_t(Next::kOutput); ++s) {
    PacketQueue& q = *ctx.queues[s];
    if (q.n == 0) continue;
    const unsigned n = q.n;
    counter_add(ctx.stage_packets[s], n);
    const StageEntry& st = kStages[s];
    NextSet claim = kNextsUnknown;
    if (!st.fn) [[unlikely]] {
      for (unsigned i = 0; i < n; ++i) q.v[i]->drop_with(DropReason::kNoStage);
    } else {
#ifdef VPCD_STAGE_CHECKS
      check_uniform(q, s, "before the stage");
#endif
      ctx.running = Next(s);
      ctx.chunk_port = q.in_port;
      ctx.chunk_vpc = q.vpc;
      claim = st.fn(ctx, cfg, q.span());
      ctx.running = Next::kCount;
      ctx.chunk_port = kInvalidPort;
      if (st.rewrites_input) q.in_port = kInvalidPort;
#ifdef VPCD_STAGE_CHECKS
      check_uniform(q, s, "after the stage (which may not change in_port or vpc)");
#endif
    }
    if (s == size_t(Next::kOutput)) {  // output freed the pool buffers of what it sent
      q.n = 0;
      break;
    }
    // Distribute to the stages named next (emit() refuses packets for this stage while it runs, so the queue holds
    // exactly its n packets). Common case: every packet goes to the same later stage, whose queue is empty: hand
    // the whole queue over by swapping pointers (VPP's enqueue_to_next fast path), with its input.
    const Next first = single_next(q, n, s, claim);
    if (first != Next::kCount && ctx.queues[size_t(first)]->n == 0) [[likely]] {
      std::swap(ctx.queues[s], ctx.queues[size_t(first)]);
      continue;
    }
    // Every packet pushed below comes from q: an empty queue takes q's input, one of another input becomes mixed.
    for (size_t t = s + 1; t < kStageCount; ++t) {
      PacketQueue& d = *ctx.queues[t];
      if (d.n == 0) {
        d.in_port = q.in_port;
        d.vpc = q.vpc;
      } else if (d.in_port != q.in_port || d.vpc != q.vpc) {
        d.in_port = kInvalidPort;
      }
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
  if (q.n == 0) {  // (packets emitted between batches may wait in it: then it is mixed)
    q.in_port = in.index;
    q.vpc = in.vpc;
  } else if (q.in_port != in.index || q.vpc != in.vpc) {
    q.in_port = kInvalidPort;
  }
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
  PacketQueue& q = *queues[size_t(to)];
  if (q.n == 0) {
    q.in_port = p->in_port;
    q.vpc = p->vpc;
  } else if (q.in_port != p->in_port || q.vpc != p->vpc) {
    q.in_port = kInvalidPort;
  }
  push(q, p);
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
    if (!p || !p->rt->io) continue;
    PortIo* io = p->rt->io.get();
    io->tx_flush(ctx.worker);
    if (!io->tx_pending(ctx.worker)) [[likely]] continue;
    bool known = false;
    for (const auto& r : ctx.tx_retry) known |= r.io == io;
    if (!known) ctx.tx_retry.push_back({io, id, monotonic_ms()});
  }
  ctx.dirty_ports.clear();
}

namespace {

// Discards what `io` still holds for this worker and counts it on the port (when the port is in `cfg`).
void discard_pending(WorkerContext& ctx, const DataplaneConfig& cfg, const WorkerContext::TxRetry& r) noexcept {
  const uint64_t n = r.io->tx_discard_pending(ctx.worker);
  const PortConfig* p = cfg.port(r.port);
  if (n && p && p->rt && p->rt->io.get() == r.io && ctx.worker < kMaxWorkers) {
    p->rt->counters[ctx.worker].add_drop(DropReason::kTxStalled, n);
  }
}

}  // namespace

void retry_flushes(WorkerContext& ctx, const DataplaneConfig& cfg, uint64_t now_ms) noexcept {
  auto& v = ctx.tx_retry;
  for (size_t i = 0; i < v.size();) {
    v[i].io->tx_flush(ctx.worker);
    if (v[i].io->tx_pending(ctx.worker) && now_ms - v[i].since_ms >= ctx.tx_retry_limit_ms) discard_pending(ctx, cfg, v[i]);
    if (!v[i].io->tx_pending(ctx.worker)) {
      v[i] = v.back();
      v.pop_back();
    } else {
      ++i;
    }
  }
}

void rebase_tx_retries(WorkerContext& ctx, const DataplaneConfig& old, const DataplaneConfig* next) noexcept {
  auto& v = ctx.tx_retry;
  for (size_t i = 0; i < v.size();) {
    v[i].io->tx_flush(ctx.worker);
    const PortConfig* np = next ? next->port(v[i].port) : nullptr;
    const bool kept = np && np->rt && np->rt->io.get() == v[i].io;
    if (!kept && v[i].io->tx_pending(ctx.worker)) discard_pending(ctx, old, v[i]);
    if (!v[i].io->tx_pending(ctx.worker)) {
      v[i] = v.back();
      v.pop_back();
    } else {
      ++i;
    }
  }
}

}  // namespace vpcd::dp
