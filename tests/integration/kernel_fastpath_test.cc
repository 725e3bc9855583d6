// The kernel fast path's tc program run by the kernel on crafted frames (BPF_PROG_TEST_RUN), without traffic: what it
// takes, where it sends it (the per-port counters name the output), what it rewrites on a routed frame, and that every
// malformed, truncated or foreign frame is left to the pipeline (TC_ACT_OK). The program reads the input port from
// the skb's ifindex, so the ports are the host ends of veth pairs in a namespace of the test's own, and every request
// to the kernel (attach, test run) is made from a thread inside that namespace.
//
// Needs root (BPF, namespaces).
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <sched.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "datapath/io/kernel_fastpath.h"
#include "datapath/router_mac.h"
#include "tests/integration/datapath_test_util.h"

namespace vpcd::dp {
namespace {

using namespace std::chrono_literals;

MacAddr mac(const char* s) { return *MacAddr::parse(s); }
Ipv4Addr ip(const char* s) { return *Ipv4Addr::parse(s); }

uint16_t ip_checksum(const uint8_t* h) {
  uint32_t sum = 0;
  for (int i = 0; i < 20; i += 2) sum += uint32_t(h[i] << 8 | h[i + 1]);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return uint16_t(~sum);
}

// Ethernet + IPv4 (no options, DF) + an L4 header (UDP: 8 bytes + payload; TCP: 20 bytes; ICMP: echo request).
std::vector<uint8_t> frame(MacAddr dst, MacAddr src, const char* sip, const char* dip, uint8_t proto,
                           uint8_t ttl = 64, size_t payload = 18) {
  const size_t l4 = proto == IPPROTO_TCP ? 20 : 8;
  std::vector<uint8_t> f(14 + 20 + l4 + payload, 0);
  std::copy(dst.b.begin(), dst.b.end(), f.begin());
  std::copy(src.b.begin(), src.b.end(), f.begin() + 6);
  f[12] = 0x08;
  uint8_t* h = f.data() + 14;
  const size_t tot = 20 + l4 + payload;
  h[0] = 0x45;
  h[2] = uint8_t(tot >> 8);
  h[3] = uint8_t(tot);
  h[6] = 0x40;  // DF
  h[8] = ttl;
  h[9] = proto;
  const uint32_t s = htonl(ip(sip).v), d = htonl(ip(dip).v);
  std::memcpy(h + 12, &s, 4);
  std::memcpy(h + 16, &d, 4);
  const uint16_t c = ip_checksum(h);
  h[10] = uint8_t(c >> 8);
  h[11] = uint8_t(c);
  uint8_t* t = h + 20;
  if (proto == IPPROTO_UDP) {
    t[0] = 0x9c, t[1] = 0x40, t[3] = 9;
    t[4] = uint8_t((8 + payload) >> 8);
    t[5] = uint8_t(8 + payload);
  } else if (proto == IPPROTO_TCP) {
    t[12] = 0x50;  // data offset 5
    t[13] = 0x10;  // ACK
  } else if (proto == IPPROTO_ICMP) {
    t[0] = 8;  // echo request
  }
  return f;
}

void set_ip_byte(std::vector<uint8_t>& f, size_t off, uint8_t v) {
  f[14 + off] = v;
  f[24] = f[25] = 0;
  const uint16_t c = ip_checksum(f.data() + 14);
  f[24] = uint8_t(c >> 8);
  f[25] = uint8_t(c);
}

struct RunResult {
  int retval = -1;
  std::vector<uint8_t> out;
};

class FastPathProgram : public ::testing::Test {
 protected:
  // Ports: A and B in subnet 1, C in subnet 2 of VPC 100; D in VPC 200, with C's MAC and address.
  const MacAddr kA = mac("02:00:00:00:0a:01"), kB = mac("02:00:00:00:0a:02"), kC = mac("02:00:00:00:0a:03");
  const MacAddr kRouter = router_mac_for(100), kOtherRouter = router_mac_for(200);

  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (BPF, namespaces)";
    ns_ = "kfp" + std::to_string(::getpid());
    guard_.add_netns(ns_);
    ASSERT_EQ(test::run_cmd({"ip", "netns", "add", ns_}, 10s).exit_code, 0);
    for (const char* n : {"a", "b", "c", "d"}) {
      auto r = test::in_ns(ns_, {"ip", "link", "add", std::string(n) + "0", "type", "veth", "peer", "name",
                                 std::string(n) + "1"});
      ASSERT_EQ(r.exit_code, 0) << r.output;
      r = test::in_ns(ns_, {"cat", std::string("/sys/class/net/") + n + "0/ifindex"});
      ASSERT_EQ(r.exit_code, 0) << r.output;
      ifx_[n] = std::stoi(r.output);
    }
    std::string err;
    fp_ = KernelFastPath::load(&err);
    ASSERT_TRUE(fp_) << err;
    in_ns_thread([&] {
      for (const auto& [n, i] : ifx_) ASSERT_TRUE(fp_->attach(i, &err)) << n << ": " << err;
    });
    const std::vector<KernelFastPath::Port> ports = {
        {ifx_["a"], kA, 1, 100, kRouter, {ip("10.0.0.2")}, true, 1500},
        {ifx_["b"], kB, 1, 100, kRouter, {ip("10.0.0.3")}, false, 1500},
        {ifx_["c"], kC, 2, 100, kRouter, {ip("10.0.1.2")}, true, 1500},
        {ifx_["d"], kC, 3, 200, kOtherRouter, {ip("10.0.1.2")}, true, 1500},
    };
    ASSERT_TRUE(fp_->set_ports(ports, &err)) << err;
    ASSERT_EQ(fp_->port_count(), 4u);
  }

  void TearDown() override { fp_.reset(); }

  // f on a thread inside the test's namespace (the kernel resolves ifindexes in the caller's namespace).
  void in_ns_thread(const std::function<void()>& f) {
    std::thread t([&] {
      const int fd = ::open(("/run/netns/" + ns_).c_str(), O_RDONLY | O_CLOEXEC);
      ASSERT_GE(fd, 0);
      ASSERT_EQ(::setns(fd, CLONE_NEWNET), 0);
      ::close(fd);
      f();
    });
    t.join();
  }

  // The tc program on `f` arriving on port `port`.
  RunResult run(const char* port, const std::vector<uint8_t>& f) {
    RunResult r;
    r.out.resize(f.size() + 256);
    in_ns_thread([&] {
      __sk_buff ctx{};
      ctx.ifindex = uint32_t(ifx_.at(port));
      bpf_test_run_opts o{};
      o.sz = sizeof o;
      o.data_in = f.data();
      o.data_size_in = uint32_t(f.size());
      o.data_out = r.out.data();
      o.data_size_out = uint32_t(r.out.size());
      o.ctx_in = &ctx;
      o.ctx_size_in = sizeof ctx;
      o.repeat = 1;
      ASSERT_EQ(bpf_prog_test_run_opts(fp_->tc_program_fd(), &o), 0) << std::strerror(errno);
      r.retval = int(o.retval);
      r.out.resize(o.data_size_out);
    });
    return r;
  }

  // Runs `f` on `port` and returns where it went: the port whose tx counter moved ("" when none did; the input's rx
  // must move exactly when one did).
  std::string output_of(const char* port, const std::vector<uint8_t>& f, RunResult* res = nullptr) {
    std::map<std::string, PortCounters> before;
    for (const auto& [n, i] : ifx_) before[n] = fp_->counters(i);
    RunResult r = run(port, f);
    std::string out;
    for (const auto& [n, i] : ifx_) {
      const PortCounters now = fp_->counters(i);
      if (now.tx_packets != before[n].tx_packets) {
        EXPECT_TRUE(out.empty()) << "two outputs";
        out = n;
        EXPECT_EQ(now.tx_bytes - before[n].tx_bytes, f.size());
      }
      if (n != port) {
        EXPECT_EQ(now.rx_packets, before[n].rx_packets) << n;
      }
    }
    EXPECT_EQ(fp_->counters(ifx_.at(port)).rx_packets - before[port].rx_packets, out.empty() ? 0u : 1u);
    EXPECT_EQ(r.retval, out.empty() ? TC_ACT_OK : TC_ACT_REDIRECT);
    if (res) *res = std::move(r);
    return out;
  }

  std::string ns_;
  test::OsObjectGuard guard_;
  std::map<std::string, int> ifx_;
  std::unique_ptr<KernelFastPath> fp_;
};

// Within a subnet: TCP, UDP and ICMP echo from the port's own MAC and address to a listed MAC go there, unchanged.
TEST_F(FastPathProgram, ForwardsWithinASubnetUnchanged) {
  for (uint8_t proto : {IPPROTO_UDP, IPPROTO_TCP, IPPROTO_ICMP}) {
    auto f = frame(kB, kA, "10.0.0.2", "10.0.0.3", proto);
    RunResult r;
    EXPECT_EQ(output_of("a", f, &r), "b") << int(proto);
    EXPECT_EQ(r.out, f);
  }
  EXPECT_EQ(output_of("b", frame(kA, kB, "10.0.0.3", "10.0.0.2", IPPROTO_UDP)), "a");
  // Ethernet padding after the datagram (tot_len below the frame) is fine.
  auto padded = frame(kB, kA, "10.0.0.2", "10.0.0.3", IPPROTO_UDP);
  padded.resize(padded.size() + 6, 0);
  EXPECT_EQ(output_of("a", padded), "b");
}

// Between subnets of one VPC: to the router's MAC, routed to the port holding the address, in the sender's VPC only;
// MACs rewritten, TTL one less, the header checksum still right, nothing else changed.
TEST_F(FastPathProgram, RoutesToTheAddressInTheSendersVpcAndRewritesAsTheRouter) {
  auto f = frame(kRouter, kA, "10.0.0.2", "10.0.1.2", IPPROTO_TCP, 64, 100);
  RunResult r;
  EXPECT_EQ(output_of("a", f, &r), "c");
  ASSERT_EQ(r.out.size(), f.size());
  EXPECT_TRUE(std::equal(kC.b.begin(), kC.b.end(), r.out.begin()));
  EXPECT_TRUE(std::equal(kRouter.b.begin(), kRouter.b.end(), r.out.begin() + 6));
  EXPECT_EQ(r.out[14 + 8], 63);
  EXPECT_EQ(ip_checksum(r.out.data() + 14), 0);  // a correct header sums to 0xffff: its complement is 0
  auto expect = f;
  std::copy(r.out.begin(), r.out.begin() + 12, expect.begin());
  expect[14 + 8] = 63;
  expect[14 + 10] = r.out[14 + 10];
  expect[14 + 11] = r.out[14 + 11];
  EXPECT_EQ(r.out, expect);
  // TTL 2 still goes (and leaves with 1); back from C to A; C's twin in VPC 200 reaches nobody of VPC 100.
  EXPECT_EQ(output_of("a", frame(kRouter, kA, "10.0.0.2", "10.0.1.2", IPPROTO_ICMP, 2)), "c");
  EXPECT_EQ(output_of("c", frame(kRouter, kC, "10.0.1.2", "10.0.0.2", IPPROTO_UDP)), "a");
  EXPECT_EQ(output_of("d", frame(kOtherRouter, kC, "10.0.1.2", "10.0.0.2", IPPROTO_UDP)), "");
  // The sender's subnet through the router, too (the pipeline routes it the same way).
  EXPECT_EQ(output_of("a", frame(kRouter, kA, "10.0.0.2", "10.0.0.3", IPPROTO_UDP)), "b");
}

// What the pipeline must see stays with it.
TEST_F(FastPathProgram, LeavesEverythingElseToThePipeline) {
  const auto good = frame(kB, kA, "10.0.0.2", "10.0.0.3", IPPROTO_UDP);
  auto with = [&](const std::function<void(std::vector<uint8_t>&)>& change) {
    auto f = good;
    change(f);
    return f;
  };
  struct Case {
    const char* what;
    std::vector<uint8_t> f;
  };
  const std::vector<Case> cases = {
      {"another source MAC", frame(kB, kC, "10.0.0.2", "10.0.0.3", IPPROTO_UDP)},
      {"another source address", frame(kB, kA, "10.0.0.9", "10.0.0.3", IPPROTO_UDP)},
      {"to a MAC of another subnet", frame(kC, kA, "10.0.0.2", "10.0.1.2", IPPROTO_UDP)},
      {"to its own MAC", frame(kA, kA, "10.0.0.2", "10.0.0.2", IPPROTO_UDP)},
      {"broadcast", frame(mac("ff:ff:ff:ff:ff:ff"), kA, "10.0.0.2", "10.0.0.3", IPPROTO_UDP)},
      {"to another VPC's router", frame(kOtherRouter, kA, "10.0.0.2", "10.0.1.2", IPPROTO_UDP)},
      {"routed with TTL 1", frame(kRouter, kA, "10.0.0.2", "10.0.1.2", IPPROTO_UDP, 1)},
      {"routed with TTL 0", frame(kRouter, kA, "10.0.0.2", "10.0.1.2", IPPROTO_UDP, 0)},
      {"routed to the gateway", frame(kRouter, kA, "10.0.0.2", "10.0.0.1", IPPROTO_ICMP)},
      {"routed to an address nobody holds", frame(kRouter, kA, "10.0.0.2", "10.0.1.9", IPPROTO_UDP)},
      {"routed to itself", frame(kRouter, kA, "10.0.0.2", "10.0.0.2", IPPROTO_UDP)},
      {"ARP", with([](auto& f) { f[13] = 0x06; })},
      {"IPv6 ethertype", with([](auto& f) { f[12] = 0x86, f[13] = 0xdd; })},
      {"a VLAN tag", with([](auto& f) { f[12] = 0x81, f[13] = 0x00; })},
      {"IP options (IHL 6)", with([](auto& f) { set_ip_byte(f, 0, 0x46); })},
      {"IP version 6 in an IPv4 frame", with([](auto& f) { set_ip_byte(f, 0, 0x65); })},
      {"more fragments", with([](auto& f) { set_ip_byte(f, 6, 0x20); })},
      {"a fragment offset", with([](auto& f) { set_ip_byte(f, 7, 0x01); })},
      {"total length beyond the frame", with([](auto& f) { set_ip_byte(f, 3, uint8_t(f[14 + 3] + 1)); })},
      {"total length below the header", with([](auto& f) { set_ip_byte(f, 2, 0), set_ip_byte(f, 3, 19); })},
      {"UDP length below 8", with([](auto& f) { f[34 + 4] = 0, f[34 + 5] = 7; })},
      {"UDP length beyond the datagram", with([](auto& f) { f[34 + 5] = uint8_t(f[34 + 5] + 1); })},
      {"TCP data offset below 5", with([&](auto& f) {
         f = frame(kB, kA, "10.0.0.2", "10.0.0.3", IPPROTO_TCP);
         f[34 + 12] = 0x40;
       })},
      {"TCP data offset beyond the datagram", with([&](auto& f) {
         f = frame(kB, kA, "10.0.0.2", "10.0.0.3", IPPROTO_TCP);
         f[34 + 12] = 0xf0;
       })},
      {"ICMP destination unreachable", with([&](auto& f) {
         f = frame(kB, kA, "10.0.0.2", "10.0.0.3", IPPROTO_ICMP);
         f[34] = 3;
       })},
      {"another protocol (GRE)", with([](auto& f) { set_ip_byte(f, 9, 47); })},
      {"larger than the receiver's MTU", frame(kB, kA, "10.0.0.2", "10.0.0.3", IPPROTO_UDP, 64, 1500 - 28 + 1)},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    EXPECT_EQ(output_of("a", c.f), "");
  }
  // A frame of exactly the receiver's MTU goes.
  EXPECT_EQ(output_of("a", frame(kB, kA, "10.0.0.2", "10.0.0.3", IPPROTO_UDP, 64, 1500 - 28)), "b");
  // Every truncation of a good frame is the pipeline's (from 34 bytes: the kernel's test run refuses to build an IPv4
  // skb without a whole IPv4 header; the program's header load fails on those, as on every shorter read below).
  for (size_t n = 34; n < good.size(); ++n) {
    std::vector<uint8_t> cut(good.begin(), good.begin() + long(n));
    SCOPED_TRACE(std::to_string(n) + " bytes");
    EXPECT_EQ(output_of("a", cut), "");
  }
  // A port that is not listed takes nothing and receives nothing.
  std::string err;
  ASSERT_TRUE(fp_->set_ports({{ifx_["b"], kB, 1, 100, kRouter, {ip("10.0.0.3")}, false, 1500}}, &err)) << err;
  EXPECT_EQ(output_of("a", good), "");
  EXPECT_EQ(output_of("b", frame(kA, kB, "10.0.0.3", "10.0.0.2", IPPROTO_UDP)), "");
}

// Two ports claiming one (VPC, address) or one (subnet, MAC): the second is left out, the first keeps working.
TEST_F(FastPathProgram, LeavesOutAPortThatRepeatsAnAddressOrAMac) {
  std::string err;
  const KernelFastPath::Port a{ifx_["a"], kA, 1, 100, kRouter, {ip("10.0.0.2")}, true, 1500};
  const KernelFastPath::Port b{ifx_["b"], kB, 1, 100, kRouter, {ip("10.0.0.3")}, false, 1500};
  KernelFastPath::Port c_same_addr{ifx_["c"], kC, 2, 100, kRouter, {ip("10.0.0.3")}, true, 1500};
  KernelFastPath::Port d_same_mac{ifx_["d"], kB, 1, 100, kRouter, {ip("10.0.0.7")}, true, 1500};
  ASSERT_TRUE(fp_->set_ports({a, b, c_same_addr, d_same_mac}, &err)) << err;
  EXPECT_EQ(fp_->port_count(), 2u);
  EXPECT_EQ(output_of("a", frame(kRouter, kA, "10.0.0.2", "10.0.0.3", IPPROTO_UDP)), "b");
  EXPECT_EQ(output_of("a", frame(kB, kA, "10.0.0.2", "10.0.0.3", IPPROTO_UDP)), "b");
}

}  // namespace
}  // namespace vpcd::dp
