// Uplink OS preparation (datapath/io/uplink_os) in a namespace of the test's own: GRO off, the kernel stack kept away
// (tc ingress drop, or an nftables ingress drop / the sysctl arrangement on kernels without cls_matchall): no ARP answer for vpcd's address, no
// ICMP error for VXLAN or forwarded traffic, while an AF_PACKET socket (tcpdump) still gets every frame.
#include "datapath/io/uplink_os.h"

#include <gtest/gtest.h>

#include <cstdio>
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
  // 192.0.2.1 is the address vpcd owns on u0: not configured in the kernel. The namespace forwards (ip_forward=1)
  // and has another route, so an unmuted stack would forward or answer with ICMP.
  ASSERT_EQ(sh("ip netns exec " + b + " sysctl -qw net.ipv4.ip_forward=1"), 0);
  ASSERT_EQ(sh("ip -n " + b + " link add d0 type veth peer name d1 && ip -n " + b + " link set d1 up && ip -n " + b + " link set d0 up && ip -n " + b +
               " addr add 203.0.113.1/24 dev d0"), 0);
  ASSERT_EQ(sh("ip -n " + p + " addr add 192.0.2.2/24 dev u1 && ip -n " + p + " link set u1 up"), 0);
  ASSERT_EQ(sh("ip netns exec " + b + " ethtool -K u0 gro on"), 0);

  ASSERT_EQ(sh("ip -n " + b + " link set u0 up"), 0);

  std::string err;
  UplinkMute how = UplinkMute::kTcDrop;
  {
    UniqueFd fd = netns_open(b, &err);
    ASSERT_TRUE(fd) << err;
    NetnsGuard g(fd.get());
    ASSERT_TRUE(g.ok()) << g.error();
    ASSERT_TRUE(prepare_uplink("u0", &err, &how)) << err;
    EXPECT_EQ(uplink_gro("u0"), 0);
    ASSERT_TRUE(prepare_uplink("u0", &err)) << err;  // idempotent
    EXPECT_FALSE(prepare_uplink("nosuchif0", &err));
  }
  std::string ifindex = sh_out("ip netns exec " + b + " cat /sys/class/net/u0/ifindex");
  while (!ifindex.empty() && ifindex.back() == '\n') ifindex.pop_back();
  const std::string nft_table = "vpcd_uplink_" + ifindex;
  std::printf("uplink muted by %s\n", how == UplinkMute::kTcDrop    ? "tc matchall drop"
                                      : how == UplinkMute::kNftDrop ? "nftables ingress drop"
                                                                    : "sysctls");
  if (how == UplinkMute::kTcDrop) {
    const std::string filters = sh_out("tc -n " + b + " filter show dev u0 ingress");
    EXPECT_NE(filters.find("matchall"), std::string::npos) << filters;
  } else if (how == UplinkMute::kNftDrop) {  // no cls_matchall/act_gact, as on the test VM: nftables
    const std::string rules = sh_out("ip netns exec " + b + " nft list table netdev " + nft_table);
    EXPECT_NE(rules.find("hook ingress device \"u0\""), std::string::npos) << rules;
    EXPECT_NE(rules.find("policy drop"), std::string::npos) << rules;
  } else {  // this kernel lacks cls_matchall/act_gact: the sysctl arrangement
    EXPECT_EQ(sh_out("ip netns exec " + b + " cat /proc/sys/net/ipv4/conf/u0/forwarding"), "0\n");
    EXPECT_EQ(sh_out("ip netns exec " + b + " cat /proc/sys/net/ipv4/conf/u0/arp_ignore"), "8\n");
  }

  // A packet socket on u0 still sees the peer's frames while the kernel ignores them: no ping answer, no ICMP port
  // unreachable for a VXLAN datagram, no ARP reply.
  ASSERT_EQ(sh("ip -n " + p + " neigh flush dev u1"), 0);
  const std::string cap = "/tmp/" + iotest::unique("vxlanup") + ".txt";
  ASSERT_EQ(sh("ip netns exec " + b + " sh -c 'timeout 4 tcpdump -l -n -i u0 -c 100 > " + cap + " 2>/dev/null &'"), 0);
  sh("sleep 1");
  EXPECT_NE(sh("ip netns exec " + p + " ping -c 2 -i 0.3 -W 1 192.0.2.1"), 0);
  const std::string u0_mac = sh_out("ip netns exec " + b + " cat /sys/class/net/u0/address");
  sh("ip -n " + p + " neigh replace 192.0.2.1 lladdr " + u0_mac.substr(0, 17) + " dev u1");
  sh("ip -n " + p + " route add 203.0.113.0/24 via 192.0.2.1");
  sh("ip netns exec " + p + " bash -c 'echo x > /dev/udp/192.0.2.1/4789; echo y > /dev/udp/203.0.113.9/4789'");
  sh("sleep 3.5");
  const std::string seen = sh_out("cat " + cap);
  sh("rm -f " + cap);
  EXPECT_NE(seen.find("ARP, Request who-has 192.0.2.1"), std::string::npos) << seen;
  EXPECT_EQ(seen.find("ARP, Reply"), std::string::npos) << seen;
  EXPECT_NE(seen.find(".4789"), std::string::npos) << seen;
  EXPECT_EQ(seen.find("unreachable"), std::string::npos) << seen;
  EXPECT_EQ(seen.find("echo reply"), std::string::npos) << seen;
  EXPECT_EQ(seen.find("ICMP"), seen.find("ICMP echo request")) << seen;  // no ICMP error of any kind

  {
    UniqueFd fd = netns_open(b, &err);
    NetnsGuard g(fd.get());
    release_uplink("u0");
  }
  EXPECT_EQ(sh_out("tc -n " + b + " filter show dev u0 ingress").find("matchall"), std::string::npos);
  EXPECT_EQ(sh_out("ip netns exec " + b + " nft list tables netdev").find("vpcd_uplink_"), std::string::npos);
}

}  // namespace
}  // namespace vpcd::dp
