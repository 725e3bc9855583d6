// Ownership of OS objects through the Controller (issue 11): vpcd creates, adopts, changes and deletes only what
// carries its marker. Foreign tun/tap devices and foreign namespaces named by a NIC are the NIC's error (or, for an
// allowed foreign namespace, get only vpcd's interface and address) and are left exactly as they were through create,
// a reconcile pass and the NIC's delete; vpcd's own namespace is refused.
//
// Safety: the test thread (and so the Controller and its workers, which inherit the thread's namespace) runs inside a
// private namespace of the test's own (NetnsGuard): a failure can never touch the machine's own interfaces or routes.
// Every name carries "ossec" and the pid; everything is removed in TearDown, also when a test fails.
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include <gtest/gtest.h>

#include "datapath/controller.h"
#include "datapath/io/netlink.h"
#include "datapath/io/netns.h"
#include "io_test_util.h"

namespace vpcd::dp {
namespace {

using namespace iotest;

Ipv4Addr ip(const char* s) { return *Ipv4Addr::parse(s); }

// The Controller's clock in these tests: real time plus a shift the test advances (retry backoff without sleeping).
std::chrono::steady_clock::duration g_clock_shift{};
std::chrono::steady_clock::time_point test_now() { return std::chrono::steady_clock::now() + g_clock_shift; }

// ifindex, alias and the kernel's detailed description (tun type, owner, group, flags; veth/dummy kind).
struct LinkState {
  int ifindex = 0;
  std::string alias;
  std::string details;
  bool operator==(const LinkState&) const = default;
};
std::ostream& operator<<(std::ostream& o, const LinkState& s) {
  return o << "{ifindex " << s.ifindex << ", alias '" << s.alias << "', " << s.details << "}";
}
LinkState link_state(const std::string& ifname) {
  LinkState s;
  if (auto l = link_by_name(ifname)) {
    s.ifindex = l->ifindex;
    s.alias = l->alias;
  }
  std::string out = sh_out("ip -d link show dev " + ifname);
  auto p = out.find("tun type");
  s.details = p == std::string::npos ? "" : out.substr(p, out.find('\n', p) - p);
  return s;
}

class Ownership : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0u) << "integration tests need root";
    ASSERT_TRUE(host_.ok());
    std::string err;
    host_fd_ = netns_open(host_.name(), &err);
    ASSERT_TRUE(host_fd_.valid()) << err;
    guard_ = std::make_unique<NetnsGuard>(host_fd_.get());
    ASSERT_TRUE(guard_->ok()) << guard_->error();
  }
  void TearDown() override {
    if (ctl_) {
      ctl_->apply(DesiredState{});
      ctl_->wait_background();  // removals run on the reaper thread
      ctl_.reset();
    }
    guard_.reset();
    std::error_code ec;
    std::filesystem::remove_all(run_dir_, ec);
  }

  void start(std::vector<std::string> netns_allow = {}) {
    Options o;
    o.workers = 1;
    o.instance = "ossec" + std::to_string(::getpid());
    o.run_dir = run_dir_;
    o.guest_rings.rx_frames = 256;
    o.guest_rings.tx_frames = 64;
    o.netns_allow = std::move(netns_allow);
    o.retry_base = std::chrono::seconds(1);
    o.retry_cap = std::chrono::seconds(8);
    o.now = &test_now;
    g_clock_shift = {};
    ctl_ = std::make_unique<Controller>(o);
  }

  DesiredState with(std::vector<NicSpec> nics) {
    VpcSpec v;
    v.id = "vpc-o";
    v.vni = 4242;
    v.subnets.push_back(SubnetSpec{"sn-o", *Ipv4Prefix::parse("10.0.0.0/24"), ip("10.0.0.1")});
    DesiredState d;
    d.vpcs = {v};
    d.nics = std::move(nics);
    return d;
  }
  NicSpec nic(const std::string& id, Backend b) {
    NicSpec n;
    n.id = id;
    n.vpc_id = "vpc-o";
    n.subnet_id = "sn-o";
    n.mac = *MacAddr::parse("02:00:00:00:0b:02");
    n.ips = {ip("10.0.0.2")};
    n.backend = std::move(b);
    return n;
  }

  ScopedNetns host_{unique("ossec-host-")};
  UniqueFd host_fd_;
  std::unique_ptr<NetnsGuard> guard_;
  std::string run_dir_ = "/run/vpcd/ossec-own-" + std::to_string(::getpid());
  std::unique_ptr<Controller> ctl_;
};

TEST_F(Ownership, ForeignTapsSurviveANicNamingThemReconcileAndDelete) {
  start();
  const std::string name = unique("ossect");
  struct Case {
    const char* what;
    std::string setup;
    bool hold;
  } const cases[] = {
      {"tap held open by a process of the test (a hypervisor)", "", true},
      {"idle persistent tap of another owner", "ip tuntap add dev " + name + " mode tap user 12345 vnet_hdr", false},
      {"idle persistent multiqueue tap with no owner",
       "ip tuntap add dev " + name + " mode tap multi_queue vnet_hdr", false},
      {"TUN device", "ip tuntap add dev " + name + " mode tun user 12345", false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    UniqueFd held;
    if (c.hold) {
      held.reset(::open("/dev/net/tun", O_RDWR | O_CLOEXEC));
      ASSERT_TRUE(held.valid());
      ifreq ifr{};
      std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
      ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
      ASSERT_EQ(::ioctl(held.get(), TUNSETIFF, &ifr), 0) << std::strerror(errno);
    } else {
      ASSERT_EQ(sh(c.setup), 0) << c.setup;
    }
    const LinkState before = link_state(name);
    ASSERT_NE(before.ifindex, 0);
    for (uint16_t queues : {1, 2}) {
      TapBackend tb{name, queues, uid_t(0), std::nullopt};
      // Create, then a reconcile pass with the same desired state.
      for (int pass = 0; pass < 2; ++pass) {
        g_clock_shift += std::chrono::seconds(60);  // past any backoff: the pass really retries the NIC
        auto st = ctl_->apply(with({nic("nic-t", tb)}));
        EXPECT_EQ(st["nic-t"].status, NicStatus::kError) << "pass " << pass;
        EXPECT_NE(st["nic-t"].detail.find("not vpcd's"), std::string::npos) << st["nic-t"].detail;
        EXPECT_EQ(link_state(name), before) << "pass " << pass;
      }
      ctl_->apply(with({}));  // the NIC's delete
      ctl_->wait_background();  // removals run on the reaper thread
      EXPECT_EQ(link_state(name), before);
    }
    ctl_->remove_stale_os_objects();
    EXPECT_EQ(link_state(name), before);
    if (c.hold) {
      held.reset();
    } else {
      ASSERT_EQ(sh("ip link del " + name), 0);
    }
  }
}

TEST_F(Ownership, OwnTapIsCreatedExclusivelyAndRemoved) {
  start();
  const std::string name = unique("ossecm");
  auto st = ctl_->apply(with({nic("nic-m", TapBackend{name, 2, std::nullopt, std::nullopt})}));
  ASSERT_NE(st["nic-m"].status, NicStatus::kError) << st["nic-m"].detail;
  auto l = link_by_name(name);
  ASSERT_TRUE(l);
  EXPECT_EQ(l->alias, "vpcd:ossec" + std::to_string(::getpid()) + ":nic-m");
  // A reconcile pass adopts it (same device), the delete removes it.
  st = ctl_->apply(with({nic("nic-m", TapBackend{name, 2, std::nullopt, std::nullopt})}));
  EXPECT_NE(st["nic-m"].status, NicStatus::kError) << st["nic-m"].detail;
  EXPECT_EQ(link_by_name(name)->ifindex, l->ifindex);
  ctl_->apply(with({}));
  ctl_->wait_background();  // removals run on the reaper thread
  EXPECT_FALSE(link_by_name(name));
}

TEST_F(Ownership, ANicInErrorIsRetriedWithBackoffNotOnEveryPass) {
  start();
  const std::string name = unique("ossecb");
  ASSERT_EQ(sh("ip tuntap add dev " + name + " mode tun"), 0);  // someone else's: the NIC fails
  const DesiredState d = with({nic("nic-b", TapBackend{name, 1, std::nullopt, std::nullopt})});
  auto st = ctl_->apply(d);
  ASSERT_EQ(st["nic-b"].status, NicStatus::kError);
  EXPECT_NE(st["nic-b"].detail.find("attempt 1 failed; next retry in 1 s"), std::string::npos) << st["nic-b"].detail;
  // The cause goes away, but the next passes come before the backoff has passed: not retried.
  ASSERT_EQ(sh("ip link del " + name), 0);
  for (int pass = 0; pass < 3; ++pass) {
    st = ctl_->apply(d);
    EXPECT_EQ(st["nic-b"].status, NicStatus::kError) << "retried on pass " << pass;
    EXPECT_NE(st["nic-b"].detail.find("attempt 1 failed"), std::string::npos) << st["nic-b"].detail;
  }
  EXPECT_FALSE(link_by_name(name));
  g_clock_shift += std::chrono::milliseconds(1100);
  st = ctl_->apply(d);
  EXPECT_NE(st["nic-b"].status, NicStatus::kError) << st["nic-b"].detail;
  EXPECT_TRUE(link_by_name(name)) << "retried once due, and created its own tap";
  // Failures grow the wait (1, 2, 4, 8, 8 s); a changed spec is tried at once.
  ctl_->apply(with({}));
  ctl_->wait_background();  // removals run on the reaper thread
  ASSERT_EQ(sh("ip tuntap add dev " + name + " mode tun"), 0);
  const char* expect[] = {"attempt 1 failed; next retry in 1 s", "attempt 2 failed; next retry in 2 s",
                          "attempt 3 failed; next retry in 4 s", "attempt 4 failed; next retry in 8 s",
                          "attempt 5 failed; next retry in 8 s"};
  std::chrono::seconds waits[] = {std::chrono::seconds(1), std::chrono::seconds(2), std::chrono::seconds(4),
                                  std::chrono::seconds(8), std::chrono::seconds(8)};
  for (int i = 0; i < 5; ++i) {
    st = ctl_->apply(d);
    EXPECT_NE(st["nic-b"].detail.find(expect[i]), std::string::npos) << st["nic-b"].detail;
    g_clock_shift += waits[i];
  }
  DesiredState changed = with({nic("nic-b", TapBackend{name, 2, std::nullopt, std::nullopt})});
  st = ctl_->apply(changed);
  EXPECT_NE(st["nic-b"].detail.find("attempt 1 failed"), std::string::npos) << st["nic-b"].detail;
  ctl_->apply(with({}));
  ctl_->wait_background();  // removals run on the reaper thread
  ASSERT_EQ(sh("ip link del " + name), 0);
}

TEST_F(Ownership, VpcdsOwnNamespaceIsRefused) {
  start({"*"});  // even when every foreign namespace is allowed
  const std::string links_before = sh_out("ip -o link show");
  const std::string routes_before = sh_out("ip route show table all");
  for (int pass = 0; pass < 2; ++pass) {
    auto st = ctl_->apply(with({nic("nic-own", NetnsBackend{host_.name(), "ossec0"})}));
    EXPECT_EQ(st["nic-own"].status, NicStatus::kError);
    EXPECT_NE(st["nic-own"].detail.find("vpcd's own network namespace"), std::string::npos) << st["nic-own"].detail;
  }
  ctl_->apply(with({}));
  ctl_->wait_background();  // removals run on the reaper thread
  EXPECT_EQ(sh_out("ip -o link show"), links_before);
  EXPECT_EQ(sh_out("ip route show table all"), routes_before);
}

class ForeignNetns : public Ownership {
 protected:
  void SetUp() override {
    Ownership::SetUp();
    ASSERT_TRUE(guest_.ok());
    const std::string n = "ip -n " + guest_.name() + " ";
    // The container runtime's own interface and default route.
    ASSERT_EQ(sh(n + "link add ossecd0 type veth peer name ossecd1"), 0);
    ASSERT_EQ(sh(n + "addr add 192.168.77.2/24 dev ossecd0"), 0);
    ASSERT_EQ(sh(n + "link set ossecd1 up"), 0);
    ASSERT_EQ(sh(n + "link set ossecd0 up"), 0);
    ASSERT_EQ(sh(n + "route add default via 192.168.77.1"), 0);
    ASSERT_EQ(sh(n + "link set lo down"), 0);
    routes_before_ = routes();
    ASSERT_NE(routes_before_.find("default via 192.168.77.1"), std::string::npos) << routes_before_;
  }
  std::string routes() { return sh_out("ip -n " + guest_.name() + " route show table all"); }
  std::string lo() { return sh_out("ip -n " + guest_.name() + " -o link show dev lo"); }

  ScopedNetns guest_{unique("ossecf-")};
  std::string routes_before_;
};

TEST_F(ForeignNetns, RefusedUnlessTheConfigAllowsIt) {
  start({"cni-*"});
  const std::string lo_before = lo();
  auto st = ctl_->apply(with({nic("nic-f", NetnsBackend{guest_.name(), "ossec0"})}));
  EXPECT_EQ(st["nic-f"].status, NicStatus::kError);
  EXPECT_NE(st["nic-f"].detail.find("did not create"), std::string::npos) << st["nic-f"].detail;
  ctl_->apply(with({}));
  ctl_->wait_background();  // removals run on the reaper thread
  EXPECT_EQ(routes(), routes_before_);
  EXPECT_EQ(lo(), lo_before);
  EXPECT_TRUE(netns_exists(guest_.name()));
}

TEST_F(ForeignNetns, AllowedNamespaceKeepsItsRoutesThroughCreateAndDelete) {
  start({"ossecf-*"});
  const std::string lo_before = lo();
  for (int pass = 0; pass < 2; ++pass) {
    auto st = ctl_->apply(with({nic("nic-f", NetnsBackend{guest_.name(), "ossec0"})}));
    ASSERT_NE(st["nic-f"].status, NicStatus::kError) << st["nic-f"].detail;
    const std::string r = routes();
    EXPECT_NE(r.find("default via 192.168.77.1 dev ossecd0"), std::string::npos) << r;
    EXPECT_EQ(r.find("10.0.0.1"), std::string::npos) << "vpcd replaced the default route: " << r;
    EXPECT_NE(r.find("10.0.0.0/24 dev ossec0"), std::string::npos) << "the subnet's route: " << r;
    EXPECT_EQ(lo(), lo_before) << "lo is the namespace owner's";
    EXPECT_EQ(sh_out("ip netns exec " + guest_.name() + " cat /proc/sys/net/ipv6/conf/ossec0/accept_ra"), "0\n");
  }
  ctl_->apply(with({}));
  ctl_->wait_background();  // removals run on the reaper thread
  EXPECT_EQ(routes(), routes_before_);
  EXPECT_EQ(lo(), lo_before);
  EXPECT_EQ(sh_out("ip -n " + guest_.name() + " -o link show dev ossec0"), "");
  EXPECT_TRUE(netns_exists(guest_.name())) << "not vpcd's namespace: it stays";
}

}  // namespace
}  // namespace vpcd::dp
