// AfPacketPort's big TX ring (AfPacketOptions::tx_big_frames) against a real veth pair: UDP segmentation offload
// frames written into its slots (tx_slot_acquire / tx_slot_commit, as send_uso does) or copied there (tx_enqueue of a
// frame larger than a small slot) reach a UDP socket on the other end as exactly the datagrams they stand for; small
// frames enqueued before and after a big one keep their order; a refused send stays pending until retried or
// discarded, a ring whose slots the kernel still holds refuses more (nullptr / false), and the kernel's head stays in
// step afterwards. Everything lives in namespaces this test creates (pid in their names).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "datapath/io/af_packet_port.h"
#include "datapath/io/netns.h"
#include "datapath/proto/checksum.h"
#include "datapath/proto/frame_builder.h"
#include "datapath/proto/gso.h"
#include "io_test_util.h"

namespace vpcd::dp {
namespace {

using namespace iotest;
using namespace std::chrono_literals;
using Bytes = std::vector<uint8_t>;

constexpr uint16_t kPort = 9977;
constexpr size_t kChunk = 1400;  // gso_size: UDP payload per datagram
const MacAddr kSrcMac{{0x02, 0, 0, 0, 0x77, 0x01}};
const MacAddr kDstMac{{0x02, 0, 0, 0, 0x77, 0x02}};
const Ipv4Addr kSrc{0x0a4e0001};  // 10.78.0.1 (the hub end hb; no address there)
const Ipv4Addr kDst{0x0a4e0002};  // 10.78.0.2 (the guest's eth0)

// The payload of datagram k of frame `tag`: its tag and index, then a pattern, so a misplaced byte shows.
Bytes chunk(uint8_t tag, size_t k, size_t len) {
  Bytes c(len);
  for (size_t i = 0; i < len; ++i) c[i] = uint8_t(i * 13 + k * 7 + tag);
  c[0] = tag;
  c[1] = uint8_t(k);
  return c;
}

// A USO frame of `chunks` datagram payloads (the last `last` bytes long), laid out as vxlan_uso_frame does: outer
// headers once, the UDP checksum field holding the pseudo-header sum (NEEDS_CSUM), gso_size kChunk.
struct UsoFrame {
  Bytes bytes;
  virtio_net_hdr vnet{};
  std::vector<Bytes> datagrams;
};
UsoFrame uso_frame(uint8_t tag, size_t chunks, size_t last = kChunk) {
  UsoFrame u;
  Bytes payload;
  for (size_t k = 0; k < chunks; ++k) {
    u.datagrams.push_back(chunk(tag, k, k + 1 == chunks ? last : kChunk));
    payload.insert(payload.end(), u.datagrams.back().begin(), u.datagrams.back().end());
  }
  proto::Ipv4Opts df;
  df.frag_off = proto::kIpv4FlagDf;
  u.bytes = proto::FrameBuilder().eth(kSrcMac, kDstMac).ipv4(kSrc, kDst, df).udp(40000, kPort).payload(payload).build();
  const be16 ps = be16::from_host(proto::fold_sum(proto::ipv4_pseudo_sum(kSrc, kDst, 17, uint16_t(8 + payload.size()))));
  std::memcpy(&u.bytes[40], &ps, 2);
  u.vnet.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  u.vnet.csum_start = 34;
  u.vnet.csum_offset = 6;
  u.vnet.hdr_len = 42;
  if (chunks > 1) {
    u.vnet.gso_type = proto::kVnetGsoUdpL4;
    u.vnet.gso_size = kChunk;
  }
  return u;
}

// The hub end hb (opened as an AfPacketPort with a big ring) and a guest namespace whose eth0 has a UDP socket on
// kPort.
class BigRing : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0u) << "integration tests need root";
    ASSERT_TRUE(hub_.ok() && guest_.ok());
    ASSERT_EQ(sh("ip -n " + hub_.name() + " link add hb type veth peer name eth0 netns " + guest_.name()), 0);
    ASSERT_EQ(sh("ip -n " + guest_.name() + " link set eth0 address 02:00:00:00:77:02"), 0);
    ASSERT_EQ(sh("ip -n " + guest_.name() + " addr add 10.78.0.2/24 dev eth0"), 0);
    ASSERT_EQ(sh("ip -n " + guest_.name() + " link set eth0 up"), 0);
    ASSERT_EQ(sh("ip -n " + hub_.name() + " link set hb up"), 0);
    std::string err;
    UniqueFd gfd = netns_open(guest_.name(), &err);
    ASSERT_TRUE(gfd.valid()) << err;
    {
      NetnsGuard g(gfd.get());
      ASSERT_TRUE(g.ok()) << g.error();
      sock_.reset(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    }
    ASSERT_TRUE(sock_.valid());
    const int rcvbuf = 16 << 20;
    ::setsockopt(sock_.get(), SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(kPort);
    ASSERT_EQ(::bind(sock_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    UniqueFd hfd = netns_open(hub_.name(), &err);
    ASSERT_TRUE(hfd.valid()) << err;
    NetnsGuard g(hfd.get());
    ASSERT_TRUE(g.ok()) << g.error();
    AfPacketOptions o;
    o.tx_frames = 16;
    o.tx_big_frames = 4;  // rounded up to a whole block: 7 slots of 17 pages in 512 KiB
    port_ = AfPacketPort::open("hb", o, &err);
    ASSERT_TRUE(port_) << err;
    EXPECT_EQ(port_->ring_bytes(), af_packet_ring_bytes(o));
    AfPacketOptions none = o;
    none.tx_big_frames = 0;
    EXPECT_EQ(af_packet_ring_bytes(o) - af_packet_ring_bytes(none), 512u << 10);
  }

  // Datagrams the guest's socket receives within `wait` of the last one.
  std::vector<Bytes> received(std::chrono::milliseconds wait = 300ms) {
    std::vector<Bytes> out;
    Bytes buf(65536);
    pollfd p{sock_.get(), POLLIN, 0};
    while (::poll(&p, 1, int(wait.count())) > 0) {
      ssize_t n = ::recv(sock_.get(), buf.data(), buf.size(), 0);
      if (n < 0) break;
      out.emplace_back(buf.begin(), buf.begin() + n);
    }
    return out;
  }

  // Writes u into a big slot and commits it (false: no slot).
  bool commit(const UsoFrame& u) {
    uint8_t* s = port_->tx_slot_acquire(0, uint32_t(u.bytes.size()));
    if (!s) return false;
    std::memcpy(s, u.bytes.data(), u.bytes.size());
    port_->tx_slot_commit(0, u.vnet, uint32_t(u.bytes.size()));
    return true;
  }
  bool enqueue(const UsoFrame& u) {
    Packet p{};
    p.data = const_cast<uint8_t*>(u.bytes.data());
    p.len = p.wire_len = uint32_t(u.bytes.size());
    p.vnet = u.vnet;
    p.flags = kHasVnet;
    return port_->tx_enqueue(0, p);
  }

  ScopedNetns hub_{unique("vpcd-bigr-hub-")};
  ScopedNetns guest_{unique("vpcd-bigr-g-")};
  UniqueFd sock_;
  std::unique_ptr<AfPacketPort> port_;
};

std::vector<Bytes> all_datagrams(std::initializer_list<const UsoFrame*> frames) {
  std::vector<Bytes> out;
  for (const UsoFrame* f : frames) out.insert(out.end(), f->datagrams.begin(), f->datagrams.end());
  return out;
}

TEST_F(BigRing, UsoFramesFromBigSlotsArriveAsTheirDatagrams) {
  EXPECT_EQ(port_->tx_big_frames(0), 7u);
  // The largest frame vxlan_uso_plan makes: 65535 bytes (kUsoMaxFrameBytes; 47 datagrams). One byte more and a veth
  // (gso_max_size 64 KiB) drops it, as it drops it from sendmsg.
  const UsoFrame big = uso_frame(1, 47, 65535 - 42 - 46 * kChunk);
  ASSERT_EQ(big.bytes.size(), 65535u);
  const UsoFrame mid = uso_frame(2, 10, 333);
  const UsoFrame one = uso_frame(3, 1, 700);  // one datagram: gso_type NONE, still NEEDS_CSUM
  ASSERT_TRUE(commit(big));
  ASSERT_TRUE(commit(mid));
  ASSERT_TRUE(enqueue(one));  // fits a 2 KiB slot: the small ring, sent by the flush
  port_->tx_flush(0);
  EXPECT_FALSE(port_->tx_pending(0));
  EXPECT_EQ(received(), all_datagrams({&big, &mid, &one}));
  EXPECT_EQ(port_->tx_errors(0), 0u);
}

// Small frames enqueued before a big one leave before it (the small ring is flushed first), those after it after it.
TEST_F(BigRing, BigFramesKeepTheirPlaceAmongSmallOnes) {
  const UsoFrame s1 = uso_frame(10, 1, 100), s2 = uso_frame(11, 1, 200), s3 = uso_frame(12, 1, 300);
  const UsoFrame b1 = uso_frame(20, 5, 50), b2 = uso_frame(21, 3, 60);
  ASSERT_TRUE(enqueue(s1));
  ASSERT_TRUE(commit(b1));
  ASSERT_TRUE(enqueue(s2));
  ASSERT_TRUE(enqueue(b2));  // larger than a small slot: copied into the big ring
  ASSERT_TRUE(enqueue(s3));
  port_->tx_flush(0);
  EXPECT_EQ(received(), all_datagrams({&s1, &b1, &s2, &b2, &s3}));
}

// A send the kernel refuses (link down: ENETDOWN; a full send buffer gives EAGAIN the same way) keeps the big frames
// pending, in order, until a flush sends them; once every slot waits, the ring is full (acquire nullptr, enqueue
// false); tx_discard_pending frees them, and more than a ring's worth afterwards shows the kernel's head in step.
TEST_F(BigRing, RefusedBigFramesStayPendingUntilRetriedOrDiscarded) {
  const std::string link = "ip -n " + hub_.name() + " link set hb ";
  const UsoFrame a = uso_frame(30, 4, 10), b = uso_frame(31, 2, 20), s = uso_frame(32, 1, 30);  // s: small ring
  ASSERT_EQ(sh(link + "down"), 0);
  ASSERT_TRUE(commit(a));
  EXPECT_TRUE(port_->tx_pending(0));
  ASSERT_TRUE(enqueue(s));  // a small frame after it
  ASSERT_TRUE(commit(b));
  port_->tx_flush(0);
  EXPECT_TRUE(port_->tx_pending(0));
  EXPECT_GE(port_->tx_errors(0), 1u);
  ASSERT_EQ(sh(link + "up"), 0);
  received(100ms);  // whatever the guest's stack sent while the carrier came back
  port_->tx_flush(0);
  EXPECT_FALSE(port_->tx_pending(0));
  // a went first; s and b were both queued behind it, b's commit sent the small ring (s) before b.
  EXPECT_EQ(received(), all_datagrams({&a, &s, &b}));

  // Refused until the ring is full, then discarded.
  ASSERT_EQ(sh(link + "down"), 0);
  const uint32_t slots = port_->tx_big_frames(0);
  for (uint32_t i = 0; i < slots; ++i) ASSERT_TRUE(commit(uso_frame(uint8_t(40 + i), 3, 5))) << i;
  EXPECT_EQ(port_->tx_slot_acquire(0, 65549), nullptr);
  EXPECT_NE(port_->tx_slot_acquire(0, 1500), nullptr);  // the small ring is not full
  EXPECT_FALSE(enqueue(uso_frame(60, 3, 5)));
  EXPECT_TRUE(port_->tx_pending(0));
  EXPECT_EQ(port_->tx_discard_pending(0), slots);
  EXPECT_FALSE(port_->tx_pending(0));
  ASSERT_EQ(sh(link + "up"), 0);
  received(100ms);
  std::vector<UsoFrame> later;
  for (uint32_t i = 0; i < 2 * slots + 1; ++i) later.push_back(uso_frame(uint8_t(70 + i), 3, 40 + i));  // big ones
  std::vector<Bytes> want;
  for (const UsoFrame& u : later) {
    ASSERT_TRUE(commit(u));
    want.insert(want.end(), u.datagrams.begin(), u.datagrams.end());
  }
  EXPECT_FALSE(port_->tx_pending(0));
  EXPECT_EQ(received(), want);
}

}  // namespace
}  // namespace vpcd::dp
