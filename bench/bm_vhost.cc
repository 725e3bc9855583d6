// Benchmark of the vhost-user device's per-frame work, without the pipeline and without a second process: an
// in-process front-end (tests/unit/io/vhost_user/fake_frontend.h: guest memory in a memfd, split rings of 256) and a
// VhostUserPort.
//   BM_VhostGuestTx: the guest queues 256 64-byte frames (one descriptor each, header in front, as virtio-user
//     does); rx_burst copies them out and returns the chains; rx_release.
//   BM_VhostGuestRx: the guest posts 256 2 KiB receive buffers (mergeable); 256 tx_enqueue + tx_flush of 64-byte
//     frames into them.
// Reported as frames per second of CPU time (SetItemsProcessed). The guest's own side (re-posting descriptors) is in
// the loop too: it is a few stores per frame. Run: build/bm_vhost --benchmark_min_time=0.5
#include <benchmark/benchmark.h>

#include <vector>

#include "datapath/io/vhost_user/vhost_user_port.h"
#include "tests/unit/io/vhost_user/fake_frontend.h"

namespace vpcd::dp::vhost {
namespace {

using testing::FakeFrontend;

constexpr unsigned kRing = 256;
constexpr uint64_t kFeatures =
    feat::kVersion1 | feat::kProtocolFeatures | feat::kNetMrgRxbuf | feat::kRingEventIdx | feat::kNetCsum;

struct Device {
  Device() {
    VhostUserPortConfig c;
    c.name = "bm";
    c.mac = MacAddr{{0x02, 0, 0, 0, 0, 1}};
    c.announce = false;
    std::string err;
    port = VhostUserPort::create(c, &err);
    port->on_connect();
    fe = std::make_unique<FakeFrontend>(port.get(), -1);
    ok = fe->start(kFeatures, 1, kRing);
  }
  std::unique_ptr<VhostUserPort> port;
  std::unique_ptr<FakeFrontend> fe;
  bool ok = false;
};

void BM_VhostGuestTx(benchmark::State& state) {
  Device d;
  if (!d.ok) return state.SkipWithError("negotiation failed");
  std::vector<uint64_t> bufs;
  for (unsigned i = 0; i < kRing; ++i) {
    uint64_t b = d.fe->alloc(2048);
    std::memset(d.fe->host(b), 0, 12);                 // virtio_net_hdr_mrg_rxbuf: nothing to offload
    std::memset(d.fe->host(b) + 12, 0x42, 64);
    std::memset(d.fe->host(b) + 12, 0xff, 6);          // broadcast destination
    d.fe->set_desc(1, uint16_t(i), b, 12 + 64, 0);
    bufs.push_back(b);
  }
  std::vector<Packet> pkts(kRing);
  for (auto _ : state) {
    for (unsigned i = 0; i < kRing; ++i) d.fe->make_avail(1, uint16_t(i));
    unsigned n = d.port->rx_burst(0, pkts.data(), kRing);
    if (n != kRing) return state.SkipWithError("short burst");
    benchmark::DoNotOptimize(pkts[n - 1].len);
    d.port->rx_release(0);
  }
  state.SetItemsProcessed(int64_t(state.iterations()) * kRing);
}
BENCHMARK(BM_VhostGuestTx);

void BM_VhostGuestRx(benchmark::State& state) {
  Device d;
  if (!d.ok) return state.SkipWithError("negotiation failed");
  for (unsigned i = 0; i < kRing; ++i) d.fe->set_desc(0, uint16_t(i), d.fe->alloc(2048), 2048, kDescWrite);
  std::vector<uint8_t> frame(64, 0x42);
  Packet p;
  p.data = frame.data();
  p.len = p.wire_len = 64;
  for (auto _ : state) {
    for (unsigned i = 0; i < kRing; ++i) d.fe->make_avail(0, uint16_t(i));
    for (unsigned i = 0; i < kRing; ++i)
      if (!d.port->tx_enqueue(0, p)) return state.SkipWithError("tx_enqueue failed");
    d.port->tx_flush(0);
  }
  state.SetItemsProcessed(int64_t(state.iterations()) * kRing);
}
BENCHMARK(BM_VhostGuestRx);

}  // namespace
}  // namespace vpcd::dp::vhost
