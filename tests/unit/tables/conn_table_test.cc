// ConnTable: normalisation, insert/lookup/erase (index deletion under load), timing-wheel expiry (refresh, budget,
// horizon), global and per-VPC limits, and two threads inserting and expiring at once.
#include "datapath/tables/conn_table.h"

#include <gtest/gtest.h>

#include <random>
#include <thread>
#include <unordered_map>

namespace vpcd::dp {
namespace {

FlowTuple tuple(uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport, uint16_t vpc = 1, uint32_t gen = 7) {
  FlowTuple t;
  t.vpc = vpc;
  t.vpc_gen = gen;
  t.proto = 17;
  t.src = Ipv4Addr{src};
  t.dst = Ipv4Addr{dst};
  t.sport = sport;
  t.dport = dport;
  return t;
}

ConnTableOptions small(uint32_t max = 1000, uint32_t per_vpc = 1000) {
  ConnTableOptions o;
  o.max_conns = max;
  o.max_conns_per_vpc = per_vpc;
  o.shards = 4;
  return o;
}

TEST(ConnTable, EntryIsOneCacheLine) {
  EXPECT_EQ(sizeof(Conn), 64u);
  EXPECT_LE(ConnTable::kBytesPerConn, 256u);
}

TEST(ConnTable, NormalizeIsSymmetric) {
  const FlowTuple t = tuple(0x0a000002, 0x0a000003, 1000, 53);
  const NormalizedKey a = normalize(t), b = normalize(t.reversed());
  EXPECT_EQ(a.key, b.key);
  EXPECT_NE(a.src_is_a, b.src_is_a);
  EXPECT_EQ(conn_hash(a.key), conn_hash(b.key));
  // Different VPC generation: a different key.
  EXPECT_NE(normalize(tuple(0x0a000002, 0x0a000003, 1000, 53, 1, 8)).key, a.key);
  // Same addresses, ports decide the order.
  const NormalizedKey s = normalize(tuple(5, 5, 9, 3));
  EXPECT_FALSE(s.src_is_a);
  EXPECT_EQ(s.key.port_a, 3);
}

TEST(ConnTable, InsertLookupErase) {
  ConnTable t(small());
  const ConnKey k = normalize(tuple(1, 2, 3, 4)).key;
  {
    auto lk = t.lookup(k);
    EXPECT_EQ(lk.conn(), nullptr);
    ASSERT_EQ(lk.insert(100, TimeoutClass::kUdp), InsertResult::kOk);
    EXPECT_EQ(lk.conn()->key, k);
    EXPECT_EQ(lk.conn()->last_seen, 100u);
  }
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(t.vpc_size(1, 7), 1u);
  {
    auto lk = t.lookup(k);
    ASSERT_NE(lk.conn(), nullptr);
    lk.erase();
    EXPECT_EQ(lk.conn(), nullptr);
  }
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.vpc_size(1, 7), 0u);
  EXPECT_EQ(t.lookup(k).conn(), nullptr);
}

// Many inserts and erases in random order against a reference map: the index's backward-shift deletion keeps every
// remaining key reachable.
TEST(ConnTable, RandomInsertEraseMatchesReference) {
  ConnTable t(small(20000, 20000));
  std::mt19937 rng(42);
  std::unordered_map<uint64_t, bool> ref;
  for (int round = 0; round < 40000; ++round) {
    const uint32_t a = rng() % 3000;
    const ConnKey k = normalize(tuple(a, 0x0a000001, uint16_t(a * 7), 80)).key;
    auto lk = t.lookup(k);
    const bool present = ref[a];
    ASSERT_EQ(lk.conn() != nullptr, present) << "round " << round;
    if (present) {
      lk.erase();
      ref[a] = false;
    } else {
      ASSERT_EQ(lk.insert(1, TimeoutClass::kUdp), InsertResult::kOk);
      ref[a] = true;
    }
  }
  size_t n = 0;
  for (auto& [a, p] : ref) n += p;
  EXPECT_EQ(t.size(), n);
}

TEST(ConnTable, ExpiresByTimeoutClassAndRefresh) {
  ConnTableOptions o = small();
  o.timeout_s[size_t(TimeoutClass::kUdp)] = 30;
  o.timeout_s[size_t(TimeoutClass::kTcpClosed)] = 10;
  ConnTable t(o);
  const ConnKey k1 = normalize(tuple(1, 2, 3, 4)).key, k2 = normalize(tuple(5, 6, 7, 8)).key;
  const ConnKey k3 = normalize(tuple(9, 10, 11, 12)).key;
  ASSERT_EQ(t.lookup(k1).insert(1000, TimeoutClass::kUdp), InsertResult::kOk);
  ASSERT_EQ(t.lookup(k2).insert(1000, TimeoutClass::kUdp), InsertResult::kOk);
  ASSERT_EQ(t.lookup(k3).insert(1000, TimeoutClass::kUdp), InsertResult::kOk);
  {  // k2 seen again at 1020
    auto lk = t.lookup(k2);
    lk.conn()->last_seen = 1020;
  }
  {  // k3 reset: shorter class, rescheduled
    auto lk = t.lookup(k3);
    lk.conn()->last_seen = 1001;
    lk.conn()->tclass = uint8_t(TimeoutClass::kTcpClosed);
    lk.reschedule();
  }
  EXPECT_EQ(t.expire(1010, 1000), 0u);
  EXPECT_EQ(t.expire(1011, 1000), 1u);  // k3: 1001 + 10
  EXPECT_EQ(t.lookup(k3).conn(), nullptr);
  EXPECT_EQ(t.expire(1029, 1000), 0u);
  EXPECT_EQ(t.expire(1030, 1000), 1u);  // k1
  EXPECT_EQ(t.lookup(k1).conn(), nullptr);
  EXPECT_NE(t.lookup(k2).conn(), nullptr);
  EXPECT_EQ(t.expire(1049, 1000), 0u);
  EXPECT_EQ(t.expire(1050, 1000), 1u);  // k2: 1020 + 30
  EXPECT_EQ(t.size(), 0u);
}

TEST(ConnTable, ExpiryBudgetAndHorizon) {
  ConnTableOptions o = small(10000, 10000);
  o.timeout_s[size_t(TimeoutClass::kUdp)] = 5;
  o.timeout_s[size_t(TimeoutClass::kTcpEstablished)] = 86400;  // beyond the wheel's horizon
  ConnTable t(o);
  for (uint32_t i = 0; i < 1000; ++i) ASSERT_EQ(t.lookup(normalize(tuple(i, 1, 2, 3)).key).insert(100, TimeoutClass::kUdp), InsertResult::kOk);
  const ConnKey longk = normalize(tuple(99999, 1, 2, 3)).key;
  ASSERT_EQ(t.lookup(longk).insert(100, TimeoutClass::kTcpEstablished), InsertResult::kOk);
  // A budget bounds the work of one call; repeated calls finish the job.
  EXPECT_EQ(t.expire(105, 100), 100u);
  size_t total = 100;
  for (int i = 0; i < 20 && total < 1000; ++i) total += t.expire(105, 100);
  EXPECT_EQ(total, 1000u);
  // The long entry survives parking at the horizon, then expires on time.
  for (uint32_t now = 200; now < 100 + 86400; now += 3000) EXPECT_EQ(t.expire(now, 100000), 0u) << now;
  EXPECT_EQ(t.expire(100 + 86399, 100000), 0u);
  EXPECT_EQ(t.expire(100 + 86400, 100000), 1u);
  EXPECT_EQ(t.size(), 0u);
}

TEST(ConnTable, GlobalAndPerVpcLimits) {
  ConnTable t(small(5, 3));
  for (uint32_t i = 0; i < 3; ++i)
    EXPECT_EQ(t.lookup(normalize(tuple(i, 100, 1, 1, 1)).key).insert(10, TimeoutClass::kUdp), InsertResult::kOk);
  EXPECT_EQ(t.lookup(normalize(tuple(9, 100, 1, 1, 1)).key).insert(10, TimeoutClass::kUdp), InsertResult::kVpcFull);
  // Another VPC is not affected by VPC 1's limit, but by the global one.
  EXPECT_EQ(t.lookup(normalize(tuple(1, 100, 1, 1, 2)).key).insert(10, TimeoutClass::kUdp), InsertResult::kOk);
  EXPECT_EQ(t.lookup(normalize(tuple(2, 100, 1, 1, 2)).key).insert(10, TimeoutClass::kUdp), InsertResult::kOk);
  EXPECT_EQ(t.lookup(normalize(tuple(3, 100, 1, 1, 2)).key).insert(10, TimeoutClass::kUdp), InsertResult::kGlobalFull);
  EXPECT_EQ(t.size(), 5u);
  // Existing entries are still found.
  EXPECT_NE(t.lookup(normalize(tuple(0, 100, 1, 1, 1)).key).conn(), nullptr);
  // A reused VPC slot (new gen) starts its own count.
  {
    auto lk = t.lookup(normalize(tuple(0, 100, 1, 1, 1)).key);
    lk.erase();
  }
  EXPECT_EQ(t.lookup(normalize(tuple(7, 100, 1, 1, 1, 8)).key).insert(10, TimeoutClass::kUdp), InsertResult::kOk);
  EXPECT_EQ(t.vpc_size(1, 8), 1u);
  EXPECT_EQ(t.vpc_size(1, 7), 0u);
}

// Two workers insert, look up and expire at once (run under TSan in the sanitizer build to check the locking).
TEST(ConnTable, TwoThreads) {
  ConnTable t(small(100000, 100000));
  auto work = [&](uint32_t base) {
    for (uint32_t i = 0; i < 20000; ++i) {
      const ConnKey k = normalize(tuple(base + i % 5000, 1, 2, 3)).key;
      auto lk = t.lookup(k);
      if (!lk.conn()) {
        (void)lk.insert(100 + i / 1000, TimeoutClass::kUdp);
      } else {
        lk.conn()->last_seen = 100 + i / 1000;
      }
      lk.release();
      if (i % 1000 == 0) t.expire(100 + i / 1000, 500, base == 0 ? 0 : 1, 2);
    }
  };
  std::thread a(work, 0), b(work, 2500);  // overlapping key ranges
  a.join();
  b.join();
  EXPECT_LE(t.size(), 7500u);
  EXPECT_GT(t.size(), 0u);
}

}  // namespace
}  // namespace vpcd::dp
