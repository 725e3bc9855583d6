// Lock-free learned MAC table; see mac_table.h for the layout and the memory-ordering argument. Any thread.
#include "datapath/tables/mac_table.h"

#include <bit>

namespace vpcd::dp {

MacTable::MacTable(size_t capacity, uint32_t aging_s) : aging_s_(aging_s == 0 ? 1 : aging_s) {
  size_t cap = kMaxProbe;
  while (cap < capacity) cap <<= 1;
  slots_ = std::make_unique<Slot[]>(cap);
  mask_ = cap - 1;
  shift_ = unsigned(64 - std::countr_zero(cap));
}

bool MacTable::lookup(const MacAddr& mac, uint32_t now_s, Entry& out) const noexcept {
  const uint64_t m = mac.to_u64();
  size_t i = home(m);
  for (unsigned n = 0; n < kMaxProbe; ++n, i = (i + 1) & mask_) {
    const Slot& s = slots_[i];
    const uint64_t k = s.key.load(std::memory_order_relaxed);
    if (k == 0) return false;
    if ((k & kMacMask) != m) continue;
    const uint64_t meta = s.meta.load(std::memory_order_relaxed);
    if (aged(meta, now_s)) return false;
    out = Entry{uint16_t(k >> 48), uint32_t(meta >> 32), uint32_t(meta)};
    return true;
  }
  return false;
}

MacTable::LearnResult MacTable::learn(const MacAddr& mac, uint16_t port, uint64_t port_seq, uint32_t now_s) noexcept {
  const uint64_t m = mac.to_u64();
  const uint64_t want_key = m | (uint64_t(port) << 48);
  const uint64_t want_meta = (uint64_t(uint32_t(port_seq)) << 32) | now_s;
  size_t i = home(m);
  size_t empty = SIZE_MAX, oldest = SIZE_MAX;
  uint64_t oldest_key = 0;
  uint32_t oldest_age = 0;
  for (unsigned n = 0; n < kMaxProbe; ++n, i = (i + 1) & mask_) {
    Slot& s = slots_[i];
    const uint64_t k = s.key.load(std::memory_order_relaxed);
    if (k == 0) {
      empty = i;
      break;
    }
    const uint64_t meta = s.meta.load(std::memory_order_relaxed);
    if ((k & kMacMask) == m) {
      if (k == want_key && meta == want_meta) return LearnResult::kUnchanged;
      const bool moved = k != want_key;
      if (moved) s.key.store(want_key, std::memory_order_relaxed);
      s.meta.store(want_meta, std::memory_order_relaxed);
      return moved ? LearnResult::kMoved : LearnResult::kRefreshed;
    }
    if (aged(meta, now_s)) {
      const uint32_t age = uint32_t(meta) == 0 ? UINT32_MAX : now_s - uint32_t(meta);
      if (oldest == SIZE_MAX || age > oldest_age) {
        oldest = i;
        oldest_key = k;
        oldest_age = age;
      }
    }
  }
  size_t target = empty != SIZE_MAX ? empty : oldest;
  if (target == SIZE_MAX) {
    learn_full_.fetch_add(1, std::memory_order_relaxed);
    return LearnResult::kFull;
  }
  Slot& s = slots_[target];
  uint64_t expected = empty != SIZE_MAX ? 0 : oldest_key;
  if (!s.key.compare_exchange_strong(expected, want_key, std::memory_order_relaxed)) {
    // Another worker took the slot first. If it learned the same MAC, stamp it; otherwise retry on the next frame.
    if ((expected & kMacMask) != m) return LearnResult::kRaced;
    if (expected != want_key) s.key.store(want_key, std::memory_order_relaxed);
  }
  s.meta.store(want_meta, std::memory_order_relaxed);
  return LearnResult::kLearned;
}

size_t MacTable::live_entries(uint32_t now_s) const noexcept {
  size_t n = 0;
  for (size_t i = 0; i <= mask_; ++i)
    if (slots_[i].key.load(std::memory_order_relaxed) != 0 && !aged(slots_[i].meta.load(std::memory_order_relaxed), now_s))
      ++n;
  return n;
}

}  // namespace vpcd::dp
