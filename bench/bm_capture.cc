// The workers' cost of packet capture (datapath/capture/capture_tap.h), per frame, on one core:
//   BM_CaptureIdle:        capture_rx + capture_tx on a port nobody captures (the price every port pays).
//   BM_CaptureCopy/LEN:    capture_rx on a captured port, the ring emptied after every batch on the same thread
//                          (every frame copied: LEN bytes each; includes the consumer's pop, which only reads the
//                          record headers).
//   BM_CaptureFull/LEN:    the same with no consumer: the ring is full and every frame is refused and counted.
// Items are frames, so the results read as frames/s one worker can offer to a capture.
#include <benchmark/benchmark.h>

#include <memory>
#include <vector>

#include "datapath/capture/capture_tap.h"

namespace vpcd::dp {
namespace {

constexpr unsigned kBatch = 32;

struct Frames {
  explicit Frames(size_t len) : bytes(kBatch, std::vector<uint8_t>(len, 0x5a)), pkts(kBatch) {
    for (unsigned i = 0; i < kBatch; ++i) {
      pkts[i].data = bytes[i].data();
      pkts[i].len = pkts[i].wire_len = uint32_t(len);
      pkts[i].ts_ns = 1;
    }
  }
  std::vector<std::vector<uint8_t>> bytes;
  std::vector<Packet> pkts;
};

void BM_CaptureIdle(benchmark::State& state) {
  PortRuntime rt;
  Frames f(64);
  for (auto _ : state) {
    capture_rx(rt, 0, f.pkts);
    for (const Packet& p : f.pkts) capture_tx(rt, 0, p);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(int64_t(state.iterations()) * kBatch);
}
BENCHMARK(BM_CaptureIdle);

void run_captured(benchmark::State& state, bool consume) {
  PortRuntime rt;
  Frames f(size_t(state.range(0)));
  CaptureTap tap;
  tap.copy_bytes = 262144;
  tap.workers = 1;
  tap.rings[0] = std::make_unique<CaptureRing>(2u << 20);
  PortCaptureList list;
  list.n = 1;
  list.taps[0] = &tap;
  rt.capture.store(&list, std::memory_order_release);
  for (auto _ : state) {
    capture_rx(rt, 0, f.pkts);
    if (consume) tap.rings[0]->pop(SIZE_MAX, [](const auto&, const uint8_t*) {});
  }
  state.SetItemsProcessed(int64_t(state.iterations()) * kBatch);
  state.counters["copied"] = double(tap.counters[0].offered.load());
  state.counters["refused"] = double(tap.counters[0].dropped.load());
}

void BM_CaptureCopy(benchmark::State& state) { run_captured(state, true); }
void BM_CaptureFull(benchmark::State& state) { run_captured(state, false); }
BENCHMARK(BM_CaptureCopy)->Arg(64)->Arg(1514)->Arg(65536);
BENCHMARK(BM_CaptureFull)->Arg(64)->Arg(65536);

}  // namespace
}  // namespace vpcd::dp
