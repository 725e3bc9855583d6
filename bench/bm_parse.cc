// Benchmark of the parse stage: parse_batch() over batches of 32 and 256 frames from a realistic mix (TCP data and
// ACKs, UDP, VLAN-tagged, ICMP, ARP, IPv6 UDP/TCP), reported as packets per second (SetItemsProcessed).
// Each iteration resets nothing but what parse() itself resets, as a worker would see fresh frames every batch.
#include <benchmark/benchmark.h>

#include <vector>

#include "datapath/proto/frame_builder.h"
#include "datapath/stages/parse.h"

namespace vpcd::dp {
namespace {

using proto::FrameBuilder;

std::vector<std::vector<uint8_t>> realistic_mix() {
  const MacAddr a{{0x02, 0, 0, 0, 0, 1}}, b{{0x02, 0, 0, 0, 0, 2}};
  const Ipv4Addr ia{0x0a000001}, ib{0x0a000002};
  const auto a6 = *proto::Ipv6Addr::parse("fd00::1"), b6 = *proto::Ipv6Addr::parse("fd00::2");
  auto eth = [&] { return FrameBuilder().eth(a, b); };
  return {
      eth().ipv4(ia, ib).tcp(40000, 443, {.flags = proto::kTcpAck}).payload_size(1448).build(),
      eth().ipv4(ib, ia).tcp(443, 40000, {.flags = proto::kTcpAck}).pad_to(60).build(),
      eth().ipv4(ia, ib).tcp(40000, 443, {.flags = proto::kTcpAck | proto::kTcpPsh}).payload_size(512).build(),
      eth().ipv4(ia, ib).udp(5353, 53).payload_size(40).build(),
      eth().vlan(100).ipv4(ia, ib).udp(4789, 4789).payload_size(100).build(),
      eth().ipv4(ia, ib).icmp_echo(true, 1, 2).payload_size(56).build(),
      eth().arp(1, a, ia, {}, ib).pad_to(60).build(),
      eth().ipv6(a6, b6).udp(1000, 2000).payload_size(200).build(),
      eth().ipv6(a6, b6).tcp(1000, 80, {.flags = proto::kTcpAck}).payload_size(1000).build(),
      eth().ipv4(ia, ib).tcp(40001, 443, {.flags = proto::kTcpAck}).payload_size(1448).build(),
  };
}

void BM_ParseBatch(benchmark::State& state) {
  const size_t batch = size_t(state.range(0));
  auto mix = realistic_mix();
  std::vector<std::vector<uint8_t>> bufs;
  bufs.reserve(batch);
  for (size_t i = 0; i < batch; ++i) bufs.push_back(mix[i % mix.size()]);
  std::vector<Packet> pkts;
  pkts.reserve(batch);
  for (auto& buf : bufs) pkts.push_back(proto::make_packet(buf));
  std::vector<Packet*> ptrs;
  for (auto& p : pkts) ptrs.push_back(&p);

  for (auto _ : state) {
    parse_batch(ptrs);
    benchmark::DoNotOptimize(pkts.data());
    benchmark::ClobberMemory();
  }
  size_t dropped = 0;
  for (const auto& p : pkts) dropped += p.dropped();
  if (dropped != 0) state.SkipWithError("a frame of the mix was dropped");
  state.SetItemsProcessed(int64_t(state.iterations()) * int64_t(batch));
}
BENCHMARK(BM_ParseBatch)->Arg(32)->Arg(256);

}  // namespace
}  // namespace vpcd::dp
