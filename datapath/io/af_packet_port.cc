// AF_PACKET packet_mmap port: TPACKET_V2 RX rings (per-frame hand-over, big frames through recvmsg) or TPACKET_V3 RX
// rings with a block cursor, per-worker TX frame rings plus a socket for super-frames
// (ring-less, or with a ring of large slots: tx_big_frames). See af_packet_port.h.
//
// TX ring version: the kernel's transmit path (tpacket_snd) walks fixed-size frames one by one for both V2 and V3 and
// only reads tp_len from the header, so the two behave the same (V3 adds the requirement tp_next_offset == 0).
// Measured 2026-11-22 with iperf3 through a one-thread forwarder on these rings (2 cores, load average ~6 from other
// builds): V3 TX 1.4-2.4 Gbit/s, V2 TX 1.5-2.9 Gbit/s over three alternating rounds, i.e. no difference beyond the
// noise. We use V3 so RX and TX share one header layout (struct tpacket3_hdr).
// PACKET_LOSS is set on the TX socket: without it a frame the kernel rejects stays TP_STATUS_WRONG_FORMAT at the
// kernel's ring head and blocks every later frame; with it the kernel skips the frame.
#include "datapath/io/af_packet_port.h"

#include "datapath/io/kernel_fastpath.h"

#include <arpa/inet.h>
#include <climits>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <system_error>
#include <thread>

namespace vpcd::dp {

namespace {

constexpr uint32_t kRxFrameBytes = 2048;  // V3 RX ignores frame boundaries; the kernel only checks the arithmetic
// Frame data (vnet header + Ethernet frame) starts right after the aligned tpacket3_hdr: the kernel reads it at
// tp_hdrlen - sizeof(sockaddr_ll) when PACKET_TX_HAS_OFF is off.
constexpr uint32_t kTxDataOffset = TPACKET_ALIGN(sizeof(tpacket3_hdr));
constexpr uint32_t kVnetBytes = sizeof(virtio_net_hdr);
constexpr uint32_t kVlanBytes = 4;
constexpr uint32_t kMinSlotBytes = 256;
constexpr uint32_t kMaxSlotBytes = 1u << 20;
// A V2 RX copy buffer: room for a re-inserted VLAN tag, then the largest frame.
constexpr uint32_t kCopyBufBytes = kVlanBytes + kAfPacketMaxTxFrame;
constexpr int kBigTxSocketBuffer = 4 << 20;

// The kernel block for a ring of fixed-size slots: a power-of-two number of pages (the kernel allocates blocks as
// 2^order pages, so anything else wastes the rest), at least one slot, and for slots above a page at least four of
// them, so the tail of a block wastes little.
uint32_t slot_block_bytes(uint32_t slot_bytes, uint32_t page) {
  uint32_t block = page;
  while (block < slot_bytes) block *= 2;
  if (slot_bytes > page) {
    while (block < 4 * slot_bytes && block < (1u << 22)) block *= 2;
  }
  return block;
}

// A big TX ring slot: the tpacket header, the vnet header and the largest frame, in whole pages (blocks are
// page-aligned and slots a whole number of pages, so a slot's frame spans only its own pages). 0 when that is more
// pages than an skb takes frags (MAX_SKB_FRAGS, at least 17): tpacket_fill_skb would refuse the largest frames.
constexpr uint32_t kMaxSkbFrags = 17;
uint32_t big_slot_bytes(uint32_t page) {
  const uint32_t need = kTxDataOffset + kVnetBytes + kAfPacketMaxTxFrame;
  const uint32_t pages = (need + page - 1) / page;
  return pages > kMaxSkbFrags ? 0 : pages * page;
}

struct SlotLayout {
  uint32_t block_bytes, blocks, per_block, frames;
};
SlotLayout slot_layout(uint32_t slot_bytes, uint32_t frames, uint32_t page) {
  SlotLayout l{};
  l.block_bytes = slot_block_bytes(slot_bytes, page);
  l.per_block = l.block_bytes / slot_bytes;
  l.blocks = (frames + l.per_block - 1) / l.per_block;
  l.frames = l.blocks * l.per_block;
  return l;
}

std::string errno_text(const std::string& what, int e) { return what + ": " + std::strerror(e); }

// Slot i of a TX ring (TxQueue or its BigRing): frames do not cross blocks, the kernel addresses slot i as block
// i / per_block, frame i % per_block.
template <class R>
uint8_t* ring_slot(const R& r, uint32_t i) noexcept {
  return r.ring.base + size_t(i / r.frames_per_block) * r.block_bytes + size_t(i % r.frames_per_block) * r.frame_bytes;
}

uint32_t load_acquire(uint32_t& word) { return std::atomic_ref<uint32_t>(word).load(std::memory_order_acquire); }
void store_release(uint32_t& word, uint32_t v) {
  std::atomic_ref<uint32_t>(word).store(v, std::memory_order_release);
}

bool set_int_opt(int fd, int opt, int val, const char* name, std::string* err) {
  if (::setsockopt(fd, SOL_PACKET, opt, &val, sizeof val) != 0) {
    *err = errno_text(name, errno);
    return false;
  }
  return true;
}

}  // namespace

std::unique_ptr<AfPacketPort> AfPacketPort::open(const std::string& ifname, const AfPacketOptions& o,
                                                 std::string* error, AfPacketRingPool* pool) {
  const long page = ::sysconf(_SC_PAGESIZE);
  if (o.rx_queues < 1 || o.rx_queues > 64) {
    *error = "rx_queues must be 1..64";
    return nullptr;
  }
  if (o.tx_workers < 1 || o.tx_workers > 256) {
    *error = "tx_workers must be 1..256";
    return nullptr;
  }
  if (o.rx_ring == RxRing::kV3 && (o.rx_block_bytes < uint32_t(page) || o.rx_block_bytes % page != 0 ||
                                    o.rx_blocks < 1 || uint64_t(o.rx_block_bytes) * o.rx_blocks > (1ull << 31))) {
    *error = "rx_block_bytes must be a non-zero multiple of the page size and rx_blocks >= 1 (ring <= 2 GiB)";
    return nullptr;
  }
  if (o.rx_ring == RxRing::kV2 && (o.rx_frame_bytes < kMinSlotBytes || o.rx_frame_bytes > kMaxSlotBytes ||
                                    o.rx_frame_bytes % TPACKET_ALIGNMENT != 0 || o.rx_frames < 1 ||
                                    o.rx_frames > 1u << 20)) {
    *error = "rx_frame_bytes must be a multiple of 16 in 256..1048576 and rx_frames 1..1048576";
    return nullptr;
  }
  if (o.tx_frames < 1 || o.tx_frames > 65536) {
    *error = "tx_frames must be 1..65536";
    return nullptr;
  }
  if (o.tx_frame_bytes < kMinSlotBytes || o.tx_frame_bytes > kMaxSlotBytes || o.tx_frame_bytes % TPACKET_ALIGNMENT) {
    *error = "tx_frame_bytes must be a multiple of 16 in 256..1048576";
    return nullptr;
  }
  if (o.tx_big_frames > 4096) {
    *error = "tx_big_frames must be 0..4096";
    return nullptr;
  }
  if (ifname.empty() || ifname.size() >= IFNAMSIZ) {
    *error = "invalid interface name '" + ifname + "'";
    return nullptr;
  }
  std::unique_ptr<AfPacketPort> port(new AfPacketPort());
  port->ifname_ = ifname;
  port->ifindex_ = int(::if_nametoindex(ifname.c_str()));
  if (port->ifindex_ == 0) {
    *error = errno_text("interface " + ifname, errno);
    return nullptr;
  }
  // Each PACKET_RX_RING / PACKET_TX_RING waits for an RCU grace period inside the kernel (packet_set_ring calls
  // synchronize_net), several milliseconds each and far more on a busy box: set the rings up on one thread per socket
  // so the waits overlap. Threads inherit the caller's network namespace (setns is per thread; a new thread copies
  // its creator's), so the sockets live where the caller asked.
  // Sockets a pool of this layout has ready need only their bind.
  const unsigned n = o.rx_queues + o.tx_workers;
  const bool use_pool = pool && pool->matches(o);
  std::vector<char> ready(n, 0);
  for (unsigned q = 0; q < o.rx_queues; ++q) {
    auto taken = use_pool ? pool->take_rx() : nullptr;
    ready[q] = taken != nullptr;
    port->rx_.push_back(taken ? std::move(taken) : std::make_unique<RxQueue>());
  }
  for (unsigned w = 0; w < o.tx_workers; ++w) {
    auto taken = use_pool ? pool->take_tx() : nullptr;
    ready[o.rx_queues + w] = taken != nullptr;
    port->tx_.push_back(taken ? std::move(taken) : std::make_unique<TxQueue>());
  }
  std::vector<std::string> errs(n);
  std::vector<char> ok(ready);
  auto setup = [&](unsigned i) {
    ok[i] = ready[i] ? 1 : i < o.rx_queues ? prepare_rx(*port->rx_[i], o, &errs[i])
                                           : prepare_tx(*port->tx_[i - o.rx_queues], o, &errs[i]);
  };
  {
    std::vector<std::thread> helpers;
    unsigned first = n;  // done on this thread
    for (unsigned i = 0; i < n; ++i) {
      if (ready[i]) continue;
      if (first == n) {
        first = i;
        continue;
      }
      try {
        helpers.emplace_back(setup, i);
      } catch (const std::system_error&) {
        setup(i);  // no thread to spare: do it here
      }
    }
    if (first < n) setup(first);
    for (auto& t : helpers) t.join();
  }
  for (unsigned i = 0; i < n && ok[i]; ++i) {
    ok[i] = i < o.rx_queues ? port->bind_rx(*port->rx_[i], o.rx_filter_fd, &errs[i])
                            : port->bind_tx(*port->tx_[i - o.rx_queues], &errs[i]);
  }
  for (unsigned i = 0; i < n; ++i) {
    if (ok[i]) continue;
    *error = ifname + (i < o.rx_queues ? " rx queue " + std::to_string(i) : " tx ring " + std::to_string(i - o.rx_queues)) +
             ": " + errs[i];
    return nullptr;
  }
  int fanout_id = -1;
  for (unsigned q = 0; q < o.rx_queues && o.rx_queues > 1; ++q) {
    if (!join_fanout(port->rx_[q]->fd.get(), fanout_id, &fanout_id, error)) {
      *error = ifname + " rx queue " + std::to_string(q) + ": " + *error;
      return nullptr;
    }
  }
  port->ring_bytes_ = 0;
  for (const auto& q : port->rx_) port->ring_bytes_ += q->ring.bytes;
  for (const auto& t : port->tx_) port->ring_bytes_ += t->ring.bytes + t->big.ring.bytes;
  return port;
}

uint64_t af_packet_ring_bytes(const AfPacketOptions& o) {
  const uint32_t page = uint32_t(::sysconf(_SC_PAGESIZE));
  uint64_t rx = o.rx_ring == RxRing::kV3 ? uint64_t(o.rx_block_bytes) * o.rx_blocks : [&] {
    SlotLayout l = slot_layout(o.rx_frame_bytes, o.rx_frames, page);
    return uint64_t(l.block_bytes) * l.blocks;
  }();
  SlotLayout tl = slot_layout(o.tx_frame_bytes, o.tx_frames, page);
  uint64_t tx = uint64_t(tl.block_bytes) * tl.blocks;
  if (o.tx_big_frames && big_slot_bytes(page)) {
    SlotLayout bl = slot_layout(big_slot_bytes(page), o.tx_big_frames, page);
    tx += uint64_t(bl.block_bytes) * bl.blocks;
  }
  return rx * o.rx_queues + tx * o.tx_workers;
}

bool AfPacketPort::prepare_rx(RxQueue& q, const AfPacketOptions& o, std::string* err) {
  // Protocol 0 until bind: the socket receives nothing before its ring exists.
  q.fd.reset(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!q.fd) {
    *err = errno_text("socket(AF_PACKET)", errno);
    return false;
  }
  const int fd = q.fd.get();
  const bool v2 = o.rx_ring == RxRing::kV2;
  q.version = o.rx_ring;
  if (!set_int_opt(fd, PACKET_VERSION, v2 ? TPACKET_V2 : TPACKET_V3, "PACKET_VERSION", err) ||
      !set_int_opt(fd, PACKET_VNET_HDR, 1, "PACKET_VNET_HDR", err) ||
      !set_int_opt(fd, PACKET_IGNORE_OUTGOING, 1, "PACKET_IGNORE_OUTGOING", err)) {
    return false;
  }
  if (v2) {
    const SlotLayout l = slot_layout(o.rx_frame_bytes, o.rx_frames, uint32_t(::sysconf(_SC_PAGESIZE)));
    // A frame larger than its slot is queued whole on the socket too (TP_STATUS_COPY in the slot).
    if (o.rx_copy_big && !set_int_opt(fd, PACKET_COPY_THRESH, 1, "PACKET_COPY_THRESH", err)) return false;
    const int rcvbuf = int(std::min<uint32_t>(o.rx_queue_bytes, INT_MAX / 2));
    if (o.rx_copy_big && ::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) != 0) {
      ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);  // best effort (capped by rmem_max)
    }
    q.copy_big = o.rx_copy_big;
    tpacket_req req{};
    req.tp_block_size = l.block_bytes;
    req.tp_block_nr = l.blocks;
    req.tp_frame_size = o.rx_frame_bytes;
    req.tp_frame_nr = l.frames;
    if (::setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof req) != 0) {
      *err = errno_text("PACKET_RX_RING", errno);
      return false;
    }
    q.block_bytes = l.block_bytes;
    q.frame_bytes = o.rx_frame_bytes;
    q.frames = l.frames;
    q.frames_per_block = l.per_block;
    q.ring.bytes = size_t(l.block_bytes) * l.blocks;
  } else {
    tpacket_req3 req{};
    req.tp_block_size = o.rx_block_bytes;
    req.tp_block_nr = o.rx_blocks;
    req.tp_frame_size = kRxFrameBytes;
    req.tp_frame_nr = (o.rx_block_bytes / kRxFrameBytes) * o.rx_blocks;
    req.tp_retire_blk_tov = 1;  // ms: a partly filled block reaches us within 1 ms
    if (::setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof req) != 0) {
      *err = errno_text("PACKET_RX_RING", errno);
      return false;
    }
    q.block_bytes = o.rx_block_bytes;
    q.blocks = o.rx_blocks;
    q.ring.bytes = size_t(q.block_bytes) * q.blocks;
  }
  void* base = ::mmap(nullptr, q.ring.bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
  if (base == MAP_FAILED) {
    q.ring.bytes = 0;
    *err = errno_text("mmap rx ring", errno);
    return false;
  }
  q.ring.base = static_cast<uint8_t*>(base);
  return true;
}

bool AfPacketPort::bind_rx(RxQueue& q, int filter_fd, std::string* err) {
  // The filter first: from the bind on, every frame the socket takes has passed it.
  if (filter_fd >= 0 && ::setsockopt(q.fd.get(), SOL_SOCKET, SO_ATTACH_BPF, &filter_fd, sizeof filter_fd) != 0) {
    *err = errno_text("SO_ATTACH_BPF", errno);
    return false;
  }
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ALL);
  sll.sll_ifindex = ifindex_;
  if (::bind(q.fd.get(), reinterpret_cast<sockaddr*>(&sll), sizeof sll) != 0) {
    *err = errno_text("bind", errno);
    return false;
  }
  return true;
}

// The first queue asks the kernel for an unused group id; the others join it.
bool AfPacketPort::join_fanout(int fd, int fanout_id, int* fanout_out, std::string* err) {
  int val = fanout_id < 0 ? (PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_UNIQUEID) << 16
                          : (fanout_id & 0xffff) | (PACKET_FANOUT_HASH << 16);
  if (::setsockopt(fd, SOL_PACKET, PACKET_FANOUT, &val, sizeof val) != 0) {
    *err = errno_text("PACKET_FANOUT", errno);
    return false;
  }
  if (fanout_id < 0) {
    int got = 0;
    socklen_t len = sizeof got;
    if (::getsockopt(fd, SOL_PACKET, PACKET_FANOUT, &got, &len) != 0) {
      *err = errno_text("getsockopt PACKET_FANOUT", errno);
      return false;
    }
    *fanout_out = got & 0xffff;
  }
  return true;
}

bool AfPacketPort::prepare_tx(TxQueue& t, const AfPacketOptions& o, std::string* err) {
  t.fd.reset(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!t.fd) {
    *err = errno_text("socket(AF_PACKET)", errno);
    return false;
  }
  const int fd = t.fd.get();
  if (!set_int_opt(fd, PACKET_VERSION, TPACKET_V3, "PACKET_VERSION", err) ||
      !set_int_opt(fd, PACKET_VNET_HDR, 1, "PACKET_VNET_HDR", err) ||
      !set_int_opt(fd, PACKET_QDISC_BYPASS, 1, "PACKET_QDISC_BYPASS", err) ||
      !set_int_opt(fd, PACKET_LOSS, 1, "PACKET_LOSS", err)) {
    return false;
  }
  const SlotLayout l = slot_layout(o.tx_frame_bytes, o.tx_frames, uint32_t(::sysconf(_SC_PAGESIZE)));
  tpacket_req3 req{};
  req.tp_block_size = l.block_bytes;
  req.tp_block_nr = l.blocks;
  req.tp_frame_size = o.tx_frame_bytes;
  req.tp_frame_nr = l.frames;
  if (::setsockopt(fd, SOL_PACKET, PACKET_TX_RING, &req, sizeof req) != 0) {
    *err = errno_text("PACKET_TX_RING", errno);
    return false;
  }
  t.frame_bytes = o.tx_frame_bytes;
  t.block_bytes = l.block_bytes;
  t.frames_per_block = l.per_block;
  t.frames = l.frames;
  t.ring.bytes = size_t(l.block_bytes) * l.blocks;
  void* base = ::mmap(nullptr, t.ring.bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
  if (base == MAP_FAILED) {
    t.ring.bytes = 0;
    *err = errno_text("mmap tx ring", errno);
    return false;
  }
  t.ring.base = static_cast<uint8_t*>(base);
  // Frames in flight count against the send buffer until the device frees them: allow a whole ring's worth, so one
  // sendto can hand over every queued frame. Best effort.
  int sndbuf = int(std::min<size_t>(std::max<size_t>(t.ring.bytes, 1u << 20), size_t(INT32_MAX / 2)));
  if (::setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf) != 0) {
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  }
  // The ring-less socket for frames larger than a slot. Opened here, not on a worker, because the ifindex means
  // something only in the namespace the port was opened in (a worker thread may live in another one).
  t.big_fd.reset(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!t.big_fd) {
    *err = errno_text("socket(AF_PACKET)", errno);
    return false;
  }
  const uint32_t page = uint32_t(::sysconf(_SC_PAGESIZE));
  const bool big_ring = o.tx_big_frames > 0 && big_slot_bytes(page) > 0;
  // Options before the ring: the kernel refuses to change them once one exists (EBUSY).
  if ((big_ring && !set_int_opt(t.big_fd.get(), PACKET_VERSION, TPACKET_V3, "PACKET_VERSION", err)) ||
      !set_int_opt(t.big_fd.get(), PACKET_VNET_HDR, 1, "PACKET_VNET_HDR", err) ||
      !set_int_opt(t.big_fd.get(), PACKET_QDISC_BYPASS, 1, "PACKET_QDISC_BYPASS", err) ||
      (big_ring && !set_int_opt(t.big_fd.get(), PACKET_LOSS, 1, "PACKET_LOSS", err))) {
    return false;
  }
  if (big_ring && !prepare_big_ring(t, o.tx_big_frames, page, err)) return false;
  if (::setsockopt(t.big_fd.get(), SOL_SOCKET, SO_SNDBUFFORCE, &kBigTxSocketBuffer, sizeof kBigTxSocketBuffer) != 0) {
    ::setsockopt(t.big_fd.get(), SOL_SOCKET, SO_SNDBUF, &kBigTxSocketBuffer, sizeof kBigTxSocketBuffer);
  }
  return true;
}

bool AfPacketPort::prepare_big_ring(TxQueue& t, uint32_t frames, uint32_t page, std::string* err) {
  TxQueue::BigRing& b = t.big;
  const uint32_t slot = big_slot_bytes(page);
  const SlotLayout l = slot_layout(slot, frames, page);
  tpacket_req3 req{};
  req.tp_block_size = l.block_bytes;
  req.tp_block_nr = l.blocks;
  req.tp_frame_size = slot;
  req.tp_frame_nr = l.frames;
  if (::setsockopt(t.big_fd.get(), SOL_PACKET, PACKET_TX_RING, &req, sizeof req) != 0) {
    *err = errno_text("PACKET_TX_RING (big)", errno);
    return false;
  }
  void* base = ::mmap(nullptr, size_t(l.block_bytes) * l.blocks, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                      t.big_fd.get(), 0);
  if (base == MAP_FAILED) {
    *err = errno_text("mmap big tx ring", errno);
    return false;
  }
  b.ring.base = static_cast<uint8_t*>(base);
  b.ring.bytes = size_t(l.block_bytes) * l.blocks;
  b.frame_bytes = slot;
  b.block_bytes = l.block_bytes;
  b.frames_per_block = l.per_block;
  b.frames = l.frames;
  return true;
}

bool AfPacketPort::bind_tx(TxQueue& t, std::string* err) {
  // Protocol 0: these sockets only transmit and never get a copy of received frames.
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = 0;
  sll.sll_ifindex = ifindex_;
  if (::bind(t.fd.get(), reinterpret_cast<sockaddr*>(&sll), sizeof sll) != 0 ||
      ::bind(t.big_fd.get(), reinterpret_cast<sockaddr*>(&sll), sizeof sll) != 0) {
    *err = errno_text("bind", errno);
    return false;
  }
  return true;
}

AfPacketPort::Ring::~Ring() {
  if (base) ::munmap(base, bytes);
}

// Each queue's Ring unmaps itself, then its sockets close.
AfPacketPort::~AfPacketPort() {
  if (fastpath_) fastpath_->forget(ifindex_);
}

void AfPacketPort::add_offloaded(PortCounters& out) const noexcept {
  if (!fastpath_) return;
  PortCounters k = fastpath_->counters(ifindex_);
  out.rx_packets += k.rx_packets;
  out.rx_bytes += k.rx_bytes;
  out.tx_packets += k.tx_packets;
  out.tx_bytes += k.tx_bytes;
}

// ---- AfPacketRingPool ----

AfPacketRingPool::AfPacketRingPool(const AfPacketOptions& o, unsigned rx_spare, unsigned tx_spare)
    : layout_(o), rx_spare_(rx_spare), tx_spare_(tx_spare) {
  const unsigned n = std::max(1u, std::min(kRefillThreads, rx_spare + tx_spare));
  for (unsigned i = 0; i < n; ++i) threads_.emplace_back([this] { run(); });
}

AfPacketRingPool::~AfPacketRingPool() {
  {
    std::scoped_lock lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

bool AfPacketRingPool::matches(const AfPacketOptions& o) const {
  const AfPacketOptions& l = layout_;
  return o.rx_ring == l.rx_ring && o.rx_frame_bytes == l.rx_frame_bytes && o.rx_frames == l.rx_frames &&
         o.rx_copy_big == l.rx_copy_big && o.rx_block_bytes == l.rx_block_bytes && o.rx_blocks == l.rx_blocks &&
         o.rx_queue_bytes == l.rx_queue_bytes && o.tx_frame_bytes == l.tx_frame_bytes && o.tx_frames == l.tx_frames &&
         o.tx_big_frames == l.tx_big_frames;
}

uint64_t AfPacketRingPool::taken() const {
  std::scoped_lock lk(mu_);
  return taken_;
}

uint64_t AfPacketRingPool::ready_bytes() const {
  std::scoped_lock lk(mu_);
  uint64_t b = 0;
  for (const auto& q : rx_) b += q->ring.bytes;
  for (const auto& t : tx_) b += t->ring.bytes + t->big.ring.bytes;
  return b;
}

void AfPacketRingPool::wait_full() const {
  std::unique_lock lk(mu_);
  cv_.wait(lk, [&] { return failed_ || stop_ || (rx_.size() >= rx_spare_ && tx_.size() >= tx_spare_); });
}

template <class Q>
std::unique_ptr<Q> AfPacketRingPool::take(std::vector<std::unique_ptr<Q>>& from) {
  std::unique_ptr<Q> q;
  {
    std::scoped_lock lk(mu_);
    if (from.empty()) return nullptr;
    q = std::move(from.back());
    from.pop_back();
    ++taken_;
  }
  cv_.notify_all();  // the refill thread tops the pool up again
  return q;
}

std::unique_ptr<AfPacketPort::RxQueue> AfPacketRingPool::take_rx() { return take(rx_); }
std::unique_ptr<AfPacketPort::TxQueue> AfPacketRingPool::take_tx() { return take(tx_); }

void AfPacketRingPool::run() {
  pthread_setname_np(pthread_self(), "vpcd-ringpool");
  std::unique_lock lk(mu_);
  for (;;) {
    cv_.wait(lk, [&] {
      return stop_ || (!failed_ && (rx_.size() + rx_busy_ < rx_spare_ || tx_.size() + tx_busy_ < tx_spare_));
    });
    if (stop_) return;
    const bool rx = rx_.size() + rx_busy_ < rx_spare_;
    ++(rx ? rx_busy_ : tx_busy_);
    lk.unlock();
    std::string err;
    std::unique_ptr<AfPacketPort::RxQueue> q;
    std::unique_ptr<AfPacketPort::TxQueue> t;
    bool ok;
    if (rx) {
      q = std::make_unique<AfPacketPort::RxQueue>();
      ok = AfPacketPort::prepare_rx(*q, layout_, &err);
    } else {
      t = std::make_unique<AfPacketPort::TxQueue>();
      ok = AfPacketPort::prepare_tx(*t, layout_, &err);
    }
    lk.lock();
    --(rx ? rx_busy_ : tx_busy_);
    if (!ok) {
      failed_ = true;  // e.g. out of memory for rings: ports set their sockets up themselves
      std::fprintf(stderr, "vpcd: ring pool: %s (no more spare sockets)\n", err.c_str());
    } else if (rx) {
      rx_.push_back(std::move(q));
    } else {
      tx_.push_back(std::move(t));
    }
    cv_.notify_all();
  }
}

int AfPacketPort::rx_fd(unsigned q) const { return q < rx_.size() ? rx_[q]->fd.get() : -1; }

unsigned AfPacketPort::rx_burst(unsigned qi, Packet* pkts, unsigned max) noexcept {
  RxQueue& q = *rx_[qi];
  return q.version == RxRing::kV2 ? rx_burst_v2(q, pkts, max) : rx_burst_v3(q, pkts, max);
}

namespace {

// The device took an 802.1Q tag out of the frame (VLAN acceleration): put it back in front of the ethertype, using
// the `room` bytes before the frame (the vnet header there, if any, has been copied already).
void reinsert_vlan(Packet& p, uint8_t*& data, uint32_t room, uint32_t status, uint16_t tci, uint16_t tpid_field) {
  if (!(status & TP_STATUS_VLAN_VALID) || p.len < 12 || room < kVlanBytes) [[likely]] return;
  const uint16_t tpid = (status & TP_STATUS_VLAN_TPID_VALID) ? tpid_field : ETH_P_8021Q;
  std::memmove(data - kVlanBytes, data, 12);
  data -= kVlanBytes;
  const uint16_t tag[2] = {htons(tpid), htons(tci)};
  std::memcpy(data + 12, tag, sizeof tag);
  p.len += kVlanBytes;
  p.wire_len += kVlanBytes;
  if (p.vnet.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) p.vnet.csum_start += kVlanBytes;
  if (p.vnet.hdr_len != 0) p.vnet.hdr_len += kVlanBytes;
}

}  // namespace

unsigned AfPacketPort::rx_burst_v2(RxQueue& q, Packet* pkts, unsigned max) noexcept {
  unsigned n = 0;
  while (n < max && q.taken < q.frames) {
    const uint32_t i = q.head + q.taken < q.frames ? q.head + q.taken : q.head + q.taken - q.frames;
    uint8_t* slot = q.ring.base + size_t(i / q.frames_per_block) * q.block_bytes +
                    size_t(i % q.frames_per_block) * q.frame_bytes;
    auto* h = reinterpret_cast<tpacket2_hdr*>(slot);
    const uint32_t status = load_acquire(h->tp_status);
    if ((status & TP_STATUS_USER) == 0) break;
    if (status & TP_STATUS_LOSING) [[unlikely]] q.losing = true;
    Packet& p = pkts[n];
    p = Packet{};
    uint8_t* data = nullptr;
    uint32_t room = 0;  // bytes usable in front of data
    // The slot's own bytes, marked short (len < wire_len) so nobody mistakes them for the whole frame.
    auto truncated_head = [&] {
      const uint32_t mac = h->tp_mac;
      p.vnet = {};
      p.flags = 0;
      data = slot + std::min<uint32_t>(mac, q.frame_bytes);
      room = 0;
      p.len = mac < q.frame_bytes ? std::min<uint32_t>(h->tp_snaplen, q.frame_bytes - mac) : 0;
      p.wire_len = std::max<uint32_t>(h->tp_len, p.len + 1);
    };
    if (status & TP_STATUS_COPY) {
      // The whole frame waits on the socket's queue, in ring order (the kernel queues it under the same lock that
      // hands out the slot); the slot holds only its head.
      if (q.copies_used == kRxCopyBuffers) break;  // the rest goes to the next batch
      if (q.copy_bufs.size() <= q.copies_used) q.copy_bufs.emplace_back(new (std::nothrow) uint8_t[kCopyBufBytes]);
      uint8_t* buf = q.copy_bufs[q.copies_used].get();
      if (buf == nullptr) [[unlikely]] {
        q.copy_bufs.pop_back();
        break;
      }
      iovec iov[2] = {{&p.vnet, kVnetBytes}, {buf + kVlanBytes, kAfPacketMaxTxFrame}};
      msghdr m{};
      m.msg_iov = iov;
      m.msg_iovlen = 2;
      const ssize_t r = ::recvmsg(q.fd.get(), &m, MSG_DONTWAIT | MSG_TRUNC);
      if (r >= ssize_t(kVnetBytes)) [[likely]] {
        ++q.copies_used;
        data = buf + kVlanBytes;
        room = kVlanBytes;
        p.wire_len = uint32_t(r - kVnetBytes);
        p.len = std::min(p.wire_len, kAfPacketMaxTxFrame);
        p.flags = kHasVnet;
      } else {
        truncated_head();  // not queued after all (cannot happen while we are the only reader)
      }
    } else if (h->tp_mac >= q.frame_bytes) [[unlikely]] {
      truncated_head();
    } else {
      const uint32_t mac = h->tp_mac;
      data = slot + mac;
      p.len = std::min<uint32_t>(h->tp_snaplen, q.frame_bytes - mac);
      p.wire_len = h->tp_len;
      room = mac >= TPACKET2_HDRLEN ? mac - uint32_t(TPACKET2_HDRLEN) : 0;
      if (mac >= TPACKET2_HDRLEN + kVnetBytes) {
        std::memcpy(&p.vnet, data - kVnetBytes, kVnetBytes);
        p.flags = kHasVnet;
      }
      // Larger than its slot but not queued for recvmsg: the socket's receive queue was full (rx_queue_bytes).
      if (p.len < p.wire_len && q.copy_big) [[unlikely]] p.flags |= kRxQueueFull;
    }
    reinsert_vlan(p, data, room, status, h->tp_vlan_tci, h->tp_vlan_tpid);
    p.data = data;
    p.ts_ns = uint64_t(h->tp_sec) * 1000000000u + h->tp_nsec;  // the kernel's receive time (capture)
    ++n;
    ++q.taken;
  }
  return n;
}

unsigned AfPacketPort::rx_burst_v3(RxQueue& q, Packet* pkts, unsigned max) noexcept {
  unsigned n = 0;
  while (n < max) {
    uint8_t* block = q.ring.base + size_t((q.head + q.done) % q.blocks) * q.block_bytes;
    auto* bd = reinterpret_cast<tpacket_block_desc*>(block);
    if (!q.in_block) {
      if (q.done == q.blocks) break;  // every block is ours and waits for rx_release
      const uint32_t bstatus = load_acquire(bd->hdr.bh1.block_status);
      if ((bstatus & TP_STATUS_USER) == 0) break;
      if (bstatus & TP_STATUS_LOSING) [[unlikely]] q.losing = true;
      q.in_block = true;
      q.pkts_left = bd->hdr.bh1.num_pkts;
      q.next_offset = bd->hdr.bh1.offset_to_first_pkt;
    }
    if (q.pkts_left == 0 || q.next_offset + sizeof(tpacket3_hdr) > q.block_bytes) [[unlikely]] {
      q.in_block = false;
      ++q.done;
      continue;
    }
    auto* h = reinterpret_cast<tpacket3_hdr*>(block + q.next_offset);
    const uint32_t next = h->tp_next_offset;
    uint32_t mac = h->tp_mac;
    uint32_t snap = h->tp_snaplen;
    if (uint64_t(q.next_offset) + mac + snap > q.block_bytes) [[unlikely]] {
      snap = mac >= q.block_bytes - q.next_offset ? 0 : q.block_bytes - q.next_offset - mac;
    }
    Packet& p = pkts[n];
    p = Packet{};
    uint8_t* data = block + q.next_offset + mac;
    p.len = snap;
    p.wire_len = h->tp_len;
    p.ts_ns = uint64_t(h->tp_sec) * 1000000000u + h->tp_nsec;
    if (mac >= kTxDataOffset + kVnetBytes) {
      std::memcpy(&p.vnet, data - kVnetBytes, kVnetBytes);
      p.flags = kHasVnet;
    }
    reinsert_vlan(p, data, mac >= kTxDataOffset ? mac - kTxDataOffset : 0, h->tp_status, h->hv1.tp_vlan_tci,
                  h->hv1.tp_vlan_tpid);
    p.data = data;
    ++n;
    --q.pkts_left;
    q.next_offset += next;
    if (q.pkts_left == 0) {
      q.in_block = false;
      ++q.done;
    }
  }
  return n;
}

void AfPacketPort::rx_release(unsigned qi) noexcept {
  RxQueue& q = *rx_[qi];
  if (q.version == RxRing::kV2) {
    for (; q.taken > 0; --q.taken) {
      auto* h = reinterpret_cast<tpacket2_hdr*>(q.ring.base + size_t(q.head / q.frames_per_block) * q.block_bytes +
                                                size_t(q.head % q.frames_per_block) * q.frame_bytes);
      store_release(h->tp_status, TP_STATUS_KERNEL);
      q.head = q.head + 1 == q.frames ? 0 : q.head + 1;
    }
    q.copies_used = 0;
    return;
  }
  for (; q.done > 0; --q.done) {
    auto* bd = reinterpret_cast<tpacket_block_desc*>(q.ring.base + size_t(q.head) * q.block_bytes);
    store_release(bd->hdr.bh1.block_status, TP_STATUS_KERNEL);
    q.head = (q.head + 1) % q.blocks;
  }
}

uint8_t* AfPacketPort::tx_slot(const TxQueue& t, uint32_t i) noexcept { return ring_slot(t, i); }

namespace {
// Writes p into the TX slot whose header is at h: its vnet header (zeros without one), prefix and frame.
void copy_into_slot(tpacket3_hdr* h, const Packet& p) noexcept {
  uint8_t* d = reinterpret_cast<uint8_t*>(h) + kTxDataOffset;
  if (p.flags & kHasVnet) {
    std::memcpy(d, &p.vnet, kVnetBytes);
  } else {
    std::memset(d, 0, kVnetBytes);
  }
  if (p.prefix_len) std::memcpy(d + kVnetBytes, p.prefix, p.prefix_len);
  std::memcpy(d + kVnetBytes + p.prefix_len, p.data, p.len);
}
}  // namespace

bool AfPacketPort::tx_enqueue(unsigned w, const Packet& p) noexcept {
  TxQueue& t = *tx_[w];
  const uint32_t frame_len = p.prefix_len + p.len;
  if (frame_len > kAfPacketMaxTxFrame || p.len < ETH_HLEN || p.len < p.wire_len) [[unlikely]] return false;
  if (kTxDataOffset + kVnetBytes + frame_len > t.frame_bytes) return tx_send_big(w, p);
  auto* h = reinterpret_cast<tpacket3_hdr*>(tx_slot(t, t.next));
  if ((load_acquire(h->tp_status) & (TP_STATUS_SEND_REQUEST | TP_STATUS_SENDING)) != 0) return false;  // full
  copy_into_slot(h, p);
  tx_commit_next(t, h, frame_len);
  return true;
}

namespace {
// Hands the slot at r.next (header h) of ring r (TxQueue or its BigRing), filled with a vnet header and frame_len
// bytes of frame, to the kernel; the next sendto on the ring's socket sends it.
template <class R>
void mark_send_request(R& r, tpacket3_hdr* h, uint32_t frame_len) noexcept {
  h->tp_len = kVnetBytes + frame_len;
  h->tp_snaplen = kVnetBytes + frame_len;
  h->tp_next_offset = 0;
  store_release(h->tp_status, TP_STATUS_SEND_REQUEST);
  r.next = r.next + 1 == r.frames ? 0 : r.next + 1;
  ++r.pending;
}
}  // namespace

// A small-ring frame (not GSO, at most kAfPacketTxLinearMax bytes) is marked as all header (vnet hdr_len = its
// length): tpacket_snd then copies it whole into the skb's head instead of attaching the rest of the slot's page as a
// zero-copy frag, which a veth or tap copies into a freshly allocated page before the frame crosses
// (skb_orphan_frags -> skb_copy_ubufs) and the receiver then pulls its IP and UDP headers out of again
// (__pskb_pull_tail). docs/STATUS.md issue 12, "Small frames copied whole into the skb".
void AfPacketPort::tx_commit_next(TxQueue& t, tpacket3_hdr* h, uint32_t frame_len) noexcept {
  auto* vh = reinterpret_cast<virtio_net_hdr*>(reinterpret_cast<uint8_t*>(h) + kTxDataOffset);
  if (vh->gso_type == VIRTIO_NET_HDR_GSO_NONE && frame_len <= kAfPacketTxLinearMax) vh->hdr_len = uint16_t(frame_len);
  mark_send_request(t, h, frame_len);
}

uint8_t* AfPacketPort::tx_slot_acquire(unsigned w, uint32_t max_len) noexcept {
  TxQueue& t = *tx_[w];
  t.big_acquired = false;
  if (kTxDataOffset + kVnetBytes + max_len > t.frame_bytes) {
    if (t.big.frames == 0 || max_len > kAfPacketMaxTxFrame || kTxDataOffset + kVnetBytes + max_len > t.big.frame_bytes)
      return nullptr;
    auto* h = reinterpret_cast<tpacket3_hdr*>(ring_slot(t.big, t.big.next));
    if ((load_acquire(h->tp_status) & (TP_STATUS_SEND_REQUEST | TP_STATUS_SENDING)) != 0) return nullptr;  // full
    t.big_acquired = true;
    return reinterpret_cast<uint8_t*>(h) + kTxDataOffset + kVnetBytes;
  }
  auto* h = reinterpret_cast<tpacket3_hdr*>(tx_slot(t, t.next));
  if ((load_acquire(h->tp_status) & (TP_STATUS_SEND_REQUEST | TP_STATUS_SENDING)) != 0) return nullptr;  // full
  return reinterpret_cast<uint8_t*>(h) + kTxDataOffset + kVnetBytes;
}

void AfPacketPort::tx_slot_commit(unsigned w, const virtio_net_hdr& vnet, uint32_t len) noexcept {
  TxQueue& t = *tx_[w];
  if (t.big_acquired) {
    t.big_acquired = false;
    std::memcpy(ring_slot(t.big, t.big.next) + kTxDataOffset, &vnet, kVnetBytes);
    tx_commit_big(w, len);
    return;
  }
  auto* h = reinterpret_cast<tpacket3_hdr*>(tx_slot(t, t.next));
  std::memcpy(reinterpret_cast<uint8_t*>(h) + kTxDataOffset, &vnet, kVnetBytes);
  tx_commit_next(t, h, len);
}

void AfPacketPort::tx_commit_big(unsigned w, uint32_t frame_len) noexcept {
  TxQueue& t = *tx_[w];
  tx_flush(w);  // frames enqueued before this one go first (and a big frame still pending before them)
  TxQueue::BigRing& b = t.big;
  mark_send_request(b, reinterpret_cast<tpacket3_hdr*>(ring_slot(b, b.next)), frame_len);
  tx_send_big_ring(t);
}

namespace {
// One sendto on the socket fd of ring r (TxQueue or its BigRing): the kernel sends the SEND_REQUEST frames from its
// head on. On a refusal they stay SEND_REQUEST and go out with the next flush (r.pending stays set); the kernel also
// stops early when the send buffer is full, and then the last frame is still waiting, so the next flush must call
// sendto again even if nothing new was enqueued.
template <class R>
void kick_ring(int fd, R& r, std::atomic<uint64_t>& errors) noexcept {
  if (::sendto(fd, nullptr, 0, MSG_DONTWAIT, nullptr, 0) < 0) {
    if (errno != EAGAIN && errno != ENOBUFS && errno != EINTR) {
      errors.store(errors.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }
    return;
  }
  const uint32_t last = r.next == 0 ? r.frames - 1 : r.next - 1;
  auto* h = reinterpret_cast<tpacket3_hdr*>(ring_slot(r, last));
  r.pending = (load_acquire(h->tp_status) & TP_STATUS_SEND_REQUEST) != 0 ? 1 : 0;
}
}  // namespace

void AfPacketPort::tx_send_big_ring(TxQueue& t) noexcept { kick_ring(t.big_fd.get(), t.big, t.errors); }

// A frame larger than a slot. With a big ring: copied into its next slot and sent from there (tx_commit_big). Else:
// flush the ring (order), then one sendmsg on the ring-less socket; the kernel copies the frame once into an skb, as
// the ring path's memcpy would have.
bool AfPacketPort::tx_send_big(unsigned w, const Packet& p) noexcept {
  TxQueue& t = *tx_[w];
  const uint32_t frame_len = p.prefix_len + p.len;
  if (t.big.frames) {
    t.big_acquired = false;
    if (kTxDataOffset + kVnetBytes + frame_len > t.big.frame_bytes) [[unlikely]] return false;
    auto* h = reinterpret_cast<tpacket3_hdr*>(ring_slot(t.big, t.big.next));
    if ((load_acquire(h->tp_status) & (TP_STATUS_SEND_REQUEST | TP_STATUS_SENDING)) != 0) return false;  // full
    copy_into_slot(h, p);
    tx_commit_big(w, frame_len);
    return true;
  }
  tx_flush(w);
  virtio_net_hdr vh{};
  if (p.flags & kHasVnet) vh = p.vnet;
  // The prefix (outer headers, VXLAN encap) goes in front of the frame, as in a ring slot.
  iovec iov[3] = {{&vh, kVnetBytes}, {const_cast<uint8_t*>(p.prefix), p.prefix_len}, {p.data, p.len}};
  msghdr m{};
  m.msg_iov = iov;
  m.msg_iovlen = 3;
  if (::sendmsg(t.big_fd.get(), &m, MSG_DONTWAIT) < 0) {
    if (errno != EAGAIN && errno != ENOBUFS && errno != EINTR) {
      t.errors.store(t.errors.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }
    return false;
  }
  return true;
}

void AfPacketPort::tx_flush(unsigned w) noexcept {
  TxQueue& t = *tx_[w];
  // A big frame the kernel left behind went in before anything now in the small ring (tx_commit_big flushed that).
  if (t.big.pending) [[unlikely]] tx_send_big_ring(t);
  if (t.pending == 0) return;
  kick_ring(t.fd.get(), t, t.errors);
}

namespace {
// Walks back from the newest slot of ring r (TxQueue or its BigRing) over the run the kernel has not taken (see the
// header), marking it free; nothing else touches these slots between our sendto calls. Returns the count.
template <class R>
uint64_t discard_unsent(R& r) noexcept {
  uint64_t n = 0;
  while (n < r.frames) {
    const uint32_t prev = r.next == 0 ? r.frames - 1 : r.next - 1;
    auto* h = reinterpret_cast<tpacket3_hdr*>(ring_slot(r, prev));
    if (load_acquire(h->tp_status) != TP_STATUS_SEND_REQUEST) break;
    store_release(h->tp_status, TP_STATUS_AVAILABLE);
    r.next = prev;
    ++n;
  }
  r.pending = 0;
  return n;
}
}  // namespace

uint64_t AfPacketPort::tx_discard_pending(unsigned w) noexcept {
  TxQueue& t = *tx_[w];
  return discard_unsent(t) + (t.big.frames ? discard_unsent(t.big) : 0);
}

uint64_t AfPacketPort::rx_kernel_drops(unsigned qi) noexcept {
  RxQueue& q = *rx_[qi];
  tpacket_stats_v3 st{};
  socklen_t len = sizeof st;
  if (::getsockopt(q.fd.get(), SOL_PACKET, PACKET_STATISTICS, &st, &len) == 0) q.kernel_drops += st.tp_drops;
  return q.kernel_drops;
}

uint64_t AfPacketPort::rx_ring_drops(unsigned qi) noexcept {
  RxQueue& q = *rx_[qi];
  // The kernel marks the frames (V3: blocks) it hands over after a drop with TP_STATUS_LOSING until the statistics
  // are read: no system call per queue unless that happened (an idle box with a thousand NICs stays quiet).
  if (!q.losing && q.kernel_drops == q.kernel_drops_reported) return 0;
  q.losing = false;
  const uint64_t total = rx_kernel_drops(qi);
  const uint64_t delta = total - q.kernel_drops_reported;
  q.kernel_drops_reported = total;
  return delta;
}

uint64_t AfPacketPort::tx_errors(unsigned w) const noexcept {
  return w < tx_.size() ? tx_[w]->errors.load(std::memory_order_relaxed) : 0;
}

}  // namespace vpcd::dp
