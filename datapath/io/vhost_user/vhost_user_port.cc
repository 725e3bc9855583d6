// VhostUserPort's data path (rx_burst from the guest's TX virtqueues, tx_enqueue into its RX virtqueues) and set-up.
// Behaviour and threading in vhost_user_port.h.
#include "datapath/io/vhost_user/vhost_user_port.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "datapath/io/vhost_user/offload.h"

namespace vpcd::dp::vhost {

namespace {

constexpr uint8_t kGsoEcn = VIRTIO_NET_HDR_GSO_ECN;

static_assert(std::is_trivially_copyable_v<Packet>);
constexpr Packet kBlankPacket{};

inline void relaxed_inc(std::atomic<uint64_t>& c) noexcept {
  c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

}  // namespace

VhostUserPort::VhostUserPort(const VhostUserPortConfig& cfg)
    : cfg_(cfg), rxq_(cfg.queue_pairs), txw_(cfg.tx_workers), announce_(cfg.announce) {}

std::unique_ptr<VhostUserPort> VhostUserPort::create(const VhostUserPortConfig& cfg, std::string* error) {
  if (cfg.queue_pairs < 1 || cfg.queue_pairs > kMaxQueuePairs) {
    *error = "queue pairs must be 1.." + std::to_string(kMaxQueuePairs);
    return nullptr;
  }
  if (cfg.tx_workers < 1 || cfg.tx_workers > kMaxWorkers) {
    *error = "bad worker count";
    return nullptr;
  }
  std::unique_ptr<VhostUserPort> port(new VhostUserPort(cfg));
  port->attention_.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!port->attention_) {
    *error = std::string("eventfd: ") + std::strerror(errno);
    return nullptr;
  }
  for (auto& q : port->rxq_) {
    q.epfd.reset(::epoll_create1(EPOLL_CLOEXEC));
    q.wake.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!q.epfd || !q.wake) {
      *error = std::string("epoll/eventfd: ") + std::strerror(errno);
      return nullptr;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = q.wake.get();
    if (::epoll_ctl(q.epfd.get(), EPOLL_CTL_ADD, q.wake.get(), &ev) < 0) {
      *error = std::string("epoll_ctl: ") + std::strerror(errno);
      return nullptr;
    }
    q.arena.reset(new (std::nothrow) uint8_t[kRxArenaBytes]);
    if (!q.arena) {
      *error = "out of memory";
      return nullptr;
    }
  }
  {
    MutexLock lk(port->ctl_mu_);
    port->status_ = DeviceStatus{DeviceState::kWaiting, port->waiting_detail_};
  }
  return port;
}

VhostUserPort::~VhostUserPort() {
  // Nobody else is inside: the service detached us and every worker acked a snapshot without this port.
  for (unsigned i = 0; i < vring_count(); ++i) {
    MutexLock lk(vrings_[i].mu);
    vrings_[i].reset();
  }
  mem_.reset();
}

void VhostUserPort::drain_fd(int fd) noexcept {
  uint64_t v;
  if (fd >= 0) (void)!::read(fd, &v, sizeof v);
}

void VhostUserPort::signal_wake(unsigned q) noexcept {
  if (q >= rxq_.size()) return;
  uint64_t one = 1;
  (void)!::write(rxq_[q].wake.get(), &one, sizeof one);
}

uint64_t VhostUserPort::bad_descriptors() const noexcept {
  uint64_t n = 0;
  for (const auto& q : rxq_) n += q.bad_desc.load(std::memory_order_relaxed);
  for (const auto& t : txw_) n += t.bad_desc.load(std::memory_order_relaxed);
  return n;
}

void VhostUserPort::add_io_drops(std::array<uint64_t, size_t(DropReason::kCount)>& drops) const noexcept {
  for (const auto& q : rxq_) {
    drops[size_t(DropReason::kVhostBadDescriptor)] += q.bad_desc.load(std::memory_order_relaxed);
    drops[size_t(DropReason::kVhostFrameTooLong)] += q.too_long.load(std::memory_order_relaxed);
    drops[size_t(DropReason::kBadVnetHeader)] += q.bad_vnet.load(std::memory_order_relaxed);
  }
  // TX-side bad descriptors reach the port counters through tx_drop_reason(): not added here.
}

DropReason VhostUserPort::tx_drop_reason(unsigned w) const noexcept {
  if (w >= txw_.size()) return DropReason::kPortDown;
  return DropReason(txw_[w].last_drop.load(std::memory_order_relaxed));
}

// A RARP frame announcing the guest's MAC (what QEMU sends for a guest without GUEST_ANNOUNCE).
unsigned VhostUserPort::emit_rarp(unsigned q, Packet* pkts) noexcept {
  if (!rarp_pending_.exchange(false, std::memory_order_acq_rel)) return 0;
  if (!announce_.load(std::memory_order_relaxed)) return 0;  // port security on: see set_announce
  RxQueue& rq = rxq_[q];
  if (rq.arena_used + 64 > kRxArenaBytes) return 0;
  uint8_t* f = rq.arena.get() + rq.arena_used;
  rq.arena_used += 64;
  std::memset(f, 0, 60);
  std::memset(f, 0xff, 6);
  std::memcpy(f + 6, rarp_mac_.data(), 6);
  f[12] = 0x80, f[13] = 0x35;            // RARP
  f[14] = 0, f[15] = 1;                  // Ethernet
  f[16] = 0x08, f[17] = 0x00;            // IPv4
  f[18] = 6, f[19] = 4;                  // hlen, plen
  f[20] = 0, f[21] = 3;                  // reverse request
  std::memcpy(f + 22, rarp_mac_.data(), 6);
  std::memcpy(f + 32, rarp_mac_.data(), 6);
  Packet& p = pkts[0];
  p = Packet{};
  p.data = f;
  p.len = p.wire_len = 60;
  p.flags = kHasVnet;
  return 1;
}

unsigned VhostUserPort::rx_burst(unsigned q, Packet* pkts, unsigned max) noexcept {
  if (q >= rxq_.size() || max == 0) return 0;
  RxQueue& rq = rxq_[q];
  unsigned n = q == 0 ? emit_rarp(q, pkts) : 0;
  Vring& vr = vrings_[2 * q + 1];
  MutexLock lk(vr.mu);
  if (!vr.ready() || !mem_) {
    drain_fd(vr.kick.get());
    drain_fd(rq.wake.get());
    rq.wake_pending = false;
    return n;
  }
  const uint16_t pending = vr.avail_pending();
  uint16_t done = 0;
  Chain chain;
  while (done < pending && n < max) {
    const uint16_t head = vr.avail_head(done);
    const ChainError e = walk_chain(*mem_, vr.desc, vr.size, head, false, vr.indirect, chain);
    if (e == ChainError::kHeadOutOfRange) [[unlikely]] {
      vr.mark_broken("avail entry " + std::to_string(uint16_t(vr.last_avail + done)) + " names descriptor " +
                     std::to_string(head) + " (queue size " + std::to_string(vr.size) + ")");
      break;
    }
    if (e != ChainError::kOk || chain.bytes < hdr_len_) [[unlikely]] {
      relaxed_inc(rq.bad_desc);
      vr.put_used(head, 0);
      ++done;
      continue;
    }
    const uint32_t flen = chain.bytes - hdr_len_;
    if (flen > kMaxFrameBytes) [[unlikely]] {
      relaxed_inc(rq.too_long);
      vr.put_used(head, 0);
      ++done;
      continue;
    }
    if (rq.arena_used + flen > kRxArenaBytes) break;  // the rest in the next burst
    NetHdr h{};
    chain_read(chain, 0, &h, hdr_len_);  // the header may span descriptors
    uint8_t* dst = rq.arena.get() + rq.arena_used;
    chain_read(chain, hdr_len_, dst, flen);
    rq.arena_used += (flen + 63) & ~size_t(63);
    vr.put_used(head, 0);
    ++done;
    // Offloads the guest may only use when negotiated (virtio 5.1.6.2).
    const uint8_t gso = h.gso_type & uint8_t(~kGsoEcn);
    bool ok = true;
    if ((h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) && !(features_ & feat::kNetCsum)) ok = false;
    if (gso == VIRTIO_NET_HDR_GSO_TCPV4 && !(features_ & feat::kNetHostTso4)) ok = false;
    else if (gso == VIRTIO_NET_HDR_GSO_TCPV6 && !(features_ & feat::kNetHostTso6)) ok = false;
    else if (gso != VIRTIO_NET_HDR_GSO_NONE && gso != VIRTIO_NET_HDR_GSO_TCPV4 && gso != VIRTIO_NET_HDR_GSO_TCPV6)
      ok = false;
    if ((h.gso_type & kGsoEcn) && !(features_ & feat::kNetHostEcn)) ok = false;
    if (!ok) [[unlikely]] {
      relaxed_inc(rq.bad_vnet);
      continue;
    }
    Packet& p = pkts[n++];
    std::memcpy(&p, &kBlankPacket, sizeof p);  // = Packet{}, without the rep stos + stores GCC emits for that
    p.data = dst;
    p.len = p.wire_len = flen;
    p.vnet.flags = h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM;
    p.vnet.gso_type = h.gso_type;
    p.vnet.hdr_len = h.hdr_len;
    p.vnet.gso_size = h.gso_size;
    p.vnet.csum_start = h.csum_start;
    p.vnet.csum_offset = h.csum_offset;
    p.flags = kHasVnet;
  }
  vr.last_avail = uint16_t(vr.last_avail + done);
  if (done) vr.publish_used_and_call();
  if (vr.broken) [[unlikely]] {
    uint64_t one = 1;
    (void)!::write(attention_.get(), &one, sizeof one);
    return n;
  }
  if (done < pending || n == max) {
    // More to do: no kicks meanwhile, and come back without waiting for one.
    vr.disable_kicks();
    if (!rq.wake_pending) {
      signal_wake(q);
      rq.wake_pending = true;
    }
  } else {
    drain_fd(vr.kick.get());
    drain_fd(rq.wake.get());
    rq.wake_pending = false;
    vr.enable_kicks();
    if (vr.avail_pending() > 0 || vr.kick_polled) {  // raced with the driver, or nobody will ever kick
      signal_wake(q);
      rq.wake_pending = true;
    }
  }
  return n;
}

void VhostUserPort::rx_release(unsigned q) noexcept {
  if (q < rxq_.size()) rxq_[q].arena_used = 0;
}

bool VhostUserPort::enqueue_frame(Vring& vr, const NetHdr& hdr_in, const uint8_t* data, uint32_t len, unsigned w) {
  TxWorker& tw = txw_[w];
  auto fail = [&](DropReason r) {
    tw.last_drop.store(uint8_t(r), std::memory_order_relaxed);
    return false;
  };
  const uint32_t total = hdr_len_ + len;
  const uint16_t pending = vr.avail_pending();
  if (vr.broken) [[unlikely]] {
    uint64_t one = 1;
    (void)!::write(attention_.get(), &one, sizeof one);
    return fail(DropReason::kPortDown);
  }
  NetHdr hdr = hdr_in;
  // The first buffer's chain is kept (its header is written last, once num_buffers is known); later buffers are walked
  // into `more`. Walking into the right one avoids copying a Chain (1 KiB of segments) per frame.
  Chain first, more;
  const uint16_t save_avail = vr.last_avail, save_used = vr.last_used;
  uint16_t nbufs = 0;
  uint32_t off = 0;  // bytes of data written
  while (true) {
    if (nbufs == pending) {
      vr.last_avail = save_avail;
      vr.last_used = save_used;
      return fail(DropReason::kVhostNoRxBuffers);
    }
    const uint16_t head = vr.avail_head(nbufs);
    Chain& chain = nbufs == 0 ? first : more;
    const ChainError e = walk_chain(*mem_, vr.desc, vr.size, head, true, vr.indirect, chain);
    if (e == ChainError::kHeadOutOfRange) [[unlikely]] {
      vr.last_avail = save_avail;
      vr.last_used = save_used;
      vr.mark_broken("avail entry " + std::to_string(uint16_t(vr.last_avail + nbufs)) + " names descriptor " +
                     std::to_string(head) + " (queue size " + std::to_string(vr.size) + ")");
      uint64_t one = 1;
      (void)!::write(attention_.get(), &one, sizeof one);
      return fail(DropReason::kVhostBadDescriptor);
    }
    if (e != ChainError::kOk || (nbufs == 0 && chain.bytes < hdr_len_)) [[unlikely]] {
      relaxed_inc(tw.bad_desc);
      vr.last_avail = save_avail;
      vr.last_used = save_used;
      if (nbufs == 0) {  // give the bad buffer back unused so the ring moves on
        vr.put_used(head, 0);
        ++vr.last_avail;
      }
      return fail(DropReason::kVhostBadDescriptor);
    }
    const uint32_t room = chain.bytes - (nbufs == 0 ? hdr_len_ : 0);
    if (!mrg_rxbuf_ && room < len) {
      vr.last_avail = save_avail;
      vr.last_used = save_used;
      return fail(DropReason::kVhostRxBufferTooSmall);
    }
    const uint32_t n = std::min(room, len - off);
    chain_write(chain, nbufs == 0 ? hdr_len_ : 0, data + off, n);
    off += n;
    vr.put_used(head, n + (nbufs == 0 ? hdr_len_ : 0));
    ++nbufs;
    if (off == len) break;
  }
  (void)total;
  hdr.num_buffers = nbufs;
  chain_write(first, 0, &hdr, hdr_len_);  // the header may span descriptors too
  vr.last_avail = uint16_t(vr.last_avail + nbufs);
  return true;
}

bool VhostUserPort::tx_one(unsigned w, const Packet& p) noexcept {
  TxWorker& tw = txw_[w];
  auto fail = [&](DropReason r) {
    tw.last_drop.store(uint8_t(r), std::memory_order_relaxed);
    return false;
  };
  if (p.len < p.wire_len) return fail(DropReason::kTxError);
  const unsigned pairs = active_pairs_.load(std::memory_order_relaxed);
  if (pairs == 0) return fail(DropReason::kPortDown);
  const unsigned pair = w % pairs;
  Vring& vr = vrings_[2 * pair];
  MutexLock lk(vr.mu);
  if (!vr.ready() || !mem_) return fail(DropReason::kPortDown);
  const bool has = p.flags & kHasVnet;
  const uint8_t gso = has ? (p.vnet.gso_type & uint8_t(~kGsoEcn)) : uint8_t(VIRTIO_NET_HDR_GSO_NONE);
  const bool guest_csum = features_ & feat::kNetGuestCsum;
  bool need_seg = false;
  if (gso != VIRTIO_NET_HDR_GSO_NONE) {
    bool ok = (gso == VIRTIO_NET_HDR_GSO_TCPV4 && (features_ & feat::kNetGuestTso4)) ||
              (gso == VIRTIO_NET_HDR_GSO_TCPV6 && (features_ & feat::kNetGuestTso6));
    if ((p.vnet.gso_type & kGsoEcn) && !(features_ & feat::kNetGuestEcn)) ok = false;
    if (!ok) {
      if (gso != VIRTIO_NET_HDR_GSO_TCPV4 && gso != VIRTIO_NET_HDR_GSO_TCPV6)
        return fail(DropReason::kVhostOffloadUnsupported);
      need_seg = true;
    }
  }
  const bool partial = has && (p.vnet.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM);
  bool ok;
  if (p.prefix_len) [[unlikely]] {
    // Outer headers in front (an encapsulating stage): the guest gets prefix + frame, checksums complete.
    try {
      tw.scratch.assign(p.prefix, p.prefix + p.prefix_len);
      tw.scratch.insert(tw.scratch.end(), p.data, p.data + p.len);
    } catch (...) {
      return fail(DropReason::kTxError);
    }
    NetHdr h{};
    ok = enqueue_frame(vr, h, tw.scratch.data(), uint32_t(tw.scratch.size()), w);
  } else if (need_seg) {
    bool all = true;
    bool any = segment_tcp(p, tw.scratch, [&](const uint8_t* f, uint32_t len) {
      vr.mu.assert_held();  // called synchronously by segment_tcp, under lk
      NetHdr h{};
      h.flags = guest_csum ? VIRTIO_NET_HDR_F_DATA_VALID : 0;
      if (!enqueue_frame(vr, h, f, len, w)) all = false;
      return all;
    });
    if (!any) return fail(DropReason::kVhostOffloadUnsupported);
    ok = all;
  } else if (partial && !guest_csum) {
    try {
      tw.scratch.assign(p.data, p.data + p.len);
    } catch (...) {
      return fail(DropReason::kTxError);
    }
    if (!complete_checksum(tw.scratch.data(), p.len, p.vnet.csum_start, p.vnet.csum_offset))
      return fail(DropReason::kBadVnetHeader);
    NetHdr h{};
    ok = enqueue_frame(vr, h, tw.scratch.data(), p.len, w);
  } else {
    NetHdr h{};
    if (has) {
      h.flags = guest_csum ? (p.vnet.flags & (VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID)) : 0;
      h.gso_type = p.vnet.gso_type;
      h.hdr_len = p.vnet.hdr_len;
      h.gso_size = p.vnet.gso_size;
      h.csum_start = p.vnet.csum_start;
      h.csum_offset = p.vnet.csum_offset;
    }
    ok = enqueue_frame(vr, h, p.data, p.len, w);
  }
  if (vr.last_used != vr.read_used_idx()) tw.dirty_pairs |= 1u << pair;
  return ok;
}

bool VhostUserPort::tx_enqueue(unsigned w, const Packet& p) noexcept {
  if (w >= txw_.size()) return false;
  return tx_one(w, p);
}

void VhostUserPort::tx_flush(unsigned w) noexcept {
  if (w >= txw_.size()) return;
  TxWorker& tw = txw_[w];
  uint32_t mask = tw.dirty_pairs;
  tw.dirty_pairs = 0;
  while (mask) {
    const unsigned pair = unsigned(__builtin_ctz(mask));
    mask &= mask - 1;
    Vring& vr = vrings_[2 * pair];
    MutexLock lk(vr.mu);
    if (vr.ready() && mem_) vr.publish_used_and_call();
  }
}

}  // namespace vpcd::dp::vhost
