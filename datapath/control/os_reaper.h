// OsReaper: removes a deleted NIC's OS objects (closes its AF_PACKET sockets, deletes its veth pair and namespace) on
// threads of its own, so the apply step that follows does not wait for them. Closing a socket with rings waits for
// RCU grace periods in the kernel (packet_release and packet_set_ring call synchronize_net: two per ringed socket),
// and deleting a veth pair and a namespace's bind mount wait for more; together ~90 ms per NIC, nearly all of it
// waiting, not CPU. Jobs run on a pool of up to kDefaultThreads threads, so the waits of many removals overlap
// (concurrent synchronize_net callers share grace periods): deleting 1000 NICs took 81-89 s one at a time. The pool
// grows on demand (a thread is started when a job is submitted while every thread has a job), so a box that never
// deletes a NIC has no reaper thread, and it never shrinks (an idle thread sleeps on a condition variable).
//
// Every job names the OS objects it removes as keys ("if:<name>", "netns:<name>"). Two jobs sharing a key never run
// at the same time, and run in submission order; jobs with disjoint keys run concurrently in any order. A job holds
// its keys from submit() until it has finished (and what it captured is released). wait_clear(keys) returns once no
// queued or running job holds any of them, so an object is never created while the old one of the same name is still
// being removed.
//
//   reaper.submit({"if:vn01", "netns:g1"}, [rt = std::move(rt), dev = std::move(dev)]() mutable { ... });
//   reaper.wait_clear({"if:vn01"});   // before creating vn01 again
//
// Threading: submit, wait_clear, wait_idle, jobs_done from any thread (the controller's control thread); a job runs
// on one of the reaper's threads, which owns what the job captured from then on. The destructor runs the jobs still
// queued, then joins the threads.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace vpcd::dp {

class OsReaper {
 public:
  // Measured with bench/e2e/scale.py (1000 netns NICs deleted, 8 / 16 / 32 threads): see docs/STATUS.md, Issue 12,
  // "Concurrent reaper".
  static constexpr unsigned kDefaultThreads = 32;

  explicit OsReaper(unsigned max_threads = kDefaultThreads);
  ~OsReaper();  // finishes every queued job
  OsReaper(const OsReaper&) = delete;
  OsReaper& operator=(const OsReaper&) = delete;

  void submit(std::vector<std::string> keys, std::function<void()> job);
  // Until no queued or running job holds any of `keys`.
  void wait_clear(const std::vector<std::string>& keys);
  // Until every job submitted so far has run.
  void wait_idle();
  uint64_t jobs_done() const;
  unsigned max_threads() const { return max_threads_; }
  unsigned threads() const;  // started so far

 private:
  struct Job {
    std::vector<std::string> keys;
    std::function<void()> fn;
  };
  void run();
  bool holds_any(const std::vector<std::string>& keys) const;  // mu_ held
  // The first queued job that may start now: none of its keys is held by a running job or by a job queued before it
  // (so jobs sharing a key keep their order). queue_.end() when there is none. mu_ held.
  std::list<Job>::iterator next_runnable();

  mutable std::mutex mu_;
  std::condition_variable work_cv_;  // a job was queued or finished (a held key was let go), or stop
  std::condition_variable done_cv_;  // a job finished
  std::list<Job> queue_;             // submitted, not started, in submission order; guarded by mu_
  std::set<std::string> running_;    // keys of the running jobs (each held by one at most); guarded by mu_
  std::map<std::string, unsigned> busy_;  // key -> queued or running jobs holding it; guarded by mu_
  unsigned pending_ = 0;                  // queued + running jobs; guarded by mu_
  uint64_t done_ = 0;                     // guarded by mu_
  bool stop_ = false;                     // guarded by mu_
  const unsigned max_threads_;
  std::vector<std::thread> threads_;      // started by submit() (on demand); guarded by mu_; joined by the destructor
};

}  // namespace vpcd::dp
