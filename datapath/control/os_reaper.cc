// See os_reaper.h.
#include "datapath/control/os_reaper.h"

#include <pthread.h>

#include <algorithm>
#include <cstdio>
#include <exception>

namespace vpcd::dp {

OsReaper::OsReaper(unsigned max_threads) : max_threads_(std::max(max_threads, 1u)) {}

OsReaper::~OsReaper() {
  {
    std::scoped_lock lk(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  // No submit() can run any more (the owner is being destroyed), so threads_ no longer changes.
  for (auto& t : threads_) t.join();
}

void OsReaper::submit(std::vector<std::string> keys, std::function<void()> job) {
  {
    std::scoped_lock lk(mu_);
    // A key named twice in one job is held once (running_ holds each key of a running job once).
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    for (const auto& k : keys) ++busy_[k];
    ++pending_;
    queue_.push_back(Job{std::move(keys), std::move(job)});
    // More jobs than threads: one more thread (a job waiting only for a key needs none, but costs little).
    if (pending_ > threads_.size() && threads_.size() < max_threads_) {
      const unsigned index = static_cast<unsigned>(threads_.size());
      threads_.emplace_back([this] { run(); });
      // Named here, not in run(): once submit() returns, the thread carries its name (tests count threads by name).
      const std::string name = "vpcd-reaper" + std::to_string(index);
      pthread_setname_np(threads_.back().native_handle(), name.c_str());
    }
  }
  work_cv_.notify_one();
}

bool OsReaper::holds_any(const std::vector<std::string>& keys) const {
  for (const auto& k : keys)
    if (busy_.count(k)) return true;
  return false;
}

std::list<OsReaper::Job>::iterator OsReaper::next_runnable() {
  std::set<std::string> ahead;  // keys of the queued jobs passed over: a later job sharing one waits for them
  for (auto it = queue_.begin(); it != queue_.end(); ++it) {
    const bool blocked = std::any_of(it->keys.begin(), it->keys.end(), [&](const std::string& k) {
      return running_.count(k) || ahead.count(k);
    });
    if (!blocked) return it;
    ahead.insert(it->keys.begin(), it->keys.end());
  }
  return queue_.end();
}

void OsReaper::wait_clear(const std::vector<std::string>& keys) {
  std::unique_lock lk(mu_);
  done_cv_.wait(lk, [&] { return !holds_any(keys); });
}

void OsReaper::wait_idle() {
  std::unique_lock lk(mu_);
  done_cv_.wait(lk, [&] { return pending_ == 0; });
}

unsigned OsReaper::threads() const {
  std::scoped_lock lk(mu_);
  return static_cast<unsigned>(threads_.size());
}

uint64_t OsReaper::jobs_done() const {
  std::scoped_lock lk(mu_);
  return done_;
}

void OsReaper::run() {
  std::unique_lock lk(mu_);
  for (;;) {
    auto it = queue_.end();
    work_cv_.wait(lk, [&] {
      it = next_runnable();
      return it != queue_.end() || (stop_ && queue_.empty());
    });
    if (it == queue_.end()) return;  // stop_ and nothing left to do
    Job job = std::move(*it);
    queue_.erase(it);
    running_.insert(job.keys.begin(), job.keys.end());
    // Another job may be runnable too (a thread woken for several submits took only one).
    if (!queue_.empty()) work_cv_.notify_one();
    lk.unlock();
    try {
      job.fn();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "vpcd: removing OS objects: %s\n", e.what());
    } catch (...) {
      std::fprintf(stderr, "vpcd: removing OS objects: unknown exception\n");
    }
    job.fn = nullptr;  // what the job captured (sockets, devices) is released here, on this thread
    lk.lock();
    for (const auto& k : job.keys) {
      running_.erase(k);
      if (auto b = busy_.find(k); b != busy_.end() && --b->second == 0) busy_.erase(b);
    }
    --pending_;
    ++done_;
    done_cv_.notify_all();
    if (!queue_.empty()) work_cv_.notify_all();  // a job waiting for one of these keys may start now
  }
}

}  // namespace vpcd::dp
