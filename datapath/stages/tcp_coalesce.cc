// Stage "tcp-coalesce"; behaviour and threading in tcp_coalesce.h.
#include "datapath/stages/tcp_coalesce.h"

#include <array>
#include <cstring>

#include "datapath/proto/checksum.h"
#include "datapath/proto/ipv4.h"
#include "datapath/proto/ipv6.h"
#include "datapath/proto/l4.h"

namespace vpcd::dp {
namespace {

constexpr uint32_t kMaxL3Bytes = 65535;  // IPv4 total length / IPv6 payload length (+ 40) of the super-frame
constexpr unsigned kMaxOpen = 16;         // flows with an open group at once (more: later ones pass unmerged)
constexpr uint8_t kTcpCsumOffset = 16;

// A TCP segment that may join or start a group (candidate()).
struct Seg {
  uint32_t seq = 0;
  uint32_t hdr_bytes = 0;  // Ethernet + IP + TCP header
  uint32_t payload = 0;    // IP-stated, Ethernet padding excluded
  bool psh = false;
};

bool is_gso(const Packet& p) noexcept {
  return (p.flags & kHasVnet) && (p.vnet.gso_type & ~VIRTIO_NET_HDR_GSO_ECN) != VIRTIO_NET_HDR_GSO_NONE;
}

uint32_t pseudo_sum(const Packet& p, uint32_t l4_len) noexcept {
  if (p.flags & kIsIpv4) return proto::ipv4_pseudo_sum(p.ip4_src, p.ip4_dst, proto::kIpProtoTcp, uint16_t(l4_len));
  proto::Ipv6Addr s, d;
  std::memcpy(s.b.data(), p.data + p.l3_offset + 8, 16);
  std::memcpy(d.b.data(), p.data + p.l3_offset + 24, 16);
  return proto::ipv6_pseudo_sum(s, d, proto::kIpProtoTcp, l4_len);
}

// Checksum state of a packet needing verification here (no partial or DATA_VALID vnet header), by position.
enum : uint8_t { kUnknown = 0, kPending, kGood, kBad };

// True when p is a segment the rules of tcp_coalesce.h let join a group; fills s. csum: p's checksum state.
bool candidate(const Packet& p, Seg& s, uint8_t& csum, bool eager) noexcept {
  if ((p.flags & (kIsTcp | kIsFragment | kHasVlan)) != kIsTcp || p.dropped() || p.prefix_len != 0 ||
      p.len < p.wire_len || p.l4_offset == 0 || is_gso(p)) [[unlikely]]
    return false;
  if (p.flags & kIsIpv4) {
    if (p.l4_offset != p.l3_offset + proto::kIpv4MinHdrLen) return false;  // IPv4 options
  } else if (!(p.flags & kIsIpv6) || p.l4_offset != p.l3_offset + proto::kIpv6HdrLen) {
    return false;  // IPv6 extension headers
  }
  const uint32_t end = uint32_t(p.l4_offset) + p.l4_len;
  if (end > p.len || p.l4_len < proto::kTcpMinHdrLen) return false;
  const uint8_t* t = p.data + p.l4_offset;
  const uint32_t thl = uint32_t(t[12] >> 4) * 4;
  const uint8_t flags = t[13];
  if (thl < proto::kTcpMinHdrLen || thl > p.l4_len || (t[12] & 0x0f) != 0) return false;
  if ((flags & ~proto::kTcpPsh) != proto::kTcpAck) return false;  // only ACK, ACK|PSH
  s.hdr_bytes = p.l4_offset + thl;
  s.payload = end - s.hdr_bytes;
  if (s.payload == 0) return false;  // pure ACKs pass as they are
  s.psh = (flags & proto::kTcpPsh) != 0;
  uint32_t seq;
  std::memcpy(&seq, t + 4, 4);
  s.seq = __builtin_bswap32(seq);
  // The checksum: partial (the kernel never summed the data: the guest's kernel accepts it as it would from the
  // sender's), validated by the kernel, or verified here: now (eager) or, lazily, while the payload is copied into
  // the arena (kPending; verify_copy()), where a segment that fails is found kBad and the batch regrouped.
  if ((p.flags & kHasVnet) && (p.vnet.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM))
    return p.vnet.csum_start == p.l4_offset && p.vnet.csum_offset == kTcpCsumOffset;
  if ((p.flags & kHasVnet) && (p.vnet.flags & VIRTIO_NET_HDR_F_DATA_VALID)) return true;
  if (csum == kUnknown || csum == kPending) {
    if (!eager) {
      csum = kPending;
      return true;
    }
    csum = proto::checksum_valid({t, p.l4_len}, pseudo_sum(p, p.l4_len)) ? kGood : kBad;
  }
  return csum == kGood;
}

// Copies p's payload (from its hdr_bytes on, n bytes) to dst; when p's checksum is kPending, sums while copying
// (one pass) and decides it: kGood or kBad. Returns false for kBad.
bool verify_copy(const Packet& p, uint32_t hdr_bytes, uint8_t* dst, uint32_t n, uint8_t& csum) noexcept {
  if (csum != kPending) {
    std::memcpy(dst, p.data + hdr_bytes, n);
    return csum != kBad;
  }
  const uint32_t pl = proto::ones_sum_copy(dst, p.data + hdr_bytes, n);  // hdr_bytes - l4_offset: a multiple of 4
  const uint32_t hs = proto::ones_sum({p.data + p.l4_offset, hdr_bytes - p.l4_offset}, pseudo_sum(p, p.l4_len));
  csum = proto::fold_sum(hs + pl) == 0xffff ? kGood : kBad;
  return csum == kGood;
}

// One group: its packets' positions in the span (first, then the joined ones, linked through `link`).
struct Group {
  uint16_t head = 0, last = 0;
  uint16_t count = 0;
  bool closed = false;     // PSH or a short segment: nothing more joins
  uint32_t next_seq = 0;   // sequence number the next segment must carry
  uint32_t gso_size = 0;   // the first segment's payload
  uint32_t payload = 0;    // bytes of payload so far
  uint32_t hdr_bytes = 0;  // the first segment's
};

bool same_flow(const Packet& a, const Packet& b) noexcept {
  if (a.out_port != b.out_port || a.in_port != b.in_port || a.vpc != b.vpc || a.src_port != b.src_port ||
      a.dst_port != b.dst_port || ((a.flags ^ b.flags) & (kIsIpv4 | kIsIpv6)))
    return false;
  if (a.flags & kIsIpv4) return a.ip4_src == b.ip4_src && a.ip4_dst == b.ip4_dst;
  return (b.flags & kIsIpv6) && std::memcmp(a.data + a.l3_offset + 8, b.data + b.l3_offset + 8, 32) == 0;
}

// Headers of p (a candidate) match those of head h byte for byte where the rules ask (same flow already known).
bool same_headers(const Packet& h, const Packet& p, const Seg& s, const Group& g) noexcept {
  if (p.l3_offset != h.l3_offset || p.l4_offset != h.l4_offset || s.hdr_bytes != g.hdr_bytes) return false;
  if (std::memcmp(h.data, p.data, 12) != 0) return false;  // MACs
  const uint8_t* a = h.data + h.l3_offset;
  const uint8_t* b = p.data + p.l3_offset;
  if (h.flags & kIsIpv4) {
    // version/IHL, TOS; flags/fragment offset, TTL, protocol (addresses: same_flow)
    if (std::memcmp(a, b, 2) != 0 || std::memcmp(a + 6, b + 6, 4) != 0) return false;
  } else {
    // version, traffic class, flow label; next header, hop limit
    if (std::memcmp(a, b, 4) != 0 || std::memcmp(a + 6, b + 6, 2) != 0) return false;
  }
  const uint8_t* ta = h.data + h.l4_offset;
  const uint8_t* tb = p.data + p.l4_offset;
  // ack, data offset; window; urgent pointer; options
  return std::memcmp(ta + 8, tb + 8, 5) == 0 && std::memcmp(ta + 14, tb + 14, 2) == 0 &&
         std::memcmp(ta + 18, tb + 18, 2) == 0 &&
         std::memcmp(ta + proto::kTcpMinHdrLen, tb + proto::kTcpMinHdrLen, g.hdr_bytes - h.l4_offset - proto::kTcpMinHdrLen) == 0;
}

bool can_join(const Group& g, const Packet& h, const Packet& p, const Seg& s) noexcept {
  return !g.closed && s.seq == g.next_seq && s.payload <= g.gso_size &&
         g.hdr_bytes - h.l3_offset + g.payload + s.payload <= kMaxL3Bytes && same_headers(h, p, s, g);
}

}  // namespace

NextSet TcpCoalesceStage::process(WorkerContext& ctx, const DataplaneConfig& /*cfg*/,
                                  std::span<Packet* const> pkts) noexcept {
  CoalesceWorkerState& st = ctx.coalesce;
  // [position] -> the next member of its group (the positions fit: the queue holds at most PacketQueue::kCapacity).
  std::array<uint16_t, PacketQueue::kCapacity> link;
  std::array<Group, PacketQueue::kCapacity / 2> done;  // groups of 2 or more, in the order they closed
  std::array<uint32_t, PacketQueue::kCapacity / 2> at;  // [done index] -> the group's offset in the arena
  std::array<uint8_t, PacketQueue::kCapacity> csum;     // [position] -> checksum state (kUnknown...)
  unsigned n_done = 0;
  std::array<Group, kMaxOpen> open;
  unsigned n_open = 0;
  auto close = [&](unsigned k) {
    if (open[k].count >= 2) done[n_done++] = open[k];
    open[k] = open[--n_open];
  };

  const size_t n = pkts.size() < PacketQueue::kCapacity ? pkts.size() : PacketQueue::kCapacity;
  for (size_t i = 0; i < pkts.size(); ++i) pkts[i]->next = Next::kOutput;
  std::memset(csum.data(), kUnknown, n);

  // Grouping. Lazily (eager false) segments whose checksum must be verified here are assumed good and verified while
  // their payload is copied (fused: one pass over the bytes instead of a sum and then a memcpy); one found bad makes
  // the batch regroup with it known bad, so the groups are exactly those an eager check would have made. Two things
  // a hidden bad segment could still change without joining anything, the open-flow slots and the arena's fit (the
  // order groups close in), make the grouping start over eagerly (every checksum verified up front, as before).
  bool eager = false;
  auto group = [&]() -> bool {  // false: redo eagerly
    n_done = n_open = 0;
    for (size_t i = 0; i < n; ++i) {
      const Packet& p = *pkts[i];
      if (!(p.flags & kIsTcp) || p.out_port >= kFloodUnknownPort) continue;  // cannot be in a flow's way
      unsigned k = 0;
      while (k < n_open && !same_flow(*pkts[open[k].head], p)) ++k;
      Seg s;
      const bool cand = candidate(p, s, csum[i], eager);
      if (k < n_open) {
        Group& g = open[k];
        if (cand && can_join(g, *pkts[g.head], p, s)) {
          link[g.last] = uint16_t(i);
          g.last = uint16_t(i);
          ++g.count;
          g.payload += s.payload;
          g.next_seq = s.seq + s.payload;
          if (s.psh || s.payload < g.gso_size) close(k);
          continue;
        }
        close(k);  // the flow's next packet does not join: nothing of the flow may overtake it
      }
      if (!cand || s.psh) continue;
      if (n_open == kMaxOpen) {
        if (!eager) return false;
        continue;
      }
      Group& g = open[n_open++];
      g = Group{};
      g.head = g.last = uint16_t(i);
      g.count = 1;
      g.next_seq = s.seq + s.payload;
      g.gso_size = g.payload = s.payload;
      g.hdr_bytes = s.hdr_bytes;
    }
    while (n_open) close(n_open - 1);
    if (eager) return true;
    uint32_t need = 0;
    for (unsigned d = 0; d < n_done; ++d) need = ((need + 63) & ~63u) + done[d].hdr_bytes + done[d].payload;
    return need <= CoalesceWorkerState::kArenaBytes;
  };

  // Copying (verifying pending checksums on the way), without touching the packets yet: a segment found bad discards
  // the copies (the arena position goes back to 0) and the batch is regrouped. Each round finds one more segment bad
  // or succeeds, so this ends; eagerly nothing is pending and the first round succeeds.
  uint64_t no_room = 0;
  for (;;) {
    if (!group()) {
      eager = true;
      continue;
    }
    if (n_done == 0) return stage_bit(Next::kOutput);
    st.used = 0;
    no_room = 0;
    bool bad = false;
    for (unsigned d = 0; d < n_done; ++d) {
      const Group& g = done[d];
      const Packet& h = *pkts[g.head];
      const uint32_t total = g.hdr_bytes + g.payload;
      at[d] = (st.used + 63) & ~63u;
      if (at[d] + total > CoalesceWorkerState::kArenaBytes) {
        ++no_room;
        at[d] = UINT32_MAX;
        continue;
      }
      uint8_t* f = st.arena.get() + at[d];
      st.used = at[d] + total;
      std::memcpy(f, h.data, g.hdr_bytes);
      bad |= !verify_copy(h, g.hdr_bytes, f + g.hdr_bytes, g.gso_size, csum[g.head]);
      uint32_t off = g.hdr_bytes + g.gso_size;
      for (uint16_t m = link[g.head], left = uint16_t(g.count - 1); left > 0; m = link[m], --left) {
        const Packet& q = *pkts[m];
        const uint32_t qp = uint32_t(q.l4_offset) + q.l4_len - g.hdr_bytes;
        bad |= !verify_copy(q, g.hdr_bytes, f + off, qp, csum[m]);
        off += qp;
      }
    }
    if (!bad) break;
    st.used = 0;  // the copies are discarded; regroup with the bad segments known
  }

  uint64_t frames = 0, segments = 0;
  for (unsigned d = 0; d < n_done; ++d) {
    const Group& g = done[d];
    if (at[d] == UINT32_MAX) continue;  // no room: left as it was
    Packet& h = *pkts[g.head];
    const uint32_t total = g.hdr_bytes + g.payload;
    uint8_t* f = st.arena.get() + at[d];
    bool psh = false;
    for (uint16_t m = link[g.head], left = uint16_t(g.count - 1); left > 0; m = link[m], --left) {
      Packet& q = *pkts[m];
      psh = psh || (q.data[q.l4_offset + 13] & proto::kTcpPsh);
      q.drop_with(DropReason::kConsumed);
    }
    // Headers: lengths, IPv4 header checksum, PSH of the last segment, the partial TCP checksum.
    const uint32_t l4_len = total - h.l4_offset;
    uint8_t* ip = f + h.l3_offset;
    if (h.flags & kIsIpv4) {
      const be16 tl = be16::from_host(uint16_t(total - h.l3_offset));
      std::memcpy(ip + 2, &tl, 2);
      ip[10] = ip[11] = 0;
      const be16 c = proto::internet_checksum({ip, proto::kIpv4MinHdrLen});
      std::memcpy(ip + 10, &c, 2);
    } else {
      const be16 pl = be16::from_host(uint16_t(l4_len));
      std::memcpy(ip + 4, &pl, 2);
    }
    uint8_t* t = f + h.l4_offset;
    if (psh) t[13] |= proto::kTcpPsh;
    const be16 c = be16::from_host(proto::fold_sum(pseudo_sum(h, l4_len)));
    std::memcpy(t + kTcpCsumOffset, &c, 2);
    h.data = f;
    h.len = h.wire_len = total;
    h.l4_len = uint16_t(l4_len);
    h.flags |= kHasVnet;
    h.vnet = virtio_net_hdr{};
    h.vnet.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    h.vnet.gso_type = (h.flags & kIsIpv4) ? VIRTIO_NET_HDR_GSO_TCPV4 : VIRTIO_NET_HDR_GSO_TCPV6;
    h.vnet.hdr_len = uint16_t(g.hdr_bytes);
    h.vnet.gso_size = uint16_t(g.gso_size);
    h.vnet.csum_start = h.l4_offset;
    h.vnet.csum_offset = kTcpCsumOffset;
    ++frames;
    segments += g.count;
  }
  if (frames) {
    counter_add(st.frames, frames);
    counter_add(st.segments, segments);
  }
  if (no_room) counter_add(st.no_room, no_room);
  return frames ? (stage_bit(Next::kOutput) | stage_bit(Next::kDrop)) : stage_bit(Next::kOutput);
}

}  // namespace vpcd::dp
