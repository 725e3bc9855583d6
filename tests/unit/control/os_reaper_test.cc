// OsReaper: jobs run in order on its own thread; wait_clear waits only for jobs holding one of the keys; the
// destructor runs what is still queued.
#include "datapath/control/os_reaper.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace vpcd::dp {
namespace {

TEST(OsReaper, RunsJobsInOrderOffTheCallingThread) {
  std::mutex mu;
  std::vector<int> order;
  std::vector<std::thread::id> ran_on;
  {
    OsReaper r;
    for (int i = 0; i < 5; ++i)
      r.submit({"if:x" + std::to_string(i)}, [&, i] {
        std::scoped_lock lk(mu);
        order.push_back(i);
        ran_on.push_back(std::this_thread::get_id());
      });
    r.wait_idle();
    EXPECT_EQ(r.jobs_done(), 5u);
  }
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
  for (auto id : ran_on) EXPECT_NE(id, std::this_thread::get_id());
}

TEST(OsReaper, WaitClearWaitsForAJobHoldingTheKeyOnly) {
  OsReaper r;
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  std::atomic<bool> done{false};
  r.submit({"if:a", "netns:n"}, [gate, &done] {
    gate.wait();
    done = true;
  });
  r.wait_clear({"if:b", "netns:m"});  // other names: returns while the job is blocked
  EXPECT_FALSE(done.load());
  auto waiter = std::async(std::launch::async, [&] {
    r.wait_clear({"if:b", "netns:n"});
    return done.load();
  });
  EXPECT_EQ(waiter.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout);
  release.set_value();
  EXPECT_TRUE(waiter.get());  // returned only after the job holding netns:n finished
}

TEST(OsReaper, DestructorRunsQueuedJobsAndAJobThatThrowsDoesNotStopIt) {
  std::atomic<int> ran{0};
  {
    OsReaper r;
    r.submit({"k"}, [] { throw std::runtime_error("boom"); });
    for (int i = 0; i < 3; ++i) r.submit({"k"}, [&] { ++ran; });
  }
  EXPECT_EQ(ran.load(), 3);
}

}  // namespace
}  // namespace vpcd::dp
