// ConnTable: sharded connection table with per-shard timing wheels. See conn_table.h for the design and threading.
#include "datapath/tables/conn_table.h"

#include <bit>
#include <cstring>

namespace vpcd::dp {

NormalizedKey normalize(const FlowTuple& t) noexcept {
  NormalizedKey n;
  n.key.vpc_gen = t.vpc_gen;
  n.key.vpc = t.vpc;
  n.key.proto = t.proto;
  n.key.kind = t.kind;
  const uint64_t s = (uint64_t(t.src.v) << 16) | t.sport;
  const uint64_t d = (uint64_t(t.dst.v) << 16) | t.dport;
  n.src_is_a = s <= d;
  if (n.src_is_a) {
    n.key.ip_a = t.src.v, n.key.port_a = t.sport, n.key.ip_b = t.dst.v, n.key.port_b = t.dport;
  } else {
    n.key.ip_a = t.dst.v, n.key.port_a = t.dport, n.key.ip_b = t.src.v, n.key.port_b = t.sport;
  }
  return n;
}

uint32_t conn_hash(const ConnKey& k) noexcept {
  uint64_t w[3] = {0, 0, 0};
  std::memcpy(w, &k, sizeof(k));
  // Multiply-xorshift mixing of the three words (keys are not attacker-chosen beyond the tuple; collisions only
  // lengthen a probe).
  uint64_t h = w[0] * 0x9e3779b97f4a7c15ull;
  h ^= (h >> 29) ^ w[1];
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= (h >> 31) ^ w[2];
  h *= 0x94d049bb133111ebull;
  h ^= h >> 32;
  const uint32_t r = uint32_t(h);
  return r ? r : 1;
}

namespace {
struct Slot {
  uint32_t sig;  // the entry's hash
  uint32_t idx;  // entry index, or ConnTable::kNil when empty
};
struct Link {
  uint32_t prev, next;
};
}  // namespace

// One shard: its own lock, index, entries and wheel. Everything below `lock` is guarded by it.
struct alignas(64) ConnTable::Shard {
  std::atomic<uint8_t> lock{0};  // 1 = held; test-and-test-and-set spin
  uint32_t cap = 0;              // entries
  uint32_t mask = 0;             // index slots - 1
  uint32_t count = 0;            // live entries
  uint32_t hwm = 0;              // entries [0, hwm) have been handed out at least once
  uint32_t free_head = kNil;     // free list through links[i].next
  uint32_t wheel_now = 0;        // last second whose wheel slot has been processed; 0 = wheel not started
  std::unique_ptr<Slot[]> index;
  std::unique_ptr<Conn[]> conns;
  std::unique_ptr<Link[]> links;  // [cap + kWheelSlots]: entries, then one sentinel per wheel slot

  void acquire() noexcept {
    for (;;) {
      if (lock.exchange(1, std::memory_order_acquire) == 0) return;
      while (lock.load(std::memory_order_relaxed) != 0) __builtin_ia32_pause();
    }
  }
  void release() noexcept { lock.store(0, std::memory_order_release); }

  uint32_t find(const ConnKey& k, uint32_t h) const noexcept {
    for (uint32_t i = h & mask;; i = (i + 1) & mask) {
      const Slot& s = index[i];
      if (s.idx == kNil) return kNil;
      if (s.sig == h && conns[s.idx].key == k) return s.idx;
    }
  }
  void index_insert(uint32_t h, uint32_t idx) noexcept {
    uint32_t i = h & mask;
    while (index[i].idx != kNil) i = (i + 1) & mask;
    index[i] = Slot{h, idx};
  }
  // Removes entry idx (hash h) from the index: linear probing with backward-shift deletion (Knuth 6.4 algorithm R).
  void index_erase(uint32_t h, uint32_t idx) noexcept {
    uint32_t i = h & mask;
    while (index[i].idx != idx) i = (i + 1) & mask;
    for (uint32_t j = i;;) {
      j = (j + 1) & mask;
      if (index[j].idx == kNil) break;
      const uint32_t home = index[j].sig & mask;
      // Move j back to i unless its home lies cyclically in (i, j].
      const bool home_in_range = i <= j ? (home > i && home <= j) : (home > i || home <= j);
      if (!home_in_range) {
        index[i] = index[j];
        i = j;
      }
    }
    index[i] = Slot{0, kNil};
  }

  uint32_t sentinel(uint32_t second) const noexcept { return cap + (second & (kWheelSlots - 1)); }
  void unlink(uint32_t i) noexcept {
    links[links[i].prev].next = links[i].next;
    links[links[i].next].prev = links[i].prev;
  }
  // Puts entry i in the slot of `deadline`, clamped to (base, base + kWheelSlots - 1].
  void schedule(uint32_t i, uint32_t deadline, uint32_t base) noexcept {
    uint32_t t = deadline;
    if (int32_t(t - (base + 1)) < 0) t = base + 1;
    if (int32_t(t - (base + kWheelSlots - 1)) > 0) t = base + kWheelSlots - 1;
    const uint32_t s = sentinel(t);
    const uint32_t last = links[s].prev;
    links[i] = Link{last, s};
    links[last].next = i;
    links[s].prev = i;
  }
  uint32_t alloc() noexcept {
    if (free_head != kNil) {
      const uint32_t i = free_head;
      free_head = links[i].next;
      return i;
    }
    return hwm < cap ? hwm++ : kNil;
  }
  void free_entry(uint32_t i) noexcept {
    links[i].next = free_head;
    free_head = i;
  }
};

ConnTable::ConnTable(const ConnTableOptions& opts) : opts_(opts) {
  const unsigned n = std::bit_ceil(opts_.shards < 1 ? 1u : opts_.shards);
  opts_.shards = n;
  shard_shift_ = 32 - unsigned(std::countr_zero(n));
  // Room for an uneven spread: 1.5x the even share plus a little.
  shard_cap_ = size_t(opts_.max_conns) * 3 / 2 / n + 64;
  shards_.reserve(n);
  for (unsigned i = 0; i < n; ++i) {
    auto s = std::make_unique<Shard>();
    s->cap = uint32_t(shard_cap_);
    const size_t slots = std::bit_ceil(shard_cap_ * 2);
    s->mask = uint32_t(slots - 1);
    s->index.reset(new Slot[slots]);
    for (size_t j = 0; j < slots; ++j) s->index[j] = Slot{0, kNil};
    s->conns.reset(new Conn[shard_cap_]);  // default-initialised lazily by the kernel's zero pages where large
    s->links.reset(new Link[shard_cap_ + kWheelSlots]);
    for (uint32_t w = 0; w < kWheelSlots; ++w) {
      const uint32_t sen = s->cap + w;
      s->links[sen] = Link{sen, sen};
    }
    shards_.push_back(std::move(s));
  }
  vpc_counts_.reset(new std::atomic<uint64_t>[opts_.max_vpcs]);
  for (uint32_t i = 0; i < opts_.max_vpcs; ++i) vpc_counts_[i].store(0, std::memory_order_relaxed);
}

ConnTable::~ConnTable() = default;

ConnTable::Locked ConnTable::lookup(const ConnKey& key, uint32_t hash) noexcept {
  Shard& s = shard_of(hash);
  s.acquire();
  const uint32_t i = s.find(key, hash);
  return Locked(this, &s, key, hash, i == kNil ? nullptr : &s.conns[i]);
}

ConnTable::Locked::~Locked() {
  if (s_) s_->release();
}

void ConnTable::Locked::release() noexcept {
  if (s_) s_->release();
  s_ = nullptr;
  conn_ = nullptr;
}

bool ConnTable::take_vpc_slot(const ConnKey& k) noexcept {
  if (k.vpc >= opts_.max_vpcs) return true;
  std::atomic<uint64_t>& a = vpc_counts_[k.vpc];
  uint64_t v = a.load(std::memory_order_relaxed);
  for (;;) {
    uint64_t nv;
    if (uint32_t(v >> 32) != k.vpc_gen) {
      nv = (uint64_t(k.vpc_gen) << 32) | 1;  // the slot's previous tenant's entries no longer count
    } else {
      if (uint32_t(v) >= opts_.max_conns_per_vpc) return false;
      nv = v + 1;
    }
    if (a.compare_exchange_weak(v, nv, std::memory_order_relaxed)) return true;
  }
}

void ConnTable::release_vpc_slot(const ConnKey& k) noexcept {
  if (k.vpc >= opts_.max_vpcs) return;
  std::atomic<uint64_t>& a = vpc_counts_[k.vpc];
  uint64_t v = a.load(std::memory_order_relaxed);
  while (uint32_t(v >> 32) == k.vpc_gen && uint32_t(v) != 0) {
    if (a.compare_exchange_weak(v, v - 1, std::memory_order_relaxed)) return;
  }
}

size_t ConnTable::vpc_size(uint16_t vpc, uint32_t gen) const noexcept {
  if (vpc >= opts_.max_vpcs) return 0;
  const uint64_t v = vpc_counts_[vpc].load(std::memory_order_relaxed);
  return uint32_t(v >> 32) == gen ? uint32_t(v) : 0;
}

InsertResult ConnTable::Locked::insert(uint32_t now_s, TimeoutClass tclass) noexcept {
  ConnTable& t = *t_;
  Shard& s = *s_;
  if (t.count_.fetch_add(1, std::memory_order_relaxed) >= int64_t(t.opts_.max_conns)) {
    t.count_.fetch_sub(1, std::memory_order_relaxed);
    return InsertResult::kGlobalFull;
  }
  if (!t.take_vpc_slot(key_)) {
    t.count_.fetch_sub(1, std::memory_order_relaxed);
    return InsertResult::kVpcFull;
  }
  const uint32_t i = s.alloc();
  if (i == kNil) {
    t.release_vpc_slot(key_);
    t.count_.fetch_sub(1, std::memory_order_relaxed);
    return InsertResult::kShardFull;
  }
  Conn& c = s.conns[i];
  c = Conn{};
  c.key = key_;
  c.last_seen = now_s;
  c.tclass = uint8_t(tclass);
  s.index_insert(hash_, i);
  if (s.wheel_now == 0) s.wheel_now = now_s - 1;
  s.schedule(i, now_s + t.timeout_s(tclass), s.wheel_now);
  ++s.count;
  conn_ = &c;
  return InsertResult::kOk;
}

void ConnTable::Locked::erase() noexcept {
  Shard& s = *s_;
  const uint32_t i = uint32_t(conn_ - s.conns.get());
  s.index_erase(hash_, i);
  s.unlink(i);
  s.free_entry(i);
  --s.count;
  t_->release_vpc_slot(key_);
  t_->count_.fetch_sub(1, std::memory_order_relaxed);
  conn_ = nullptr;
}

void ConnTable::Locked::reschedule() noexcept {
  Shard& s = *s_;
  const uint32_t i = uint32_t(conn_ - s.conns.get());
  s.unlink(i);
  s.schedule(i, conn_->last_seen + t_->timeout_s(TimeoutClass(conn_->tclass)), s.wheel_now);
}

size_t ConnTable::expire(uint32_t now_s, size_t budget, unsigned first, unsigned step) noexcept {
  size_t removed = 0;
  if (step == 0) step = 1;
  for (size_t si = first; si < shards_.size() && budget > 0; si += step) {
    Shard& s = *shards_[si];
    s.acquire();
    if (s.wheel_now == 0) {
      s.release();
      continue;
    }
    // Far behind (idle for more than a turn): every slot gets one visit, which checks every entry's real deadline.
    if (int32_t(now_s - s.wheel_now) > int32_t(kWheelSlots)) s.wheel_now = now_s - kWheelSlots;
    bool out_of_budget = false;
    while (int32_t(now_s - s.wheel_now) > 0 && !out_of_budget) {
      const uint32_t t = s.wheel_now + 1;
      const uint32_t sen = s.sentinel(t);
      while (s.links[sen].next != sen) {
        if (budget == 0) {
          out_of_budget = true;
          break;
        }
        --budget;
        const uint32_t i = s.links[sen].next;
        s.unlink(i);
        Conn& c = s.conns[i];
        const uint32_t deadline = c.last_seen + timeout_s(TimeoutClass(c.tclass));
        if (int32_t(deadline - now_s) <= 0) {
          s.index_erase(conn_hash(c.key), i);
          s.free_entry(i);
          --s.count;
          release_vpc_slot(c.key);
          count_.fetch_sub(1, std::memory_order_relaxed);
          ++removed;
        } else {
          s.schedule(i, deadline, t);
        }
      }
      if (!out_of_budget) s.wheel_now = t;
    }
    s.release();
  }
  return removed;
}

}  // namespace vpcd::dp
