// OsReaper: jobs run off the calling thread on a pool; jobs sharing a key never run at the same time and keep their
// order, disjoint ones run concurrently; wait_clear waits exactly for the jobs holding one of the keys (queued or
// running, until what they captured is released); the destructor runs what is still queued.
#include "datapath/control/os_reaper.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace vpcd::dp {
namespace {

using namespace std::chrono_literals;

// A gate a job waits at until the test opens it.
struct Gate {
  std::promise<void> p;
  std::shared_future<void> f = p.get_future().share();
  void open() { p.set_value(); }
};

TEST(OsReaper, OneThreadRunsJobsInOrderOffTheCallingThread) {
  std::mutex mu;
  std::vector<int> order;
  std::vector<std::thread::id> ran_on;
  {
    OsReaper r(1);
    EXPECT_EQ(r.max_threads(), 1u);
    for (int i = 0; i < 5; ++i)
      r.submit({"if:x" + std::to_string(i)}, [&, i] {
        std::scoped_lock lk(mu);
        order.push_back(i);
        ran_on.push_back(std::this_thread::get_id());
      });
    r.wait_idle();
    EXPECT_EQ(r.jobs_done(), 5u);
    EXPECT_EQ(r.threads(), 1u);
  }
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
  for (auto id : ran_on) EXPECT_NE(id, std::this_thread::get_id());
}

TEST(OsReaper, JobsSharingAKeyNeverRunTogetherAndKeepTheirOrder) {
  // 400 jobs over 6 keys, each naming one or two of them, on 8 threads: per key at most one running job, and the
  // jobs naming a key start in submission order.
  const std::vector<std::string> names = {"if:a", "if:b", "if:c", "netns:a", "netns:b", "netns:c"};
  std::mutex mu;
  std::map<std::string, int> active;            // key -> running jobs holding it
  std::map<std::string, std::vector<int>> seq;  // key -> jobs holding it, in the order they started
  std::map<std::string, std::vector<int>> submitted;
  int overlaps = 0;
  std::mt19937 rng(7);
  {
    OsReaper r(8);
    for (int i = 0; i < 400; ++i) {
      std::vector<std::string> keys = {names[rng() % names.size()]};
      if (rng() % 2) keys.push_back(names[rng() % names.size()]);  // may repeat the first: held once
      std::set<std::string> uniq(keys.begin(), keys.end());
      for (const auto& k : uniq) submitted[k].push_back(i);
      r.submit(keys, [&, uniq, i] {
        {
          std::scoped_lock lk(mu);
          for (const auto& k : uniq) {
            if (active[k]++ > 0) ++overlaps;
            seq[k].push_back(i);
          }
        }
        std::this_thread::yield();
        std::scoped_lock lk(mu);
        for (const auto& k : uniq) --active[k];
      });
    }
    r.wait_idle();
    EXPECT_EQ(r.jobs_done(), 400u);
  }
  EXPECT_EQ(overlaps, 0);
  for (const auto& k : names) EXPECT_EQ(seq[k], submitted[k]) << k;
}

TEST(OsReaper, JobsWithDisjointKeysRunAtTheSameTime) {
  // Four jobs on four threads each wait (bounded) until all four are running: only concurrent jobs all see four.
  constexpr int kJobs = 4;
  std::mutex mu;
  std::condition_variable cv;
  int running = 0;
  std::atomic<int> saw_all{0};
  {
    OsReaper r(kJobs);
    for (int i = 0; i < kJobs; ++i)
      r.submit({"if:d" + std::to_string(i), "netns:d" + std::to_string(i)}, [&] {
        std::unique_lock lk(mu);
        ++running;
        cv.notify_all();
        if (cv.wait_for(lk, 10s, [&] { return running == kJobs; })) ++saw_all;
      });
    r.wait_idle();
  }
  EXPECT_EQ(saw_all.load(), kJobs);
}

TEST(OsReaper, StartsThreadsOnDemandUpToItsMaximum) {
  OsReaper r(4);
  EXPECT_EQ(r.max_threads(), 4u);
  EXPECT_EQ(r.threads(), 0u);  // nothing submitted: no thread
  Gate gate;
  std::atomic<int> ran{0};
  for (int i = 0; i < 3; ++i)
    r.submit({"if:g" + std::to_string(i)}, [f = gate.f, &ran] {
      f.wait();
      ++ran;
    });
  EXPECT_EQ(r.threads(), 3u);  // one per job while each is busy
  for (int i = 3; i < 10; ++i)
    r.submit({"if:g" + std::to_string(i)}, [f = gate.f, &ran] {
      f.wait();
      ++ran;
    });
  EXPECT_EQ(r.threads(), 4u);  // never more than the maximum
  gate.open();
  r.wait_idle();
  EXPECT_EQ(ran.load(), 10);
  EXPECT_EQ(r.threads(), 4u);
}

TEST(OsReaper, WaitClearWaitsForAJobHoldingTheKeyOnly) {
  OsReaper r;
  Gate gate;
  std::atomic<bool> done{false};
  r.submit({"if:a", "netns:n"}, [f = gate.f, &done] {
    f.wait();
    done = true;
  });
  r.wait_clear({"if:b", "netns:m"});  // other names: returns while the job is blocked
  EXPECT_FALSE(done.load());
  auto waiter = std::async(std::launch::async, [&] {
    r.wait_clear({"if:b", "netns:n"});
    return done.load();
  });
  EXPECT_EQ(waiter.wait_for(50ms), std::future_status::timeout);
  gate.open();
  EXPECT_TRUE(waiter.get());  // returned only after the job holding netns:n finished
}

TEST(OsReaper, WaitClearWaitsForEveryHolderQueuedOrRunningAndForWhatTheyCaptured) {
  // k is held by a running job and by one queued behind it; x by an unrelated running job that stays blocked.
  OsReaper r(4);
  Gate first, second, other;
  std::atomic<int> k_done{0};
  std::atomic<bool> released{false};  // what the second job captured was destroyed
  std::shared_ptr<int> captured(new int(0), [&](int* p) {
    delete p;
    released = true;
  });
  r.submit({"if:k"}, [f = first.f, &k_done] {
    f.wait();
    ++k_done;
  });
  r.submit({"if:k", "netns:k"}, [f = second.f, &k_done, c = std::move(captured)] {
    f.wait();
    ++k_done;
  });
  r.submit({"if:x"}, [f = other.f] { f.wait(); });
  auto waiter = std::async(std::launch::async, [&] {
    r.wait_clear({"netns:k"});  // held only by the second job, queued behind the first
    return std::make_pair(k_done.load(), released.load());
  });
  first.open();
  EXPECT_EQ(waiter.wait_for(50ms), std::future_status::timeout);
  second.open();
  auto [n, rel] = waiter.get();
  EXPECT_EQ(n, 2);
  EXPECT_TRUE(rel);  // the keys were let go only after the job's captures were released
  r.wait_clear({"if:k"});
  other.open();
  r.wait_idle();
  EXPECT_EQ(r.jobs_done(), 3u);
}

TEST(OsReaper, WaitIdleWaitsForEveryJob) {
  OsReaper r(3);
  Gate gate;
  std::atomic<int> ran{0};
  for (int i = 0; i < 6; ++i)
    r.submit({"if:w" + std::to_string(i)}, [f = gate.f, &ran] {
      f.wait();
      ++ran;
    });
  auto waiter = std::async(std::launch::async, [&] {
    r.wait_idle();
    return ran.load();
  });
  EXPECT_EQ(waiter.wait_for(50ms), std::future_status::timeout);
  gate.open();
  EXPECT_EQ(waiter.get(), 6);
}

TEST(OsReaper, DestructorRunsQueuedJobsAndAJobThatThrowsDoesNotStopIt) {
  std::atomic<int> ran{0};
  {
    OsReaper r;
    r.submit({"k"}, [] { throw std::runtime_error("boom"); });
    for (int i = 0; i < 3; ++i) r.submit({"k"}, [&] { ++ran; });
    for (int i = 0; i < 20; ++i) r.submit({"k" + std::to_string(i)}, [&] { ++ran; });
  }
  EXPECT_EQ(ran.load(), 23);
}

}  // namespace
}  // namespace vpcd::dp
