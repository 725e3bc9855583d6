// See reconciler.h.
//
// Threading: mu_ guards the flags, sequence numbers and stats; the store and the datapath are called without it held,
// so notify() never waits for a pass.
#include "server/reconcile/reconciler.h"

#include <exception>
#include <set>

#include "server/common/log.h"

namespace vpcd::reconcile {

namespace {

// Writes each state in `states` whose object the store still has (`wanted`) and that differs from what was last
// written (`written`, updated; objects gone from the store are forgotten). Returns the number of writes.
template <class Write>
uint64_t write_back(const std::map<std::string, dp::NicState>& states, const std::set<std::string>& wanted,
                    std::map<std::string, dp::NicState>& written, Write write) {
  uint64_t writes = 0;
  for (const auto& [id, st] : states) {
    if (!wanted.count(id)) continue;  // the datapath reports an object the store no longer has
    auto it = written.find(id);
    if (it != written.end() && it->second == st) continue;
    write(id, st);
    written[id] = st;
    ++writes;
  }
  for (auto it = written.begin(); it != written.end();) it = wanted.count(it->first) ? std::next(it) : written.erase(it);
  return writes;
}

using Clock = std::chrono::steady_clock;

uint64_t micros_since(Clock::time_point t) {
  return uint64_t(std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t).count());
}


}  // namespace

Reconciler::Reconciler(DesiredStateSource& source, DatapathTarget& target, ReconcilerOptions opts)
    : source_(source), target_(target), opts_(opts) {}

Reconciler::~Reconciler() { stop(); }

bool Reconciler::start() {
  const bool ok = run_pass();
  {
    std::lock_guard lk(mu_);
    if (!ok) dirty_ = true;  // the thread retries after its back-off
    stopping_ = false;
  }
  thread_ = std::thread([this] { thread_main(); });
  return ok;
}

void Reconciler::notify() {
  {
    std::lock_guard lk(mu_);
    ++requested_seq_;
    ++stats_.notifications;
    if (!pending_time_valid_) {
      oldest_pending_ = Clock::now();
      pending_time_valid_ = true;
    }
    dirty_ = true;
  }
  cv_.notify_one();
}

void Reconciler::stop() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  idle_cv_.notify_all();
}

bool Reconciler::wait_idle(std::chrono::milliseconds timeout) {
  std::unique_lock lk(mu_);
  const uint64_t want = requested_seq_;
  return idle_cv_.wait_for(lk, timeout, [&] { return served_seq_ >= want; });
}

ReconcilerStats Reconciler::stats() const {
  std::lock_guard lk(mu_);
  return stats_;
}

bool Reconciler::run_pass() {
  uint64_t seq = 0;
  bool timed = false;
  Clock::time_point oldest;
  {
    std::lock_guard lk(mu_);
    dirty_ = false;
    seq = requested_seq_;
    timed = pending_time_valid_;
    oldest = oldest_pending_;
    pending_time_valid_ = false;
  }
  const auto started = Clock::now();
  std::string error;
  uint64_t writes = 0;
  try {
    const dp::DesiredState desired = source_.load_desired_state();
    const auto states = target_.apply(desired);
    std::set<std::string> wanted;
    for (const auto& nic : desired.nics) wanted.insert(nic.id);
    writes += write_back(states, wanted, written_,
                         [&](const std::string& id, const dp::NicState& st) { source_.set_nic_state(id, st); });
    std::set<std::string> wanted_uplinks;
    for (const auto& u : desired.uplinks) wanted_uplinks.insert(u.id);
    writes += write_back(target_.uplink_states(), wanted_uplinks, written_uplinks_,
                         [&](const std::string& id, const dp::NicState& st) { source_.set_uplink_state(id, st); });
  } catch (const std::exception& e) {
    error = e.what();
  } catch (...) {
    error = "unknown exception";
  }
  const uint64_t pass_us = micros_since(started);
  {
    std::lock_guard lk(mu_);
    stats_.state_writes += writes;
    if (!error.empty()) {
      ++stats_.failed_passes;
      stats_.last_error = error;
      if (timed && !pending_time_valid_) {  // still owed: keep the original notify time
        oldest_pending_ = oldest;
        pending_time_valid_ = true;
      }
    } else {
      ++stats_.passes;
      stats_.last_pass_us = pass_us;
      if (pass_us > stats_.max_pass_us) stats_.max_pass_us = pass_us;
      if (timed) {
        const uint64_t lat = micros_since(oldest);
        stats_.last_notify_to_applied_us = lat;
        if (lat > stats_.max_notify_to_applied_us) stats_.max_notify_to_applied_us = lat;
      }
      if (seq > served_seq_) served_seq_ = seq;
    }
  }
  if (!error.empty()) {
    log::error("reconciler: pass failed (will retry): " + error);
    return false;
  }
  if (!stale_removed_) {
    // Only after a successful apply: the datapath then knows the complete desired state and keeps all of it.
    stale_removed_ = true;
    try {
      target_.remove_stale_os_objects();
    } catch (const std::exception& e) {
      log::error(std::string("reconciler: removing stale OS objects: ") + e.what());
    }
  }
  idle_cv_.notify_all();
  return true;
}

void Reconciler::thread_main() {
  std::unique_lock lk(mu_);
  while (!stopping_) {
    const auto pred = [&] { return dirty_ || stopping_; };
    if (opts_.resync_interval.count() > 0) {
      cv_.wait_for(lk, opts_.resync_interval, pred);
    } else {
      cv_.wait(lk, pred);
    }
    if (stopping_) break;
    lk.unlock();
    const bool ok = run_pass();
    lk.lock();
    if (!ok) {
      cv_.wait_for(lk, opts_.retry_backoff, [&] { return stopping_; });
      dirty_ = true;
    }
  }
}

}  // namespace vpcd::reconcile
