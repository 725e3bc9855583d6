// The stage runner: packets visit exactly the stages their port's feature bitmap enables, per-stage counters, frames
// stages generate (PacketPool, emit, run_pending) reach their port and give their buffer back, a stage without code
// and a backwards emit are counted drops, a VPC slot without a VPC drops as no_vpc.
#include "datapath/pipeline/pipeline.h"

#include <gtest/gtest.h>

#include <cstring>

#include "tests/unit/stages/switch_test_net.h"

namespace vpcd::dp {
namespace {

using proto::FrameBuilder;
using testing::ip;
using testing::mac;

const MacAddr kA = mac(0x0a), kB = mac(0x0b), kRouter = mac(0xfe, 0xff);
const Ipv4Addr kIpA = ip("10.0.0.2"), kIpB = ip("10.0.0.3");

std::vector<uint8_t> udp(const MacAddr& src, const MacAddr& dst) {
  return FrameBuilder().eth(src, dst).ipv4(kIpA, kIpB).udp(1000, 2000).payload_size(18).build();
}

uint64_t stage(const WorkerContext& ctx, Next n) { return ctx.stage_packets[size_t(n)].load(); }

TEST(Runner, PacketsVisitTheStagesTheirPortEnables) {
  testing::SwitchTestNet net;
  uint16_t v = net.add_vpc(kRouter);
  uint16_t a = net.add_port(v, kA, {kIpA}, /*port_security=*/true);
  uint16_t b = net.add_port(v, kB, {kIpB}, /*port_security=*/false);
  net.build();
  net.receive(a, {udp(kA, kB), udp(kA, kB)});
  EXPECT_EQ(stage(net.ctx, Next::kParse), 2u);
  EXPECT_EQ(stage(net.ctx, Next::kPortSecurity), 2u);
  EXPECT_EQ(stage(net.ctx, Next::kArpResponder), 0u);  // only ARP meets the ARP responder
  EXPECT_EQ(stage(net.ctx, Next::kL2Switch), 2u);
  EXPECT_EQ(stage(net.ctx, Next::kOutput), 2u);
  EXPECT_EQ(stage(net.ctx, Next::kRouter), 0u);
  EXPECT_EQ(net.out(b).size(), 2u);
  // Port security off: the stage is not in b's bitmap, so b's frames skip it.
  net.receive(b, udp(kB, kA));
  EXPECT_EQ(stage(net.ctx, Next::kPortSecurity), 2u);
  EXPECT_EQ(stage(net.ctx, Next::kL2Switch), 3u);
  EXPECT_EQ(net.out(a).size(), 1u);
  // A parse drop goes straight to the drop stage.
  auto f = udp(kA, kB);
  f.resize(10);
  net.receive(a, f);
  EXPECT_EQ(stage(net.ctx, Next::kDrop), 1u);
  EXPECT_EQ(stage(net.ctx, Next::kPortSecurity), 2u);
  EXPECT_EQ(net.drops(a, DropReason::kTooShortEthernet), 1u);
  // An ARP request meets it, and the answer goes back to the asking port.
  net.receive(a, FrameBuilder().eth(kA, kBroadcastMac).arp(1, kA, kIpA, MacAddr{}, kIpB).build());
  EXPECT_EQ(stage(net.ctx, Next::kArpResponder), 1u);
  EXPECT_EQ(net.out(a).size(), 1u);
}

TEST(Runner, GeneratedFramesReachTheirPortAndReturnTheirBuffer) {
  testing::SwitchTestNet net;
  uint16_t v = net.add_vpc(kRouter);
  uint16_t a = net.add_port(v, kA, {kIpA});
  uint16_t b = net.add_port(v, kB, {kIpB});
  net.build();
  const unsigned cap = net.ctx.pool.capacity();
  auto frame = udp(kRouter, kB);
  Packet* p = net.ctx.alloc_packet();
  ASSERT_NE(p, nullptr);
  std::memcpy(p->data, frame.data(), frame.size());
  p->len = p->wire_len = uint32_t(frame.size());
  p->in_port = a;
  p->vpc = v;
  p->out_port = b;
  net.ctx.emit(p, Next::kOutput);
  EXPECT_EQ(net.ctx.pool.available(), cap - 1);
  run_pending(net.ctx, net.cfg);
  flush_outputs(net.ctx, net.cfg);
  EXPECT_EQ(net.out(b), std::vector<std::vector<uint8_t>>{frame});
  EXPECT_EQ(net.ctx.pool.available(), cap);
  EXPECT_EQ(net.counters(b).tx_packets, 1u);
}

TEST(Runner, StageWithoutCodeAndBackwardsEmitAreCountedDrops) {
  testing::SwitchTestNet net;
  uint16_t v = net.add_vpc(kRouter);
  uint16_t a = net.add_port(v, kA, {kIpA});
  net.build();
  auto frame = udp(kA, kB);
  Packet* p = net.ctx.clone_packet(proto::make_packet(frame));
  ASSERT_NE(p, nullptr);
  p->in_port = a;
  p->vpc = v;
  // The NAT stage has no code in this build.
  net.ctx.emit(p, Next::kNat);
  run_pending(net.ctx, net.cfg);
  EXPECT_EQ(net.drops(a, DropReason::kNoStage), 1u);
  // A stage emitting to a stage before itself is a bug: refused and counted.
  Packet* q = net.ctx.clone_packet(proto::make_packet(frame));
  ASSERT_NE(q, nullptr);
  q->in_port = a;
  q->vpc = v;
  net.ctx.running = Next::kL2Switch;
  net.ctx.emit(q, Next::kParse);
  net.ctx.running = Next::kCount;
  run_pending(net.ctx, net.cfg);
  EXPECT_EQ(net.drops(a, DropReason::kNoStage), 2u);
  EXPECT_EQ(net.ctx.pool.available(), net.ctx.pool.capacity());
}

TEST(Runner, PoolExhaustionIsCountedAndBigFramesAreNotCloned) {
  WorkerContext ctx(2);
  Packet* p1 = ctx.alloc_packet();
  Packet* p2 = ctx.alloc_packet();
  ASSERT_TRUE(p1 && p2);
  EXPECT_NE(p1->data, p2->data);
  EXPECT_EQ(ctx.alloc_packet(), nullptr);
  EXPECT_EQ(ctx.pool_exhausted.load(), 1u);
  ctx.pool.free(p1);
  ctx.pool.free(p1);  // a double free is ignored
  EXPECT_EQ(ctx.pool.available(), 1u);
  std::vector<uint8_t> big(PacketPool::kMaxFrame + 1, 0);
  EXPECT_EQ(ctx.clone_packet(proto::make_packet(big)), nullptr);
  EXPECT_EQ(ctx.pool_exhausted.load(), 2u);
  std::vector<uint8_t> ok(PacketPool::kMaxFrame, 7);
  Packet* c = ctx.clone_packet(proto::make_packet(ok));
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->len, ok.size());
  EXPECT_EQ(c->data[ok.size() - 1], 7);
}

TEST(Runner, PortOfAnEmptyVpcSlotDropsAsNoVpc) {
  testing::SwitchTestNet net;
  uint16_t v = net.add_vpc(kRouter);
  uint16_t a = net.add_port(v, kA, {kIpA});
  uint16_t b = net.add_port(v, kB, {kIpB});
  net.build();
  net.cfg.vpcs[v].gen = 0;  // the VPC is gone, its slot empty
  net.receive(a, udp(kA, kB));
  EXPECT_EQ(net.drops(a, DropReason::kNoVpc), 1u);
  EXPECT_TRUE(net.out(b).empty());
  EXPECT_EQ(stage(net.ctx, Next::kParse), 0u);
}

}  // namespace
}  // namespace vpcd::dp
