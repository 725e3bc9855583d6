// AfPacketPort: a PortIo over AF_PACKET packet_mmap rings, for every interface the datapath drives from the kernel
// side (veth host ends, taps, uplinks).
//
// RX: one socket per queue, PACKET_VNET_HDR (GSO super-frames and partial checksums arrive with their
// virtio_net_hdr), PACKET_IGNORE_OUTGOING, bound to the ifindex; with several queues all join one PACKET_FANOUT_HASH
// group whose id the kernel picks (PACKET_FANOUT_FLAG_UNIQUEID). Two ring layouts (AfPacketOptions::rx_ring):
//  - kV2 (default): TPACKET_V2, one frame per slot, and the kernel wakes the reader for every frame, so a lone frame
//    (a ping) is handed over at once. Slots are small (rx_frame_bytes, 2 KiB: an MTU-1500 frame with its headers);
//    a frame that does not fit (a GSO super-frame, up to 64 KiB) is queued whole on the socket (PACKET_COPY_THRESH)
//    and the slot carries TP_STATUS_COPY: rx_burst reads it with one recvmsg into a per-queue copy buffer
//    (kRxCopyBuffers of them, allocated on first use, so a NIC that never sees a super-frame never pays for them).
//    With rx_copy_big = false, or slots large enough for a super-frame, no copy path is used.
//  - kV3: TPACKET_V3 blocks (rx_blocks of rx_block_bytes, 1 ms block retire timeout): dense for small frames, but a
//    lone frame waits until its block is full or retired (up to 1 ms per hop). Kept selectable for comparison.
// rx_burst keeps a cursor, so a batch may end in the middle of a block; rx_release hands back only slots / blocks
// whose every frame has been returned (VPP af_packet's rx pending state).
//
// TX: one socket per worker with a frame ring (TPACKET_V3 header layout; the kernel's transmit path is the same for
// V2 and V3, see af_packet_port.cc), PACKET_VNET_HDR and PACKET_QDISC_BYPASS; tx_frames slots of tx_frame_bytes.
// tx_enqueue copies a frame that fits into the next free slot; tx_flush issues one sendto(MSG_DONTWAIT) (and remembers
// to call again when the kernel stopped early on a full send buffer, or refused with EAGAIN/ENOBUFS/ENETDOWN: then
// tx_pending is true, the worker retries, and tx_discard_pending hands the refused slots back to us). The kernel
// keeps a head index into the TX ring and only advances it over frames it took, so the frames still marked
// SEND_REQUEST are always the run just before our `next` slot: discarding them marks them free and moves `next` back
// to the oldest, which is where the kernel's head waits. A frame larger than a slot (a GSO super-frame
// with the default 2 KiB slots) is sent at once by one sendmsg on a second, ring-less socket of that worker, after
// flushing the ring so frames keep their order. tx_slot_acquire/commit let a caller write a frame (software GSO
// segments with their outer headers) straight into a slot. A frame that is not GSO and at most kAfPacketTxLinearMax
// bytes goes with its vnet header's hdr_len set to its length, so the kernel copies it whole into the skb's head:
// left to tpacket_fill_skb's default (14 bytes copied, the rest a zero-copy frag of the slot's page), a veth or tap
// copies that frag into a newly allocated page and the receiver pulls the headers back out of it; whole, 64-byte
// frames went 17-25% faster (docs/STATUS.md issue 12).
// Big TX ring (AfPacketOptions::tx_big_frames > 0; vpcd gives one only to uplinks, for USO frames, when
// uplink-tx-big-frames is set: off by default, see Options::Rings::tx_big_frames): that second
// socket then carries a ring of its own of large slots (the largest frame with its headers rounded up to whole
// pages: 17 of them, 68 KiB, with 4 KiB pages), with the same options as the small ring. The kernel sends a ring frame
// without copying it into the skb: tpacket_fill_skb copies only the vnet header's hdr_len bytes and attaches the
// slot's pages as skb frags, at most MAX_SKB_FRAGS (17, the smallest value CONFIG_MAX_SKB_FRAGS allows); slots are
// page-aligned and no larger than 17 pages, so every frame that fits one fits the frags. (The skb is marked
// zero-copy: a device that orphans frags, veth among them, copies them there, skb_copy_ubufs; a real NIC sends from
// the slot. Over a veth that measured dearer than sendmsg's copy, docs/STATUS.md issue 8 `usoring`.) tx_slot_acquire with a max_len beyond the small slots hands out the next big slot, and tx_slot_commit
// sends it at once: the small ring is flushed first (order), then one sendto on the big socket. tx_enqueue of a
// frame larger than a small slot copies it into a big slot the same way (no sendmsg; the socket has a ring, so the
// kernel would take its frames from the ring anyway). A big slot still in the kernel's hands (SEND_REQUEST,
// SENDING) is a full ring: acquire returns nullptr and tx_enqueue false. A big frame the kernel refused stays
// pending as on the small ring (tx_pending; tx_flush retries the big ring before the small one, whose frames came
// later; tx_discard_pending frees both). A frame the device drops after the kernel took it (a veth drops a GSO skb of
// gso_max_size, 64 KiB, or more) is put back to SEND_REQUEST at the kernel's head, so it stays pending until
// discarded: on both rings; vxlan_uso_plan keeps USO frames below that size.
//
// Ring status words are shared with the kernel: read with acquire, written with release (std::atomic_ref).
//
// Details the callers see: the receive path strips an 802.1Q tag into metadata before packet sockets get the frame;
// rx_burst writes it back in place (the frame is then 4 bytes longer, csum_start adjusted). tx_enqueue refuses frames
// larger than kAfPacketMaxTxFrame and frames the RX ring truncated (len < wire_len). The kernel drops a frame when the
// RX ring is full (see rx_kernel_drops). Memory (all pinned kernel pages, ring_bytes()): V2 rx_frames * rx_frame_bytes
// per queue (1 MiB by default) or V3 rx_blocks * rx_block_bytes, plus tx_frames * tx_frame_bytes per worker (512 KiB
// by default), plus the big TX ring when asked for (tx_big_frames slots of 68 KiB, in blocks of 512 KiB holding 7:
// 2.5 MiB per worker for 32), plus the copy buffers of queues that received super-frames (kRxCopyBuffers * 64 KiB,
// heap).
//
// Setting a ring up (PACKET_RX_RING / PACKET_TX_RING) waits for an RCU grace period in the kernel (packet_set_ring
// calls synchronize_net), several milliseconds idle and tens on a busy box. An AfPacketRingPool keeps a few unbound
// sockets of one layout with their rings already set up, refilled on threads of its own; open() with a pool of the same
// layout takes sockets from it and only binds them (a socket created with protocol 0 is not hooked in yet, so its
// first bind waits for no grace period). Sockets the pool cannot supply are set up as without one.
//
// Threading: as PortIo (port.h): queue q's rx_* only from its owning worker, worker w's tx_* only from worker w;
// open/destroy from the control thread (open sets the rings of its sockets up on short-lived helper threads).
// AfPacketRingPool: any thread (a mutex inside); its refill threads create sockets in the network namespace of the
// thread that constructed the pool.
// tx_errors() and ring_bytes() may be read from any thread; rx_kernel_drops(q) only from queue q's owner.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "datapath/io/port.h"
#include "datapath/io/unique_fd.h"

struct tpacket3_hdr;  // <linux/if_packet.h>: the TX ring slot header

namespace vpcd::dp {

enum class RxRing : uint8_t { kV2, kV3 };

struct AfPacketOptions {
  unsigned rx_queues = 1;
  unsigned tx_workers = 1;
  RxRing rx_ring = RxRing::kV2;
  // kV2: slot size (a multiple of 16, >= 256) and slot count per queue.
  uint32_t rx_frame_bytes = 2048;
  uint32_t rx_frames = 512;
  bool rx_copy_big = true;  // kV2: frames larger than a slot arrive whole through recvmsg (else truncated)
  // kV2 with rx_copy_big: SO_RCVBUF of each RX socket, which the frames queued for recvmsg count against (the kernel
  // charges each its truesize and doubles the value set). A frame larger than a slot that arrives while the queue is
  // full reaches only its slot: rx_burst marks it kRxQueueFull and parse drops it as rx_queue_full.
  uint32_t rx_queue_bytes = 8u << 20;
  // kV3: block size (a multiple of the page size) and count per queue.
  uint32_t rx_block_bytes = 1u << 22;
  uint32_t rx_blocks = 4;
  // TX ring per worker: slot size (>= 256, a multiple of 16) and count; larger frames go through sendmsg.
  uint32_t tx_frame_bytes = 2048;
  uint32_t tx_frames = 256;
  // Big TX ring per worker (see above): slot count, 0 = none (frames larger than a small slot go through sendmsg).
  uint32_t tx_big_frames = 0;
  // A BPF socket filter (SO_ATTACH_BPF) put on every RX socket before its bind, e.g. the kernel fast path's (which
  // turns away the frames the kernel forwards itself, kernel_fastpath.h); -1 = none. Not part of the ring layout.
  int rx_filter_fd = -1;
};

// Bytes of packet_mmap ring a port opened with `o` pins (RX for every queue + TX for every worker).
uint64_t af_packet_ring_bytes(const AfPacketOptions& o);

// Largest frame (Ethernet header included, vnet header excluded) tx_enqueue accepts.
inline constexpr uint32_t kAfPacketMaxTxFrame = 65536 + 64;
// Frames of at most this many bytes (not GSO) are sent from the small TX ring copied whole into the skb's head, not
// as a zero-copy frag of the ring's page (see tx_commit_next in af_packet_port.cc).
inline constexpr uint32_t kAfPacketTxLinearMax = 2048;
// Copy buffers per V2 RX queue for frames larger than a slot: at most this many super-frames per batch.
inline constexpr unsigned kRxCopyBuffers = 8;

class AfPacketRingPool;
class KernelFastPath;

class AfPacketPort final : public PortIo {
 public:
  // `pool` (may be null): take ready sockets from it when its layout matches `o`.
  static std::unique_ptr<AfPacketPort> open(const std::string& ifname, const AfPacketOptions& o, std::string* error,
                                            AfPacketRingPool* pool = nullptr);
  ~AfPacketPort() override;
  AfPacketPort(const AfPacketPort&) = delete;
  AfPacketPort& operator=(const AfPacketPort&) = delete;

  const std::string& ifname() const override { return ifname_; }
  unsigned rx_queues() const override { return unsigned(rx_.size()); }
  int rx_fd(unsigned q) const override;
  unsigned rx_burst(unsigned q, Packet* pkts, unsigned max) noexcept override;
  void rx_release(unsigned q) noexcept override;
  bool tx_enqueue(unsigned w, const Packet& p) noexcept override;
  void tx_flush(unsigned w) noexcept override;
  bool tx_pending(unsigned w) const noexcept override { return tx_[w]->pending != 0 || tx_[w]->big.pending != 0; }
  uint64_t tx_discard_pending(unsigned w) noexcept override;
  uint8_t* tx_slot_acquire(unsigned w, uint32_t max_len) noexcept override;
  void tx_slot_commit(unsigned w, const virtio_net_hdr& vnet, uint32_t len) noexcept override;

  unsigned tx_workers() const { return unsigned(tx_.size()); }
  int ifindex() const { return ifindex_; }
  // Slots of worker w's big TX ring (0: none).
  uint32_t tx_big_frames(unsigned w) const { return tx_[w]->big.frames; }
  uint64_t ring_bytes() const noexcept { return ring_bytes_; }  // set at open, constant afterwards
  // Frames the kernel dropped on queue q because its ring was full (PACKET_STATISTICS tp_drops, accumulated here since
  // reading resets the kernel's counter).
  uint64_t rx_kernel_drops(unsigned q) noexcept;
  // rx_kernel_drops' growth since the last call; reads the kernel's statistics only after a frame marked
  // TP_STATUS_LOSING arrived (the first frame after a drop carries it), so drops show up with the next frame.
  uint64_t rx_ring_drops(unsigned q) noexcept override;
  // Failed sendto calls on worker w's ring (the kernel skips frames it rejects: PACKET_LOSS).
  uint64_t tx_errors(unsigned w) const noexcept;
  // The kernel fast path attached to this port's interface: its counters are added to the port's, and freed when
  // the port closes. Call before the port is published.
  void set_fastpath(std::shared_ptr<KernelFastPath> fp) { fastpath_ = std::move(fp); }
  void add_offloaded(PortCounters& out) const noexcept override;

 private:
  friend class AfPacketRingPool;
  struct Ring {  // the mmapped ring; unmapped by its owner's destruction
    uint8_t* base = nullptr;
    size_t bytes = 0;
    Ring() = default;
    Ring(const Ring&) = delete;
    Ring& operator=(const Ring&) = delete;
    ~Ring();
  };
  struct RxQueue {
    UniqueFd fd;
    Ring ring;
    RxRing version = RxRing::kV2;
    uint32_t block_bytes = 0;  // kV3: block size; kV2: the kernel's block (a whole number of slots)
    uint32_t blocks = 0;       // kV3 only
    uint32_t frame_bytes = 0;  // kV2: slot size
    uint32_t frames = 0;       // kV2: slot count
    uint32_t frames_per_block = 0;  // kV2
    // kV2 reader cursor (owned by the queue's worker).
    uint32_t taken = 0;       // slots from head on returned by rx_burst, awaiting rx_release
    bool copy_big = false;     // kV2: PACKET_COPY_THRESH set (frames larger than a slot are queued for recvmsg)
    unsigned copies_used = 0;  // copy buffers holding frames of the current batch
    std::vector<std::unique_ptr<uint8_t[]>> copy_bufs;  // allocated on first use
    // kV3 reader cursor (owned by the queue's worker).
    uint32_t head = 0;        // oldest block (V2: slot) not yet given back to the kernel
    uint32_t done = 0;        // blocks from head on that were fully returned by rx_burst, awaiting rx_release
    bool in_block = false;    // the block at (head + done) is being walked
    uint32_t pkts_left = 0;   // frames not yet returned in that block
    uint32_t next_offset = 0; // offset of the next frame in that block
    bool losing = false;      // a frame / block carried TP_STATUS_LOSING: the kernel dropped some since last read
    uint64_t kernel_drops = 0;
    uint64_t kernel_drops_reported = 0;  // part of kernel_drops already returned by rx_ring_drops
  };
  struct TxQueue {
    UniqueFd fd;
    Ring ring;
    uint32_t frame_bytes = 0;
    uint32_t block_bytes = 0;
    uint32_t frames_per_block = 0;
    uint32_t frames = 0;
    uint32_t next = 0;     // next slot to fill
    uint32_t pending = 0;  // slots marked SEND_REQUEST since the last flush, or 1 while the kernel left some behind
    UniqueFd big_fd;       // socket for frames larger than a slot: ring-less, or with the big ring
    struct BigRing {       // on big_fd when AfPacketOptions::tx_big_frames > 0; fields as the small ring's
      Ring ring;
      uint32_t frame_bytes = 0;
      uint32_t block_bytes = 0;
      uint32_t frames_per_block = 0;
      uint32_t frames = 0;  // 0: no big ring
      uint32_t next = 0;
      uint32_t pending = 0;
    } big;
    bool big_acquired = false;  // the slot tx_slot_acquire handed out is big.next (else next)
    std::atomic<uint64_t> errors{0};
  };

  AfPacketPort() = default;
  // prepare_*: socket, options, ring and mapping (no interface yet); bind_*: to this port's interface.
  static bool prepare_rx(RxQueue& q, const AfPacketOptions& o, std::string* err);
  bool bind_rx(RxQueue& q, int filter_fd, std::string* err);
  static bool join_fanout(int fd, int fanout_id, int* fanout_out, std::string* err);
  static bool prepare_tx(TxQueue& t, const AfPacketOptions& o, std::string* err);
  static bool prepare_big_ring(TxQueue& t, uint32_t frames, uint32_t page, std::string* err);
  bool bind_tx(TxQueue& t, std::string* err);
  static uint8_t* tx_slot(const TxQueue& t, uint32_t i) noexcept;
  unsigned rx_burst_v2(RxQueue& q, Packet* pkts, unsigned max) noexcept;
  unsigned rx_burst_v3(RxQueue& q, Packet* pkts, unsigned max) noexcept;
  bool tx_send_big(unsigned w, const Packet& p) noexcept;
  void tx_commit_next(TxQueue& t, ::tpacket3_hdr* h, uint32_t frame_len) noexcept;
  // Big ring: queues the slot at big.next (vnet header and frame_len bytes of frame written) after flushing the
  // small ring, and sends it.
  void tx_commit_big(unsigned w, uint32_t frame_len) noexcept;
  static void tx_send_big_ring(TxQueue& t) noexcept;  // one sendto on big_fd; updates big.pending

  std::string ifname_;
  int ifindex_ = 0;
  uint64_t ring_bytes_ = 0;
  std::shared_ptr<KernelFastPath> fastpath_;  // null: none attached
  std::vector<std::unique_ptr<RxQueue>> rx_;
  std::vector<std::unique_ptr<TxQueue>> tx_;
};

// Unbound AF_PACKET sockets with their rings set up ahead of need, for ports of one layout (see above). Refilled by
// kRefillThreads threads, each setting up one socket at a time: a ring's setup is mostly a wait for an RCU grace
// period (packet_set_ring), so concurrent setups share them and a burst of new NICs (bench/e2e/scale.py) drains the
// pool less often (a port that finds it empty sets its sockets up itself, on the control thread's time).
class AfPacketRingPool {
 public:
  static constexpr unsigned kRefillThreads = 4;
  // Keeps `rx_spare` RX and `tx_spare` TX sockets of layout `o` (its rx_queues / tx_workers are ignored) ready.
  AfPacketRingPool(const AfPacketOptions& o, unsigned rx_spare, unsigned tx_spare);
  ~AfPacketRingPool();
  AfPacketRingPool(const AfPacketRingPool&) = delete;
  AfPacketRingPool& operator=(const AfPacketRingPool&) = delete;

  bool matches(const AfPacketOptions& o) const;  // same ring layout
  uint64_t taken() const;                        // sockets handed to ports so far
  uint64_t ready_bytes() const;                  // ring memory the spares pin
  void wait_full() const;                        // until every spare is ready (tests)

 private:
  friend class AfPacketPort;
  std::unique_ptr<AfPacketPort::RxQueue> take_rx();  // null when none is ready
  std::unique_ptr<AfPacketPort::TxQueue> take_tx();
  template <class Q>
  std::unique_ptr<Q> take(std::vector<std::unique_ptr<Q>>& from);  // the last spare of `from`, or null
  void run();

  const AfPacketOptions layout_;
  const unsigned rx_spare_, tx_spare_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;  // refill wanted / stop (refill threads), a spare was added (wait_full)
  std::vector<std::unique_ptr<AfPacketPort::RxQueue>> rx_;  // guarded by mu_
  std::vector<std::unique_ptr<AfPacketPort::TxQueue>> tx_;  // guarded by mu_
  uint64_t taken_ = 0;                                      // guarded by mu_
  unsigned rx_busy_ = 0, tx_busy_ = 0;  // guarded by mu_; setups in progress (counted against the spare targets)
  bool failed_ = false;  // guarded by mu_; a setup failed: stop refilling (open() sets sockets up itself)
  bool stop_ = false;    // guarded by mu_
  std::vector<std::thread> threads_;  // started last in the constructor; joined by the destructor
};

}  // namespace vpcd::dp
