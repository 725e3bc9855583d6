// VhostUserPort driven by an in-process front-end (fake_frontend.h): negotiation, guest TX -> rx_burst, tx_enqueue ->
// guest RX (plain, mergeable, segmented), notifications, resume, reset, and every bad descriptor / message of
// issue 10's list ending in a counted drop or state error.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/epoll.h>

#include <cstring>
#include <filesystem>

#include "datapath/io/vhost_user/message.h"
#include "datapath/io/vhost_user/offload.h"
#include "datapath/io/vhost_user/vhost_user_port.h"
#include "datapath/proto/checksum.h"
#include "datapath/proto/frame_builder.h"
#include "datapath/stages/parse.h"
#include "tests/unit/io/vhost_user/fake_frontend.h"

namespace vpcd::dp::vhost {
namespace {

using testing::FakeFrontend;
using testing::kDefaultFeatures;
using testing::test_frame;

std::unique_ptr<VhostUserPort> make_port(unsigned pairs = 1, unsigned workers = 1) {
  VhostUserPortConfig c;
  c.name = "vu-test";
  c.queue_pairs = pairs;
  c.mtu = 1450;
  c.mac = MacAddr{{0x02, 0, 0, 0, 0, 0x01}};
  c.tx_workers = workers;
  std::string err;
  auto p = VhostUserPort::create(c, &err);
  EXPECT_TRUE(p) << err;
  return p;
}

size_t open_fds() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

struct Fixture : ::testing::Test {
  void SetUp() override {
    port = make_port();
    port->on_connect();
    fe = std::make_unique<FakeFrontend>(port.get(), -1);
  }
  // Drains what the guest sent; skips the RARP the port emits on its first burst after coming up.
  unsigned burst(std::vector<Packet>& out, bool skip_rarp = true) {
    out.assign(Worker_kBurst, Packet{});
    unsigned n = port->rx_burst(0, out.data(), Worker_kBurst);
    out.resize(n);
    if (skip_rarp && !out.empty() && out[0].len == 60 && out[0].data[12] == 0x80 && out[0].data[13] == 0x35)
      out.erase(out.begin());
    return unsigned(out.size());
  }
  uint64_t drops(DropReason r) {
    std::array<uint64_t, size_t(DropReason::kCount)> d{};
    port->add_io_drops(d);
    return d[size_t(r)];
  }
  static constexpr unsigned Worker_kBurst = 256;
  std::unique_ptr<VhostUserPort> port;
  std::unique_ptr<FakeFrontend> fe;
};

TEST_F(Fixture, NegotiatesAndComesUp) {
  EXPECT_EQ(port->status().state, DeviceState::kNegotiating);
  ASSERT_TRUE(fe->start(kDefaultFeatures)) << fe->last_error;
  EXPECT_TRUE(fe->offered & feat::kVersion1);
  EXPECT_TRUE(fe->offered & feat::kNetMrgRxbuf);
  EXPECT_TRUE(fe->offered & feat::kNetMtu);
  EXPECT_TRUE(fe->offered & feat::kProtocolFeatures);
  EXPECT_EQ(fe->get_u64(Req::kGetProtocolFeatures) & (pfeat::kMq | pfeat::kReplyAck),
            pfeat::kMq | pfeat::kReplyAck);
  EXPECT_EQ(fe->get_u64(Req::kGetQueueNum), 1u);
  EXPECT_EQ(port->status().state, DeviceState::kUp) << port->status().detail;
  EXPECT_EQ(port->negotiated_features(), kDefaultFeatures);
}

TEST_F(Fixture, RingsStayDisabledUntilEnabled) {
  ASSERT_TRUE(fe->negotiate(kDefaultFeatures));
  ASSERT_TRUE(fe->set_mem_table());
  ASSERT_TRUE(fe->setup_vring(0, 64, false));
  ASSERT_TRUE(fe->setup_vring(1, 64, false));
  EXPECT_EQ(port->status().state, DeviceState::kNegotiating);
  ASSERT_TRUE(fe->state(Req::kSetVringEnable, 0, 1));
  ASSERT_TRUE(fe->state(Req::kSetVringEnable, 1, 1));
  EXPECT_EQ(port->status().state, DeviceState::kUp);
}

TEST_F(Fixture, GuestTxArrivesWithVnetHeaderAndUsedEntries) {
  ASSERT_TRUE(fe->start(kDefaultFeatures));
  NetHdr h{};
  h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  h.csum_start = 14;
  h.csum_offset = 6;
  auto f1 = test_frame(1);
  auto f2 = test_frame(2, 100);
  fe->send_frame(f1, h);
  fe->send_frame(f2, {}, 12, 5);  // header split across two descriptors
  std::vector<Packet> got;
  ASSERT_EQ(burst(got), 2u);
  ASSERT_EQ(got[0].len, f1.size());
  EXPECT_EQ(0, std::memcmp(got[0].data, f1.data(), f1.size()));
  EXPECT_TRUE(got[0].flags & kHasVnet);
  EXPECT_EQ(got[0].vnet.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
  EXPECT_EQ(got[0].vnet.csum_start, 14);
  EXPECT_EQ(got[0].vnet.csum_offset, 6);
  ASSERT_EQ(got[1].len, f2.size());
  EXPECT_EQ(0, std::memcmp(got[1].data, f2.data(), f2.size()));
  EXPECT_EQ(fe->used_idx(1), 2);
  port->rx_release(0);
}

TEST_F(Fixture, KickFdWakesTheQueueAndIsDrained) {
  ASSERT_TRUE(fe->start(kDefaultFeatures));
  std::vector<Packet> got;
  burst(got);  // RARP and nothing else
  int ep = port->rx_fd(0);
  epoll_event ev;
  EXPECT_EQ(::epoll_wait(ep, &ev, 1, 0), 0);
  fe->send_frame(test_frame(1));
  uint64_t one = 1;
  ASSERT_EQ(::write(fe->kick_fd(1), &one, 8), 8);
  EXPECT_EQ(::epoll_wait(ep, &ev, 1, 0), 1);
  EXPECT_EQ(burst(got), 1u);
  port->rx_release(0);
  EXPECT_EQ(::epoll_wait(ep, &ev, 1, 0), 0);
}

// The device never waits for the guest's receive buffers, so the guest's RX ring asks for no kicks (used->flags
// NO_NOTIFY without EVENT_IDX); its TX ring still does while the queue is idle.
TEST_F(Fixture, GuestRxRingAsksForNoKicks) {
  ASSERT_TRUE(fe->start(kDefaultFeatures & ~feat::kRingEventIdx));
  auto used_flags = [&](unsigned ring) { return *reinterpret_cast<uint16_t*>(fe->host(fe->rings[ring].used_gpa)); };
  EXPECT_EQ(used_flags(0), kUsedFlagNoNotify);
  std::vector<Packet> got;
  burst(got);
  port->rx_release(0);
  EXPECT_EQ(used_flags(1), 0);  // idle TX ring: kick me
  fe->post_rx(2, 2048);
  auto f = test_frame(1);
  Packet p;
  p.data = f.data();
  p.len = p.wire_len = 64;
  ASSERT_TRUE(port->tx_enqueue(0, p));
  port->tx_flush(0);
  EXPECT_EQ(fe->used_idx(0), 1);
  EXPECT_EQ(used_flags(0), kUsedFlagNoNotify);
}

TEST_F(Fixture, TxIntoGuestPlainAndMergeable) {
  ASSERT_TRUE(fe->start(kDefaultFeatures));
  auto bufs = fe->post_rx(4, 64);
  auto frame = test_frame(9, 150);  // 12 + 150 bytes: three 64-byte buffers
  Packet p;
  p.data = frame.data();
  p.len = p.wire_len = uint32_t(frame.size());
  ASSERT_TRUE(port->tx_enqueue(0, p));
  EXPECT_EQ(fe->used_idx(0), 0);  // not visible before tx_flush
  port->tx_flush(0);
  ASSERT_EQ(fe->used_idx(0), 3);
  EXPECT_EQ(fe->used_elem(0, 0).len, 64u);
  EXPECT_EQ(fe->used_elem(0, 2).len, 12u + 150u - 128u);
  NetHdr h;
  std::memcpy(&h, fe->host(bufs[0]), sizeof h);
  EXPECT_EQ(h.num_buffers, 3);
  std::vector<uint8_t> back;
  back.insert(back.end(), fe->host(bufs[0]) + 12, fe->host(bufs[0]) + 64);
  back.insert(back.end(), fe->host(bufs[1]), fe->host(bufs[1]) + 64);
  back.insert(back.end(), fe->host(bufs[2]), fe->host(bufs[2]) + 34);
  EXPECT_EQ(back, frame);
  // One buffer left: a frame needing two is dropped as no_rx_buffers and consumes nothing.
  EXPECT_FALSE(port->tx_enqueue(0, p));
  EXPECT_EQ(port->tx_drop_reason(0), DropReason::kVhostNoRxBuffers);
  port->tx_flush(0);
  EXPECT_EQ(fe->used_idx(0), 3);
}

TEST_F(Fixture, TxWithoutMergeableNeedsOneChain) {
  ASSERT_TRUE(fe->start(kDefaultFeatures & ~feat::kNetMrgRxbuf));
  fe->post_rx(1, 64);
  auto frame = test_frame(9, 150);
  Packet p;
  p.data = frame.data();
  p.len = p.wire_len = uint32_t(frame.size());
  EXPECT_FALSE(port->tx_enqueue(0, p));
  EXPECT_EQ(port->tx_drop_reason(0), DropReason::kVhostRxBufferTooSmall);
  fe->post_rx(1, 2048);
  auto small = test_frame(9, 60);
  p.data = small.data();
  p.len = p.wire_len = 60;
  EXPECT_FALSE(port->tx_enqueue(0, p));  // the first (too small for 150, fine for 60?) 64 < 12 + 60
  EXPECT_EQ(port->tx_drop_reason(0), DropReason::kVhostRxBufferTooSmall);
}

TEST_F(Fixture, TxNotReadyIsPortDown) {
  Packet p;
  auto f = test_frame(1);
  p.data = f.data();
  p.len = p.wire_len = 64;
  EXPECT_FALSE(port->tx_enqueue(0, p));
  EXPECT_EQ(port->tx_drop_reason(0), DropReason::kPortDown);
}

TEST_F(Fixture, GsoFrameIsSegmentedForAGuestWithoutTso) {
  ASSERT_TRUE(fe->start(kDefaultFeatures & ~(feat::kNetGuestTso4 | feat::kNetGuestCsum)));
  auto bufs = fe->post_rx(8, 2048);
  // IPv4/TCP with 3000 bytes of payload, gso_size 1000.
  std::vector<uint8_t> f(14 + 20 + 20 + 3000, 0);
  std::memset(f.data(), 0x02, 12);
  f[12] = 0x08;
  f[14] = 0x45;
  f[16] = uint8_t((20 + 20 + 3000) >> 8), f[17] = uint8_t(20 + 20 + 3000);
  f[22] = 64, f[23] = 6;
  f[26] = 10, f[29] = 1, f[30] = 10, f[33] = 2;
  f[34 + 12] = 0x50, f[34 + 13] = 0x18;  // doff 5, PSH|ACK
  for (size_t i = 54; i < f.size(); ++i) f[i] = uint8_t(i * 7);
  Packet p;
  p.data = f.data();
  p.len = p.wire_len = uint32_t(f.size());
  p.flags = kHasVnet;
  p.vnet.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
  p.vnet.gso_size = 1000;
  p.vnet.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  p.vnet.csum_start = 34;
  p.vnet.csum_offset = 16;
  parse(p);
  ASSERT_FALSE(p.dropped());
  ASSERT_TRUE(port->tx_enqueue(0, p));
  port->tx_flush(0);
  ASSERT_EQ(fe->used_idx(0), 3);
  for (int i = 0; i < 3; ++i) {
    const uint8_t* s = fe->host(bufs[i]) + 12;
    uint32_t len = fe->used_elem(0, uint16_t(i)).len - 12;
    EXPECT_EQ(len, 54u + 1000u);
    EXPECT_EQ((s[16] << 8 | s[17]), 1040);
    EXPECT_TRUE(proto::checksum_valid(std::span<const uint8_t>(s + 14, 20)));
    Ipv4Addr src{0x0a000001}, dst{0x0a000002};
    std::span<const uint8_t> l4(s + 34, len - 34);
    EXPECT_EQ(proto::l4_checksum_ipv4(src, dst, 6, l4).raw, 0u) << "segment " << i;  // sums to zero with the field
    uint32_t seq = uint32_t(s[38]) << 24 | uint32_t(s[39]) << 16 | uint32_t(s[40]) << 8 | s[41];
    EXPECT_EQ(seq, uint32_t(i * 1000));
    EXPECT_EQ(bool(s[47] & 0x08), i == 2);  // PSH only on the last
    EXPECT_EQ(0, std::memcmp(s + 54, f.data() + 54 + i * 1000, 1000));
  }
}

TEST_F(Fixture, PartialChecksumIsCompletedForAGuestWithoutGuestCsum) {
  ASSERT_TRUE(fe->start(kDefaultFeatures & ~feat::kNetGuestCsum));
  auto bufs = fe->post_rx(1, 2048);
  std::vector<uint8_t> f(60, 0);
  for (size_t i = 20; i < 60; ++i) f[i] = uint8_t(i);
  f[30] = 0x12, f[31] = 0x34;  // "pseudo-header sum" at csum_start + csum_offset
  std::vector<uint8_t> expect = f;
  uint16_t sum = proto::ones_sum(std::span<const uint8_t>(expect.data() + 20, 40));
  expect[30] = uint8_t(~sum >> 8), expect[31] = uint8_t(~sum);
  Packet p;
  p.data = f.data();
  p.len = p.wire_len = 60;
  p.flags = kHasVnet;
  p.vnet.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  p.vnet.csum_start = 20;
  p.vnet.csum_offset = 10;
  ASSERT_TRUE(port->tx_enqueue(0, p));
  port->tx_flush(0);
  NetHdr h;
  std::memcpy(&h, fe->host(bufs[0]), 12);
  EXPECT_EQ(h.flags, 0);
  EXPECT_EQ(0, std::memcmp(fe->host(bufs[0]) + 12, expect.data(), 60));
}

TEST_F(Fixture, ResumesFromTheUsedIndexAfterARestart) {
  ASSERT_TRUE(fe->negotiate(kDefaultFeatures));
  ASSERT_TRUE(fe->set_mem_table());
  ASSERT_TRUE(fe->setup_vring(0, 64));
  // The guest had already sent 5 frames that a previous back-end completed: used->idx = 5, avail->idx = 6.
  FakeFrontend::Ring& r = fe->rings.size() > 1 ? fe->rings[1] : (fe->rings.resize(2), fe->rings[1]);
  (void)r;
  ASSERT_TRUE(fe->setup_vring(1, 64, true, 5));
  *reinterpret_cast<uint16_t*>(fe->host(fe->rings[1].used_gpa) + 2) = 5;
  // The front-end re-sends the addresses with base 0 (virtio-user does): vpcd must resume at 5, not 0.
  ASSERT_TRUE(fe->state(Req::kSetVringBase, 1, 0));
  VringAddr a{1, 0, fe->uva(fe->rings[1].desc_gpa), fe->uva(fe->rings[1].used_gpa), fe->uva(fe->rings[1].avail_gpa), 0};
  ASSERT_TRUE(fe->request(Req::kSetVringAddr, &a, sizeof a));
  fe->send_frame(test_frame(3));
  std::vector<Packet> got;
  EXPECT_EQ(burst(got), 1u);
  EXPECT_EQ(fe->used_idx(1), 6);
  port->rx_release(0);
  std::vector<uint8_t> r2;
  VringState s{1, 0};
  ASSERT_TRUE(fe->request(Req::kGetVringBase, &s, sizeof s, {}, &r2));
  ASSERT_EQ(r2.size(), 8u);
  VringState got_state;
  std::memcpy(&got_state, r2.data(), 8);
  EXPECT_EQ(got_state.num, 6u);
}

TEST_F(Fixture, SetStatusZeroResetsTheRings) {
  ASSERT_TRUE(fe->start(kDefaultFeatures));
  ASSERT_EQ(port->status().state, DeviceState::kUp);
  ASSERT_TRUE(fe->u64(Req::kSetStatus, 0));
  EXPECT_EQ(port->status().state, DeviceState::kNegotiating);
  ASSERT_TRUE(fe->setup_vring(0, 64));
  ASSERT_TRUE(fe->setup_vring(1, 64));
  EXPECT_EQ(port->status().state, DeviceState::kUp);
}

TEST_F(Fixture, RarpAnnouncesTheMacWhenTheDeviceComesUp) {
  ASSERT_TRUE(fe->start(kDefaultFeatures));
  std::vector<Packet> got;
  ASSERT_EQ(burst(got, false), 1u);
  EXPECT_EQ(got[0].len, 60u);
  EXPECT_EQ(got[0].data[12], 0x80);
  EXPECT_EQ(got[0].data[13], 0x35);
  EXPECT_EQ(got[0].data[11], 0x01);
  port->rx_release(0);
  EXPECT_EQ(burst(got, false), 0u);
}

// A NIC with port security on: its MAC is in every static FIB and port-security would drop the RARP as
// ethertype_not_allowed, so the port announces nothing (no rx frame, no drop the guest never caused), neither when the
// device comes up nor on SEND_RARP; turned back on (port security off), SEND_RARP announces again.
TEST_F(Fixture, NoRarpWhenAnnouncingIsOff) {
  VhostUserPortConfig c;
  c.name = "vu-test";
  c.mac = MacAddr{{0x02, 0, 0, 0, 0, 0x01}};
  c.announce = false;
  std::string err;
  port = VhostUserPort::create(c, &err);
  ASSERT_TRUE(port) << err;
  port->on_connect();
  fe = std::make_unique<FakeFrontend>(port.get(), -1);
  ASSERT_TRUE(fe->start(kDefaultFeatures));
  ASSERT_EQ(port->status().state, DeviceState::kUp);
  std::vector<Packet> got;
  EXPECT_EQ(burst(got, false), 0u);
  ASSERT_TRUE(fe->u64(Req::kSendRarp, 0x0000'0b00'0000'0002ull));  // 02:00:00:00:00:0b
  EXPECT_EQ(burst(got, false), 0u);
  port->set_announce(true);
  ASSERT_TRUE(fe->u64(Req::kSendRarp, 0x0000'0b00'0000'0002ull));
  ASSERT_EQ(burst(got, false), 1u);
  EXPECT_EQ(got[0].data[12], 0x80);
  EXPECT_EQ(got[0].data[13], 0x35);
  EXPECT_EQ(got[0].data[11], 0x0b);  // the MAC SEND_RARP named, not the NIC's 02:00:00:00:00:01
}

TEST_F(Fixture, MultiqueueWorkersPickTheirQueuePair) {
  port = make_port(2, 2);
  port->on_connect();
  fe = std::make_unique<FakeFrontend>(port.get(), -1);
  ASSERT_TRUE(fe->start(kDefaultFeatures, 2, 64));
  EXPECT_EQ(port->status().state, DeviceState::kUp) << port->status().detail;
  fe->post_rx(2, 2048, 0);
  fe->post_rx(2, 2048, 2);
  auto f = test_frame(1);
  Packet p;
  p.data = f.data();
  p.len = p.wire_len = 64;
  ASSERT_TRUE(port->tx_enqueue(0, p));
  ASSERT_TRUE(port->tx_enqueue(1, p));
  port->tx_flush(0);
  port->tx_flush(1);
  EXPECT_EQ(fe->used_idx(0), 1);
  EXPECT_EQ(fe->used_idx(2), 1);
}

// ---- bad descriptors: each a counted drop (and the ring goes on), or state error ----

struct BadDesc : Fixture {
  void SetUp() override {
    Fixture::SetUp();
    ASSERT_TRUE(fe->start(kDefaultFeatures, 1, 16));
    std::vector<Packet> got;
    burst(got);  // RARP
    port->rx_release(0);
  }
  // Publishes head, runs a burst; expects no frame, one more bad-descriptor drop, the chain returned, NIC still up;
  // then a good frame still passes.
  void expect_counted_drop(uint16_t head, DropReason reason = DropReason::kVhostBadDescriptor) {
    uint64_t before = drops(reason);
    uint16_t used_before = fe->used_idx(1);
    fe->make_avail(1, head);
    std::vector<Packet> got;
    EXPECT_EQ(burst(got), 0u);
    port->rx_release(0);
    EXPECT_EQ(drops(reason), before + 1);
    EXPECT_EQ(fe->used_idx(1), uint16_t(used_before + 1));
    EXPECT_EQ(port->status().state, DeviceState::kUp) << port->status().detail;
    fe->rings[1].next_desc = 8;
    fe->send_frame(test_frame(5));
    EXPECT_EQ(burst(got), 1u);
    port->rx_release(0);
  }
  uint64_t buf() { return fe->alloc(256); }
};

TEST_F(BadDesc, NextIndexOutOfRange) {
  fe->set_desc(1, 0, buf(), 100, kDescNext, 16);
  expect_counted_drop(0);
}
TEST_F(BadDesc, ChainLoop) {
  fe->set_desc(1, 0, buf(), 20, kDescNext, 1);
  fe->set_desc(1, 1, buf(), 20, kDescNext, 0);
  expect_counted_drop(0);
}
TEST_F(BadDesc, OverLongChain) {
  for (uint16_t i = 0; i < 16; ++i) fe->set_desc(1, i, buf(), 20, kDescNext, uint16_t(i + 1 < 16 ? i + 1 : 0));
  expect_counted_drop(0);
}
TEST_F(BadDesc, BufferOutsideGuestMemory) {
  fe->set_desc(1, 0, FakeFrontend::kGpaBase + fe->mem_size() - 10, 100, 0);
  expect_counted_drop(0);
}
TEST_F(BadDesc, AddressPlusLengthWraps) {
  fe->set_desc(1, 0, ~uint64_t(0) - 4, 100, 0);
  expect_counted_drop(0);
}
TEST_F(BadDesc, BufferBelowGuestMemory) {
  fe->set_desc(1, 0, 0x1000, 100, 0);
  expect_counted_drop(0);
}
TEST_F(BadDesc, WritableDescriptorInATxChain) {
  fe->set_desc(1, 0, buf(), 100, kDescWrite);
  expect_counted_drop(0);
}
TEST_F(BadDesc, ChainShorterThanTheVnetHeader) {
  fe->set_desc(1, 0, buf(), 6, 0);
  expect_counted_drop(0);
}
TEST_F(BadDesc, NestedIndirectTable) {
  uint64_t t = fe->alloc(32, 16);
  auto* ind = reinterpret_cast<VringDesc*>(fe->host(t));
  ind[0] = VringDesc{t, 32, kDescIndirect, 0};
  fe->set_desc(1, 0, t, 32, kDescIndirect);
  expect_counted_drop(0);
}
TEST_F(BadDesc, IndirectTableLengthNotAMultipleOf16) {
  uint64_t t = fe->alloc(32, 16);
  fe->set_desc(1, 0, t, 24, kDescIndirect);
  expect_counted_drop(0);
}
TEST_F(BadDesc, IndirectTableMisaligned) {
  uint64_t t = fe->alloc(64, 16) + 8;
  fe->set_desc(1, 0, t, 32, kDescIndirect);
  expect_counted_drop(0);
}
TEST_F(BadDesc, IndirectTableOutsideMemory) {
  fe->set_desc(1, 0, FakeFrontend::kGpaBase + fe->mem_size() - 16, 32, kDescIndirect);
  expect_counted_drop(0);
}
TEST_F(BadDesc, IndirectWithNextFlag) {
  uint64_t t = fe->alloc(32, 16);
  fe->set_desc(1, 0, t, 32, kDescIndirect | kDescNext, 1);
  expect_counted_drop(0);
}
TEST_F(BadDesc, IndirectEntryNextOutOfTable) {
  uint64_t t = fe->alloc(32, 16);
  auto* ind = reinterpret_cast<VringDesc*>(fe->host(t));
  ind[0] = VringDesc{buf(), 20, kDescNext, 5};
  fe->set_desc(1, 0, t, 32, kDescIndirect);
  expect_counted_drop(0);
}
TEST_F(BadDesc, GoodIndirectChainWithSplitHeaderPasses) {
  uint64_t t = fe->alloc(48, 16);
  uint64_t b = buf();
  NetHdr h{};
  auto f = test_frame(7);
  std::memcpy(fe->host(b), &h, 12);
  std::memcpy(fe->host(b) + 12, f.data(), f.size());
  auto* ind = reinterpret_cast<VringDesc*>(fe->host(t));
  ind[0] = VringDesc{b, 3, kDescNext, 1};
  ind[1] = VringDesc{b + 3, 9, kDescNext, 2};
  ind[2] = VringDesc{b + 12, uint32_t(f.size()), 0, 0};
  fe->set_desc(1, 0, t, 48, kDescIndirect);
  fe->make_avail(1, 0);
  std::vector<Packet> got;
  ASSERT_EQ(burst(got), 1u);
  EXPECT_EQ(0, std::memcmp(got[0].data, f.data(), f.size()));
  port->rx_release(0);
}
TEST_F(BadDesc, FrameLongerThan64KiB) {
  uint64_t b = fe->alloc(70000);
  fe->set_desc(1, 0, b, 70000, 0);
  expect_counted_drop(0, DropReason::kVhostFrameTooLong);
}
TEST_F(BadDesc, OffloadTheGuestDidNotNegotiate) {
  uint64_t b = buf();
  NetHdr h{};
  h.gso_type = VIRTIO_NET_HDR_GSO_UDP;  // UFO was never offered
  h.gso_size = 100;
  std::memcpy(fe->host(b), &h, 12);
  fe->set_desc(1, 0, b, 100, 0);
  expect_counted_drop(0, DropReason::kBadVnetHeader);
}
TEST_F(BadDesc, ChecksumOffsetBeyondThePacketIsAParseDrop) {
  NetHdr h{};
  h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  h.csum_start = 60;
  h.csum_offset = 16;
  fe->send_frame(test_frame(1), h);
  std::vector<Packet> got;
  ASSERT_EQ(burst(got), 1u);
  parse(got[0]);
  EXPECT_EQ(got[0].drop, DropReason::kBadVnetHeader);
  port->rx_release(0);
}
TEST_F(BadDesc, HeadIndexOutOfRangeBreaksTheNic) {
  fe->make_avail(1, 16);
  std::vector<Packet> got;
  EXPECT_EQ(burst(got), 0u);
  port->refresh_status();
  EXPECT_EQ(port->status().state, DeviceState::kError);
  EXPECT_NE(port->status().detail.find("virtqueue 1"), std::string::npos) << port->status().detail;
}
TEST_F(BadDesc, AvailIndexRunningAheadBreaksTheNic) {
  std::atomic_ref<uint16_t>(*fe->avail_idx_ptr(1)).store(uint16_t(fe->rings[1].avail_idx + 17));
  std::vector<Packet> got;
  EXPECT_EQ(burst(got), 0u);
  port->refresh_status();
  EXPECT_EQ(port->status().state, DeviceState::kError);
  EXPECT_NE(port->status().detail.find("ahead"), std::string::npos) << port->status().detail;
}
TEST_F(BadDesc, BadRxDescriptorIsACountedTxDrop) {
  fe->set_desc(0, 0, FakeFrontend::kGpaBase + fe->mem_size() - 4, 100, kDescWrite);
  fe->make_avail(0, 0);
  auto f = test_frame(1);
  Packet p;
  p.data = f.data();
  p.len = p.wire_len = 64;
  EXPECT_FALSE(port->tx_enqueue(0, p));
  EXPECT_EQ(port->tx_drop_reason(0), DropReason::kVhostBadDescriptor);
  port->tx_flush(0);
  EXPECT_EQ(fe->used_idx(0), 1);  // given back unused
  fe->post_rx(1, 2048);
  EXPECT_TRUE(port->tx_enqueue(0, p));
}
TEST_F(BadDesc, ReadOnlyDescriptorInAnRxChain) {
  fe->set_desc(0, 0, buf(), 100, 0);
  fe->make_avail(0, 0);
  auto f = test_frame(1);
  Packet p;
  p.data = f.data();
  p.len = p.wire_len = 64;
  EXPECT_FALSE(port->tx_enqueue(0, p));
  EXPECT_EQ(port->tx_drop_reason(0), DropReason::kVhostBadDescriptor);
}

// ---- bad messages: each a protocol error (the service then closes the connection and the NIC is in error) ----

struct BadMsg : Fixture {
  void SetUp() override {
    Fixture::SetUp();
    ASSERT_TRUE(fe->negotiate(kDefaultFeatures));
  }
  void expect_refused(bool ok) {
    EXPECT_FALSE(ok);
    EXPECT_FALSE(fe->last_error.empty());
  }
};

TEST_F(BadMsg, UnknownRequest) { expect_refused(fe->request(Req(77), nullptr, 0)); }
TEST_F(BadMsg, PayloadTooShort) {
  uint32_t v = 1;
  expect_refused(fe->request(Req::kSetFeatures, &v, 4));
}
TEST_F(BadMsg, PayloadTooLong) {
  uint8_t buf[16] = {};
  expect_refused(fe->request(Req::kSetVringNum, buf, 16));
}
TEST_F(BadMsg, MissingFd) { expect_refused(fe->u64(Req::kSetVringKick, 1)); }
TEST_F(BadMsg, ExtraFdsAreRefusedAndClosed) {
  int efd = ::eventfd(0, EFD_CLOEXEC);
  size_t before = open_fds();
  expect_refused(fe->request(Req::kGetFeatures, nullptr, 0, {efd, efd}));
  EXPECT_EQ(open_fds(), before);
  ::close(efd);
}
TEST_F(BadMsg, TooManyRegions) {
  MemTable t{};
  t.nregions = 9;
  expect_refused(fe->request(Req::kSetMemTable, &t, sizeof t, {fe->memfd()}));
}
TEST_F(BadMsg, RegionFdCountMismatch) {
  MemTable t{};
  t.nregions = 2;
  t.regions[0] = MemRegion{FakeFrontend::kGpaBase, 4096, FakeFrontend::kUvaBase, 0};
  t.regions[1] = MemRegion{FakeFrontend::kGpaBase + 4096, 4096, FakeFrontend::kUvaBase + 4096, 4096};
  expect_refused(fe->request(Req::kSetMemTable, &t, 8 + 2 * sizeof(MemRegion), {fe->memfd()}));
}
TEST_F(BadMsg, RegionLargerThanItsFile) {
  MemTable t{};
  t.nregions = 1;
  t.regions[0] = MemRegion{FakeFrontend::kGpaBase, fe->mem_size() * 2, FakeFrontend::kUvaBase, 0};
  expect_refused(fe->request(Req::kSetMemTable, &t, 8 + sizeof(MemRegion), {fe->memfd()}));
}
TEST_F(BadMsg, RegionMmapOffsetOverflows) {
  MemTable t{};
  t.nregions = 1;
  t.regions[0] = MemRegion{FakeFrontend::kGpaBase, 4096, FakeFrontend::kUvaBase, ~uint64_t(0) - 100};
  expect_refused(fe->request(Req::kSetMemTable, &t, 8 + sizeof(MemRegion), {fe->memfd()}));
}
TEST_F(BadMsg, RegionGuestRangeWraps) {
  MemTable t{};
  t.nregions = 1;
  t.regions[0] = MemRegion{~uint64_t(0) - 100, 4096, FakeFrontend::kUvaBase, 0};
  expect_refused(fe->request(Req::kSetMemTable, &t, 8 + sizeof(MemRegion), {fe->memfd()}));
}
TEST_F(BadMsg, RegionFdNotAMemoryFile) {
  int efd = ::eventfd(0, EFD_CLOEXEC);
  MemTable t{};
  t.nregions = 1;
  t.regions[0] = MemRegion{FakeFrontend::kGpaBase, 4096, FakeFrontend::kUvaBase, 0};
  expect_refused(fe->request(Req::kSetMemTable, &t, 8 + sizeof(MemRegion), {efd}));
  ::close(efd);
}
TEST_F(BadMsg, SeveralRegionsWithOffsetsWork) {
  MemTable t{};
  t.nregions = 2;
  size_t half = fe->mem_size() / 2;
  t.regions[0] = MemRegion{FakeFrontend::kGpaBase, half, FakeFrontend::kUvaBase, 0};
  t.regions[1] = MemRegion{FakeFrontend::kGpaBase + half, half, FakeFrontend::kUvaBase + half, half};
  EXPECT_TRUE(fe->request(Req::kSetMemTable, &t, 8 + 2 * sizeof(MemRegion), {fe->memfd(), fe->memfd()}))
      << fe->last_error;
  ASSERT_TRUE(fe->setup_vring(0, 64));
  ASSERT_TRUE(fe->setup_vring(1, 64));
  // A buffer that straddles the two regions arrives whole.
  uint64_t b = FakeFrontend::kGpaBase + half - 40;
  NetHdr h{};
  auto f = test_frame(4, 100);
  std::memcpy(fe->host(b), &h, 12);
  std::memcpy(fe->host(b) + 12, f.data(), f.size());
  fe->set_desc(1, 5, b, 112, 0);
  fe->make_avail(1, 5);
  std::vector<Packet> got;
  ASSERT_EQ(burst(got), 1u);
  EXPECT_EQ(0, std::memcmp(got[0].data, f.data(), f.size()));
}
TEST_F(BadMsg, QueueSizeNotAPowerOfTwo) { expect_refused(fe->state(Req::kSetVringNum, 0, 100)); }
TEST_F(BadMsg, QueueSizeTooLarge) { expect_refused(fe->state(Req::kSetVringNum, 0, 65536)); }
TEST_F(BadMsg, VringIndexOutOfRange) { expect_refused(fe->state(Req::kSetVringNum, 2, 64)); }
TEST_F(BadMsg, VringKickIndexOutOfRange) {
  int efd = ::eventfd(0, EFD_CLOEXEC);
  expect_refused(fe->u64(Req::kSetVringKick, 9, {efd}));
  ::close(efd);
}
TEST_F(BadMsg, VringReservedBits) {
  expect_refused(fe->u64(Req::kSetVringCall, (1u << 12) | kVringNoFd));
}
TEST_F(BadMsg, RingOutsideGuestMemory) {
  ASSERT_TRUE(fe->set_mem_table());
  ASSERT_TRUE(fe->state(Req::kSetVringNum, 0, 256));
  VringAddr a{0, 0, FakeFrontend::kUvaBase + fe->mem_size() - 64, FakeFrontend::kUvaBase,
              FakeFrontend::kUvaBase + 8192, 0};
  expect_refused(fe->request(Req::kSetVringAddr, &a, sizeof a));
}
TEST_F(BadMsg, FeaturesNotOffered) { expect_refused(fe->u64(Req::kSetFeatures, feat::kRingPacked)); }
TEST_F(BadMsg, ProtocolFeaturesNotOffered) { expect_refused(fe->u64(Req::kSetProtocolFeatures, pfeat::kBackendReq)); }
TEST_F(BadMsg, VringBaseOutOfRange) { expect_refused(fe->state(Req::kSetVringBase, 0, 70000)); }
TEST_F(BadMsg, ReplyAckReportsFailure) {
  Msg m;
  m.hdr = MsgHeader{uint32_t(Req::kSetVringNum), kMsgVersion | kMsgFlagNeedReply, 8};
  VringState s{0, 3};
  std::memcpy(m.payload, &s, 8);
  Reply r;
  std::string err;
  EXPECT_FALSE(port->handle_message(m, r, &err));
  ASSERT_TRUE(r.send);
  uint64_t v;
  std::memcpy(&v, r.payload, 8);
  EXPECT_EQ(v, 1u);
}

TEST(VhostUserMessage, ReadMessageClosesExtraFdsAndChecksTheHeader) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  FakeFrontend fe(nullptr, sv[0], 1 << 16);
  size_t before = open_fds();
  int efd = ::eventfd(0, EFD_CLOEXEC);
  std::vector<int> many(12, efd);  // more than kMaxFds
  uint64_t v = 0;
  ASSERT_TRUE(fe.send_raw(uint32_t(Req::kSetVringCall), kMsgVersion, &v, 8, many));
  Msg m;
  std::string err;
  EXPECT_EQ(read_message(sv[1], m, &err), ReadStatus::kError);
  for (auto& fd : m.fds) fd.reset();
  ::close(efd);
  EXPECT_EQ(open_fds(), before);
  ::close(sv[0]);
  ::close(sv[1]);
  // Wrong version, a reply flag, an oversized payload: each on a fresh stream (after an error the stream is out of
  // step, which is why the service closes the connection).
  auto one = [&](uint32_t flags, uint32_t size, const char* want) {
    int p[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p), 0);
    MsgHeader h{1, flags, size};
    ASSERT_EQ(::send(p[0], &h, sizeof h, 0), ssize_t(sizeof h));
    Msg mm;
    std::string e;
    EXPECT_EQ(read_message(p[1], mm, &e), ReadStatus::kError);
    EXPECT_NE(e.find(want), std::string::npos) << e;
    ::close(p[0]);
    ::close(p[1]);
  };
  one(0x2, 0, "version");
  one(kMsgVersion | kMsgFlagReply, 0, "reply flag");
  one(kMsgVersion, kMaxPayload + 1, "exceeds");
}

TEST(VhostUserGuestMemory, TranslationChecksTheWholeRange) {
  int fd = ::memfd_create("t", MFD_CLOEXEC);
  ASSERT_EQ(::ftruncate(fd, 3 * 4096), 0);
  MemTable t{};
  t.nregions = 2;
  t.regions[0] = MemRegion{0x1000, 4096, 0x10000, 0};
  t.regions[1] = MemRegion{0x2000, 4096, 0x20000, 8192};
  UniqueFd fds[2] = {UniqueFd(::dup(fd)), UniqueFd(::dup(fd))};
  std::string err;
  auto mem = GuestMemory::map(t, std::span<UniqueFd>(fds, 2), &err);
  ASSERT_TRUE(mem) << err;
  EXPECT_NE(mem->translate_gpa(0x1000, 4096), nullptr);
  EXPECT_EQ(mem->translate_gpa(0x1000, 4097), nullptr);  // runs into the next region: not one range
  EXPECT_EQ(mem->translate_gpa(0x0fff, 2), nullptr);
  EXPECT_EQ(mem->translate_gpa(0x2fff, 2), nullptr);
  EXPECT_EQ(mem->translate_gpa(0x1000, 0), nullptr);
  EXPECT_EQ(mem->translate_gpa(~uint64_t(0), 2), nullptr);
  EXPECT_EQ(mem->translate_uva(0x20000 + 4000, 96), mem->translate_gpa(0x2000 + 4000, 96));
  EXPECT_EQ(mem->translate_uva(0x20000 + 4000, 97), nullptr);
  uint64_t piece = 0;
  EXPECT_NE(mem->translate_gpa_piece(0x1f00, 512, &piece), nullptr);
  EXPECT_EQ(piece, 256u);
  // Region 1 maps file offset 8192: writes through it land there.
  *mem->translate_gpa(0x2000, 1) = 0x5a;
  uint8_t b = 0;
  ASSERT_EQ(::pread(fd, &b, 1, 8192), 1);
  EXPECT_EQ(b, 0x5a);
  ::close(fd);
}

}  // namespace
}  // namespace vpcd::dp::vhost
