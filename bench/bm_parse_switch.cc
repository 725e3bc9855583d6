// Parse + switch throughput: full run_batch() + flush_outputs() on batches of 64-byte frames into FakePorts that discard,
// among 64 ports in 8 VPCs (8 ports each). Items are packets, so the result reads as packets/s on one core.
//   BM_ParseSwitch/unicast:  IPv4/UDP between NICs (static FIB), port security on.
//   BM_ParseSwitch/learned:  port security off, destinations are learned MACs (nested VMs) behind other ports.
// Arg: batch size (32 = OVS NETDEV_MAX_BURST, 256 = VPP frame).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "datapath/config/dataplane_config.h"
#include "datapath/io/fake_port.h"
#include "datapath/pipeline/pipeline.h"
#include "datapath/proto/frame_builder.h"

namespace vpcd::dp {
namespace {

constexpr unsigned kVpcs = 8;
constexpr unsigned kPortsPerVpc = 8;
constexpr unsigned kPorts = kVpcs * kPortsPerVpc;

MacAddr nic_mac(unsigned port) { return MacAddr{{0x02, 0, 0, 0, uint8_t(port >> 8), uint8_t(port)}}; }
MacAddr nested_mac(unsigned port) { return MacAddr{{0x02, 0xbb, 0, 0, uint8_t(port >> 8), uint8_t(port)}}; }
// Every VPC uses the same addresses (10.0.0.0/24): isolation is by VPC, not by address.
Ipv4Addr nic_ip(unsigned port) { return Ipv4Addr{0x0a000002u + port % kPortsPerVpc}; }

struct Setup {
  explicit Setup(bool learned) {
    uint64_t seq = 1;
    for (unsigned v = 0; v < kVpcs; ++v) {
      VpcConfig vc;
      vc.index = uint16_t(v);
      vc.gen = 1;
      vc.id = "vpc" + std::to_string(v);
      vc.vni = 100 + v;
      vc.router_mac = MacAddr{{0x02, 0xfe, 0, 0, 0, uint8_t(v)}};
      cfg.vpcs.push_back(std::move(vc));
    }
    for (unsigned p = 0; p < kPorts; ++p) {
      PortConfig pc;
      pc.index = uint16_t(p);
      pc.vpc = uint16_t(p / kPortsPerVpc);
      pc.mac = nic_mac(p);
      pc.ips = {nic_ip(p)};
      pc.port_security = !learned;
      pc.mtu = 1450;
      pc.rt = std::make_shared<PortRuntime>();
      pc.rt->seq = seq++;
      pc.features = default_features(pc);
      auto io = std::make_unique<FakePort>("bm" + std::to_string(p), 4096);
      io->set_discard(true);
      pc.rt->io = std::move(io);
      cfg.ports.push_back(std::move(pc));
    }
    for (auto& v : cfg.vpcs) build_vpc_tables(cfg, v, {Ipv4Addr{0x0a000001u}});
    if (learned)
      for (unsigned p = 0; p < kPorts; ++p)
        cfg.vpcs[p / kPortsPerVpc].learned->learn(nested_mac(p), uint16_t(p), cfg.ports[p].rt->seq,
                                                   monotonic_seconds());
  }

  // For each input port, `batch` frames to the other ports of its VPC in turn.
  void make_batches(unsigned batch, bool learned) {
    frames.assign(kPorts, {});
    pkts.assign(kPorts, {});
    for (unsigned p = 0; p < kPorts; ++p) {
      const unsigned base = p / kPortsPerVpc * kPortsPerVpc;
      for (unsigned i = 0; i < batch; ++i) {
        unsigned q = base + (p % kPortsPerVpc + 1 + i % (kPortsPerVpc - 1)) % kPortsPerVpc;
        MacAddr src = learned ? nested_mac(p) : nic_mac(p), dst = learned ? nested_mac(q) : nic_mac(q);
        frames[p].push_back(proto::FrameBuilder()
                                .eth(src, dst)
                                .ipv4(nic_ip(p), nic_ip(q))
                                .udp(uint16_t(1000 + i), 4000)
                                .pad_to(60)
                                .build());
      }
      for (auto& f : frames[p]) pkts[p].push_back(proto::make_packet(f));
    }
  }

  DataplaneConfig cfg;
  std::vector<std::vector<std::vector<uint8_t>>> frames;  // [port][i]
  std::vector<std::vector<Packet>> pkts;                  // [port][i]
};

void run(benchmark::State& state, bool learned) {
  const unsigned batch = unsigned(state.range(0));
  Setup s(learned);
  s.make_batches(batch, learned);
  WorkerContext ctx;
  unsigned in = 0;
  for (auto _ : state) {
    run_batch(ctx, s.cfg, uint16_t(in), s.pkts[in]);
    flush_outputs(ctx, s.cfg);
    in = in + 1 == kPorts ? 0 : in + 1;
  }
  state.SetItemsProcessed(int64_t(state.iterations()) * batch);
  uint64_t tx = 0, drops = 0;
  for (const auto& p : s.cfg.ports) {
    auto c = p.rt->sum();
    tx += c.tx_packets;
    drops += c.total_drops();
  }
  if (drops != 0 || tx != uint64_t(state.iterations()) * batch) state.SkipWithError("frames were dropped or flooded");
}

void BM_ParseSwitchUnicast(benchmark::State& state) { run(state, false); }
void BM_ParseSwitchLearned(benchmark::State& state) { run(state, true); }
// The static FIB's structure (flat_map.h): FlatU64Map probe vs binary search in a sorted vector, N NIC MACs, lookups
// of present MACs in a scrambled order.
std::vector<MacAddr> fib_macs(size_t n) {
  std::vector<MacAddr> macs;
  for (size_t i = 0; i < n; ++i) macs.push_back(MacAddr::from_u64(0x02163e000000ull + i * 0x10001));
  return macs;
}

void BM_FibFlatHash(benchmark::State& state) {
  auto macs = fib_macs(size_t(state.range(0)));
  std::vector<std::pair<MacAddr, uint16_t>> entries;
  for (size_t i = 0; i < macs.size(); ++i) entries.emplace_back(macs[i], uint16_t(i));
  StaticMacFib fib(entries);
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(fib.find(macs[i]));
    i = (i + 7) % macs.size();
  }
  state.SetItemsProcessed(int64_t(state.iterations()));
}

void BM_FibSortedVector(benchmark::State& state) {
  auto macs = fib_macs(size_t(state.range(0)));
  std::vector<std::pair<uint64_t, uint16_t>> sorted;
  for (size_t i = 0; i < macs.size(); ++i) sorted.emplace_back(macs[i].to_u64(), uint16_t(i));
  std::sort(sorted.begin(), sorted.end());
  size_t i = 0;
  for (auto _ : state) {
    const uint64_t k = macs[i].to_u64();
    auto it = std::lower_bound(sorted.begin(), sorted.end(), k, [](const auto& e, uint64_t v) { return e.first < v; });
    benchmark::DoNotOptimize(it != sorted.end() && it->first == k ? it->second : kInvalidPort);
    i = (i + 7) % macs.size();
  }
  state.SetItemsProcessed(int64_t(state.iterations()));
}

BENCHMARK(BM_FibFlatHash)->Arg(8)->Arg(64)->Arg(512);
BENCHMARK(BM_FibSortedVector)->Arg(8)->Arg(64)->Arg(512);
BENCHMARK(BM_ParseSwitchUnicast)->Arg(32)->Arg(256);
BENCHMARK(BM_ParseSwitchLearned)->Arg(32)->Arg(256);

}  // namespace
}  // namespace vpcd::dp
