// AfPacketPort against real veth pairs: a test thread forwards between two ports (ping both ways with exact counts,
// a 2 s iperf3 TCP run with the guests' default offloads, GSO frames through the rings), fanout across two RX queues,
// truncated frames, and flushes the kernel refused (retried or discarded). Every namespace and interface lives in
// namespaces this test creates (pid in their names).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <atomic>
#include <cstring>
#include <map>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "datapath/io/af_packet_port.h"
#include "datapath/io/guest_napi.h"
#include "datapath/io/netns.h"
#include "datapath/stages/parse.h"
#include "io_test_util.h"

namespace vpcd::dp {
namespace {

using namespace iotest;
using namespace std::chrono_literals;

// Two guests A (10.77.0.1) and B (10.77.0.2), each joined by a veth pair to a hub namespace where the test opens
// the hub ends h1/h2 as AfPacketPorts.
class TwoGuests : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0u) << "integration tests need root";
    ASSERT_TRUE(hub_.ok() && a_.ok() && b_.ok());
    ASSERT_EQ(sh("ip -n " + hub_.name() + " link add h1 type veth peer name eth0 netns " + a_.name()), 0);
    ASSERT_EQ(sh("ip -n " + hub_.name() + " link add h2 type veth peer name eth0 netns " + b_.name()), 0);
    for (const char* h : {"h1", "h2"}) ASSERT_EQ(sh("ip -n " + hub_.name() + " link set " + h + " up"), 0);
    ASSERT_EQ(sh("ip -n " + a_.name() + " addr add 10.77.0.1/24 dev eth0"), 0);
    ASSERT_EQ(sh("ip -n " + b_.name() + " addr add 10.77.0.2/24 dev eth0"), 0);
    ASSERT_EQ(sh("ip -n " + a_.name() + " link set eth0 up"), 0);
    ASSERT_EQ(sh("ip -n " + b_.name() + " link set eth0 up"), 0);
  }

  std::unique_ptr<AfPacketPort> open_in_hub(const std::string& ifname, const AfPacketOptions& o) {
    return open_in(hub_.name(), ifname, o);
  }
  // Opens `ifname` of namespace `ns` (the hub, or a guest's eth0 to see what arrives there).
  std::unique_ptr<AfPacketPort> open_in(const std::string& ns, const std::string& ifname, const AfPacketOptions& o) {
    std::string err;
    UniqueFd fd = netns_open(ns, &err);
    EXPECT_TRUE(fd.valid()) << err;
    NetnsGuard g(fd.get());
    EXPECT_TRUE(g.ok()) << g.error();
    auto p = AfPacketPort::open(ifname, o, &err);
    EXPECT_NE(p, nullptr) << err;
    return p;
  }

  void ping_and_tcp(const AfPacketOptions& o);
  void fanout_exactly_once(const AfPacketOptions& o);
  void truncated_frame(const AfPacketOptions& o);
  void send_big_udp(uint32_t payload_bytes, int count = 1);
  void vlan_reinserted(const AfPacketOptions& o);

  ScopedNetns hub_{unique("vpcd-io-hub-")};
  ScopedNetns a_{unique("vpcd-io-a-")};
  ScopedNetns b_{unique("vpcd-io-b-")};
};

bool is_icmp(const Packet& p) {
  return p.len >= 34 && p.data[12] == 0x08 && p.data[13] == 0x00 && p.data[23] == 1;
}

// Forwards port 0 <-> port 1 on a thread until stopped (or 60 s), counting per direction.
class Forwarder {
 public:
  struct Dir {
    std::atomic<uint64_t> frames{0}, icmp{0}, gso{0}, gso_sent{0}, tx_full{0}, truncated{0}, max_len{0};
  };
  Forwarder(AfPacketPort* p0, AfPacketPort* p1) : ports_{p0, p1} { thread_ = std::thread([this] { run(); }); }
  ~Forwarder() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  Dir dir[2];  // dir[0]: port 0 -> port 1

 private:
  void run() {
    UniqueFd ep(::epoll_create1(EPOLL_CLOEXEC));
    for (int i = 0; i < 2; ++i) {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u32 = uint32_t(i);
      ::epoll_ctl(ep.get(), EPOLL_CTL_ADD, ports_[i]->rx_fd(0), &ev);
    }
    const auto deadline = Clock::now() + 60s;
    Packet pkts[64];
    while (!stop_ && Clock::now() < deadline) {
      epoll_event evs[2];
      ::epoll_wait(ep.get(), evs, 2, 2);
      for (int i = 0; i < 2; ++i) {
        AfPacketPort* src = ports_[i];
        AfPacketPort* dst = ports_[1 - i];
        Dir& d = dir[i];
        unsigned n = src->rx_burst(0, pkts, 64);
        for (unsigned k = 0; k < n; ++k) {
          const Packet& p = pkts[k];
          d.frames.fetch_add(1);
          if (is_icmp(p)) d.icmp.fetch_add(1);
          if (p.len < p.wire_len) d.truncated.fetch_add(1);
          if (p.len > d.max_len) d.max_len.store(p.len);
          const bool gso = (p.flags & kHasVnet) && p.vnet.gso_type != VIRTIO_NET_HDR_GSO_NONE;
          if (gso) d.gso.fetch_add(1);
          if (dst->tx_enqueue(0, p)) {
            if (gso && p.len > 1514) d.gso_sent.fetch_add(1);
          } else {
            d.tx_full.fetch_add(1);
          }
        }
        if (n > 0) {
          dst->tx_flush(0);
          src->rx_release(0);
        }
      }
    }
  }
  AfPacketPort* ports_[2];
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

int ping_received(const std::string& ns, const std::string& dst, int count) {
  std::string out = sh_out("ip netns exec " + ns + " ping -n -c " + std::to_string(count) + " -i 0.2 -W 2 -w 15 " + dst);
  auto pos = out.find(" received");
  if (pos == std::string::npos) return -1;
  auto start = out.rfind(", ", pos);
  return std::atoi(out.c_str() + (start == std::string::npos ? 0 : start + 2));
}

TEST_F(TwoGuests, ForwardsPingBothWaysAndTcpWithGso) { ping_and_tcp(AfPacketOptions{}); }

// Ports whose sockets come from an AfPacketRingPool (rings set up ahead, only bound at open) forward like any other;
// the pool refills, and a port of another layout does not take from it.
TEST_F(TwoGuests, PortsFromARingPoolForwardPingBothWays) {
  std::string err;
  UniqueFd fd = netns_open(hub_.name(), &err);
  ASSERT_TRUE(fd.valid()) << err;
  std::unique_ptr<AfPacketRingPool> pool;
  {
    NetnsGuard g(fd.get());  // the pool's thread, started here, creates its sockets in the hub namespace
    ASSERT_TRUE(g.ok()) << g.error();
    pool = std::make_unique<AfPacketRingPool>(AfPacketOptions{}, 2, 2);
  }
  pool->wait_full();
  EXPECT_EQ(pool->ready_bytes(), 2 * af_packet_ring_bytes(AfPacketOptions{}));
  std::unique_ptr<AfPacketPort> p1, p2;
  {
    NetnsGuard g(fd.get());
    ASSERT_TRUE(g.ok()) << g.error();
    p1 = AfPacketPort::open("h1", AfPacketOptions{}, &err, pool.get());
    ASSERT_NE(p1, nullptr) << err;
    p2 = AfPacketPort::open("h2", AfPacketOptions{}, &err, pool.get());
    ASSERT_NE(p2, nullptr) << err;
  }
  EXPECT_EQ(pool->taken(), 4u);  // both ports' RX and TX sockets
  AfPacketOptions v3;
  v3.rx_ring = RxRing::kV3;
  EXPECT_FALSE(pool->matches(v3));
  EXPECT_TRUE(pool->matches(AfPacketOptions{}));
  {
    Forwarder fwd(p1.get(), p2.get());
    EXPECT_EQ(ping_received(a_.name(), "10.77.0.2", 3), 3);
    EXPECT_EQ(ping_received(b_.name(), "10.77.0.1", 3), 3);
    fwd.stop();
    EXPECT_EQ(fwd.dir[0].icmp.load(), 6u);
    EXPECT_EQ(fwd.dir[1].icmp.load(), 6u);
  }
  pool->wait_full();  // refilled in the background
  EXPECT_EQ(pool->ready_bytes(), 2 * af_packet_ring_bytes(AfPacketOptions{}));
}

// GRO and threaded NAPI on both guests' ends (guest_napi.h): the settings take (read back through each guest's own
// sysfs and ethtool), nothing stays mounted in our mount namespace, and ping and TCP with GSO still pass (the
// super-frames the forwarder sends with sendmsg now take veth's NAPI path into the guest).
TEST_F(TwoGuests, ForwardsPingBothWaysAndTcpWithGsoToGuestsWithThreadedNapi) {
  auto sysfs_mounts = [] { return sh_out("grep -c ' sysfs ' /proc/self/mountinfo"); };
  const std::string before = sysfs_mounts();
  for (const ScopedNetns* ns : {&a_, &b_}) {
    std::string err;
    UniqueFd fd = netns_open(ns->name(), &err);
    ASSERT_TRUE(fd.valid()) << err;
    ASSERT_TRUE(veth_threaded_napi(fd.get(), "eth0", &err)) << err;
    EXPECT_EQ(sh_out("ip netns exec " + ns->name() + " cat /sys/class/net/eth0/threaded"), "1\n");
    const std::string k = sh_out("ip netns exec " + ns->name() + " ethtool -k eth0");
    EXPECT_NE(k.find("generic-receive-offload: on"), std::string::npos) << k;
    EXPECT_NE(k.find("rx-udp-gro-forwarding: on"), std::string::npos) << k;
  }
  EXPECT_EQ(sysfs_mounts(), before);
  std::string err;
  UniqueFd fd = netns_open(a_.name(), &err);
  ASSERT_TRUE(fd.valid()) << err;
  EXPECT_FALSE(veth_threaded_napi(fd.get(), "nosuch0", &err));
  EXPECT_FALSE(veth_threaded_napi(fd.get(), "../x", &err));
  ping_and_tcp(AfPacketOptions{});
}

TEST_F(TwoGuests, ForwardsPingBothWaysAndTcpWithGsoOnV3Rings) {
  AfPacketOptions o;
  o.rx_ring = RxRing::kV3;
  ping_and_tcp(o);
}

// V2 slots large enough for a super-frame, and TX slots as large: no recvmsg / sendmsg path at all.
TEST_F(TwoGuests, ForwardsPingBothWaysAndTcpWithGsoInLargeSlots) {
  AfPacketOptions o;
  o.rx_frame_bytes = 66 * 1024;
  o.rx_frames = 16;
  o.tx_frame_bytes = 66 * 1024;
  o.tx_frames = 16;
  ping_and_tcp(o);
}

void TwoGuests::ping_and_tcp(const AfPacketOptions& o) {
  auto p1 = open_in_hub("h1", o);
  auto p2 = open_in_hub("h2", o);
  ASSERT_TRUE(p1 && p2);
  EXPECT_EQ(p1->rx_queues(), 1u);
  EXPECT_GE(p1->rx_fd(0), 0);
  EXPECT_EQ(p1->rx_fd(1), -1);
  Forwarder fwd(p1.get(), p2.get());

  EXPECT_EQ(ping_received(a_.name(), "10.77.0.2", 5), 5);
  EXPECT_EQ(ping_received(b_.name(), "10.77.0.1", 5), 5);
  // A->B carried A's 5 requests and the 5 replies to B; the same the other way. Nothing else is ICMP.
  EXPECT_EQ(fwd.dir[0].icmp.load(), 10u);
  EXPECT_EQ(fwd.dir[1].icmp.load(), 10u);

  // iperf3: server in B (one client, then it exits), 2 s client in A, bounded by timeout.
  const std::string pidfile = "/tmp/vpcd-io-iperf-" + std::to_string(::getpid()) + ".pid";
  struct IperfKill {
    std::string pidfile;
    ~IperfKill() {
      sh("test -f " + pidfile + " && kill $(cat " + pidfile + ")");
      ::unlink(pidfile.c_str());
    }
  } kill_guard{pidfile};
  ASSERT_EQ(sh("ip netns exec " + b_.name() + " iperf3 -s -1 -D -B 10.77.0.2 -I " + pidfile), 0);
  for (auto t0 = Clock::now(); Clock::now() - t0 < 5s;) {
    if (sh("ip netns exec " + b_.name() + " ss -ltn | grep -q 10.77.0.2:5201") == 0) break;
    std::this_thread::sleep_for(50ms);
  }
  std::string json = sh_out("ip netns exec " + a_.name() + " timeout 30 iperf3 -c 10.77.0.2 -t 2 -J");
  auto sum = json.find("\"sum_received\"");
  ASSERT_NE(sum, std::string::npos) << json.substr(0, 2000);
  auto bps_pos = json.find("\"bits_per_second\":", sum);
  ASSERT_NE(bps_pos, std::string::npos);
  double bps = std::atof(json.c_str() + bps_pos + 18);
  fwd.stop();
  std::printf("iperf3 A->B through the test forwarder: %.2f Gbit/s; A->B frames %lu (GSO %lu, GSO sent %lu, "
              "ring full %lu, largest %lu bytes), B->A frames %lu\n",
              bps / 1e9, (unsigned long)fwd.dir[0].frames.load(), (unsigned long)fwd.dir[0].gso.load(),
              (unsigned long)fwd.dir[0].gso_sent.load(), (unsigned long)fwd.dir[0].tx_full.load(),
              (unsigned long)fwd.dir[0].max_len.load(), (unsigned long)fwd.dir[1].frames.load());
  EXPECT_GT(bps, 100e6);
  // The guests' TSO is on: super-frames arrive with a GSO virtio_net_hdr and leave through the TX ring as such.
  EXPECT_GT(fwd.dir[0].gso.load(), 0u);
  EXPECT_GT(fwd.dir[0].gso_sent.load(), 0u);
  EXPECT_GT(fwd.dir[0].max_len.load(), 1514u);
  EXPECT_EQ(fwd.dir[0].truncated.load(), 0u);
  EXPECT_EQ(p1->tx_errors(0) + p2->tx_errors(0), 0u);
}

TEST_F(TwoGuests, FanoutDeliversEveryFrameExactlyOnce) {
  AfPacketOptions o;
  o.rx_queues = 2;
  o.rx_frames = 1024;
  fanout_exactly_once(o);
}

TEST_F(TwoGuests, FanoutDeliversEveryFrameExactlyOnceOnV3Rings) {
  AfPacketOptions o;
  o.rx_queues = 2;
  o.rx_ring = RxRing::kV3;
  o.rx_block_bytes = 1u << 18;
  o.rx_blocks = 16;
  fanout_exactly_once(o);
}

void TwoGuests::fanout_exactly_once(const AfPacketOptions& o) {
  auto port = open_in_hub("h1", o);
  ASSERT_TRUE(port);
  ASSERT_EQ(port->rx_queues(), 2u);
  ASSERT_NE(port->rx_fd(0), port->rx_fd(1));
  // A second port on the same device gets its own fanout group (the kernel picks the id): it must also see everything.
  auto other = open_in_hub("h1", o);
  ASSERT_TRUE(other);
  ASSERT_EQ(sh("ip -n " + a_.name() + " neigh add 10.77.0.9 lladdr 02:00:00:00:00:09 dev eth0"), 0);

  constexpr int kFlows = 64, kPerFlow = 8;
  std::string err;
  UniqueFd a_fd = netns_open(a_.name(), &err);
  ASSERT_TRUE(a_fd.valid()) << err;
  // Runs on a thread inside A.
  auto send_all = [&] {
    for (int f = 0; f < kFlows; ++f) {
      UniqueFd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
      sockaddr_in src{};
      src.sin_family = AF_INET;
      src.sin_port = htons(uint16_t(40000 + f));
      ::bind(s.get(), reinterpret_cast<sockaddr*>(&src), sizeof src);
      sockaddr_in dst{};
      dst.sin_family = AF_INET;
      dst.sin_port = htons(9999);
      dst.sin_addr.s_addr = htonl(0x0a4d0009);  // 10.77.0.9 (exists only as a static neighbour in A)
      for (int k = 0; k < kPerFlow; ++k) {
        uint32_t seq = uint32_t(f * kPerFlow + k);
        char msg[12] = {'v', 'p', 'c', 'd', 'i', 'o', 0, 0};
        std::memcpy(msg + 8, &seq, 4);
        ::sendto(s.get(), msg, sizeof msg, 0, reinterpret_cast<sockaddr*>(&dst), sizeof dst);
      }
      std::this_thread::sleep_for(1ms);
    }
  };

  struct Seen {
    AfPacketPort* port;
    std::map<uint32_t, int> seqs;
    std::map<uint16_t, std::set<unsigned>> flow_q;
    unsigned per_q[2] = {0, 0};
  };
  Seen seen[2] = {{port.get(), {}, {}, {}}, {other.get(), {}, {}, {}}};
  // Drains both ports' queues once; returns the number of frames taken.
  auto drain_once = [&] {
    unsigned total = 0;
    Packet pkts[32];
    for (Seen& s : seen) {
      for (unsigned q = 0; q < 2; ++q) {
        unsigned n = s.port->rx_burst(q, pkts, 32);  // small batches: exercises ending mid-block
        total += n;
        for (unsigned k = 0; k < n; ++k) {
          const uint8_t* d = pkts[k].data;
          if (pkts[k].len < 42 + 12 || d[12] != 0x08 || d[13] != 0 || d[23] != 17) continue;
          if (d[36] != 0x27 || d[37] != 0x0f || std::memcmp(d + 42, "vpcdio", 6) != 0) continue;
          uint32_t seq;
          std::memcpy(&seq, d + 42 + 8, 4);
          ++s.seqs[seq];
          ++s.per_q[q];
          s.flow_q[uint16_t(d[34] << 8 | d[35])].insert(q);
        }
        s.port->rx_release(q);
      }
    }
    return total;
  };
  std::atomic<bool> sent{false};
  std::thread sender([&] {
    NetnsGuard g(a_fd.get());
    if (g.ok()) send_all();
    sent = true;
  });
  const auto deadline = Clock::now() + 10s;
  auto complete = [&] {
    return seen[0].seqs.size() == size_t(kFlows * kPerFlow) && seen[1].seqs.size() == size_t(kFlows * kPerFlow);
  };
  while (Clock::now() < deadline && !(sent && complete())) {
    if (drain_once() == 0) std::this_thread::sleep_for(200us);
  }
  sender.join();
  // A duplicate would show up within a few more block timeouts.
  for (auto t0 = Clock::now(); Clock::now() - t0 < 50ms;) {
    drain_once();
    std::this_thread::sleep_for(1ms);
  }
  for (Seen& s : seen) {
    const uint64_t kernel_drops = s.port->rx_kernel_drops(0) + s.port->rx_kernel_drops(1);
    EXPECT_EQ(s.seqs.size(), size_t(kFlows * kPerFlow)) << "kernel ring drops: " << kernel_drops;
    for (auto& [seq, count] : s.seqs) EXPECT_EQ(count, 1) << "seq " << seq;
    EXPECT_GT(s.per_q[0], 0u);
    EXPECT_GT(s.per_q[1], 0u);
    EXPECT_EQ(s.per_q[0] + s.per_q[1], unsigned(kFlows * kPerFlow));
    for (auto& [port_no, qs] : s.flow_q) EXPECT_EQ(qs.size(), 1u) << "flow from port " << port_no << " split";
  }
}

TEST_F(TwoGuests, TruncatedFrameIsReturnedShortOnV3Rings) {
  AfPacketOptions o;
  o.rx_ring = RxRing::kV3;
  o.rx_block_bytes = 4096;  // smaller than the frame: the kernel truncates it to what fits in a block
  o.rx_blocks = 8;
  truncated_frame(o);
}

TEST_F(TwoGuests, TruncatedFrameIsReturnedShortWithoutCopyPath) {
  AfPacketOptions o;
  o.rx_copy_big = false;  // 2 KiB slots and no PACKET_COPY_THRESH: the kernel truncates to the slot
  truncated_frame(o);
}

// Guest A sends one UDP datagram of payload_bytes to 10.77.0.9 (a static neighbour: the frame leaves A's eth0).
void TwoGuests::send_big_udp(uint32_t payload_bytes, int count) {
  std::string err;
  UniqueFd a_fd = netns_open(a_.name(), &err);
  ASSERT_TRUE(a_fd.valid()) << err;
  std::thread sender([&] {
    NetnsGuard g(a_fd.get());
    if (!g.ok()) return;
    UniqueFd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    int off = 0;
    ::setsockopt(s.get(), SOL_SOCKET, SO_NO_CHECK, &off, sizeof off);
    sockaddr_in dst{};
    dst.sin_family = AF_INET;
    dst.sin_port = htons(9999);
    dst.sin_addr.s_addr = htonl(0x0a4d0009);
    std::vector<char> payload(payload_bytes, 'x');
    for (int i = 0; i < count; ++i)
      ::sendto(s.get(), payload.data(), payload.size(), 0, reinterpret_cast<sockaddr*>(&dst), sizeof dst);
  });
  sender.join();
}

// A full V2 ring: the kernel drops, marks the next frame it delivers TP_STATUS_LOSING, and rx_ring_drops (which reads
// the kernel's statistics only then) reports exactly the dropped frames.
TEST_F(TwoGuests, RingFullDropsAreReportedWithTheNextFrame) {
  ASSERT_EQ(sh("ip -n " + a_.name() + " neigh add 10.77.0.9 lladdr 02:00:00:00:00:09 dev eth0"), 0);
  AfPacketOptions o;
  o.rx_frames = 16;
  auto port = open_in_hub("h1", o);
  ASSERT_TRUE(port);
  EXPECT_EQ(port->rx_ring_drops(0), 0u);
  // Drain whatever the guest sent on its own (IPv6 chatter) first.
  Packet pkts[64];
  auto drain = [&] {
    unsigned total = 0;
    for (unsigned n; (n = port->rx_burst(0, pkts, 64)) > 0;) {
      total += n;
      port->rx_release(0);
    }
    return total;
  };
  drain();
  send_big_udp(32, 100);
  std::this_thread::sleep_for(50ms);
  const uint64_t kernel_dropped = port->rx_kernel_drops(0);  // also resets the kernel's counter and LOSING state
  EXPECT_GE(kernel_dropped, 100u - 16u);
  drain();
  send_big_udp(32, 100);  // fills the ring again and drops again; these drops are not yet read
  std::this_thread::sleep_for(50ms);
  drain();
  send_big_udp(32, 1);  // carries TP_STATUS_LOSING
  std::this_thread::sleep_for(50ms);
  drain();
  const uint64_t reported = port->rx_ring_drops(0);
  EXPECT_GE(reported, kernel_dropped + 100u - 16u) << "first round " << kernel_dropped;
  EXPECT_EQ(port->rx_ring_drops(0), 0u);
}

// A flush the kernel refuses (here: the host end is down, sendto fails with ENETDOWN; a full send buffer or peer
// backlog gives EAGAIN/ENOBUFS the same way) leaves the frames queued and tx_pending true; a later flush sends them,
// in order. tx_discard_pending frees refused slots, and the ring keeps working afterwards: the kernel's head and ours
// stay in step (the next frame arrives, the discarded ones never do).
TEST_F(TwoGuests, RefusedFlushStaysPendingUntilRetriedOrDiscarded) {
  AfPacketOptions o;
  o.tx_frames = 16;
  auto p2 = open_in_hub("h2", o);
  ASSERT_TRUE(p2);
  auto in_b = open_in(b_.name(), "eth0", AfPacketOptions{});
  ASSERT_TRUE(in_b);
  // Broadcast frames of a local experimental ethertype; the byte after the header tells them apart.
  auto frame = [](uint8_t tag) {
    std::vector<uint8_t> f(60, 0);
    std::memset(f.data(), 0xff, 6);
    f[6] = 0x02;
    f[11] = 0x77;
    f[12] = 0x88;
    f[13] = 0xb5;
    f[14] = tag;
    return f;
  };
  auto enqueue = [&](uint8_t tag) {
    std::vector<uint8_t> f = frame(tag);
    Packet p{};
    p.data = f.data();
    p.len = p.wire_len = uint32_t(f.size());
    return p2->tx_enqueue(0, p);  // copies the bytes
  };
  auto received = [&](std::chrono::milliseconds wait) {
    std::vector<uint8_t> tags;
    Packet pkts[16];
    for (auto t0 = Clock::now(); Clock::now() - t0 < wait;) {
      unsigned n = in_b->rx_burst(0, pkts, 16);
      for (unsigned k = 0; k < n; ++k) {
        if (pkts[k].len >= 15 && pkts[k].data[12] == 0x88 && pkts[k].data[13] == 0xb5) tags.push_back(pkts[k].data[14]);
      }
      in_b->rx_release(0);
      std::this_thread::sleep_for(1ms);
    }
    return tags;
  };
  const std::string hub = "ip -n " + hub_.name() + " link set h2 ";
  // Refused, then retried: both frames arrive, in order.
  ASSERT_EQ(sh(hub + "down"), 0);
  ASSERT_TRUE(enqueue(1));
  ASSERT_TRUE(enqueue(2));
  p2->tx_flush(0);
  EXPECT_TRUE(p2->tx_pending(0));
  p2->tx_flush(0);
  EXPECT_TRUE(p2->tx_pending(0));
  EXPECT_GE(p2->tx_errors(0), 1u);
  ASSERT_EQ(sh(hub + "up"), 0);
  received(100ms);  // the guest's own frames while its carrier came back
  p2->tx_flush(0);
  EXPECT_FALSE(p2->tx_pending(0));
  EXPECT_EQ(received(300ms), (std::vector<uint8_t>{1, 2}));
  // Refused, then discarded: 3 frames given up, the slots reused; only the later frame arrives.
  ASSERT_EQ(sh(hub + "down"), 0);
  for (uint8_t t : {3, 4, 5}) ASSERT_TRUE(enqueue(t));
  p2->tx_flush(0);
  EXPECT_TRUE(p2->tx_pending(0));
  EXPECT_EQ(p2->tx_discard_pending(0), 3u);
  EXPECT_FALSE(p2->tx_pending(0));
  EXPECT_EQ(p2->tx_discard_pending(0), 0u);
  ASSERT_EQ(sh(hub + "up"), 0);
  received(100ms);
  // More than a ring's worth afterwards: every slot goes round once, so a head out of step would show.
  std::vector<uint8_t> want;
  for (uint8_t t = 10; t < 10 + 2 * 16; ++t) {
    ASSERT_TRUE(enqueue(t)) << int(t);
    want.push_back(t);
    p2->tx_flush(0);
  }
  EXPECT_FALSE(p2->tx_pending(0));
  EXPECT_EQ(received(300ms), want);
}

// V2 with the default 2 KiB slots: a 6000-byte frame comes whole through the copy path (recvmsg), and leaves whole
// through the ring-less TX socket; B's own packet socket sees it as sent.
TEST_F(TwoGuests, FrameLargerThanASlotPassesWhole) {
  for (const char* cmd : {" link set eth0 mtu 9000", " neigh add 10.77.0.9 lladdr 02:00:00:00:00:09 dev eth0"})
    ASSERT_EQ(sh("ip -n " + a_.name() + cmd), 0);
  ASSERT_EQ(sh("ip -n " + b_.name() + " link set eth0 mtu 9000"), 0);
  for (const char* h : {"h1", "h2"}) ASSERT_EQ(sh("ip -n " + hub_.name() + " link set " + h + " mtu 9000"), 0);
  AfPacketOptions o;
  auto p1 = open_in_hub("h1", o);
  auto p2 = open_in_hub("h2", o);
  ASSERT_TRUE(p1 && p2);
  EXPECT_EQ(p1->ring_bytes(), af_packet_ring_bytes(o));
  EXPECT_EQ(af_packet_ring_bytes(o), (1u << 20) + (512u << 10));  // the documented default: 1 MiB RX + 512 KiB TX
  std::string err;
  UniqueFd b_fd = netns_open(b_.name(), &err);
  ASSERT_TRUE(b_fd.valid()) << err;
  std::unique_ptr<AfPacketPort> in_b;
  {
    NetnsGuard g(b_fd.get());
    ASSERT_TRUE(g.ok()) << g.error();
    in_b = AfPacketPort::open("eth0", o, &err);
  }
  ASSERT_TRUE(in_b) << err;
  constexpr uint32_t kWire = 14 + 20 + 8 + 6000;
  send_big_udp(6000);
  Packet pkts[8];
  bool forwarded = false, arrived = false;
  for (auto t0 = Clock::now(); !arrived && Clock::now() - t0 < 3s;) {
    unsigned n = p1->rx_burst(0, pkts, 8);
    for (unsigned k = 0; k < n; ++k) {
      if (pkts[k].wire_len != kWire) continue;
      EXPECT_EQ(pkts[k].len, kWire);
      EXPECT_EQ(pkts[k].data[23], 17);
      EXPECT_EQ(pkts[k].data[kWire - 1], 'x');
      EXPECT_TRUE(p2->tx_enqueue(0, pkts[k]));
      forwarded = true;
    }
    p2->tx_flush(0);
    p1->rx_release(0);
    n = in_b->rx_burst(0, pkts, 8);
    for (unsigned k = 0; k < n; ++k) {
      if (pkts[k].wire_len == kWire && pkts[k].len == kWire && pkts[k].data[kWire - 1] == 'x') arrived = true;
    }
    in_b->rx_release(0);
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_TRUE(forwarded);
  EXPECT_TRUE(arrived);
  EXPECT_EQ(p2->tx_errors(0), 0u);
}

// Frames that are not GSO leave the small TX ring copied whole into the skb's head (vnet hdr_len = their length, up to
// kAfPacketTxLinearMax), larger ones as frags of the ring's page. Every length from a minimal frame to a slot's worth,
// plain and with a partial UDP checksum, with and without a prefix (outer headers), reaches a socket on the far end of
// the veth byte for byte, with its checksum state: a hdr_len the kernel refuses (more than the frame) would show as
// tx_errors and frames missing.
TEST_F(TwoGuests, SmallFramesOfEveryLengthArriveByteForByte) {
  AfPacketOptions o;
  o.tx_frame_bytes = 4096;  // so frames past kAfPacketTxLinearMax still go through the small ring
  auto h1 = open_in_hub("h1", o);
  ASSERT_TRUE(h1);
  ASSERT_EQ(sh("ip -n " + a_.name() + " link set eth0 mtu 4000"), 0);
  ASSERT_EQ(sh("ip -n " + hub_.name() + " link set h1 mtu 4000"), 0);
  AfPacketOptions ro;
  ro.rx_frame_bytes = 8192;
  auto in_a = open_in(a_.name(), "eth0", ro);
  ASSERT_TRUE(in_a);

  // Frame k: Ethernet (ethertype 0x0800) + IPv4 + UDP to port 9, payload bytes derived from (k, offset).
  auto make = [](uint32_t len, uint32_t k, bool partial) {
    std::vector<uint8_t> f(len);
    const uint8_t hdr[14] = {0x02, 0, 0, 0, 0, 0x0a, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00};
    std::memcpy(f.data(), hdr, 14);
    const uint16_t ip_len = uint16_t(len - 14), udp_len = uint16_t(len - 34);
    uint8_t ip[20] = {0x45, 0, uint8_t(ip_len >> 8), uint8_t(ip_len), uint8_t(k >> 8), uint8_t(k), 0x40, 0, 64, 17,
                      0, 0, 10, 77, 0, 2, 10, 77, 0, 1};
    std::memcpy(f.data() + 14, ip, 20);
    f[34] = 0x9c;
    f[35] = 0x40;
    f[36] = 0;
    f[37] = 9;
    f[38] = uint8_t(udp_len >> 8);
    f[39] = uint8_t(udp_len);
    f[40] = partial ? 0x12 : 0;  // a partial checksum's seed is opaque to the kernel on a veth: any value passes
    f[41] = partial ? 0x34 : 0;
    for (uint32_t i = 42; i < len; ++i) f[i] = uint8_t(i * 7 + k);
    return f;
  };
  struct Sent {
    std::vector<uint8_t> bytes;
    bool partial;
  };
  std::map<uint32_t, Sent> sent;  // by IPv4 id
  std::vector<uint32_t> lengths;
  for (uint32_t len = 60; len <= 300; ++len) lengths.push_back(len);
  for (uint32_t len = 301; len < 4000 - 64; len += 97) lengths.push_back(len);
  for (uint32_t len : {kAfPacketTxLinearMax - 1, kAfPacketTxLinearMax, kAfPacketTxLinearMax + 1}) lengths.push_back(len);
  const uint8_t outer[8] = {0x02, 0, 0, 0, 0, 0x0a, 0x02, 0};  // the first 8 bytes of the frame given as a prefix
  uint32_t k = 0;
  uint64_t arrived = 0, mismatched = 0, enqueued = 0;
  auto drain = [&] {
    Packet rx[64];
    unsigned n = in_a->rx_burst(0, rx, 64);
    for (unsigned i = 0; i < n; ++i) {
      const Packet& p = rx[i];
      if (p.len < 42 || p.data[12] != 0x08 || p.data[23] != 17 || p.data[37] != 9) continue;
      const uint32_t id = uint32_t(p.data[18]) << 8 | p.data[19];
      auto it = sent.find(id);
      if (it == sent.end()) continue;
      const bool partial_rx = (p.flags & kHasVnet) && (p.vnet.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM);
      if (p.len != it->second.bytes.size() || std::memcmp(p.data, it->second.bytes.data(), p.len) != 0 ||
          partial_rx != it->second.partial ||
          (partial_rx && (p.vnet.csum_start != 34 || p.vnet.csum_offset != 6))) {
        ++mismatched;
      }
      ++arrived;
      sent.erase(it);
    }
    in_a->rx_release(0);
  };
  for (bool partial : {false, true}) {
    for (bool with_prefix : {false, true}) {
      for (uint32_t len : lengths) {
        Sent s{make(len, k, partial), partial};
        Packet p;
        p.data = s.bytes.data() + (with_prefix ? sizeof outer : 0);
        p.len = p.wire_len = len - (with_prefix ? sizeof outer : 0);
        if (with_prefix) {
          p.prefix = outer;
          p.prefix_len = sizeof outer;
        }
        if (partial) {
          p.flags |= kHasVnet;
          p.vnet.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
          p.vnet.csum_start = 34;
          p.vnet.csum_offset = 6;
          p.vnet.hdr_len = 0;
        }
        ASSERT_GE(p.len, 14u);
        ASSERT_TRUE(h1->tx_enqueue(0, p)) << "length " << len;
        ++enqueued;
        sent.emplace(k, std::move(s));
        k = (k + 1) & 0xffff;
        h1->tx_flush(0);  // one frame in flight at a time: the RX ring of the far end never overflows
        for (auto t0 = Clock::now(); sent.size() > 0 && Clock::now() - t0 < 2s;) drain();
        if (!sent.empty()) {
          h1->tx_discard_pending(0);
          FAIL() << "a frame of length " << len << (partial ? " (partial checksum)" : "")
                 << (with_prefix ? " (with prefix)" : "") << " did not arrive within 2 s; tx_errors "
                 << h1->tx_errors(0);
        }
      }
    }
  }
  EXPECT_EQ(h1->tx_errors(0), 0u);
  EXPECT_EQ(sent.size(), 0u) << "frames that never arrived";
  EXPECT_EQ(arrived, enqueued);
  EXPECT_EQ(mismatched, 0u);
}

// p came short from the ring (len < wire_len): marked kRxQueueFull exactly when `why` says the queue was full, parsed
// to `why`, and never transmitted as if it were whole.
void expect_cut(AfPacketPort& port, const Packet& p, DropReason why) {
  EXPECT_EQ((p.flags & kRxQueueFull) != 0, why == DropReason::kRxQueueFull);
  Packet parsed = p;
  parse(parsed);
  EXPECT_EQ(parsed.drop, why);
  EXPECT_FALSE(port.tx_enqueue(0, p));
}

void TwoGuests::truncated_frame(const AfPacketOptions& o) {
  ASSERT_EQ(sh("ip -n " + a_.name() + " link set eth0 mtu 9000"), 0);
  ASSERT_EQ(sh("ip -n " + hub_.name() + " link set h1 mtu 9000"), 0);
  ASSERT_EQ(sh("ip -n " + a_.name() + " neigh add 10.77.0.9 lladdr 02:00:00:00:00:09 dev eth0"), 0);
  auto port = open_in_hub("h1", o);
  ASSERT_TRUE(port);
  std::string err;
  UniqueFd a_fd = netns_open(a_.name(), &err);
  ASSERT_TRUE(a_fd.valid()) << err;
  std::thread sender([&] {
    NetnsGuard g(a_fd.get());
    if (!g.ok()) return;
    UniqueFd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    int off = 0;  // no UDP checksum offload games: a plain 6000-byte datagram in one frame
    ::setsockopt(s.get(), SOL_SOCKET, SO_NO_CHECK, &off, sizeof off);
    sockaddr_in dst{};
    dst.sin_family = AF_INET;
    dst.sin_port = htons(9999);
    dst.sin_addr.s_addr = htonl(0x0a4d0009);
    std::vector<char> payload(6000, 'x');
    ::sendto(s.get(), payload.data(), payload.size(), 0, reinterpret_cast<sockaddr*>(&dst), sizeof dst);
  });
  sender.join();
  Packet pkts[8];
  bool found = false;
  for (auto t0 = Clock::now(); !found && Clock::now() - t0 < 3s;) {
    unsigned n = port->rx_burst(0, pkts, 8);
    for (unsigned k = 0; k < n; ++k) {
      if (pkts[k].wire_len == 14 + 20 + 8 + 6000) {
        found = true;
        EXPECT_LT(pkts[k].len, pkts[k].wire_len);
        EXPECT_GT(pkts[k].len, 1500u);  // what fits in a V3 block (4 KiB) or a V2 slot (2 KiB)
        EXPECT_EQ(pkts[k].data[23], 17);
        expect_cut(*port, pkts[k], DropReason::kTruncated);  // by the configuration, not by a full queue
      }
    }
    port->rx_release(0);
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_TRUE(found);
}

// Frames larger than a slot wait whole on the socket's queue for recvmsg; while that queue is full (rx_queue_bytes,
// here smaller than two of them) the kernel can only cut a frame to its slot. Such a frame is marked kRxQueueFull and
// parse drops it as rx_queue_full, not as truncated; the ones that were queued still arrive whole, in order.
TEST_F(TwoGuests, FrameLargerThanASlotMeetingAFullQueueIsMarked) {
  ASSERT_EQ(sh("ip -n " + a_.name() + " link set eth0 mtu 9000"), 0);
  ASSERT_EQ(sh("ip -n " + hub_.name() + " link set h1 mtu 9000"), 0);
  ASSERT_EQ(sh("ip -n " + a_.name() + " neigh add 10.77.0.9 lladdr 02:00:00:00:00:09 dev eth0"), 0);
  AfPacketOptions o;
  o.rx_queue_bytes = 4096;  // the kernel doubles it: one queued 6000-byte frame fills it
  auto port = open_in_hub("h1", o);
  ASSERT_TRUE(port);
  constexpr uint32_t kWire = 14 + 20 + 8 + 6000;
  constexpr int kSent = 8;
  send_big_udp(6000, kSent);  // nobody reads while they arrive
  Packet pkts[16];
  int whole = 0, queue_full = 0;
  for (auto t0 = Clock::now(); whole + queue_full < kSent && Clock::now() - t0 < 3s;) {
    const unsigned n = port->rx_burst(0, pkts, 16);
    for (unsigned k = 0; k < n; ++k) {
      if (pkts[k].wire_len != kWire) continue;  // the guest's own IPv6 chatter
      if (pkts[k].len == kWire) {
        ++whole;
        EXPECT_EQ(pkts[k].flags & kRxQueueFull, 0);
        EXPECT_EQ(pkts[k].data[kWire - 1], 'x');
      } else {
        ++queue_full;
        EXPECT_LT(pkts[k].len, kWire);
        expect_cut(*port, pkts[k], DropReason::kRxQueueFull);
      }
    }
    port->rx_release(0);
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_EQ(whole + queue_full, kSent);
  EXPECT_GE(whole, 1);
  EXPECT_GE(queue_full, 1);
}

// The receive path untags 802.1Q frames into skb metadata before packet sockets see them (TP_STATUS_VLAN_VALID); the
// port puts the tag back so the pipeline sees the frame as it was on the wire.
TEST_F(TwoGuests, VlanTagIsReinserted) { vlan_reinserted(AfPacketOptions{}); }

TEST_F(TwoGuests, VlanTagIsReinsertedOnV3Rings) {
  AfPacketOptions o;
  o.rx_ring = RxRing::kV3;
  vlan_reinserted(o);
}

void TwoGuests::vlan_reinserted(const AfPacketOptions& o) {
  auto hub_port = open_in_hub("h1", o);
  ASSERT_TRUE(hub_port);
  std::string err;
  UniqueFd a_fd = netns_open(a_.name(), &err);
  ASSERT_TRUE(a_fd.valid()) << err;
  std::unique_ptr<AfPacketPort> guest_port;
  {
    NetnsGuard g(a_fd.get());
    ASSERT_TRUE(g.ok()) << g.error();
    guest_port = AfPacketPort::open("eth0", AfPacketOptions{}, &err);
  }
  ASSERT_TRUE(guest_port) << err;
  uint8_t frame[18 + 80];
  const uint8_t hdr[18] = {0x02, 0, 0, 0, 0, 0x09, 0x02, 0, 0, 0, 0, 0x01, 0x81, 0x00, 0x20, 0x64, 0x88, 0xb5};
  std::memcpy(frame, hdr, sizeof hdr);
  for (size_t i = sizeof hdr; i < sizeof frame; ++i) frame[i] = uint8_t(i * 3);
  Packet p;
  p.data = frame;
  p.len = p.wire_len = sizeof frame;
  ASSERT_TRUE(guest_port->tx_enqueue(0, p));
  guest_port->tx_flush(0);
  bool found = false;
  Packet pkts[8];
  for (auto t0 = Clock::now(); !found && Clock::now() - t0 < 3s;) {
    unsigned n = hub_port->rx_burst(0, pkts, 8);
    for (unsigned k = 0; k < n; ++k) {
      if (pkts[k].len >= 6 && pkts[k].data[5] == 0x09 && pkts[k].data[0] == 0x02) {
        found = true;
        EXPECT_EQ(pkts[k].len, sizeof frame);
        EXPECT_EQ(pkts[k].wire_len, sizeof frame);
        EXPECT_EQ(std::memcmp(pkts[k].data, frame, sizeof frame), 0) << "tag not restored in place";
      }
    }
    hub_port->rx_release(0);
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_TRUE(found);
}

TEST(AfPacketPortOpen, RejectsBadOptionsAndMissingInterface) {
  ASSERT_EQ(::geteuid(), 0u) << "integration tests need root";
  std::string err;
  AfPacketOptions o;
  EXPECT_EQ(AfPacketPort::open("vpcd-no-such0", o, &err), nullptr);
  EXPECT_NE(err.find("vpcd-no-such0"), std::string::npos) << err;
  o.rx_queues = 0;
  err.clear();
  EXPECT_EQ(AfPacketPort::open("lo", o, &err), nullptr);
  EXPECT_NE(err.find("rx_queues"), std::string::npos) << err;
  o = AfPacketOptions{};
  o.rx_ring = RxRing::kV3;
  o.rx_block_bytes = 5000;
  err.clear();
  EXPECT_EQ(AfPacketPort::open("lo", o, &err), nullptr);
  EXPECT_NE(err.find("rx_block_bytes"), std::string::npos) << err;
  o = AfPacketOptions{};
  o.rx_frame_bytes = 2050;
  err.clear();
  EXPECT_EQ(AfPacketPort::open("lo", o, &err), nullptr);
  EXPECT_NE(err.find("rx_frame_bytes"), std::string::npos) << err;
  o = AfPacketOptions{};
  o.tx_frame_bytes = 100;
  err.clear();
  EXPECT_EQ(AfPacketPort::open("lo", o, &err), nullptr);
  EXPECT_NE(err.find("tx_frame_bytes"), std::string::npos) << err;
}

}  // namespace
}  // namespace vpcd::dp
