// SnapshotPublisher: generations, acks, reclamation only on the control thread, eventfd wake-ups, and a concurrent
// publish loop against spinning and sleeping readers (run this file under -fsanitize=thread by hand as well).
#include "datapath/pipeline/publisher.h"

#include <gtest/gtest.h>
#include <poll.h>

#include <atomic>
#include <thread>
#include <vector>

namespace vpcd::dp {
namespace {

// Records the thread that destroyed it, and counts live instances.
struct Probe {
  static inline std::atomic<int> live{0};
  static inline std::atomic<int> destroyed_off_control{0};
  static inline std::thread::id control;
  uint64_t value;
  explicit Probe(uint64_t v) : value(v) { live.fetch_add(1); }
  ~Probe() {
    if (std::this_thread::get_id() != control) destroyed_off_control.fetch_add(1);
    live.fetch_sub(1);
  }
};

class PublisherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Probe::control = std::this_thread::get_id();
    Probe::live = 0;
    Probe::destroyed_off_control = 0;
  }
};

TEST_F(PublisherTest, RetiredSnapshotsFreedOnlyAfterEveryReaderAcked) {
  SnapshotPublisher<Probe> pub(2, std::make_shared<const Probe>(1));
  EXPECT_EQ(pub.generation(), 1u);
  auto [s1, g1] = pub.take();
  ASSERT_EQ(g1, 1u);
  pub.ack(0, g1);
  pub.ack(1, g1);
  s1.reset();

  uint64_t g2 = pub.publish(std::make_shared<const Probe>(2));
  EXPECT_EQ(g2, 2u);
  EXPECT_EQ(pub.generation(), 2u);
  EXPECT_EQ(pub.retired_count(), 1u);  // nobody acked 2 yet
  EXPECT_EQ(Probe::live.load(), 2);

  auto [r0, gr0] = pub.take();
  EXPECT_EQ(r0->value, 2u);
  pub.ack(0, gr0);
  EXPECT_EQ(pub.reclaim(), 0u);  // reader 1 still on generation 1
  EXPECT_FALSE(pub.wait_acked(2, std::chrono::milliseconds(30)));
  pub.ack(1, 2);
  EXPECT_TRUE(pub.wait_acked(2, std::chrono::milliseconds(30)));
  EXPECT_EQ(pub.retired_count(), 0u);
  EXPECT_EQ(Probe::live.load(), 1);
  EXPECT_EQ(pub.next_generation(), 3u);
}

TEST_F(PublisherTest, PublishWakesEveryReaderThroughItsEventfd) {
  SnapshotPublisher<Probe> pub(3);
  for (unsigned r = 0; r < 3; ++r) {
    pollfd p{pub.wake_fd(r), POLLIN, 0};
    EXPECT_EQ(::poll(&p, 1, 0), 0) << "reader " << r;
  }
  pub.publish(std::make_shared<const Probe>(7));
  for (unsigned r = 0; r < 3; ++r) {
    pollfd p{pub.wake_fd(r), POLLIN, 0};
    EXPECT_EQ(::poll(&p, 1, 0), 1) << "reader " << r;
    pub.clear_wake(r);
    EXPECT_EQ(::poll(&p, 1, 0), 0) << "reader " << r;
  }
}

// Readers follow the STYLE.md section 4 loop; half of them sleep in poll() on their eventfd between checks. The
// control thread publishes in a loop and waits for acks each time; no snapshot may be destroyed off the control thread.
TEST_F(PublisherTest, ConcurrentPublishLoopDestroysOnlyOnControlThread) {
  constexpr unsigned kReaders = 4;
  constexpr uint64_t kPublishes = 2000;
  SnapshotPublisher<Probe> pub(kReaders, std::make_shared<const Probe>(1));
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> bad_values{0};
  std::vector<std::thread> readers;
  for (unsigned r = 0; r < kReaders; ++r) {
    readers.emplace_back([&, r] {
      std::shared_ptr<const Probe> cfg;
      uint64_t seen = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        if (uint64_t g = pub.generation(); g != seen) {
          auto [p, taken] = pub.take();
          cfg = std::move(p);
          seen = taken;
          pub.ack(r, taken);
        }
        // Use the snapshot: its value is its generation (published that way below).
        if (cfg && cfg->value != seen) bad_values.fetch_add(1);
        if (r % 2) {
          pollfd p{pub.wake_fd(r), POLLIN, 0};
          if (::poll(&p, 1, 5) > 0) pub.clear_wake(r);
        }
      }
      // Still referenced by the publisher's current/retired lists: this reset must not be the last one.
      cfg.reset();
    });
  }
  for (uint64_t i = 0; i < kPublishes; ++i) {
    uint64_t next = pub.next_generation();
    uint64_t g = pub.publish(std::make_shared<const Probe>(next));
    EXPECT_EQ(g, next);
    if (i % 10 == 0 && !pub.wait_acked(g, std::chrono::seconds(5))) {
      ADD_FAILURE() << "readers did not ack generation " << g;
      break;
    }
  }
  uint64_t last = pub.generation();
  EXPECT_TRUE(pub.wait_acked(last, std::chrono::seconds(5)));
  EXPECT_EQ(pub.retired_count(), 0u);
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(Probe::live.load(), 1);  // only the current snapshot
  EXPECT_EQ(bad_values.load(), 0u);
  EXPECT_EQ(Probe::destroyed_off_control.load(), 0);
  for (unsigned r = 0; r < kReaders; ++r) EXPECT_EQ(pub.acked(r), last);
}

}  // namespace
}  // namespace vpcd::dp
