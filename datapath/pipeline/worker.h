// Datapath worker threads: each owns a set of (port, rx queue) pairs and runs every received batch through the
// pipeline to completion (VPP worker / OVS PMD model, DESIGN.md "The pipeline").
//
// What a worker polls is part of the published snapshot: DatapathSnapshot pairs the immutable DataplaneConfig with the
// per-worker rx queue assignment the Controller chose. A queue never moves between workers while its port exists, so
// no two threads ever call rx_* on the same queue, even while some workers still run an older generation.
//
// Loop (per worker thread "vpcd-wk-N"): pick up a new snapshot generation if there is one (mutex only then), rebuild
// the epoll set if the assignment changed, ack the generation (release); epoll_wait on the queues' rx fds plus the
// publisher's eventfd for this worker; for each ready queue: rx_burst up to kBurst packets, run_batch, flush_outputs,
// rx_release, a few rounds at most before moving on (fairness). Frames the kernel refused at a flush
// (PortIo::tx_pending) are flushed again every loop turn, with a 1 ms epoll timeout only while some are pending, and
// discarded and counted (tx_stalled) after kTxRetryLimitMs (pipeline.h).
//
// The epoll timeout (PollPolicy, worker_poll.h): 0 while the worker polls without sleeping (busy-poll = on: always;
// adaptive: from a turn that received frames until budget_us after the last frame); otherwise 1 ms while some queue
// has no fd or refused frames wait for a retry, else kIdleTimeoutMs. A sleeping worker is woken by its queues' fds
// and by the publisher's eventfd whatever the mode, so a new snapshot is acked as fast as before; a polling one sees
// the new generation on its next turn. Counted per worker: turns that polled without sleeping and found no frame
// (empty_polls), and in adaptive mode the switches from sleeping to polling (spin_starts) and back (spin_stops).
//
// Threading: Worker's public methods are for the control thread; counters() may be called from any thread (relaxed
// loads of single-writer counters). The worker thread itself only reads the snapshot and writes its own counters and
// the per-port counters at its index.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "datapath/config/dataplane_config.h"
#include "datapath/stats.h"
#include "datapath/io/port.h"
#include "datapath/pipeline/packet.h"
#include "datapath/pipeline/pipeline.h"
#include "datapath/pipeline/publisher.h"
#include "datapath/pipeline/worker_poll.h"

namespace vpcd::dp {

struct RxQueueRef {
  uint16_t port = kInvalidPort;  // index into DataplaneConfig::ports
  uint16_t queue = 0;            // rx queue of that port's PortIo
  friend bool operator==(const RxQueueRef&, const RxQueueRef&) = default;
};

// What the control thread publishes to the workers. Immutable once published.
struct DatapathSnapshot {
  std::shared_ptr<const DataplaneConfig> config;  // may be null before the first apply()
  std::vector<std::vector<RxQueueRef>> rx;        // [worker] -> the queues that worker polls
};

using DatapathPublisher = SnapshotPublisher<DatapathSnapshot>;

// The number of worker threads for Options::workers: 0 = online cores - 1, at least 1, at most kMaxWorkers.
unsigned resolve_worker_count(unsigned requested) noexcept;

// Options::worker_cpus (config worker-cpus): worker i runs only on cpus[i]. Throws std::invalid_argument naming the
// problem when the list is longer than kMaxWorkers, names a CPU twice, or names a CPU this process may not run on
// (sched_getaffinity: offline, or outside its cpuset / taskset); empty = workers not pinned.
void check_worker_cpus(const std::vector<unsigned>& cpus);

struct alignas(64) WorkerRuntimeCounters {
  std::atomic<uint64_t> batches{0};     // non-empty rx bursts run through the pipeline
  std::atomic<uint64_t> packets{0};     // packets in those bursts
  std::atomic<uint64_t> wakeups{0};     // epoll_wait returns with at least one ready fd
  std::atomic<uint64_t> generation{0};  // the snapshot generation this worker holds (= its ack)
  std::atomic<uint64_t> epoll_errors{0};  // epoll_ctl/epoll_wait failures (queue not polled; should stay 0)
  // Busy polling (worker_poll.h): loop turns whose epoll_wait did not sleep and that received no frame; adaptive
  // mode's switches from sleeping to polling after frames, and from polling back to sleeping once the budget passed.
  std::atomic<uint64_t> empty_polls{0};
  std::atomic<uint64_t> spin_starts{0};
  std::atomic<uint64_t> spin_stops{0};
};

class Worker {
 public:
  static constexpr unsigned kBurst = 256;       // packets per rx_burst
  static constexpr unsigned kRoundsPerQueue = 4;  // bursts per ready queue before the next queue gets its turn
  static constexpr int kIdleTimeoutMs = 100;
  // While frames wait for an underlay ARP resolution: the overlay tick (10 ms) adopts what another worker learned.
  static constexpr int kArpWaitTimeoutMs = 10;
  static constexpr std::chrono::milliseconds kRingDropPollInterval{100};  // also the connection expiry period
  static constexpr size_t kExpireBudget = 4096;  // connection entries visited per expiry call

  // Creates the epoll instance (throws std::system_error on failure); the thread starts with start().
  Worker(unsigned index, DatapathPublisher& pub, PollPolicy poll = {});
  ~Worker();  // stop() + join
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Starts the thread; pinned to `cpu` (sched affinity) when given, before it runs its loop. Throws
  // std::system_error when the thread cannot be created or pinned (then no thread is left running).
  void start(std::optional<unsigned> cpu = std::nullopt);
  // Before start(): the router's ICMP error budget of this worker.
  void set_icmp_error_rate(uint32_t per_second, uint32_t burst) { ctx_.icmp_limiter = IcmpRateLimiter(per_second, burst); }
  // Before start(): how long refused frames are retried before they are discarded (default kTxRetryLimitMs).
  void set_tx_retry_limit(std::chrono::milliseconds limit) { ctx_.tx_retry_limit_ms = uint64_t(limit.count()); }
  // Asks the thread to exit and joins it. The worker drops its snapshot reference before exiting; the publisher
  // still holds it, so nothing is destroyed on the worker.
  void stop();

  unsigned index() const noexcept { return index_; }
  WorkerCounters counters() const noexcept;
  uint64_t epoll_errors() const noexcept { return stats_.epoll_errors.load(std::memory_order_relaxed); }

 private:
  struct Queue {
    PortIo* io;
    uint16_t port;
    uint16_t queue;
    int fd;  // -1: not pollable, serviced on every iteration
    friend bool operator==(const Queue&, const Queue&) = default;
  };

  void run() noexcept;
  void pick_up_snapshot() noexcept;
  void set_queues(std::vector<Queue> next) noexcept;
  unsigned service(const Queue& q) noexcept;  // returns the frames received
  void account_poll(bool polled, unsigned frames) noexcept;
  void collect_ring_drops() noexcept;

  const unsigned index_;
  std::atomic<int> cpu_{-1};  // pinned CPU (start()), -1 = not pinned; read by counters()
  DatapathPublisher& pub_;
  const PollPolicy poll_;
  const std::chrono::nanoseconds spin_budget_;  // poll_.budget_us
  int epfd_ = -1;
  std::atomic<bool> stop_{false};  // written by the control thread, read by the worker
  std::thread thread_;

  // Worker-thread state.
  std::shared_ptr<const DatapathSnapshot> snap_;
  uint64_t seen_gen_ = 0;
  std::vector<Queue> queues_;
  std::chrono::steady_clock::time_point last_ring_poll_{};  // worker thread only
  uint64_t last_overlay_tick_ms_ = 0;  // this thread only
  bool has_unpollable_ = false;
  bool spinning_ = false;  // adaptive: polling without sleeping since a turn with frames (worker thread only)
  std::chrono::steady_clock::time_point last_frame_{};  // adaptive: when the last turn with frames ended
  std::unique_ptr<Packet[]> pkts_;
  WorkerContext ctx_;  // per-worker state that survives snapshot swaps
  WorkerRuntimeCounters stats_;
};

}  // namespace vpcd::dp
