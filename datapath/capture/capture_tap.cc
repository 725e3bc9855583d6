// The workers' copy into capture rings; see capture_tap.h.
#include "datapath/capture/capture_tap.h"

#include <time.h>

namespace vpcd::dp {
namespace {

uint64_t realtime_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}

inline void offer(CaptureTap& t, unsigned worker, const Packet& p, uint64_t ts_ns) noexcept {
  CaptureWorkerCounters& c = t.counters[worker];
  const uint32_t n = p.len < t.copy_bytes ? p.len : t.copy_bytes;
  if (t.rings[worker]->push(ts_ns, p.wire_len > p.len ? p.wire_len : p.len, p.data, n))
    counter_add(c.offered, 1);
  else
    counter_add(c.dropped, 1);
}

}  // namespace

void capture_frames(const PortCaptureList& l, unsigned worker, std::span<const Packet> pkts) noexcept {
  if (worker >= kMaxWorkers) return;
  uint64_t now = 0;
  for (unsigned i = 0; i < l.n; ++i) {
    CaptureTap& t = *l.taps[i];
    if (worker >= t.workers) continue;
    for (const Packet& p : pkts) {
      uint64_t ts = p.ts_ns;
      if (ts == 0) ts = now ? now : (now = realtime_ns());
      offer(t, worker, p, ts);
    }
  }
}

void capture_frame(const PortCaptureList& l, unsigned worker, const Packet& p) noexcept {
  if (worker >= kMaxWorkers) return;
  // The receive time of the frame being sent: the transmit follows within the same batch (microseconds), and it keeps
  // a request and its forwarded copy in order in a capture of both ports.
  const uint64_t ts = p.ts_ns ? p.ts_ns : realtime_ns();
  for (unsigned i = 0; i < l.n; ++i) {
    CaptureTap& t = *l.taps[i];
    if (worker >= t.workers) continue;
    if (p.prefix_len == 0) [[likely]] {
      offer(t, worker, p, ts);
      continue;
    }
    // What the port puts on the wire: the outer headers (prefix), then the frame.
    const uint32_t head = p.prefix_len < t.copy_bytes ? p.prefix_len : t.copy_bytes;
    const uint32_t rest = t.copy_bytes - head;
    const uint32_t body = p.len < rest ? p.len : rest;
    const uint32_t wire = (p.wire_len > p.len ? p.wire_len : p.len) + p.prefix_len;
    if (t.rings[worker]->push2(ts, wire, p.prefix, head, p.data, body))
      counter_add(t.counters[worker].offered, 1);
    else
      counter_add(t.counters[worker].dropped, 1);
  }
}

}  // namespace vpcd::dp
