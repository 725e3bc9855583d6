// FakePort: an in-memory PortIo for tests and benchmarks (like OVS's netdev-dummy and Snabb's Source/Sink apps).
//
// inject() queues frames that rx_burst() hands out; tx_enqueue() copies frames into a per-worker ring of configurable
// capacity (full -> false, so kTxRingFull can be tested) and tx_flush() moves them to the "sent" list that drain()
// returns. With discard(true) transmitted frames are only counted (benchmarks).
//
// Threading: inject(), drain() and the statistics may be called from any thread (the rx queue and the sent list are
// under a mutex); rx_* for a queue and tx_* for worker w follow the PortIo contract (one thread each). rx_fd() is an
// eventfd that is readable while injected frames wait, so a worker can poll a FakePort like a real port.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "datapath/io/port.h"
#include "datapath/pipeline/counters.h"

namespace vpcd::dp {

struct FakeFrame {
  std::vector<uint8_t> bytes;
  std::optional<virtio_net_hdr> vnet;  // present when the frame carried a vnet header
};

class FakePort final : public PortIo {
 public:
  explicit FakePort(std::string ifname, unsigned tx_capacity = 256);
  ~FakePort() override;
  FakePort(const FakePort&) = delete;
  FakePort& operator=(const FakePort&) = delete;

  // Queues one received frame (queue 0).
  void inject(std::vector<uint8_t> bytes, std::optional<virtio_net_hdr> vnet = std::nullopt);
  // Frames flushed since the last drain(), in transmit order.
  std::vector<FakeFrame> drain();
  // Only the bytes of drain().
  std::vector<std::vector<uint8_t>> drain_bytes();
  void set_discard(bool discard) { discard_ = discard; }  // before use
  // With slots on, tx_slot_acquire hands out a slot (as AfPacketPort's TX ring does) of kSlotBytes; before use.
  static constexpr uint32_t kSlotBytes = 2048;
  void set_slots(bool on) { slots_ = on; }
  uint64_t slot_commits() const { return slot_commits_; }  // worker thread only
  // With big slots on (n > 0), tx_slot_acquire hands out a slot of kBigSlotBytes for a max_len beyond kSlotBytes (as
  // AfPacketPort's big TX ring does), at most n of them between two flushes (then nullptr: a full big ring);
  // before use. The frame of a committed big slot is queued like any other.
  static constexpr uint32_t kBigSlotBytes = 65536 + 64;  // kAfPacketMaxTxFrame
  void set_big_slots(unsigned n) { big_slots_ = n; }
  uint64_t big_slot_commits() const { return big_slot_commits_; }  // worker thread only
  // Pretends the kernel lost n frames at a full RX ring; the next rx_ring_drops() reports them. Any thread.
  void lose_at_ring(uint64_t n) { ring_lost_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t rx_ring_drops(unsigned /*q*/) noexcept override { return ring_lost_.exchange(0, std::memory_order_relaxed); }
  uint64_t tx_flushed() const { return flushed_.load(std::memory_order_relaxed); }
  // While set, tx_flush keeps the frames (as a kernel refusing them with EAGAIN would): tx_pending is true until a
  // flush after clearing it, or tx_discard_pending. Any thread.
  void set_refuse_flush(bool refuse) { refuse_.store(refuse, std::memory_order_relaxed); }
  uint64_t tx_discarded() const { return discarded_.load(std::memory_order_relaxed); }
  size_t rx_pending() const;

  const std::string& ifname() const override { return ifname_; }
  unsigned rx_queues() const override { return 1; }
  int rx_fd(unsigned q) const override { return q == 0 ? efd_ : -1; }
  unsigned rx_burst(unsigned q, Packet* pkts, unsigned max) noexcept override;
  void rx_release(unsigned q) noexcept override;
  bool tx_enqueue(unsigned w, const Packet& p) noexcept override;
  void tx_flush(unsigned w) noexcept override;
  bool tx_pending(unsigned w) const noexcept override { return w < tx_.size() && tx_[w].refused; }
  uint64_t tx_discard_pending(unsigned w) noexcept override;
  uint8_t* tx_slot_acquire(unsigned w, uint32_t max_len) noexcept override;
  void tx_slot_commit(unsigned w, const virtio_net_hdr& vnet, uint32_t len) noexcept override;

 private:
  struct TxRing {
    std::vector<FakeFrame> frames;  // worker w only
    unsigned used = 0;
    bool refused = false;  // the last flush kept the frames (set_refuse_flush)
    std::vector<uint8_t> slot;      // the slot tx_slot_acquire hands out (worker w only)
    std::vector<uint8_t> big_slot;  // the big one (worker w only)
    unsigned big_used = 0;          // big slots committed since the last flush
    bool big_acquired = false;      // the last acquire handed out big_slot
  };

  std::string ifname_;
  unsigned tx_capacity_;
  bool discard_ = false;
  bool slots_ = false;
  uint64_t slot_commits_ = 0;  // tx_slot_commit calls (worker thread only)
  unsigned big_slots_ = 0;
  uint64_t big_slot_commits_ = 0;  // tx_slot_commit calls for big slots (worker thread only)
  std::atomic<uint64_t> ring_lost_{0};
  int efd_ = -1;
  mutable std::mutex mu_;
  std::deque<FakeFrame> rx_;          // guarded by mu_
  std::deque<FakeFrame> rx_held_;     // handed out by rx_burst, freed by rx_release (rx thread only)
  std::vector<FakeFrame> sent_;       // guarded by mu_
  std::vector<TxRing> tx_;            // [worker]
  std::atomic<uint64_t> flushed_{0};  // frames passed to tx_flush (also in discard mode)
  std::atomic<bool> refuse_{false};    // set_refuse_flush
  std::atomic<uint64_t> discarded_{0};  // frames tx_discard_pending gave up (written by the flushing worker)
};

}  // namespace vpcd::dp
