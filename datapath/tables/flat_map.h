// FlatU64Map: an immutable open-addressing hash map from a non-zero 64-bit key to a small value, built once by the
// control thread and then only read (by any number of workers, without synchronisation: it is published inside an
// immutable snapshot). Linear probing, power-of-two capacity with load factor <= 1/2, key 0 marks an empty slot, so a
// lookup touches one or two cache lines. Used for the per-VPC static MAC FIB and the ARP answer table.
//
// Why not a sorted vector: a binary search costs log2(N) dependent, unpredictable branches per lookup; the hash probe is
// one multiply and usually one compare. bench/bm_parse_switch.cc (BM_Fib*, CPU time, contended 2-core box): 8 MACs
// 5.1 vs 5.8 ns, 64 MACs 5.7 vs 8.3 ns, 512 MACs 6.1 vs 9.7 ns (hash vs sorted vector).
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace vpcd::dp {

template <class V>
class FlatU64Map {
 public:
  FlatU64Map() = default;
  // Later duplicates of a key replace earlier ones. Every key must be non-zero.
  explicit FlatU64Map(const std::vector<std::pair<uint64_t, V>>& items) {
    size_t cap = 8;
    while (cap < items.size() * 2) cap <<= 1;
    slots_.assign(cap, Slot{});
    mask_ = cap - 1;
    shift_ = unsigned(64 - std::countr_zero(cap));
    for (const auto& [k, v] : items) insert(k, v);
  }

  const V* find(uint64_t key) const noexcept {
    if (slots_.empty()) return nullptr;
    for (size_t i = index(key);; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.key == key) return &s.value;
      if (s.key == 0) return nullptr;
    }
  }
  size_t size() const noexcept { return size_; }
  size_t capacity() const noexcept { return slots_.size(); }

  template <class F>
  void for_each(F&& f) const {
    for (const auto& s : slots_)
      if (s.key != 0) f(s.key, s.value);
  }

 private:
  struct Slot {
    uint64_t key = 0;
    V value{};
  };
  size_t index(uint64_t key) const noexcept { return size_t((key * 0x9e3779b97f4a7c15ull) >> shift_) & mask_; }
  void insert(uint64_t key, const V& v) {
    for (size_t i = index(key);; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.key == key) {
        s.value = v;
        return;
      }
      if (s.key == 0) {
        s = Slot{key, v};
        ++size_;
        return;
      }
    }
  }

  std::vector<Slot> slots_;
  size_t mask_ = 0;
  unsigned shift_ = 64;
  size_t size_ = 0;
};

}  // namespace vpcd::dp
