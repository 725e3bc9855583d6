// netns_nic_ensure / netns_nic_remove / links_with_alias_prefix, and the netns and netlink helpers under them. The
// test thread runs inside a private "host" namespace (NetnsGuard), so the host ends it creates never appear in the
// machine's own namespace; guest namespaces carry the pid in their names.
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include <gtest/gtest.h>

#include "datapath/io/netlink.h"
#include "datapath/io/netns.h"
#include "datapath/io/netns_nic.h"
#include "io_test_util.h"

namespace vpcd::dp {
namespace {

using namespace iotest;

class NetnsNic : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0u) << "integration tests need root";
    ASSERT_TRUE(host_.ok());
    std::string err;
    host_fd_ = netns_open(host_.name(), &err);
    ASSERT_TRUE(host_fd_.valid()) << err;
    guard_ = std::make_unique<NetnsGuard>(host_fd_.get());
    ASSERT_TRUE(guard_->ok()) << guard_->error();
    p_.host_ifname = unique("vioc");
    p_.netns = guest_.name();
    p_.ifname = "eth0";
    p_.mac = *MacAddr::parse("02:10:20:30:40:50");
    p_.addr = Ipv4Prefix{*Ipv4Addr::parse("10.77.2.5"), 24};
    p_.gateway = Ipv4Addr::parse("10.77.2.1");
    p_.mtu = 1400;
    p_.alias = alias_prefix_ + "nic-c";
    p_.run_dir = run_dir_;
  }
  void TearDown() override {
    if (guard_) netns_nic_remove(p_);
    guard_.reset();  // back to the original namespace before the namespaces go
    sh("rm -rf " + run_dir_);
  }

  std::string ns_cmd(const std::string& args) { return sh_out("ip -n " + p_.netns + " " + args); }
  std::string read_file(const std::string& path) {
    std::ifstream f(path);
    std::string s;
    f >> s;
    return s;
  }

  ScopedNetns host_{unique("vpcd-io-host-")};
  NetnsCleanup guest_{unique("vpcd-io-nic-")};  // created by the code under test
  UniqueFd host_fd_;
  std::unique_ptr<NetnsGuard> guard_;
  std::string alias_prefix_ = "vpcd:iotest" + std::to_string(::getpid()) + ":";
  std::string run_dir_ = "/tmp/vpcd-io-test-" + std::to_string(::getpid());
  NetnsNicParams p_;
};

TEST_F(NetnsNic, CreatesConfiguresAdoptsAndRemoves) {
  std::string err;
  ASSERT_FALSE(netns_exists(p_.netns));
  ASSERT_TRUE(netns_nic_ensure(p_, &err)) << err;
  EXPECT_TRUE(netns_exists(p_.netns));
  EXPECT_EQ(::access((run_dir_ + "/netns/" + p_.netns).c_str(), F_OK), 0) << "marker";
  // iproute2 sees the namespace.
  EXPECT_NE(sh_out("ip netns list").find(p_.netns), std::string::npos);

  auto host = link_by_name(p_.host_ifname, &err);
  ASSERT_TRUE(host) << err;
  EXPECT_EQ(host->kind, "veth");
  EXPECT_EQ(host->alias, p_.alias);
  EXPECT_EQ(host->mtu, 1400u);
  EXPECT_TRUE(host->up);
  EXPECT_EQ(read_file("/proc/sys/net/ipv6/conf/" + p_.host_ifname + "/disable_ipv6"), "1");

  std::string link = ns_cmd("link show dev eth0");
  EXPECT_NE(link.find("02:10:20:30:40:50"), std::string::npos) << link;
  EXPECT_NE(link.find("mtu 1400"), std::string::npos) << link;
  // Created down: the guest cannot send before the caller's datapath polls the host end.
  EXPECT_EQ(link.find(",UP"), std::string::npos) << link;
  EXPECT_NE(ns_cmd("-4 addr show dev eth0").find("inet 10.77.2.5/24"), std::string::npos);
  EXPECT_EQ(ns_cmd("route show default").find("via"), std::string::npos);
  EXPECT_NE(ns_cmd("link show dev lo").find("UP"), std::string::npos);
  ASSERT_TRUE(netns_nic_set_up(p_, &err)) << err;
  ASSERT_TRUE(netns_nic_set_up(p_, &err)) << err;  // idempotent
  link = ns_cmd("link show dev eth0");
  EXPECT_NE(link.find(",UP"), std::string::npos) << link;
  EXPECT_NE(ns_cmd("route show default").find("via 10.77.2.1"), std::string::npos);
  EXPECT_EQ(sh_out("ip netns exec " + p_.netns + " cat /proc/sys/net/ipv6/conf/eth0/accept_ra"), "0\n");

  // Drift inside the namespace; a second call adopts the pair (same host ifindex) and repairs the far end.
  ASSERT_EQ(sh("ip -n " + p_.netns + " addr add 10.77.9.9/24 dev eth0"), 0);
  ASSERT_EQ(sh("ip -n " + p_.netns + " link set eth0 mtu 1300"), 0);
  ASSERT_TRUE(netns_nic_ensure(p_, &err)) << err;
  auto again = link_by_name(p_.host_ifname, &err);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->ifindex, host->ifindex);
  EXPECT_NE(ns_cmd("link show dev eth0").find("mtu 1400"), std::string::npos);
  std::string addrs = ns_cmd("-4 addr show dev eth0");
  EXPECT_EQ(addrs.find("10.77.9.9"), std::string::npos) << addrs;
  EXPECT_NE(addrs.find("10.77.2.5/24"), std::string::npos) << addrs;
  // Adopting a running guest's far end keeps it up (and its route).
  EXPECT_NE(ns_cmd("link show dev eth0").find(",UP"), std::string::npos);
  EXPECT_NE(ns_cmd("route show default").find("via 10.77.2.1"), std::string::npos);

  auto found = links_with_alias_prefix(alias_prefix_);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0], p_.host_ifname);

  netns_nic_remove(p_);
  EXPECT_FALSE(link_by_name(p_.host_ifname, &err)) << "host end still there";
  EXPECT_TRUE(err.empty()) << err;
  EXPECT_FALSE(netns_exists(p_.netns)) << "we created the namespace, so it goes";
  EXPECT_NE(::access((run_dir_ + "/netns/" + p_.netns).c_str(), F_OK), 0) << "marker left";
  EXPECT_TRUE(links_with_alias_prefix(alias_prefix_).empty());
}

// Both ends are created with one TX and one RX queue (asked for in RTM_NEWLINK: the kernel's default of one per
// possible CPU, cut to one afterwards, costs an RCU grace period per end).
TEST_F(NetnsNic, VethEndsAreCreatedWithOneQueueEach) {
  std::string err;
  ASSERT_TRUE(netns_nic_ensure(p_, &err)) << err;
  const std::string near = sh_out("ip -d link show dev " + p_.host_ifname);  // the test thread's (host) namespace
  const std::string far = ns_cmd("-d link show dev eth0");
  for (const auto* out : {&near, &far}) {
    EXPECT_NE(out->find("numtxqueues 1 "), std::string::npos) << *out;
    EXPECT_NE(out->find("numrxqueues 1 "), std::string::npos) << *out;
  }
}

// A pair a crash left without its alias (set right after creation) in a namespace vpcd created is adopted and gets
// the alias; an adopted pair that has it is not given it again.
TEST_F(NetnsNic, AdoptsAPairACrashLeftWithoutItsAlias) {
  std::string err;
  ASSERT_TRUE(netns_nic_ensure(p_, &err)) << err;
  const int ifindex = link_by_name(p_.host_ifname, &err)->ifindex;
  ASSERT_EQ(sh("ip link set " + p_.host_ifname + " alias ''"), 0);
  ASSERT_EQ(link_by_name(p_.host_ifname, &err)->alias, "");
  ASSERT_TRUE(netns_nic_ensure(p_, &err)) << err;
  auto host = link_by_name(p_.host_ifname, &err);
  ASSERT_TRUE(host) << err;
  EXPECT_EQ(host->ifindex, ifindex);  // adopted, not recreated
  EXPECT_EQ(host->alias, p_.alias);
  ASSERT_TRUE(netns_nic_ensure(p_, &err)) << err;
  EXPECT_EQ(link_by_name(p_.host_ifname, &err)->alias, p_.alias);
}

TEST_F(NetnsNic, KeepsANamespaceItDidNotCreate) {
  ScopedNetns theirs(p_.netns);  // exists before: not ours
  ASSERT_TRUE(theirs.ok());
  std::string err;
  EXPECT_FALSE(netns_nic_ensure(p_, &err)) << "a foreign namespace needs the config's permission";
  EXPECT_NE(err.find("did not create"), std::string::npos) << err;
  EXPECT_EQ(ns_cmd("link show dev eth0"), "");
  p_.foreign_netns_allowed = {"nope", "vpcd-io-nic-*"};
  ASSERT_TRUE(netns_nic_ensure(p_, &err)) << err;
  EXPECT_NE(::access((run_dir_ + "/netns/" + p_.netns).c_str(), F_OK), 0) << "no marker for a foreign namespace";
  EXPECT_NE(ns_cmd("-4 addr show dev eth0").find("10.77.2.5/24"), std::string::npos);
  netns_nic_remove(p_);
  EXPECT_FALSE(link_by_name(p_.host_ifname, &err));
  EXPECT_TRUE(netns_exists(p_.netns));
  EXPECT_EQ(ns_cmd("link show dev eth0"), "");
}

TEST_F(NetnsNic, KeepsItsNamespaceWhileOtherInterfacesRemain) {
  std::string err;
  ASSERT_TRUE(netns_nic_ensure(p_, &err)) << err;
  ASSERT_EQ(sh("ip -n " + p_.netns + " link add other0 type veth peer name other1"), 0);
  netns_nic_remove(p_);
  EXPECT_FALSE(link_by_name(p_.host_ifname, &err));
  EXPECT_TRUE(netns_exists(p_.netns));
  ASSERT_EQ(sh("ip -n " + p_.netns + " link del other0"), 0);
  netns_nic_remove(p_);  // now only lo is left
  EXPECT_FALSE(netns_exists(p_.netns));
}

TEST_F(NetnsNic, RefusesANameTakenByAnotherKindOfInterface) {
  ASSERT_EQ(sh("ip link add " + p_.host_ifname + " type bridge"), 0);  // inside the private host namespace
  std::string err;
  EXPECT_FALSE(netns_nic_ensure(p_, &err));
  EXPECT_NE(err.find("not a veth"), std::string::npos) << err;
  netns_nic_remove(p_);  // must not delete the bridge
  EXPECT_TRUE(link_by_name(p_.host_ifname, &err));
  sh("ip link del " + p_.host_ifname);
}

TEST_F(NetnsNic, RemoveLeavesAVethWithAForeignAlias) {
  std::string err;
  ASSERT_TRUE(netns_nic_ensure(p_, &err)) << err;
  ASSERT_EQ(sh("ip link set " + p_.host_ifname + " alias someone-else"), 0);
  netns_nic_remove(p_);
  EXPECT_TRUE(link_by_name(p_.host_ifname, &err)) << "removed a veth that is not ours";
  EXPECT_TRUE(netns_exists(p_.netns)) << "its peer is still in the namespace";
  ASSERT_EQ(sh("ip link del " + p_.host_ifname), 0);
}

TEST_F(NetnsNic, LeavesAVethOfTheSameNameWithoutOurAliasAlone) {
  // Someone else's veth under the host end's name (no alias, or another instance's): refused, never deleted, neither
  // by the failed ensure nor by a removal.
  for (const char* alias : {"", "vpcd:other:nic-c"}) {
    SCOPED_TRACE(alias);
    ASSERT_EQ(sh("ip link add " + p_.host_ifname + " type veth peer name " + p_.host_ifname + "p"), 0);
    if (*alias) {
      ASSERT_EQ(sh("ip link set " + p_.host_ifname + " alias " + alias), 0);
    }
    auto before = link_by_name(p_.host_ifname);
    ASSERT_TRUE(before);
    std::string err;
    EXPECT_FALSE(netns_nic_ensure(p_, &err));
    EXPECT_NE(err.find("not vpcd's"), std::string::npos) << err;
    netns_nic_remove(p_);
    auto after = link_by_name(p_.host_ifname);
    ASSERT_TRUE(after) << "deleted a veth that is not ours";
    EXPECT_EQ(after->ifindex, before->ifindex);
    EXPECT_EQ(after->alias, before->alias);
    ASSERT_EQ(sh("ip link del " + p_.host_ifname), 0);
  }
}

TEST_F(NetnsNic, RefusesTheCallersOwnNamespace) {
  // The test thread is inside host_ (NetnsGuard): that is "vpcd's own" namespace here.
  p_.netns = host_.name();
  p_.foreign_netns_allowed = {"*"};
  const std::string links_before = sh_out("ip -o link show");
  std::string err;
  EXPECT_FALSE(netns_nic_ensure(p_, &err));
  EXPECT_NE(err.find("vpcd's own network namespace"), std::string::npos) << err;
  netns_nic_remove(p_);
  EXPECT_EQ(sh_out("ip -o link show"), links_before);
  EXPECT_TRUE(netns_exists(host_.name()));
}

TEST_F(NetnsNic, RejectsBadParameters) {
  std::string err;
  NetnsNicParams bad = p_;
  bad.host_ifname = "this-name-is-far-too-long";
  EXPECT_FALSE(netns_nic_ensure(bad, &err));
  EXPECT_NE(err.find("invalid interface name"), std::string::npos) << err;
  bad = p_;
  bad.netns = "../etc";
  EXPECT_FALSE(netns_nic_ensure(bad, &err));
  EXPECT_NE(err.find("invalid namespace name"), std::string::npos) << err;
  EXPECT_FALSE(netns_exists(p_.netns));
}

TEST(Netns, CreateDeleteAndGuard) {
  ASSERT_EQ(::geteuid(), 0u) << "integration tests need root";
  const std::string name = unique("vpcd-io-ns-");
  NetnsCleanup cleanup(name);
  std::string err;
  ASSERT_TRUE(netns_create(name, &err)) << err;
  EXPECT_TRUE(netns_exists(name));
  EXPECT_FALSE(netns_create(name, &err));
  EXPECT_NE(err.find("already exists"), std::string::npos) << err;
  // /run/netns is a shared mount point, as `ip netns add` leaves it.
  EXPECT_NE(sh_out("findmnt -n -o PROPAGATION /run/netns").find("shared"), std::string::npos);
  EXPECT_EQ(sh("ip -n " + name + " link show lo"), 0);

  UniqueFd fd = netns_open(name, &err);
  ASSERT_TRUE(fd.valid()) << err;
  auto before = sh_out("readlink /proc/thread-self/ns/net");
  {
    NetnsGuard g(fd.get());
    ASSERT_TRUE(g.ok()) << g.error();
    std::vector<LinkInfo> links;
    auto nl = Netlink::open(&err);
    ASSERT_TRUE(nl) << err;
    ASSERT_TRUE(nl->list_links(&links, &err)) << err;
    ASSERT_EQ(links.size(), 1u);  // a fresh namespace has only lo
    EXPECT_EQ(links[0].name, "lo");
  }
  std::vector<LinkInfo> host_links;
  auto nl = Netlink::open(&err);
  ASSERT_TRUE(nl->list_links(&host_links, &err));
  EXPECT_GT(host_links.size(), 0u);
  // A netlink socket opened for the namespace acts there from this (unswitched) thread.
  auto in_ns = Netlink::open(&err, fd.get());
  ASSERT_TRUE(in_ns) << err;
  ASSERT_TRUE(in_ns->create_veth("va", "vb", &err)) << err;
  ASSERT_TRUE(in_ns->set_mtu("va", 1234, &err)) << err;
  ASSERT_TRUE(in_ns->rename("vb", "vc", &err)) << err;
  EXPECT_NE(sh_out("ip -n " + name + " link show va").find("mtu 1234"), std::string::npos);
  EXPECT_EQ(sh("ip -n " + name + " link show vc"), 0);
  // Move one end into a second namespace.
  const std::string name2 = unique("vpcd-io-ns2-");
  ScopedNetns ns2(name2);
  ASSERT_TRUE(ns2.ok());
  UniqueFd fd2 = netns_open(name2, &err);
  ASSERT_TRUE(fd2.valid()) << err;
  ASSERT_TRUE(in_ns->move_to_netns("vc", fd2.get(), &err)) << err;
  EXPECT_EQ(sh("ip -n " + name2 + " link show vc"), 0);
  EXPECT_FALSE(in_ns->find_link("vc", &err));
  EXPECT_TRUE(err.empty()) << err;
  EXPECT_FALSE(in_ns->set_mtu("nonexistent0", 1400, &err));
  EXPECT_FALSE(err.empty());
  in_ns.reset();
  fd.reset();

  EXPECT_FALSE(netns_open("no-such-ns-" + std::to_string(::getpid()), &err).valid());
  EXPECT_FALSE(err.empty());
  ASSERT_TRUE(netns_delete(name, &err)) << err;
  EXPECT_FALSE(netns_exists(name));
}

}  // namespace
}  // namespace vpcd::dp
