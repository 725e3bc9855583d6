// The learned MacTable under concurrent writers and readers (the worker threads of one VPC): a lookup may return an
// old or a new entry, but never a port that no writer learned for that MAC, and a MAC moving between two ports ends
// up on the last writer's port once writers stop. Bounded in time; run under TSan as well as ASan.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "datapath/tables/mac_table.h"

namespace vpcd::dp {
namespace {

TEST(MacTableConcurrency, ReadersNeverSeeAPortNotLearnedForTheMac) {
  MacTable t(1024, 300);  // roomy: 192 distinct MACs never fill a probe window
  constexpr int kMacs = 64;
  auto mac_of = [](int i) { return MacAddr::from_u64(0x020000000100ull + uint64_t(i)); };
  // MAC i flaps between ports 2i and 2i+1 (seqs 1000+port); a third writer keeps learning unrelated MACs.
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> bad{0}, seen{0};
  auto writer = [&](int which) {
    uint32_t now = 10;
    for (int round = 0; !stop.load(std::memory_order_relaxed); ++round) {
      for (int i = 0; i < kMacs; ++i) {
        uint16_t port = uint16_t(2 * i + which);
        t.learn(mac_of(i), port, 1000 + port, now);
      }
      if (round % 16 == 0) ++now;
    }
  };
  auto noise = [&] {
    for (uint64_t n = 0; !stop.load(std::memory_order_relaxed); ++n)
      t.learn(MacAddr::from_u64(0x02aa00000000ull + n % 64), 999, 5, 10);
  };
  auto reader = [&] {
    MacTable::Entry e;
    while (!stop.load(std::memory_order_relaxed)) {
      for (int i = 0; i < kMacs; ++i) {
        if (!t.lookup(mac_of(i), 10, e)) continue;
        seen.fetch_add(1, std::memory_order_relaxed);
        if (e.port != 2 * i && e.port != 2 * i + 1) bad.fetch_add(1, std::memory_order_relaxed);
      }
    }
  };
  std::vector<std::thread> threads;
  threads.emplace_back(writer, 0);
  threads.emplace_back(writer, 1);
  threads.emplace_back(noise);
  threads.emplace_back(reader);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  stop.store(true);
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0u);
  EXPECT_GT(seen.load(), 0u);

  // Quiescent: one more learn per MAC decides it.
  for (int i = 0; i < kMacs; ++i) t.learn(mac_of(i), uint16_t(2 * i + 1), 1001 + 2 * i, 20);
  MacTable::Entry e;
  int found = 0;
  for (int i = 0; i < kMacs; ++i)
    if (t.lookup(mac_of(i), 20, e)) {
      ++found;
      EXPECT_EQ(e.port, 2 * i + 1);
      EXPECT_EQ(e.seq32, uint32_t(1001 + 2 * i));
    }
  EXPECT_EQ(found, kMacs);
  EXPECT_EQ(t.learn_full(), 0u);
}

}  // namespace
}  // namespace vpcd::dp
