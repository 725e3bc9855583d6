// CoalesceWorkerState: the per-worker state of the "tcp-coalesce" stage (tcp_coalesce.h), a member of the
// WorkerContext: the arena super-frames are built in (allocated with the worker's state, never in the datapath: a
// bad_alloc in the noexcept process() would terminate vpcd, while here it is a start-up error naming the worker,
// Worker::Worker; 1 MiB per worker, as the overlay's per-worker buffers are allocated up front too; its contents live
// until the stage's next process() call) and the stage's counters.
//
// Threading: owned by one worker; the counters are single-writer atomics other threads read relaxed.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

namespace vpcd::dp {

struct CoalesceWorkerState {
  // Room for the super-frames of one stage call: a chunk's frames (kMaxBatch of at most ~9 KiB) fit twice over.
  static constexpr uint32_t kArenaBytes = 1u << 20;
  // Allocates (and zeroes, so its pages are mapped now) the arena. Throws std::bad_alloc; the worker that owns this
  // state then fails to start (Worker::Worker).
  CoalesceWorkerState() : arena(std::make_unique<uint8_t[]>(kArenaBytes)) {}
  CoalesceWorkerState(const CoalesceWorkerState&) = delete;
  CoalesceWorkerState& operator=(const CoalesceWorkerState&) = delete;

  std::unique_ptr<uint8_t[]> arena;  // kArenaBytes, never null
  uint32_t used = 0;                 // bytes of the arena handed out in this process() call

  std::atomic<uint64_t> frames{0};    // super-frames built
  std::atomic<uint64_t> segments{0};  // segments joined into them (each super-frame: 2 or more)
  std::atomic<uint64_t> no_room{0};   // groups left as they were for lack of arena room
};

}  // namespace vpcd::dp
