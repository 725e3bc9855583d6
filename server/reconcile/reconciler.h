// The reconciler: turns the store's desired state into the datapath's state. Level-triggered and coalescing: notify()
// (called by the API after each committed write) only sets a flag and wakes the reconciler thread; the thread then
// loads the whole desired state, applies it to the datapath, and writes back each NIC's and uplink's state when it
// changed. Many notifications during one pass cause exactly one more pass. A pass that fails (store busy, exception)
// is retried after a back-off, and a periodic resync repairs drift (a namespace someone deleted, a NIC stuck in error,
// an uplink whose interface appeared).
//
// start() runs the first pass synchronously (everything in the store is rebuilt before the API opens); after the first
// successful pass, remove_stale_os_objects() cleans up what a crash left behind: a restart or a kill -9 loses nothing
// and needs no API call.
//
// Threading: notify() and stats() may be called from any thread (HTTP io threads). Everything else runs on the one
// reconciler thread (or on the caller of start(), before that thread exists). The store and datapath interfaces are
// only called from that one thread at a time.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "datapath/controller.h"

namespace vpcd::reconcile {

// What the reconciler needs from the store (server/store adapts to this; tests fake it).
class DesiredStateSource {
 public:
  virtual ~DesiredStateSource() = default;
  virtual dp::DesiredState load_desired_state() = 0;
  virtual void set_nic_state(const std::string& nic_id, const dp::NicState& state) = 0;
  virtual void set_uplink_state(const std::string& uplink_id, const dp::NicState& state) = 0;
};

// What the reconciler needs from the datapath (dp::Controller adapts to this; tests fake it).
class DatapathTarget {
 public:
  virtual ~DatapathTarget() = default;
  virtual std::map<std::string, dp::NicState> apply(const dp::DesiredState& desired) = 0;
  // The state of each uplink the datapath drives, by id (read after apply()).
  virtual std::map<std::string, dp::NicState> uplink_states() = 0;
  virtual void remove_stale_os_objects() = 0;
};

struct ReconcilerOptions {
  std::chrono::milliseconds retry_backoff{500};  // after a failed pass
  std::chrono::milliseconds resync_interval{30000};  // a full pass even without notify(); 0 = never
};

struct ReconcilerStats {
  uint64_t passes = 0;         // completed passes (apply returned)
  uint64_t failed_passes = 0;  // passes that threw (store or datapath)
  uint64_t notifications = 0;  // notify() calls
  uint64_t state_writes = 0;   // set_nic_state() and set_uplink_state() calls
  uint64_t last_pass_us = 0;   // duration of the last completed pass
  uint64_t max_pass_us = 0;
  // Time from the oldest notify() not yet served to the end of the pass that served it.
  uint64_t last_notify_to_applied_us = 0;
  uint64_t max_notify_to_applied_us = 0;
  std::string last_error;
};

class Reconciler {
 public:
  Reconciler(DesiredStateSource& source, DatapathTarget& target, ReconcilerOptions opts = {});
  ~Reconciler();  // stop()
  Reconciler(const Reconciler&) = delete;
  Reconciler& operator=(const Reconciler&) = delete;

  // First pass (synchronous, on the caller's thread) with the stale OS object clean-up, then the thread starts.
  // Returns false when the first pass failed (the thread still starts and keeps retrying).
  bool start();
  // Wakes the thread for one more pass; cheap, never blocks on a pass in progress.
  void notify();
  // Finishes the pass in progress (if any) and joins the thread. Idempotent.
  void stop();
  // Blocks until every notify() made before this call has been served by a completed pass, or `timeout` passed.
  bool wait_idle(std::chrono::milliseconds timeout);

  ReconcilerStats stats() const;

 private:
  bool run_pass();  // true = apply completed
  void thread_main();

  DesiredStateSource& source_;
  DatapathTarget& target_;
  const ReconcilerOptions opts_;

  mutable std::mutex mu_;  // guards everything below
  std::condition_variable cv_;
  bool dirty_ = false;     // written by notify(), cleared by the thread when it starts a pass
  bool stopping_ = false;
  uint64_t requested_seq_ = 0;  // notify() count
  uint64_t served_seq_ = 0;     // highest notify() sequence a completed pass has covered
  std::chrono::steady_clock::time_point oldest_pending_{};  // time of the first notify() since the last pass began
  bool pending_time_valid_ = false;
  ReconcilerStats stats_;
  std::condition_variable idle_cv_;

  // Only touched by the reconciler thread (or start() before it exists).
  std::map<std::string, dp::NicState> written_;         // the NIC states last written to the store
  std::map<std::string, dp::NicState> written_uplinks_;  // the uplink states last written to the store
  bool stale_removed_ = false;                   // remove_stale_os_objects() done after the first good pass
  std::thread thread_;
};

}  // namespace vpcd::reconcile
