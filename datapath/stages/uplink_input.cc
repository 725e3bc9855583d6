// Stage "uplink-input" and the underlay ARP timers; behaviour and threading in uplink_input.h.
#include "datapath/stages/uplink_input.h"

#include <time.h>

#include <cstring>

#include "datapath/stages/uplink_arp.h"
#include "datapath/stages/vxlan_decap.h"

namespace vpcd::dp {

uint64_t monotonic_ms() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return uint64_t(ts.tv_sec) * 1000 + uint64_t(ts.tv_nsec) / 1000000;
}

namespace {

void drop_waiting(WorkerContext& ctx, const std::vector<uint32_t>& tokens, DropReason why) noexcept {
  auto& st = ctx.overlay;
  for (uint32_t t : tokens) {
    if (t >= st.waiting.size() || !st.waiting[t]) continue;
    Packet* w = st.waiting[t];
    st.waiting[t] = nullptr;
    w->drop_with(why);
    ctx.emit(w, Next::kDrop);
  }
}

}  // namespace

bool overlay_sync(WorkerContext& ctx, const DataplaneConfig& cfg) noexcept {
  auto& st = ctx.overlay;
  const UnderlayConfig* u = cfg.overlay.underlay ? &*cfg.overlay.underlay : nullptr;
  const uint16_t port = u ? u->port : kInvalidPort;
  const uint32_t addr = u ? u->address.addr.v : 0;
  if (port != st.underlay_port || addr != st.underlay_addr) [[unlikely]] {
    st.failed.clear();
    st.arp.clear(&st.failed);
    drop_waiting(ctx, st.failed, DropReason::kNoUnderlay);
    st.underlay_port = port;
    st.underlay_addr = addr;
    st.neighbors_seen = ~uint64_t{0};
  }
  if (st.waiting.size() < ctx.pool.capacity()) st.waiting.resize(ctx.pool.capacity(), nullptr);
  return u != nullptr;
}

void release_waiting(WorkerContext& ctx, const UnderlayConfig& u, const std::vector<uint32_t>& tokens,
                     const MacAddr& next_hop_mac) noexcept {
  auto& st = ctx.overlay;
  for (uint32_t t : tokens) {
    if (t >= st.waiting.size() || !st.waiting[t]) continue;
    Packet* w = st.waiting[t];
    st.waiting[t] = nullptr;
    std::memcpy(w->data, next_hop_mac.b.data(), 6);  // the outer Ethernet destination
    w->out_port = u.port;
    ctx.emit(w, Next::kOutput);
  }
}

// The resolutions other workers learned (underlay_neighbors.h) that are newer than what this worker's cache has for
// the next hops it waits for or refreshes: learned, and the frames that waited sent.
void adopt_shared(WorkerContext& ctx, const UnderlayConfig& u, const UnderlayNeighbors& nb) noexcept {
  auto& st = ctx.overlay;
  st.unconfirmed.clear();
  try {
    st.arp.unconfirmed(&st.unconfirmed);
  } catch (...) {
    st.neighbors_seen = ~uint64_t{0};  // allocation failure: look again next tick
    return;
  }
  for (const auto& [ip, confirmed_ms] : st.unconfirmed) {
    MacAddr mac;
    uint64_t at = 0;
    if (!nb.lookup(ip, &mac, &at) || at <= confirmed_ms) continue;
    st.released.clear();
    try {
      st.arp.learn(ip, mac, at, /*create=*/false, &st.released);
    } catch (...) {
      continue;
    }
    release_waiting(ctx, u, st.released, mac);
  }
}

void overlay_tick(WorkerContext& ctx, const DataplaneConfig& cfg, uint64_t now_ms) noexcept {
  auto& st = ctx.overlay;
  if (!overlay_sync(ctx, cfg)) return;
  const UnderlayConfig& u = *cfg.overlay.underlay;
  if (const UnderlayNeighbors* nb = cfg.overlay.neighbors.get()) {
    const uint64_t v = nb->version();
    if (v != st.neighbors_seen) {
      st.neighbors_seen = v;
      adopt_shared(ctx, u, *nb);
    }
  }
  st.requests.clear();
  st.failed.clear();
  try {
    st.arp.tick(now_ms, &st.requests, &st.failed);
  } catch (...) {
    return;  // allocation failure: try again next tick
  }
  drop_waiting(ctx, st.failed, DropReason::kUnderlayArpFailed);
  for (Ipv4Addr ip : st.requests) {
    Packet* r = ctx.alloc_packet();
    if (!r) break;
    r->len = r->wire_len = uint32_t(build_underlay_arp_request(u, ip, r->data));
    r->in_port = r->acct_port = r->out_port = u.port;
    ctx.emit(r, Next::kOutput);
  }
}

NextSet UplinkInputStage::process(WorkerContext& ctx, const DataplaneConfig& cfg, std::span<Packet* const> pkts) noexcept {
  const bool have = overlay_sync(ctx, cfg);
  const UnderlayConfig* u = have ? &*cfg.overlay.underlay : nullptr;
  VxlanDecapParams dp;
  if (u) {
    dp.local_ip = u->address.addr;
    dp.udp_port = u->vxlan_port;
  }
  dp.table = cfg.overlay.table.get();
  auto& st = ctx.overlay;
  const uint64_t now_ms = monotonic_ms();
  // Per-VTEP rx counters: runs of frames from one tunnel cost one counter update.
  uint16_t tally_port = kInvalidPort;
  uint64_t tally_pkts = 0, tally_bytes = 0;
  auto flush_tally = [&] {
    if (tally_pkts == 0) return;
    PortWorkerCounters& c = cfg.ports[tally_port].rt->counters[ctx.worker];
    counter_add(c.rx_packets, tally_pkts);
    counter_add(c.rx_bytes, tally_bytes);
    tally_pkts = tally_bytes = 0;
  };

  // The tunnel port a decapsulated frame enters on, its VPC, its next stage and the per-VTEP tally; or the drop.
  auto finish_decap = [&](Packet* q, DropReason d, const VxlanDecapResult& r) {
    if (d != DropReason::kCount) [[unlikely]] {
      q->drop_with(d);
      return;
    }
    const PortConfig* t = cfg.port(r.tunnel);
    if (!t || t->kind != PortKind::kTunnel || !cfg.vpc(r.vpc)) [[unlikely]] {
      q->drop_with(DropReason::kVxlanUnknownVtep);
      return;
    }
    if (t->index != tally_port) {
      flush_tally();
      tally_port = t->index;
    }
    ++tally_pkts;
    tally_bytes += q->len;
    q->in_port = t->index;
    q->acct_port = t->index;
    q->vpc = r.vpc;
    q->next = next_stage(t->features, Next::kUplinkInput);
  };

  // A run holding a UDP GSO super-frame (vxlan_decap.h): its datagrams become Packets of st.split handed on with
  // emit(), which queues them at once, ahead of the run's own packets (distributed after this stage returns). So
  // that nothing is reordered, every packet of such a run that goes on is re-homed the same way, in order, and its
  // slot in the run becomes a `consumed` drop (not counted).
  bool rehome = false;
  for (const Packet* p : pkts) rehome |= is_udp_gso_frame(*p);
  st.split_used = 0;
  auto take = [&]() -> Packet* {
    return rehome && st.split_used < kSplitPackets ? &st.split[st.split_used++] : nullptr;
  };
  PortWorkerCounters* uplink_counters = u ? &cfg.ports[u->port].rt->counters[ctx.worker] : nullptr;

  for (Packet* p : pkts) {
    if (!u || p->in_port != u->port) [[unlikely]] {
      p->drop_with(DropReason::kUplinkNotForUs);
      continue;
    }
    if (p->flags & kIsArp) {
      st.released.clear();
      UplinkArpVerdict v = uplink_arp(*p, *u, st.arp, cfg.overlay.neighbors.get(), now_ms, &st.released);
      if (!st.released.empty()) {
        MacAddr mac;
        ArpCache::State s;
        if (st.arp.state(p->ip4_src, &s, &mac)) release_waiting(ctx, *u, st.released, mac);
      }
      switch (v) {
        case UplinkArpVerdict::kReply:
          p->out_port = u->port;
          p->next = Next::kOutput;
          break;
        case UplinkArpVerdict::kConsumed:
          p->drop_with(DropReason::kConsumed);
          break;
        case UplinkArpVerdict::kNotForUs:
          p->drop_with(DropReason::kUplinkNotForUs);
          break;
      }
    } else if (!is_vxlan_to_us(*p, dp) && !is_fragment_to_us(*p, dp)) {
      p->drop_with(DropReason::kUplinkNotForUs);
    } else if (is_udp_gso_frame(*p)) [[unlikely]] {
      unsigned n = 0;
      const DropReason d = vxlan_uso_check(*p, &n);
      if (d != DropReason::kCount) {
        p->drop_with(d);
        continue;
      }
      counter_add(st.uso_rx_frames, 1);
      counter_add(st.uso_rx_segments, n);
      // The uplink counts datagrams, as on transmit: run_batch counted the super-frame as one frame of its bytes; the
      // other n - 1 datagrams it holds each had their own outer Ethernet + IPv4 + UDP headers on the wire.
      counter_add(uplink_counters->rx_packets, n - 1);
      counter_add(uplink_counters->rx_bytes, uint64_t(n - 1) * (p->l4_offset + proto::kUdpHdrLen));
      for (unsigned i = 0; i < n; ++i) {
        Packet* c = take();
        if (!c) [[unlikely]] {
          uplink_counters->add_drop(DropReason::kVxlanSplitBudget, n - i);
          break;
        }
        *c = *p;
        VxlanDecapResult r;
        finish_decap(c, vxlan_decap_uso_segment(*c, *p, i, dp, r), r);
        ctx.emit(c, c->next);
      }
      p->drop_with(DropReason::kConsumed);
      continue;
    } else {
      VxlanDecapResult r;
      finish_decap(p, vxlan_decap(*p, dp, r), r);
    }
    if (rehome && p->next != Next::kDrop) [[unlikely]] {
      if (Packet* c = take()) {
        *c = *p;
        ctx.emit(c, c->next);
        p->drop_with(DropReason::kConsumed);
      } else {
        p->drop_with(DropReason::kVxlanSplitBudget);
      }
    }
  }
  flush_tally();
  return kNextsUnknown;
}

}  // namespace vpcd::dp
