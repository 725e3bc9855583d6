// SnapshotPublisher<T>: hands immutable snapshots from the control thread to the worker threads (STYLE.md section 4).
//
// The control thread publish()es a std::shared_ptr<const T> under a new generation number. Each worker ("reader"),
// on every loop iteration, compares generation() with the one it holds; only when it changed does it call take(),
// which copies the current pointer under the mutex, and then ack()s the generation it took with a release store
// ("I hold nothing older any more"). The snapshot replaced by a publish goes to a retired list; reclaim() (control
// thread) drops retired snapshots once every reader has acked a generation at least as new as the one that replaced
// them, so the last reference, and with it the destructor, is always released on the control thread, never on a
// worker. publish() wakes sleeping readers through one eventfd per reader, which each worker keeps in its epoll set.
//
// Threading:
//   control thread (one at a time): publish, wait_acked, reclaim, retired_count, destructor.
//   reader r (worker r only):       generation, take, ack(r, ...), wake_fd(r) (read to clear it).
//   any thread:                     acked(r), generation.
// Memory ordering: publish() stores the generation with release after installing the pointer under mu_; the reader
// loads it with acquire and then takes mu_, so it sees at least that snapshot. ack() is a release store after the
// reader dropped its older reference; reclaim()/wait_acked() load acks with acquire, so the worker's refcount
// decrement happens-before the control thread's final release.
#pragma once

#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace vpcd::dp {

template <class T>
class SnapshotPublisher {
 public:
  // `readers` workers will take snapshots; `initial` is generation 1 (may be null).
  explicit SnapshotPublisher(unsigned readers, std::shared_ptr<const T> initial = nullptr)
      : slots_(readers), current_(std::move(initial)) {
    for (auto& s : slots_) {
      s.wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
      if (s.wake_fd < 0) {
        int e = errno;
        close_fds();
        throw std::system_error(e, std::generic_category(), "eventfd");
      }
    }
  }
  ~SnapshotPublisher() { close_fds(); }
  SnapshotPublisher(const SnapshotPublisher&) = delete;
  SnapshotPublisher& operator=(const SnapshotPublisher&) = delete;

  unsigned readers() const noexcept { return unsigned(slots_.size()); }

  // ---- control thread ----

  // Installs `next` as the current snapshot and returns its generation. Wakes every reader.
  uint64_t publish(std::shared_ptr<const T> next) {
    uint64_t g;
    {
      std::scoped_lock lk(mu_);
      g = gen_ + 1;
      retired_.push_back({std::exchange(current_, std::move(next)), g});
      gen_ = g;
      gen_counter_.store(g, std::memory_order_release);
    }
    wake_all();
    reclaim();
    return g;
  }

  // The generation the next publish() will get (for snapshots that carry their own generation number).
  uint64_t next_generation() const {
    std::scoped_lock lk(mu_);
    return gen_ + 1;
  }

  // Waits until every reader has acked `gen` or newer, then reclaims. false on timeout (readers that have not
  // acked are stuck or stopped). Readers in epoll are woken by publish(); this re-wakes them now and then.
  bool wait_acked(uint64_t gen, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    auto pause = std::chrono::microseconds(20);
    auto next_wake = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
    for (;;) {
      if (min_acked() >= gen) {
        reclaim();
        return true;
      }
      auto now = std::chrono::steady_clock::now();
      if (now >= deadline) return false;
      if (now >= next_wake) {
        wake_all();
        next_wake = now + std::chrono::milliseconds(50);
      }
      std::this_thread::sleep_for(pause);
      if (pause < std::chrono::microseconds(1000)) pause *= 2;
    }
  }

  // Drops retired snapshots every reader has moved past. Returns how many were released.
  size_t reclaim() {
    uint64_t min_ack = min_acked();
    std::deque<Retired> done;
    {
      std::scoped_lock lk(mu_);
      while (!retired_.empty() && retired_.front().replaced_at <= min_ack) {
        done.push_back(std::move(retired_.front()));
        retired_.pop_front();
      }
    }
    return done.size();  // destructors run here, on the control thread, outside mu_
  }

  size_t retired_count() const {
    std::scoped_lock lk(mu_);
    return retired_.size();
  }

  // ---- readers ----

  uint64_t generation() const noexcept { return gen_counter_.load(std::memory_order_acquire); }

  // The current snapshot and its generation (takes the mutex: call only when generation() changed).
  std::pair<std::shared_ptr<const T>, uint64_t> take() const {
    std::scoped_lock lk(mu_);
    return {current_, gen_};
  }

  // Reader r no longer holds any snapshot older than `gen`.
  void ack(unsigned r, uint64_t gen) noexcept { slots_[r].acked.store(gen, std::memory_order_release); }

  uint64_t acked(unsigned r) const noexcept { return slots_[r].acked.load(std::memory_order_acquire); }

  // Readable when a publish happened since the reader last drained it (EFD_NONBLOCK; drain with clear_wake).
  int wake_fd(unsigned r) const noexcept { return slots_[r].wake_fd; }
  void clear_wake(unsigned r) const noexcept {
    uint64_t v;
    while (::read(slots_[r].wake_fd, &v, sizeof v) == ssize_t(sizeof v)) {
    }
  }
  // Wakes reader r (also used to make a worker notice a stop request).
  void wake(unsigned r) const noexcept {
    uint64_t one = 1;
    ssize_t n = ::write(slots_[r].wake_fd, &one, sizeof one);
    (void)n;  // EAGAIN only when the counter is saturated, which still leaves it readable
  }

 private:
  struct alignas(64) Slot {
    std::atomic<uint64_t> acked{0};  // written by reader r (release), read by the control thread (acquire)
    int wake_fd = -1;                // created/closed by the control thread; written by it, read by reader r
  };
  struct Retired {
    std::shared_ptr<const T> snap;
    uint64_t replaced_at;  // the generation that replaced it: free once every reader acked >= this
  };

  uint64_t min_acked() const noexcept {
    uint64_t m = UINT64_MAX;
    for (const auto& s : slots_) m = std::min(m, s.acked.load(std::memory_order_acquire));
    return m;
  }
  void wake_all() const noexcept {
    for (unsigned r = 0; r < slots_.size(); ++r) wake(r);
  }
  void close_fds() noexcept {
    for (auto& s : slots_) {
      if (s.wake_fd >= 0) ::close(s.wake_fd);
      s.wake_fd = -1;
    }
  }

  std::vector<Slot> slots_;                      // fixed size after construction
  mutable std::mutex mu_;                        // guards current_, gen_, retired_
  std::shared_ptr<const T> current_;             // guarded by mu_
  uint64_t gen_ = 1;                             // guarded by mu_; generation of current_
  std::deque<Retired> retired_;                  // guarded by mu_; oldest first
  std::atomic<uint64_t> gen_counter_{1};         // written by the control thread (release) under mu_
};

}  // namespace vpcd::dp
