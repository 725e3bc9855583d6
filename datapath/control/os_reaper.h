// OsReaper: removes a deleted NIC's OS objects (closes its AF_PACKET sockets, deletes its veth pair and namespace) on
// a thread of its own, so the apply step that follows does not wait for them. Closing a socket with rings waits for
// RCU grace periods in the kernel (packet_release and packet_set_ring call synchronize_net: two per ringed socket),
// and deleting a namespace's bind mount waits for another; together tens of milliseconds, which a NIC created right
// after a deletion used to wait for.
//
// Every job names the OS objects it removes as keys ("if:<name>", "netns:<name>"); wait_clear(keys) returns once no
// queued or running job holds any of them, so an object is never created while the old one of the same name is still
// being removed. Jobs run one at a time in submission order.
//
//   reaper.submit({"if:vn01", "netns:g1"}, [rt = std::move(rt), dev = std::move(dev)]() mutable { ... });
//   reaper.wait_clear({"if:vn01"});   // before creating vn01 again
//
// Threading: submit, wait_clear, wait_idle from any thread (the controller's control thread); the jobs run on the
// reaper's thread, which owns what a job captured from then on. The destructor runs the jobs still queued, then joins.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace vpcd::dp {

class OsReaper {
 public:
  OsReaper();
  ~OsReaper();  // finishes every queued job
  OsReaper(const OsReaper&) = delete;
  OsReaper& operator=(const OsReaper&) = delete;

  void submit(std::vector<std::string> keys, std::function<void()> job);
  // Until no queued or running job holds any of `keys`.
  void wait_clear(const std::vector<std::string>& keys);
  // Until every job submitted so far has run.
  void wait_idle();
  uint64_t jobs_done() const;

 private:
  struct Job {
    std::vector<std::string> keys;
    std::function<void()> fn;
  };
  void run();
  bool holds_any(const std::vector<std::string>& keys) const;  // mu_ held

  mutable std::mutex mu_;
  std::condition_variable work_cv_;  // a job was queued, or stop
  std::condition_variable done_cv_;  // a job finished
  std::deque<Job> queue_;            // guarded by mu_
  std::map<std::string, unsigned> busy_;  // key -> queued or running jobs holding it; guarded by mu_
  unsigned pending_ = 0;                  // queued + running jobs; guarded by mu_
  uint64_t done_ = 0;                     // guarded by mu_
  bool stop_ = false;                     // guarded by mu_
  std::thread thread_;                    // started last in the constructor
};

}  // namespace vpcd::dp
