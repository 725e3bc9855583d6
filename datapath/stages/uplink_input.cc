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

void overlay_tick(WorkerContext& ctx, const DataplaneConfig& cfg, uint64_t now_ms) noexcept {
  auto& st = ctx.overlay;
  if (!overlay_sync(ctx, cfg)) return;
  const UnderlayConfig& u = *cfg.overlay.underlay;
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

  for (Packet* p : pkts) {
    if (!u || p->in_port != u->port) [[unlikely]] {
      p->drop_with(DropReason::kUplinkNotForUs);
      continue;
    }
    if (p->flags & kIsArp) {
      st.released.clear();
      UplinkArpVerdict v = uplink_arp(*p, *u, st.arp, now_ms, &st.released);
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
      continue;
    }
    if (!is_vxlan_to_us(*p, dp) && !is_fragment_to_us(*p, dp)) {
      p->drop_with(DropReason::kUplinkNotForUs);
      continue;
    }
    VxlanDecapResult r;
    const DropReason d = vxlan_decap(*p, dp, r);
    if (d != DropReason::kCount) [[unlikely]] {
      p->drop_with(d);
      continue;
    }
    const PortConfig* t = cfg.port(r.tunnel);
    if (!t || t->kind != PortKind::kTunnel || !cfg.vpc(r.vpc)) [[unlikely]] {
      p->drop_with(DropReason::kVxlanUnknownVtep);
      continue;
    }
    if (t->index != tally_port) {
      flush_tally();
      tally_port = t->index;
    }
    ++tally_pkts;
    tally_bytes += p->len;
    p->in_port = t->index;
    p->acct_port = t->index;
    p->vpc = r.vpc;
    p->next = next_stage(t->features, Next::kUplinkInput);
  }
  flush_tally();
  return kNextsUnknown;
}

}  // namespace vpcd::dp
