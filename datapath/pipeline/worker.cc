// Worker threads: snapshot pick-up, epoll set maintenance and the rx -> pipeline -> tx loop. See worker.h.
#include "datapath/pipeline/worker.h"

#include "datapath/stages/uplink_input.h"

#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <future>
#include <new>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>

#include "datapath/capture/capture_tap.h"
#include "datapath/pipeline/counters.h"

namespace vpcd::dp {

namespace {
constexpr uint64_t kWakeTag = UINT64_MAX;  // epoll data of the publisher's eventfd; queues use their index
constexpr int kMaxEvents = 64;
constexpr int kUnpollableTimeoutMs = 1;  // when some queue has no fd, look at it at least every millisecond
}  // namespace

unsigned resolve_worker_count(unsigned requested) noexcept {
  unsigned n = requested;
  if (n == 0) {
    unsigned cores = std::thread::hardware_concurrency();
    n = cores > 1 ? cores - 1 : 1;
  }
  return std::clamp(n, 1u, kMaxWorkers);
}

void check_worker_cpus(const std::vector<unsigned>& cpus) {
  if (cpus.size() > kMaxWorkers) {
    throw std::invalid_argument("worker-cpus: " + std::to_string(cpus.size()) + " CPUs listed, at most " +
                                std::to_string(kMaxWorkers) + " workers");
  }
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (::sched_getaffinity(0, sizeof allowed, &allowed) != 0) {
    throw std::system_error(errno, std::generic_category(), "worker-cpus: sched_getaffinity");
  }
  std::string may;  // the CPUs this process may run on, for the message
  for (unsigned c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &allowed)) may += (may.empty() ? "" : ",") + std::to_string(c);
  }
  for (size_t i = 0; i < cpus.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (cpus[j] == cpus[i]) {
        throw std::invalid_argument("worker-cpus: CPU " + std::to_string(cpus[i]) + " is listed twice");
      }
    }
    if (cpus[i] >= CPU_SETSIZE || !CPU_ISSET(cpus[i], &allowed)) {
      throw std::invalid_argument("worker-cpus: CPU " + std::to_string(cpus[i]) +
                                  " is not one vpcd may run on (allowed: " + may + ")");
    }
  }
}

// The per-worker buffers (the packet pool, the overlay's USO and split buffers, the tcp-coalesce arena:
// WorkerContext) are allocated here, never in the datapath: running out of memory is a start-up error naming the
// worker.
Worker::Worker(unsigned index, DatapathPublisher& pub, PollPolicy poll) try
    : index_(index),
      pub_(pub),
      poll_(poll),
      spin_budget_(std::chrono::microseconds(std::min(poll.budget_us, kMaxBusyPollUs))),
      pkts_(new Packet[kBurst]) {
  epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epfd_ < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeTag;
  if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, pub_.wake_fd(index_), &ev) < 0) {
    int e = errno;
    ::close(epfd_);
    throw std::system_error(e, std::generic_category(), "epoll_ctl(eventfd)");
  }
  ctx_.worker = index_;
} catch (const std::bad_alloc&) {
  throw std::runtime_error(
      "datapath worker " + std::to_string(index) +
      ": out of memory for its buffers (packet pool, overlay USO and split buffers, tcp-coalesce arena)");
}

Worker::~Worker() {
  stop();
  ::close(epfd_);
}

void Worker::start(std::optional<unsigned> cpu) {
  stop_.store(false, std::memory_order_relaxed);
  cpu_.store(-1, std::memory_order_relaxed);
  if (!cpu) {
    thread_ = std::thread([this] { run(); });
    return;
  }
  // The thread pins itself before its loop and reports the result: no frame is ever handled off its CPU. The
  // promise lives in the thread's closure, so set_value never runs on an object start() has already destroyed.
  std::promise<int> pinned;
  std::future<int> result = pinned.get_future();
  thread_ = std::thread([this, c = *cpu, pinned = std::move(pinned)]() mutable {
    cpu_set_t set;
    CPU_ZERO(&set);
    int err = EINVAL;
    if (c < CPU_SETSIZE) {
      CPU_SET(c, &set);
      err = ::pthread_setaffinity_np(::pthread_self(), sizeof set, &set);
    }
    pinned.set_value(err);
    if (err == 0) run();
  });
  if (int err = result.get(); err != 0) {
    thread_.join();
    throw std::system_error(err, std::generic_category(),
                            "datapath worker " + std::to_string(index_) + ": pinning to CPU " + std::to_string(*cpu));
  }
  cpu_.store(int(*cpu), std::memory_order_relaxed);
}

void Worker::stop() {
  if (!thread_.joinable()) return;
  stop_.store(true, std::memory_order_release);
  pub_.wake(index_);
  thread_.join();
}

WorkerCounters Worker::counters() const noexcept {
  WorkerCounters c;
  c.batches = stats_.batches.load(std::memory_order_relaxed);
  c.packets = stats_.packets.load(std::memory_order_relaxed);
  c.wakeups = stats_.wakeups.load(std::memory_order_relaxed);
  c.empty_polls = stats_.empty_polls.load(std::memory_order_relaxed);
  c.spin_starts = stats_.spin_starts.load(std::memory_order_relaxed);
  c.spin_stops = stats_.spin_stops.load(std::memory_order_relaxed);
  c.snapshot_generation = stats_.generation.load(std::memory_order_relaxed);
  c.cpu = cpu_.load(std::memory_order_relaxed);
  c.stage_packets.resize(kStageCount);
  for (size_t s = 0; s < kStageCount; ++s) c.stage_packets[s] = ctx_.stage_packets[s].load(std::memory_order_relaxed);
  c.pool_exhausted = ctx_.pool_exhausted.load(std::memory_order_relaxed);
  c.icmp_rate_limited = ctx_.icmp_rate_limited.load(std::memory_order_relaxed);
  c.tcp_coalesced_frames = ctx_.coalesce.frames.load(std::memory_order_relaxed);
  c.tcp_coalesced_segments = ctx_.coalesce.segments.load(std::memory_order_relaxed);
  c.vxlan_uso_rx_frames = ctx_.overlay.uso_rx_frames.load(std::memory_order_relaxed);
  c.vxlan_uso_rx_segments = ctx_.overlay.uso_rx_segments.load(std::memory_order_relaxed);
  c.vxlan_uso_tx_superframes = ctx_.overlay.uso_tx_superframes.load(std::memory_order_relaxed);
  c.vxlan_uso_tx_frames = ctx_.overlay.uso_tx_frames.load(std::memory_order_relaxed);
  c.vxlan_uso_tx_segments = ctx_.overlay.uso_tx_segments.load(std::memory_order_relaxed);
  c.vxlan_uso_tx_fallbacks = ctx_.overlay.uso_tx_fallbacks.load(std::memory_order_relaxed);
  return c;
}

void Worker::run() noexcept {
  std::string name = "vpcd-wk-" + std::to_string(index_);
  pthread_setname_np(pthread_self(), name.c_str());
  epoll_event events[kMaxEvents];
  while (!stop_.load(std::memory_order_acquire)) {
    pick_up_snapshot();
    // Polling (busy-poll on, or adaptive after frames): timeout 0. Otherwise asleep for up to kIdleTimeoutMs unless
    // some queue has no fd or the kernel refused frames we must retry.
    const bool polling = poll_.mode == BusyPoll::kOn || spinning_;
    int timeout = polling                              ? 0
                  : has_unpollable_                    ? kUnpollableTimeoutMs
                  : !ctx_.tx_retry.empty()             ? kTxRetryIntervalMs
                  : ctx_.overlay.arp.queued_total() > 0 ? kArpWaitTimeoutMs
                                                       : kIdleTimeoutMs;
    int n = ::epoll_wait(epfd_, events, kMaxEvents, timeout);
    if (n < 0) {
      if (errno != EINTR) counter_add(stats_.epoll_errors, 1);
      continue;
    }
    if (n > 0) counter_add(stats_.wakeups, 1);
    unsigned frames = 0;
    for (int i = 0; i < n; ++i) {
      uint64_t tag = events[i].data.u64;
      if (tag == kWakeTag) {
        pub_.clear_wake(index_);
      } else if (tag < queues_.size()) {
        frames += service(queues_[tag]);
      }
    }
    if (has_unpollable_) {
      for (const auto& q : queues_)
        if (q.fd < 0) frames += service(q);
    }
    if (polling || frames > 0) account_poll(polling, frames);
    if (snap_ && snap_->config) {  // frames stages emitted between batches
      const uint64_t now_ms = monotonic_ms();
      if (now_ms - last_overlay_tick_ms_ >= 10) {  // underlay ARP retries and aging (uplink_input.h)
        last_overlay_tick_ms_ = now_ms;
        overlay_tick(ctx_, *snap_->config, now_ms);
      }
      run_pending(ctx_, *snap_->config);
      flush_outputs(ctx_, *snap_->config);
      if (!ctx_.tx_retry.empty()) [[unlikely]] retry_flushes(ctx_, *snap_->config, now_ms);
    }
    collect_ring_drops();
  }
  // Drop our reference; the publisher still holds this snapshot (it is current or retired-but-unacked-past), so the
  // destructor cannot run here.
  if (!ctx_.tx_retry.empty() && snap_ && snap_->config) rebase_tx_retries(ctx_, *snap_->config, nullptr);
  snap_.reset();
  set_queues({});
}

void Worker::pick_up_snapshot() noexcept {
  uint64_t g = pub_.generation();
  if (g == seen_gen_) [[likely]] return;
  auto [next, taken] = pub_.take();
  std::vector<Queue> qs;
  if (next && next->config && index_ < next->rx.size()) {
    const DataplaneConfig& cfg = *next->config;
    for (const RxQueueRef& r : next->rx[index_]) {
      if (r.port >= cfg.ports.size()) continue;
      const auto& rt = cfg.ports[r.port].rt;
      if (!rt || !rt->io || r.queue >= rt->io->rx_queues()) continue;
      qs.push_back(Queue{rt->io.get(), r.port, r.queue, rt->io->rx_fd(r.queue)});
    }
  }
  // Order matters: stop polling the old queues and let go of frames pending on ports the new snapshot lacks before
  // releasing the old snapshot and acking (the control thread closes a removed port's sockets once every worker
  // acked a generation without it).
  if (!ctx_.tx_retry.empty() && snap_ && snap_->config) {
    rebase_tx_retries(ctx_, *snap_->config, next ? next->config.get() : nullptr);
  }
  set_queues(std::move(qs));
  snap_ = std::move(next);
  seen_gen_ = taken;
  counter_add(stats_.generation, taken - stats_.generation.load(std::memory_order_relaxed));
  pub_.ack(index_, taken);
}

void Worker::set_queues(std::vector<Queue> next) noexcept {
  if (next == queues_) return;
  for (const auto& q : queues_) {
    if (q.fd >= 0 && ::epoll_ctl(epfd_, EPOLL_CTL_DEL, q.fd, nullptr) < 0) counter_add(stats_.epoll_errors, 1);
  }
  has_unpollable_ = false;
  for (size_t i = 0; i < next.size(); ++i) {
    if (next[i].fd < 0) {
      has_unpollable_ = true;
      continue;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = i;
    if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, next[i].fd, &ev) < 0) {
      // Cannot wait for it: fall back to looking at it every millisecond.
      counter_add(stats_.epoll_errors, 1);
      next[i].fd = -1;
      has_unpollable_ = true;
    }
  }
  queues_ = std::move(next);
}

// The kernel counts frames it could not put into a full RX ring; one getsockopt per queue every 100 ms turns them
// into this port's rx_ring_full drops (on this worker's counters, like every other drop of the queue).
void Worker::collect_ring_drops() noexcept {
  const auto now = std::chrono::steady_clock::now();
  if (now - last_ring_poll_ < kRingDropPollInterval || !snap_ || !snap_->config) return;
  last_ring_poll_ = now;
  const DataplaneConfig& cfg = *snap_->config;
  // Connection expiry: this worker's share of the shards, a bounded amount of work per call (conn_table.h).
  if (cfg.conns) cfg.conns->expire(ctx_.clock_s(), kExpireBudget, index_, unsigned(std::max<size_t>(snap_->rx.size(), 1)));
  for (const auto& q : queues_) {
    uint64_t lost = q.io->rx_ring_drops(q.queue);
    if (lost == 0 || q.port >= cfg.ports.size() || !cfg.ports[q.port].rt || index_ >= kMaxWorkers) continue;
    cfg.ports[q.port].rt->counters[index_].add_drop(DropReason::kRxRingFull, lost);
  }
}

// Busy-poll bookkeeping after a loop turn that polled without sleeping or received frames (worker_poll.h). A turn with
// frames (re)starts adaptive mode's budget, so the next epoll_wait does not sleep; a polling turn without frames
// counts as an empty poll, and ends adaptive polling once the budget has passed since the last frame.
void Worker::account_poll(bool polled, unsigned frames) noexcept {
  if (frames > 0) {
    if (poll_.mode != BusyPoll::kAdaptive) return;
    last_frame_ = std::chrono::steady_clock::now();
    if (!spinning_) {
      spinning_ = true;
      counter_add(stats_.spin_starts, 1);
    }
    return;
  }
  if (!polled) return;
  counter_add(stats_.empty_polls, 1);
  if (spinning_ && std::chrono::steady_clock::now() - last_frame_ >= spin_budget_) {
    spinning_ = false;
    counter_add(stats_.spin_stops, 1);
  }
}

unsigned Worker::service(const Queue& q) noexcept {
  const DataplaneConfig& cfg = *snap_->config;
  Packet* pkts = pkts_.get();
  unsigned total = 0;
  for (unsigned round = 0; round < kRoundsPerQueue; ++round) {
    unsigned n = q.io->rx_burst(q.queue, pkts, kBurst);
    if (n == 0) break;
    total += n;
    for (unsigned i = 0; i < n; ++i) pkts[i].in_port = q.port;
    capture_rx(*cfg.ports[q.port].rt, index_, std::span<const Packet>(pkts, n));
    run_batch(ctx_, cfg, q.port, std::span<Packet>(pkts, n));
    flush_outputs(ctx_, cfg);
    q.io->rx_release(q.queue);
    counter_add(stats_.batches, 1);
    counter_add(stats_.packets, n);
    if (n < kBurst) break;
  }
  return total;
}

}  // namespace vpcd::dp
