// See os_reaper.h.
#include "datapath/control/os_reaper.h"

#include <pthread.h>

#include <cstdio>
#include <exception>

namespace vpcd::dp {

OsReaper::OsReaper() { thread_ = std::thread([this] { run(); }); }

OsReaper::~OsReaper() {
  {
    std::scoped_lock lk(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  thread_.join();
}

void OsReaper::submit(std::vector<std::string> keys, std::function<void()> job) {
  {
    std::scoped_lock lk(mu_);
    for (const auto& k : keys) ++busy_[k];
    ++pending_;
    queue_.push_back(Job{std::move(keys), std::move(job)});
  }
  work_cv_.notify_one();
}

bool OsReaper::holds_any(const std::vector<std::string>& keys) const {
  for (const auto& k : keys)
    if (busy_.count(k)) return true;
  return false;
}

void OsReaper::wait_clear(const std::vector<std::string>& keys) {
  std::unique_lock lk(mu_);
  done_cv_.wait(lk, [&] { return !holds_any(keys); });
}

void OsReaper::wait_idle() {
  std::unique_lock lk(mu_);
  done_cv_.wait(lk, [&] { return pending_ == 0; });
}

uint64_t OsReaper::jobs_done() const {
  std::scoped_lock lk(mu_);
  return done_;
}

void OsReaper::run() {
  pthread_setname_np(pthread_self(), "vpcd-reaper");
  std::unique_lock lk(mu_);
  for (;;) {
    work_cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stop_ and nothing left to do
    Job job = std::move(queue_.front());
    queue_.pop_front();
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
    for (const auto& k : job.keys)
      if (auto it = busy_.find(k); it != busy_.end() && --it->second == 0) busy_.erase(it);
    --pending_;
    ++done_;
    done_cv_.notify_all();
  }
}

}  // namespace vpcd::dp
