// Benchmarks of the receiver's software GRO (stage tcp-coalesce, tcp_coalesce.h) per 64 KB of TCP segments
// (46 segments of 1398 payload bytes in IPv4 frames, one flow, as decapsulated from the uplink), bytes of payload per
// second:
//   BM_CoalesceVerifyCopy  the per-segment work on the bytes only: verify the TCP checksum (pseudo-header + header +
//                          payload) and copy the payload into an arena, either verify-then-copy (arg 0: ones_sum over
//                          the segment, then memcpy; how tcp-coalesce did it before 2026-12-02) or fused (arg 1:
//                          header sum + ones_sum_copy of the payload, one pass; what it does now);
//   BM_CoalesceStage       TcpCoalesceStage::process on the 46 segments: checksums verified in the stage (arg 0, the
//                          fused path) or DATA_VALID segments that need no verification (arg 1, the floor: copy only).
// Run: ninja -C build bm_coalesce && taskset -c 1 build/bm_coalesce
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "datapath/config/dataplane_config.h"
#include "datapath/pipeline/worker_context.h"
#include "datapath/proto/checksum.h"
#include "datapath/proto/frame_builder.h"
#include "datapath/proto/l4.h"
#include "datapath/stages/parse.h"
#include "datapath/stages/tcp_coalesce.h"

namespace vpcd::dp {
namespace {

using proto::FrameBuilder;

constexpr uint32_t kMss = 1398;
constexpr unsigned kSegs = 46;  // 46 * 1398 = 64308 payload bytes: one 64 KB super-frame
const MacAddr kA{{0x02, 0, 0, 0, 0, 1}}, kB{{0x02, 0, 0, 0, 0, 2}};
const Ipv4Addr kSrc{0x0a000001}, kDst{0x0a000002};

std::vector<std::vector<uint8_t>> segments() {
  std::vector<std::vector<uint8_t>> v;
  for (unsigned i = 0; i < kSegs; ++i) {
    std::vector<uint8_t> pl(kMss);
    for (uint32_t b = 0; b < kMss; ++b) pl[b] = uint8_t((i * kMss + b) * 7 + 3);
    proto::TcpOpts t;
    t.seq = 1000 + i * kMss;
    t.ack = 1;
    t.flags = proto::kTcpAck;
    t.window = 500;
    proto::Ipv4Opts o;
    o.frag_off = proto::kIpv4FlagDf;
    v.push_back(FrameBuilder().eth(kA, kB).ipv4(kSrc, kDst, o).tcp(5201, 40000, t).payload(pl).build());
  }
  return v;
}

void BM_CoalesceVerifyCopy(benchmark::State& state) {
  const bool fused = state.range(0) == 1;
  auto segs = segments();
  constexpr size_t kL4 = 14 + 20, kHdr = kL4 + 20;
  std::vector<uint8_t> arena(kSegs * kMss + 64);
  uint64_t ok = 0;
  for (auto _ : state) {
    uint8_t* dst = arena.data();
    for (const auto& f : segs) {
      const uint32_t l4_len = uint32_t(f.size() - kL4);
      const uint32_t pseudo = proto::ipv4_pseudo_sum(kSrc, kDst, proto::kIpProtoTcp, uint16_t(l4_len));
      if (fused) {
        const uint32_t pl = proto::ones_sum_copy(dst, f.data() + kHdr, kMss);
        const uint32_t hs = proto::ones_sum({f.data() + kL4, kHdr - kL4}, pseudo);
        ok += proto::fold_sum(hs + pl) == 0xffff;
      } else {
        ok += proto::checksum_valid({f.data() + kL4, l4_len}, pseudo);
        std::memcpy(dst, f.data() + kHdr, kMss);
      }
      dst += kMss;
    }
    benchmark::DoNotOptimize(ok);
    benchmark::ClobberMemory();
  }
  if (ok != uint64_t(state.iterations()) * kSegs) state.SkipWithError("a checksum did not verify");
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(kSegs * kMss));
  state.SetLabel(fused ? "fused: header sum + ones_sum_copy" : "verify (ones_sum), then memcpy");
}
BENCHMARK(BM_CoalesceVerifyCopy)->Arg(0)->Arg(1);

void BM_CoalesceStage(benchmark::State& state) {
  const bool data_valid = state.range(0) == 1;
  auto segs = segments();
  std::vector<Packet> tmpl;
  for (auto& f : segs) {
    Packet p = proto::make_packet(f);
    if (data_valid) {
      p.flags |= kHasVnet;
      p.vnet = virtio_net_hdr{};
      p.vnet.flags = VIRTIO_NET_HDR_F_DATA_VALID;
    }
    parse(p);
    p.in_port = 1;
    p.out_port = 2;
    p.vpc = 0;
    tmpl.push_back(p);
  }
  auto ctx = std::make_unique<WorkerContext>();
  DataplaneConfig cfg;
  std::vector<Packet> pkts(tmpl.size());
  std::vector<Packet*> ptrs;
  for (auto& p : pkts) ptrs.push_back(&p);
  for (auto _ : state) {
    std::copy(tmpl.begin(), tmpl.end(), pkts.begin());
    TcpCoalesceStage::process(*ctx, cfg, ptrs);
    benchmark::DoNotOptimize(pkts[0].data);
    benchmark::ClobberMemory();
  }
  if (ctx->coalesce.segments.load() != uint64_t(state.iterations()) * kSegs) state.SkipWithError("segments were not joined");
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(kSegs * kMss));
  state.SetLabel(data_valid ? "DATA_VALID: no verification" : "verified in the stage");
}
BENCHMARK(BM_CoalesceStage)->Arg(0)->Arg(1);

}  // namespace
}  // namespace vpcd::dp
