// Stage "output"; behaviour and threading in output.h.
#include "datapath/stages/output.h"

#include <cstring>

#include "datapath/capture/capture_tap.h"
#include "datapath/proto/gso.h"
#include "datapath/proto/vxlan.h"
#include "datapath/stages/vxlan_uso.h"

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

// A GSO super-frame vxlan-encap left whole (kSegmentOnTx) for the uplink, as UDP segmentation offload frames
// (vxlan_uso.h): one per super-frame, more when its chunks do not fit one IPv4 packet, each built straight in a big
// transmit slot of the uplink when it offers one (tx_slot_acquire with kUsoFrameBytes: AfPacketPort's big TX ring, the
// kernel sends it without copying it into an skb), else in the worker's USO buffer and enqueued (AfPacketPort: one
// sendmsg each, or a copy into the big ring). The port's tx counters count the datagrams the kernel makes of them.
// False when p cannot be laid out so (nothing sent): the caller takes the per-segment path.
bool send_uso(WorkerContext& ctx, const DataplaneConfig& cfg, const Packet& p, TxTally& tally) noexcept {
  const PortConfig* out = cfg.port(p.out_port);
  if (!out || !out->rt->io || p.prefix_len != proto::kVxlanOverhead) [[unlikely]]
    return false;
  const UsoPlan plan = vxlan_uso_plan(p);
  if (plan.segments == 0) return false;
  uint8_t* const buf = ctx.overlay.uso_buf.get();  // allocated with the worker (overlay_state.h)
  proto::VxlanOuter tmpl;
  std::memcpy(tmpl.bytes(), p.prefix, proto::kVxlanOverhead);
  PortRuntime& rt = *out->rt;
  auto& st = ctx.overlay;
  for (size_t first = 0; first < plan.segments; first += plan.per_frame) {
    const size_t count = plan.segments - first < plan.per_frame ? plan.segments - first : plan.per_frame;
    Packet q;
    uint8_t* const slot = rt.io->tx_slot_acquire(ctx.worker, uint32_t(kUsoFrameBytes));
    uint8_t* const f = slot ? slot : buf;
    // An acquired slot left uncommitted (a failed layout) is simply reused by the next acquire.
    const size_t len = vxlan_uso_frame(p, plan, tmpl, first, count, f, kUsoFrameBytes, &q.vnet);
    if (len == 0) [[unlikely]] {
      if (first == 0) return false;
      rt.counters[ctx.worker].add_drop(DropReason::kGsoSegmentFailed, plan.segments - first);
      break;
    }
    q.data = f;
    q.len = q.wire_len = uint32_t(len);
    q.flags = kHasVnet;
    q.in_port = p.in_port;
    q.out_port = p.out_port;
    q.vpc = p.vpc;
    if (slot) {
      capture_tx(rt, ctx.worker, q);  // before the slot is the kernel's
      rt.io->tx_slot_commit(ctx.worker, q.vnet, q.len);
    } else if (rt.io->tx_enqueue(ctx.worker, q)) [[likely]] {
      capture_tx(rt, ctx.worker, q);
    } else {
      rt.counters[ctx.worker].add_drop(rt.io->tx_drop_reason(ctx.worker), plan.segments - first);
      break;
    }
    ctx.mark_dirty(p.out_port);
    // The datagrams on the wire: outer headers + a chunk each (the frame's last chunk is what remains).
    const size_t last = len - kUsoOuterBytes - (count - 1) * plan.chunk;
    for (size_t k = 0; k + 1 < count; ++k) tally.sent(rt, uint32_t(kUsoOuterBytes + plan.chunk));
    tally.sent(rt, uint32_t(kUsoOuterBytes + last));
    counter_add(st.uso_tx_frames, 1);
    counter_add(st.uso_tx_segments, count);
  }
  counter_add(st.uso_tx_superframes, 1);
  return true;
}

// A GSO super-frame vxlan-encap left whole (kSegmentOnTx) for the uplink: as USO frames when the underlay says so
// (UnderlayConfig::uso), else (or when it does not fit them) each segment written with its outer headers straight
// into a transmit ring slot (or, for a port without one, built in the worker's scratch and enqueued).
void send_segmented(WorkerContext& ctx, const DataplaneConfig& cfg, const Packet& p, TxTally& tally) noexcept {
  if (cfg.overlay.underlay && cfg.overlay.underlay->uso) {
    if (send_uso(ctx, cfg, p, tally)) return;
    counter_add(ctx.overlay.uso_tx_fallbacks, 1);
  }
  const PortConfig* out = cfg.port(p.out_port);
  const PortConfig* acct = cfg.port(p.acct_port);
  if (!out || !out->rt->io) [[unlikely]] {
    if (acct) acct->rt->counters[ctx.worker].add_drop(DropReason::kPortDown);
    return;
  }
  PortRuntime& rt = *out->rt;
  const size_t n = proto::gso_segment_count(p);
  const size_t seg_max = proto::gso_max_segment_bytes(p);
  const size_t frame_max = seg_max + proto::kVxlanOverhead;
  if (n == 0 || frame_max > PacketPool::kBufBytes || p.prefix_len != proto::kVxlanOverhead) [[unlikely]] {
    if (acct) acct->rt->counters[ctx.worker].add_drop(DropReason::kGsoSegmentFailed);
    return;
  }
  const bool partial = (p.vnet.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) != 0;
  const auto mode = partial ? proto::GsoCsum::kPartial : proto::GsoCsum::kSoftware;
  const bool udp_csum = cfg.overlay.underlay && cfg.overlay.underlay->udp_checksum;
  proto::VxlanOuter tmpl;
  std::memcpy(tmpl.bytes(), p.prefix, proto::kVxlanOverhead);
  const uint16_t sport = tmpl.udp.src_port.to_host();
  uint8_t* const scratch = ctx.overlay.tx_scratch.get();  // PacketPool::kBufBytes, allocated with the worker
  bool flushed = false;
  for (size_t i = 0; i < n; ++i) {
    uint8_t* f = rt.io->tx_slot_acquire(ctx.worker, uint32_t(frame_max));
    if (!f && !flushed) {  // ring full: hand it to the kernel (a frame has fewer segments than the ring has slots)
      flushed = true;
      rt.io->tx_flush(ctx.worker);
      f = rt.io->tx_slot_acquire(ctx.worker, uint32_t(frame_max));
    }
    const bool in_ring = f != nullptr;
    if (!in_ring) f = scratch;
    proto::GsoSegment seg;
    proto::gso_segment_one(p, i, mode, f + proto::kVxlanOverhead, seg_max, &seg);
    proto::VxlanOuter o = tmpl;
    proto::finish_vxlan_outer(o, seg.len, sport);
    if (udp_csum && !partial) o.udp.csum = proto::vxlan_udp_checksum(o, {f + proto::kVxlanOverhead, seg.len});
    std::memcpy(f, o.bytes(), proto::kVxlanOverhead);
    virtio_net_hdr v = seg.vnet;  // partial: NEEDS_CSUM at the inner TCP/UDP checksum, moved past the outer headers
    if (v.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) v.csum_start = uint16_t(v.csum_start + proto::kVxlanOverhead);
    Packet q;
    q.data = f;
    q.len = q.wire_len = seg.len + uint32_t(proto::kVxlanOverhead);
    q.vnet = v;
    q.flags = partial ? kHasVnet : 0;
    q.in_port = p.in_port;
    q.out_port = p.out_port;
    q.vpc = p.vpc;
    if (in_ring) {
      capture_tx(rt, ctx.worker, q);  // before the slot is the kernel's
      rt.io->tx_slot_commit(ctx.worker, v, q.len);
    } else if (rt.io->tx_enqueue(ctx.worker, q)) [[likely]] {
      capture_tx(rt, ctx.worker, q);
    } else {
      rt.counters[ctx.worker].add_drop(rt.io->tx_drop_reason(ctx.worker), n - i);
      break;
    }
    ctx.mark_dirty(p.out_port);
    tally.sent(rt, q.len);
  }
}

}  // namespace

NextSet OutputStage::process(WorkerContext& ctx, const DataplaneConfig& cfg, std::span<Packet* const> pkts) noexcept {
  TxTally tally(ctx.worker);
  for (Packet* p : pkts) {
    if (p->flags & kSegmentOnTx) [[unlikely]] {
      send_segmented(ctx, cfg, *p, tally);
    } else if (p->out_port < kFloodUnknownPort) [[likely]] {
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
