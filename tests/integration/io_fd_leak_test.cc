// Repeated open/close of every io object (ports with several queues and workers, netlink sockets in and out of a
// namespace, namespace fds, tap queues), including failed opens, leaves no file descriptor behind.
#include <unistd.h>

#include <gtest/gtest.h>

#include "datapath/io/af_packet_port.h"
#include "datapath/io/netlink.h"
#include "datapath/io/netns.h"
#include "datapath/io/tap_device.h"
#include "io_test_util.h"

namespace vpcd::dp {
namespace {

using namespace iotest;

TEST(IoFdLeak, RepeatedOpenCloseLeavesNoFd) {
  ASSERT_EQ(::geteuid(), 0u) << "integration tests need root";
  ScopedNetns ns(unique("vpcd-io-fd-"));
  ASSERT_TRUE(ns.ok());
  ASSERT_EQ(sh("ip -n " + ns.name() + " link add v0 type veth peer name v1"), 0);
  ASSERT_EQ(sh("ip -n " + ns.name() + " link set v0 up"), 0);
  ASSERT_EQ(sh("ip -n " + ns.name() + " link set v1 up"), 0);
  std::string err;
  UniqueFd ns_fd = netns_open(ns.name(), &err);
  ASSERT_TRUE(ns_fd.valid()) << err;
  NetnsGuard guard(ns_fd.get());
  ASSERT_TRUE(guard.ok()) << guard.error();
  const TapBackend tap{unique("viof"), 1, std::nullopt, std::nullopt};
  ASSERT_TRUE(tap_ensure(tap, "vpcd:iotest", &err)) << err;

  const int before = count_open_fds();
  AfPacketOptions o;
  o.rx_queues = 2;
  o.tx_workers = 2;
  o.rx_block_bytes = 1u << 17;
  o.rx_blocks = 2;
  o.tx_frames = 16;
  for (int i = 0; i < 25; ++i) {
    auto port = AfPacketPort::open("v0", o, &err);
    ASSERT_TRUE(port) << err;
    EXPECT_EQ(AfPacketPort::open("vpcd-none0", o, &err), nullptr);
    AfPacketOptions bad = o;
    bad.rx_frame_bytes = 1000;
    EXPECT_EQ(AfPacketPort::open("v0", bad, &err), nullptr);
    // A frame larger than a TX slot goes through the worker's ring-less socket; closing the port must close it too.
    static uint8_t big[4000] = {0x02, 0, 0, 0, 0, 0x09, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00};
    Packet p;
    p.data = big;
    p.len = p.wire_len = sizeof big;
    port->tx_enqueue(1, p);  // over v0's MTU: refused by the kernel or sent; either way the socket was used
    auto nl = Netlink::open(&err);
    ASSERT_TRUE(nl) << err;
    EXPECT_TRUE(nl->find_link("v0", &err));
    EXPECT_TRUE(nl->disable_ipv6("v0", &err)) << err;
    auto nl_ns = Netlink::open(&err, ns_fd.get());
    ASSERT_TRUE(nl_ns) << err;
    EXPECT_TRUE(netns_open(ns.name(), &err).valid());
    int q = tap_open_queue(tap.ifname);
    ASSERT_GE(q, 0);
    ::close(q);
    ASSERT_TRUE(tap_ensure(tap, "vpcd:iotest", &err)) << err;
  }
  EXPECT_EQ(count_open_fds(), before);
  EXPECT_TRUE(tap_remove(tap.ifname, &err)) << err;
}

}  // namespace
}  // namespace vpcd::dp
