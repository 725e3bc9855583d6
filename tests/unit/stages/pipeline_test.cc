// The pipeline runner: counters (rx on input, tx and output drops on the output port, per worker slot), tx ring full,
// ports without I/O, parse drops, ports in no VPC, unknown input ports, batches larger than kMaxBatch, and that
// nothing reaches the wire before flush_outputs().
#include "datapath/pipeline/pipeline.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "tests/unit/stages/switch_test_net.h"

namespace vpcd::dp {
namespace {

using proto::FrameBuilder;
using testing::ip;
using testing::mac;

const MacAddr kA = mac(0x0a), kB = mac(0x0b), kC = mac(0x0c), kRouter = mac(0xfe, 0xff);
const Ipv4Addr kIpA = ip("10.0.0.2"), kIpB = ip("10.0.0.3"), kIpC = ip("10.0.0.4");

std::vector<uint8_t> udp(const MacAddr& src, const MacAddr& dst, uint16_t sport = 1000) {
  return FrameBuilder().eth(src, dst).ipv4(kIpA, kIpB).udp(sport, 2000).payload_size(18).build();
}

TEST(Pipeline, TxRingFullCountedOnOutputPort) {
  testing::SwitchTestNet net;
  uint16_t v = net.add_vpc(kRouter);
  uint16_t a = net.add_port(v, kA, {kIpA});
  uint16_t b = net.add_port(v, kB, {kIpB}, true, 1450, /*tx_capacity=*/4);
  net.build();
  std::vector<std::vector<uint8_t>> frames;
  for (uint16_t i = 0; i < 10; ++i) frames.push_back(udp(kA, kB, uint16_t(1000 + i)));
  net.receive(a, frames);
  auto got = net.out(b);
  ASSERT_EQ(got.size(), 4u);
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], frames[i]);  // in order
  EXPECT_EQ(net.counters(a).rx_packets, 10u);
  EXPECT_EQ(net.counters(a).total_drops(), 0u);
  EXPECT_EQ(net.counters(b).tx_packets, 4u);
  EXPECT_EQ(net.drops(b, DropReason::kTxRingFull), 6u);
  // The ring is empty again after the flush.
  net.receive(a, frames[0]);
  EXPECT_EQ(net.out(b).size(), 1u);
}

TEST(Pipeline, FloodCopiesCountedPerOutputPort) {
  testing::SwitchTestNet net;
  uint16_t v = net.add_vpc(kRouter);
  uint16_t a = net.add_port(v, kA, {kIpA});
  uint16_t b = net.add_port(v, kB, {kIpB}, true, 1450, 1);
  uint16_t c = net.add_port(v, kC, {kIpC});
  net.build();
  net.receive(a, {udp(kA, kBroadcastMac), udp(kA, kBroadcastMac)});
  EXPECT_EQ(net.counters(b).tx_packets, 1u);
  EXPECT_EQ(net.drops(b, DropReason::kTxRingFull), 1u);
  EXPECT_EQ(net.counters(c).tx_packets, 2u);
  EXPECT_EQ(net.counters(a).tx_packets, 0u);
}

TEST(Pipeline, PortWithoutIoCountsPortDown) {
  testing::SwitchTestNet net;
  uint16_t v = net.add_vpc(kRouter);
  uint16_t a = net.add_port(v, kA, {kIpA});
  uint16_t b = net.add_port(v, kB, {kIpB});
  net.build();
  net.cfg.ports[b].rt->io.reset();
  net.receive(a, udp(kA, kB));
  EXPECT_EQ(net.drops(b, DropReason::kPortDown), 1u);
  EXPECT_EQ(net.counters(b).tx_packets, 0u);
}

TEST(Pipeline, ParseDropsCountedOnInputPort) {
  testing::SwitchTestNet net;
  uint16_t v = net.add_vpc(kRouter);
  uint16_t a = net.add_port(v, kA, {kIpA});
  uint16_t b = net.add_port(v, kB, {kIpB});
  net.build();
  auto good = udp(kA, kB);
  std::vector<uint8_t> short_eth(good.begin(), good.begin() + 10);
  std::vector<uint8_t> short_ip(good.begin(), good.begin() + 20);
  net.receive(a, {short_eth, good, short_ip});
  EXPECT_EQ(net.drops(a, DropReason::kTooShortEthernet), 1u);
  EXPECT_EQ(net.drops(a, DropReason::kTooShortIpv4), 1u);
  EXPECT_EQ(net.counters(a).total_drops(), 2u);
  EXPECT_EQ(net.counters(a).rx_packets, 3u);
  EXPECT_EQ(net.out(b).size(), 1u);
}

TEST(Pipeline, PortInNoVpcAndUnknownPort) {
  testing::SwitchTestNet net;
  uint16_t v = net.add_vpc(kRouter);
  uint16_t a = net.add_port(v, kA, {kIpA});
  uint16_t lone = net.add_port(kNoVpcIndex, kB, {kIpB});
  net.build();
  net.receive(lone, {udp(kB, kA), udp(kB, kBroadcastMac)});
  EXPECT_EQ(net.drops(lone, DropReason::kNoVpc), 2u);
  EXPECT_TRUE(net.out(a).empty());

  auto f = udp(kA, kB);
  Packet p = proto::make_packet(f);
  run_batch(net.ctx, net.cfg, 77, std::span<Packet>(&p, 1));
  EXPECT_EQ(net.ctx.unknown_port_drops, 1u);
  net.cfg.ports.emplace_back();  // a hole
  run_batch(net.ctx, net.cfg, uint16_t(net.cfg.ports.size() - 1), std::span<Packet>(&p, 1));
  EXPECT_EQ(net.ctx.unknown_port_drops, 2u);
  net.ctx.worker = kMaxWorkers;  // no counter slot for it: nothing is touched
  run_batch(net.ctx, net.cfg, a, std::span<Packet>(&p, 1));
  EXPECT_EQ(net.ctx.unknown_port_drops, 3u);
  EXPECT_EQ(net.counters(a).rx_packets, 0u);
}

TEST(Pipeline, LargeBatchesAreSplitAndCountersUseWorkerSlot) {
  testing::SwitchTestNet net(/*worker=*/3);
  uint16_t v = net.add_vpc(kRouter);
  uint16_t a = net.add_port(v, kA, {kIpA});
  uint16_t b = net.add_port(v, kB, {kIpB}, true, 1450, 1000);
  net.build();
  std::vector<std::vector<uint8_t>> frames(600, udp(kA, kB));
  net.receive(a, frames);
  EXPECT_EQ(net.out(b).size(), 600u);
  EXPECT_EQ(net.cfg.ports[a].rt->counters[3].rx_packets.load(), 600u);
  EXPECT_EQ(net.cfg.ports[a].rt->counters[0].rx_packets.load(), 0u);
  EXPECT_EQ(net.cfg.ports[b].rt->counters[3].tx_packets.load(), 600u);
  EXPECT_EQ(net.fakes[b]->tx_flushed(), 600u);
}

TEST(Pipeline, NothingLeavesBeforeFlush) {
  testing::SwitchTestNet net;
  uint16_t v = net.add_vpc(kRouter);
  uint16_t a = net.add_port(v, kA, {kIpA});
  uint16_t b = net.add_port(v, kB, {kIpB});
  net.build();
  auto f = udp(kA, kB);
  Packet p = proto::make_packet(f);
  run_batch(net.ctx, net.cfg, a, std::span<Packet>(&p, 1));
  EXPECT_TRUE(net.out(b).empty());
  EXPECT_EQ(net.ctx.dirty_ports, std::vector<uint16_t>{b});
  flush_outputs(net.ctx, net.cfg);
  EXPECT_EQ(net.out(b).size(), 1u);
  EXPECT_TRUE(net.ctx.dirty_ports.empty());
}

TEST(Pipeline, SummedCountersAcrossWorkers) {
  testing::SwitchTestNet net;
  uint16_t v = net.add_vpc(kRouter);
  uint16_t a = net.add_port(v, kA, {kIpA});
  uint16_t b = net.add_port(v, kB, {kIpB});
  net.build();
  net.receive(a, udp(kA, kB));
  net.ctx.worker = 5;
  net.receive(a, {udp(kA, kB), udp(kB, kB)});  // second: spoofed source MAC
  auto c = net.counters(a);
  EXPECT_EQ(c.rx_packets, 3u);
  EXPECT_EQ(c.drops[size_t(DropReason::kSpoofedSourceMac)], 1u);
  EXPECT_EQ(net.counters(b).tx_packets, 2u);
}

TEST(FakePort, EventfdTracksPendingFrames) {
  FakePort port("fk", 2);
  int fd = port.rx_fd(0);
  ASSERT_GE(fd, 0);
  uint64_t v = 0;
  EXPECT_LT(::read(fd, &v, sizeof v), 0);  // nothing pending
  port.inject({1, 2, 3});
  port.inject({4, 5});
  Packet pkts[4];
  EXPECT_EQ(port.rx_burst(0, pkts, 1), 1u);
  EXPECT_EQ(pkts[0].len, 3u);
  EXPECT_EQ(port.rx_pending(), 1u);
  EXPECT_EQ(port.rx_burst(0, pkts + 1, 3), 1u);
  EXPECT_EQ(pkts[0].data[2], 3);  // still valid before rx_release
  port.rx_release(0);
  EXPECT_LT(::read(fd, &v, sizeof v), 0);  // drained
  std::vector<uint8_t> buf{9, 8, 7};
  Packet out = proto::make_packet(buf);
  EXPECT_TRUE(port.tx_enqueue(0, out));
  EXPECT_TRUE(port.tx_enqueue(0, out));
  EXPECT_FALSE(port.tx_enqueue(0, out));  // capacity 2
  EXPECT_TRUE(port.tx_enqueue(1, out));   // another worker's ring
  EXPECT_TRUE(port.drain().empty());
  port.tx_flush(0);
  port.tx_flush(1);
  auto sent = port.drain_bytes();
  ASSERT_EQ(sent.size(), 3u);
  EXPECT_EQ(sent[0], buf);
}

}  // namespace
}  // namespace vpcd::dp
