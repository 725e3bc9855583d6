// MacTable: the MAC addresses one VPC has learned from traffic, (MAC) -> (port index, port seq, last seen), for sources
// that are not a NIC's own MAC (guests with port security off, bridges or VMs nested behind a NIC). One table per VPC,
// shared by every worker without locks and kept across snapshot generations (VpcConfig::learned is a shared_ptr the
// Controller hands from one snapshot to the next while the VPC exists).
//
// Layout: a fixed power-of-two array of 16-byte slots, each two std::atomic<uint64_t> words:
//   key  = MAC (bits 0..47) | port index (bits 48..63); 0 = empty slot. Slots are never emptied again.
//   meta = low 32 bits of the port's seq (bits 32..63) | last-seen second (bits 0..31; 0 = not yet written).
// A MAC lives in the first kMaxProbe slots from its hash. learn() claims the first empty slot of that window (CAS
// 0 -> key), or, when the window is full, takes over the entry that aged longest ago (CAS old key -> key); a fresh window
// that is full is counted (learn_full) and the MAC stays unknown (its frames are flooded).
//
// Memory ordering: every access is relaxed. No ordering is needed because each word is read and written whole, and
// every (key, meta) pair a reader can observe, even a torn one from two different writers, is safe to act on:
//   - the forwarding decision comes from the key word alone (MAC and port together, never torn);
//   - the reader then requires meta's seq to equal the seq of the port now at that index in its snapshot. Seqs are
//     unique per port incarnation (see PortRuntime::seq), so a match means the port some writer learned for this MAC
//     is still the same port; a meta left over from another MAC or another port fails the check (flood), or passes
//     only when it names that same port, in which case forwarding there is what a writer learned;
//   - meta = 0 (a slot claimed but not yet stamped) reads as aged.
// So a race costs at most one flooded frame or an aging time off by one refresh. Two workers learning the same new
// MAC at once may (rarely) leave it in two slots; lookups use the first, the other ages out.
// Refreshes write only when the port, seq or second changed, so a steady flow does not bounce the cache line between
// workers (at most one write per entry per second).
//
// Time: callers pass monotonic seconds (>= 1). Age comparisons use signed 32-bit differences, so workers whose clocks
// disagree by a second do not see each other's fresh entries as aged.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "datapath/proto/types.h"

namespace vpcd::dp {

class MacTable {
 public:
  static constexpr uint32_t kDefaultAgingS = 300;
  static constexpr size_t kDefaultCapacity = 4096;
  static constexpr unsigned kMaxProbe = 8;

  struct Entry {
    uint16_t port;     // port index in the snapshot
    uint32_t seq32;    // low 32 bits of that port's PortRuntime::seq when learned
    uint32_t seen_s;   // last refresh
  };
  enum class LearnResult : uint8_t { kUnchanged, kRefreshed, kLearned, kMoved, kFull, kRaced };

  // capacity is rounded up to a power of two (at least kMaxProbe).
  explicit MacTable(size_t capacity = kDefaultCapacity, uint32_t aging_s = kDefaultAgingS);
  MacTable(const MacTable&) = delete;
  MacTable& operator=(const MacTable&) = delete;

  // The live (not aged) entry for mac, if any. Any thread.
  bool lookup(const MacAddr& mac, uint32_t now_s, Entry& out) const noexcept;
  // Records that mac was seen as a source on port (incarnation port_seq) at now_s. Any thread. mac must be unicast and
  // non-zero (callers check).
  LearnResult learn(const MacAddr& mac, uint16_t port, uint64_t port_seq, uint32_t now_s) noexcept;

  uint32_t aging_s() const noexcept { return aging_s_; }
  size_t capacity() const noexcept { return mask_ + 1; }
  // Entries not aged at now_s (O(capacity); for stats and tests).
  size_t live_entries(uint32_t now_s) const noexcept;
  // Learns refused because the probe window was full of fresh entries.
  uint64_t learn_full() const noexcept { return learn_full_.load(std::memory_order_relaxed); }

 private:
  struct alignas(16) Slot {
    std::atomic<uint64_t> key{0};
    std::atomic<uint64_t> meta{0};
  };
  static constexpr uint64_t kMacMask = (uint64_t(1) << 48) - 1;

  size_t home(uint64_t mac48) const noexcept { return size_t((mac48 * 0x9e3779b97f4a7c15ull) >> shift_) & mask_; }
  bool aged(uint64_t meta, uint32_t now_s) const noexcept {
    uint32_t seen = uint32_t(meta);
    return seen == 0 || int32_t(now_s - seen) >= int32_t(aging_s_);
  }

  std::unique_ptr<Slot[]> slots_;
  size_t mask_;
  unsigned shift_;
  uint32_t aging_s_;
  std::atomic<uint64_t> learn_full_{0};  // any worker; relaxed fetch_add (rare path)
};

}  // namespace vpcd::dp
