// Benchmarks of the overlay's per-packet work, reported as packets per second per core (SetItemsProcessed):
//   BM_VxlanDecap   parse the outer frame + vxlan_decap (checks, VNI and VTEP lookups, inner parse) on 64-byte inner
//                   frames (the target: >= 10 Mpps per core), batch size as the argument;
//   BM_VxlanEncap   inner flow hash + outer header (template copy, lengths, IPv4 checksum, source port) per packet;
//   BM_GsoSegment   software segmentation of a 64 KB TCP super-frame into 1398-byte segments, with the inner checksum
//                   computed in software (arg 0) or left partial for the kernel (arg 1); bytes per second;
//   BM_PayloadCopySum the payload part of that: a 64 KB super-frame's payload copied and summed in 1398-byte segments,
//                   memcpy then ones_sum (arg 0, how gso.cc did it before 2026-12-02) or in one pass with
//                   ones_sum_copy (arg 1, what it does now);
//   BM_VxlanUsoFrame  the USO transmit of one 64 KB TCP super-frame (vxlan_uso.h: both USO frames it becomes, inner
//                   headers and checksums per segment written into the frame buffer); bytes of super-frame per second.
// Run: cmake --build build --target bm_vxlan && build/bm_vxlan
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "datapath/proto/checksum.h"
#include "datapath/proto/frame_builder.h"
#include "datapath/proto/gso.h"
#include "datapath/proto/vxlan.h"
#include "datapath/stages/parse.h"
#include "datapath/stages/vxlan_decap.h"
#include "datapath/stages/vxlan_encap.h"
#include "datapath/stages/vxlan_uso.h"

namespace vpcd::dp {
namespace {

using proto::FrameBuilder;

const MacAddr kA{{0x02, 0, 0, 0, 0, 1}}, kB{{0x02, 0, 0, 0, 0, 2}};
const MacAddr kUplink{{0x02, 0xaa, 0, 0, 0, 1}}, kPeerMac{{0x02, 0xbb, 0, 0, 0, 2}};
const Ipv4Addr kLocal{0xc0000201}, kPeer{0xc0000202};

// The outer headers of this box's uplink towards the peer VTEP, VNI 4242.
proto::VxlanOuter outer_to_peer() {
  proto::VxlanOuterParams op;
  op.src_mac = kUplink;
  op.dst_mac = kPeerMac;
  op.src_ip = kLocal;
  op.dst_ip = kPeer;
  op.vni = 4242;
  return proto::build_vxlan_outer(op);
}

std::vector<uint8_t> inner64(uint16_t sport) {
  return FrameBuilder().eth(kA, kB).ipv4(Ipv4Addr{0x0a000001}, Ipv4Addr{0x0a000002}).udp(sport, 9).pad_to(64 - 4).build();
}

void BM_VxlanDecap(benchmark::State& state) {
  const size_t batch = size_t(state.range(0));
  const OverlayTable table({{100, 0}, {101, 1}, {4242, 2}}, {{0, kPeer, 5}, {1, kPeer, 6}, {2, kPeer, 7}});
  VxlanDecapParams c;
  c.local_ip = kLocal;
  c.table = &table;
  std::vector<std::vector<uint8_t>> bufs;
  for (size_t i = 0; i < batch; ++i) {
    std::vector<uint8_t> inner = inner64(uint16_t(1000 + i));
    std::vector<uint8_t> v(proto::kVxlanHdrLen);
    const proto::VxlanHdr h = proto::VxlanHdr::make(4242);
    std::memcpy(v.data(), &h, sizeof h);
    v.insert(v.end(), inner.begin(), inner.end());
    proto::Ipv4Opts df;
    df.frag_off = proto::kIpv4FlagDf;
    auto f = FrameBuilder().eth(kPeerMac, kUplink).ipv4(kPeer, kLocal, df).udp(uint16_t(50000 + i), 4789).payload(v).build();
    f[40] = f[41] = 0;
    bufs.push_back(std::move(f));
  }
  std::vector<Packet> pkts(batch);
  size_t bad = 0;
  for (auto _ : state) {
    for (size_t i = 0; i < batch; ++i) {
      Packet& p = pkts[i];
      p.data = bufs[i].data();
      p.len = p.wire_len = uint32_t(bufs[i].size());
      p.flags = 0;
      parse(p);
      VxlanDecapResult r;
      if (!is_vxlan_to_us(p, c) || vxlan_decap(p, c, r) != DropReason::kCount) [[unlikely]]
        ++bad;
      benchmark::DoNotOptimize(r);
    }
    benchmark::ClobberMemory();
  }
  if (bad) state.SkipWithError("a datagram was dropped");
  state.SetItemsProcessed(int64_t(state.iterations()) * int64_t(batch));
}
BENCHMARK(BM_VxlanDecap)->Arg(32)->Arg(256);

void BM_VxlanEncap(benchmark::State& state) {
  const size_t batch = size_t(state.range(0));
  std::vector<std::vector<uint8_t>> bufs;
  for (size_t i = 0; i < batch; ++i) bufs.push_back(inner64(uint16_t(1000 + i)));
  std::vector<Packet> pkts;
  for (auto& b : bufs) {
    pkts.push_back(proto::make_packet(b));
    parse(pkts.back());
  }
  const proto::VxlanOuter tmpl = outer_to_peer();
  std::vector<proto::VxlanOuter> outs(batch);
  for (auto _ : state) {
    for (size_t i = 0; i < batch; ++i) vxlan_encap_header(pkts[i], tmpl, inner_flow_hash(pkts[i]), false, outs[i]);
    benchmark::DoNotOptimize(outs.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(int64_t(state.iterations()) * int64_t(batch));
}
BENCHMARK(BM_VxlanEncap)->Arg(32)->Arg(256);

void BM_GsoSegment(benchmark::State& state) {
  const auto mode = state.range(0) == 0 ? proto::GsoCsum::kSoftware : proto::GsoCsum::kPartial;
  auto f = FrameBuilder().eth(kA, kB).ipv4(Ipv4Addr{0x0a000001}, Ipv4Addr{0x0a000002}).tcp(40000, 5201).payload_size(64000).build();
  Packet p = proto::make_packet(f);
  parse(p);
  p.flags |= kHasVnet;
  p.vnet.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
  p.vnet.gso_size = 1398;
  const size_t n = proto::gso_segment_count(p);
  std::vector<uint8_t> out(f.size() + n * 64);
  std::vector<proto::GsoSegment> segs(n);
  for (auto _ : state) {
    if (proto::gso_segment(p, mode, out, segs) != n) state.SkipWithError("segmentation failed");
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(f.size()));
  state.SetItemsProcessed(int64_t(state.iterations()) * int64_t(n));
  state.SetLabel(mode == proto::GsoCsum::kSoftware ? "inner checksum in software" : "inner checksum left partial");
}
BENCHMARK(BM_GsoSegment)->Arg(0)->Arg(1);

void BM_PayloadCopySum(benchmark::State& state) {
  const bool fused = state.range(0) == 1;
  constexpr size_t kPayload = 64000, kMss = 1398;
  std::vector<uint8_t> src(kPayload), dst(kPayload + 64);
  for (size_t i = 0; i < src.size(); ++i) src[i] = uint8_t(i * 7 + 3);
  uint32_t acc = 0;
  for (auto _ : state) {
    for (size_t off = 0; off < kPayload; off += kMss) {
      const size_t n = kPayload - off < kMss ? kPayload - off : kMss;
      if (fused) {
        acc += proto::ones_sum_copy(dst.data() + off, src.data() + off, n);
      } else {
        std::memcpy(dst.data() + off, src.data() + off, n);
        acc += proto::ones_sum({dst.data() + off, n});
      }
    }
    benchmark::DoNotOptimize(acc);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(kPayload));
  state.SetLabel(fused ? "one pass (ones_sum_copy)" : "memcpy, then ones_sum");
}
BENCHMARK(BM_PayloadCopySum)->Arg(0)->Arg(1);

void BM_VxlanUsoFrame(benchmark::State& state) {
  auto f = FrameBuilder()
               .eth(kA, kB)
               .ipv4(Ipv4Addr{0x0a000001}, Ipv4Addr{0x0a000002})
               .tcp(40000, 5201)
               .payload_size(64000)
               .build();
  Packet p = proto::make_packet(f);
  parse(p);
  p.flags |= kHasVnet;
  p.vnet.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
  p.vnet.gso_size = 1398;
  const proto::VxlanOuter tmpl = outer_to_peer();
  const UsoPlan plan = vxlan_uso_plan(p);
  std::vector<uint8_t> buf(kUsoFrameBytes);
  size_t frames = 0;
  for (auto _ : state) {
    for (size_t first = 0; first < plan.segments; first += plan.per_frame) {
      const size_t count = plan.segments - first < plan.per_frame ? plan.segments - first : plan.per_frame;
      virtio_net_hdr vnet;
      if (vxlan_uso_frame(p, plan, tmpl, first, count, buf.data(), buf.size(), &vnet) == 0) {
        state.SkipWithError("USO frame failed");
        break;
      }
      ++frames;
      benchmark::DoNotOptimize(buf.data());
      benchmark::ClobberMemory();
    }
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(f.size()));
  state.SetItemsProcessed(int64_t(state.iterations()));  // super-frames
  const size_t per = frames / std::max<size_t>(size_t(state.iterations()), 1);
  state.SetLabel(std::to_string(plan.segments) + " segments, " + std::to_string(per) + " USO frames per super-frame");
}
BENCHMARK(BM_VxlanUsoFrame);

}  // namespace
}  // namespace vpcd::dp
