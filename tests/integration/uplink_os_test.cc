// Uplink OS preparation (datapath/io/uplink_os) in a namespace of the test's own: GRO off, the ingress drop filter
// stops the kernel stack (no ICMP port unreachable for VXLAN, no ARP answers) while an AF_PACKET socket still gets
// every frame, and release_uplink removes only our filter.
#include "datapath/io/uplink_os.h"

#include <gtest/gtest.h>

#include <string>

#include "datapath/io/netns.h"
#include "tests/integration/io_test_util.h"

namespace vpcd::dp {
namespace {

using iotest::ScopedNetns;
using iotest::sh;
using iotest::sh_out;

TEST(UplinkOs, DropFilterHidesFramesFromTheKernelNotFromPacketSockets) {
  ScopedNetns box(iotest::unique("vxlanup"));
  ScopedNetns peer(iotest::unique("vxlanpe"));
  ASSERT_TRUE(box.ok() && peer.ok());
  const std::string b = box.name(), p = peer.name();
  ASSERT_EQ(sh("ip -n " + b + " link add u0 type veth peer name u1 netns " + p), 0);
  ASSERT_EQ(sh("ip -n " + b + " addr add 192.0.2.1/24 dev u0"), 0);  // a kernel address, to show the kernel is muted
  ASSERT_EQ(sh("ip -n " + p + " addr add 192.0.2.2/24 dev u1 && ip -n " + p + " link set u1 up"), 0);
  ASSERT_EQ(sh("ip netns exec " + b + " ethtool -K u0 gro on"), 0);

  // Before: the kernel answers ping on u0.
  ASSERT_EQ(sh("ip -n " + b + " link set u0 up"), 0);
  EXPECT_EQ(sh("ip netns exec " + p + " ping -c 1 -W 2 192.0.2.1"), 0);

  std::string err;
  {
    UniqueFd fd = netns_open(b, &err);
    ASSERT_TRUE(fd) << err;
    NetnsGuard g(fd.get());
    ASSERT_TRUE(g.ok()) << g.error();
    ASSERT_TRUE(prepare_uplink("u0", &err)) << err;
    EXPECT_EQ(uplink_gro("u0"), 0);
    ASSERT_TRUE(prepare_uplink("u0", &err)) << err;  // idempotent
    EXPECT_FALSE(prepare_uplink("nosuchif0", &err));
  }
  const std::string filters = sh_out("tc -n " + b + " filter show dev u0 ingress");
  EXPECT_NE(filters.find("matchall"), std::string::npos) << filters;
  EXPECT_NE(filters.find("drop"), std::string::npos) << filters;

  // A packet socket on u0 still sees the peer's frames while the kernel ignores them: no ping answer, no ICMP port
  // unreachable for a VXLAN datagram, no ARP reply.
  ASSERT_EQ(sh("ip -n " + p + " neigh flush dev u1"), 0);
  const std::string cap = "/tmp/" + iotest::unique("vxlanup") + ".txt";
  ASSERT_EQ(sh("ip netns exec " + b + " sh -c 'timeout 4 tcpdump -l -n -i u0 -c 100 > " + cap + " 2>/dev/null &'"), 0);
  sh("sleep 1");
  EXPECT_NE(sh("ip netns exec " + p + " ping -c 2 -i 0.3 -W 1 192.0.2.1"), 0);
  sh("ip -n " + p + " neigh replace 192.0.2.1 lladdr 02:00:00:00:00:01 dev u1");
  sh("ip netns exec " + p + " sh -c 'echo x > /dev/udp/192.0.2.1/4789'");
  sh("sleep 3.5");
  const std::string seen = sh_out("cat " + cap);
  sh("rm -f " + cap);
  EXPECT_NE(seen.find("ARP, Request who-has 192.0.2.1"), std::string::npos) << seen;
  EXPECT_EQ(seen.find("ARP, Reply"), std::string::npos) << seen;
  EXPECT_NE(seen.find(".4789"), std::string::npos) << seen;
  EXPECT_EQ(seen.find("unreachable"), std::string::npos) << seen;
  EXPECT_EQ(seen.find("echo reply"), std::string::npos) << seen;

  {
    UniqueFd fd = netns_open(b, &err);
    NetnsGuard g(fd.get());
    release_uplink("u0");
  }
  EXPECT_EQ(sh_out("tc -n " + b + " filter show dev u0 ingress").find("matchall"), std::string::npos);
  sh("ip -n " + p + " neigh flush dev u1");
  EXPECT_EQ(sh("ip netns exec " + p + " ping -c 1 -W 2 192.0.2.1"), 0);
}

}  // namespace
}  // namespace vpcd::dp
