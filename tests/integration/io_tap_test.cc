// tap_ensure / tap_open_queue / tap_remove, and an AfPacketPort on a tap's kernel side exchanging frames with a queue
// opened as a hypervisor would. The test thread runs inside a private namespace (NetnsGuard) so the taps it creates
// never appear in the machine's own namespace.
#include <fcntl.h>
#include <grp.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "datapath/io/af_packet_port.h"
#include "datapath/io/netlink.h"
#include "datapath/io/netns.h"
#include "datapath/io/tap_device.h"
#include "io_test_util.h"

namespace vpcd::dp {
namespace {

using namespace iotest;
using namespace std::chrono_literals;

constexpr uid_t kNobody = 65534;

class Tap : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0u) << "integration tests need root";
    ASSERT_TRUE(ns_.ok());
    std::string err;
    ns_fd_ = netns_open(ns_.name(), &err);
    ASSERT_TRUE(ns_fd_.valid()) << err;
    guard_ = std::make_unique<NetnsGuard>(ns_fd_.get());
    ASSERT_TRUE(guard_->ok()) << guard_->error();
  }
  void TearDown() override {
    if (guard_) tap_remove(tap_.ifname, alias_);
    guard_.reset();
  }

  // As an unprivileged hypervisor would: fork, drop to uid/gid nobody (which drops every capability), attach a queue.
  // /dev/net/tun is opened before the privileges go, as libvirt does for its unprivileged QEMU (it passes the fd): the
  // device node's mode (0666 on most hosts, 0600 on some Debian 12 hosts) is the host's business, not what this tests.
  // TUNSETIFF then runs as nobody, where the kernel checks the tap's owner/group. Returns 0 when the attach worked,
  // else the errno.
  int attach_as_nobody(const std::string& ifname) {
    pid_t pid = ::fork();
    if (pid == 0) {
      int fd = ::open("/dev/net/tun", O_RDWR);
      if (fd < 0) ::_exit(201);
      if (::setgroups(0, nullptr) != 0 || ::setgid(kNobody) != 0 || ::setuid(kNobody) != 0) ::_exit(200);
      ifreq ifr{};
      std::strncpy(ifr.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
      ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE;
      ::_exit(::ioctl(fd, TUNSETIFF, &ifr) == 0 ? 0 : errno);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  ScopedNetns ns_{unique("vpcd-io-tap-")};
  UniqueFd ns_fd_;
  std::unique_ptr<NetnsGuard> guard_;
  TapBackend tap_{unique("viot"), 2, kNobody, kNobody};
  std::string alias_ = "vpcd:iotest" + std::to_string(::getpid()) + ":tap";
};

TEST_F(Tap, CreatesPersistentTapWithOwnerAndAttachesQueues) {
  std::string err;
  const int fds_before = count_open_fds();
  ASSERT_TRUE(tap_ensure(tap_, alias_, &err)) << err;
  EXPECT_EQ(count_open_fds(), fds_before) << "tap_ensure must not keep an fd";

  // The device survives with no fd open anywhere.
  auto link = link_by_name(tap_.ifname, &err);
  ASSERT_TRUE(link) << err;
  EXPECT_EQ(link->kind, "tun");
  EXPECT_EQ(link->alias, alias_);
  EXPECT_TRUE(link->up);
  std::ifstream v6("/proc/sys/net/ipv6/conf/" + tap_.ifname + "/disable_ipv6");
  std::string v;
  v6 >> v;
  EXPECT_EQ(v, "1");

  // Owner applied: uid nobody may attach (its capabilities are gone, so only the owner check lets it in) ...
  EXPECT_EQ(attach_as_nobody(tap_.ifname), 0);
  // ... and on a tap owned by someone else, it may not (the kernel lets anyone attach to a tap with no owner/group).
  TapBackend unowned{unique("viou"), 2, uid_t(12345), std::nullopt};
  ASSERT_TRUE(tap_ensure(unowned, alias_, &err)) << err;
  EXPECT_EQ(attach_as_nobody(unowned.ifname), EPERM);
  EXPECT_TRUE(tap_remove(unowned.ifname, alias_, &err)) << err;

  // Two queues as a multiqueue hypervisor opens them.
  int q0 = tap_open_queue(tap_.ifname);
  int q1 = tap_open_queue(tap_.ifname);
  ASSERT_GE(q0, 0) << std::strerror(errno);
  ASSERT_GE(q1, 0) << std::strerror(errno);
  UniqueFd g0(q0), g1(q1);
  // Adopting while the hypervisor holds queues works and changes nothing.
  ASSERT_TRUE(tap_ensure(tap_, alias_, &err)) << err;
  EXPECT_EQ(link_by_name(tap_.ifname)->ifindex, link->ifindex);
  g0.reset();
  g1.reset();
  EXPECT_TRUE(link_by_name(tap_.ifname, &err)) << "persistent tap vanished with its last fd";

  EXPECT_TRUE(tap_remove(tap_.ifname, alias_, &err)) << err;
  EXPECT_FALSE(link_by_name(tap_.ifname, &err));
  EXPECT_TRUE(tap_remove(tap_.ifname, alias_, &err)) << "removing a missing tap is not an error: " << err;
  EXPECT_EQ(tap_open_queue(tap_.ifname + "x"), -1);
}

TEST_F(Tap, PortExchangesFramesWithAHypervisorQueue) {
  std::string err;
  ASSERT_TRUE(tap_ensure(tap_, alias_, &err)) << err;
  UniqueFd q(tap_open_queue(tap_.ifname));
  ASSERT_TRUE(q.valid()) << std::strerror(errno);
  ASSERT_EQ(::fcntl(q.get(), F_SETFL, O_NONBLOCK), 0);
  auto port = AfPacketPort::open(tap_.ifname, AfPacketOptions{}, &err);
  ASSERT_TRUE(port) << err;

  // Guest -> vpcd: a 12-byte virtio_net_hdr_mrg_rxbuf, then a frame with a local experimental ethertype.
  uint8_t frame[14 + 100];
  const uint8_t hdr[14] = {0x02, 0, 0, 0, 0, 0x0a, 0x02, 0, 0, 0, 0, 0x0b, 0x88, 0xb5};
  std::memcpy(frame, hdr, 14);
  for (int i = 14; i < int(sizeof frame); ++i) frame[i] = uint8_t(i);
  uint8_t wbuf[12 + sizeof frame] = {};
  std::memcpy(wbuf + 12, frame, sizeof frame);
  ASSERT_EQ(::write(q.get(), wbuf, sizeof wbuf), ssize_t(sizeof wbuf));
  Packet pkts[8];
  bool got = false;
  for (auto t0 = Clock::now(); !got && Clock::now() - t0 < 3s;) {
    pollfd pfd{port->rx_fd(0), POLLIN, 0};
    ::poll(&pfd, 1, 10);
    unsigned n = port->rx_burst(0, pkts, 8);
    for (unsigned k = 0; k < n; ++k) {
      if (pkts[k].len == sizeof frame && std::memcmp(pkts[k].data, frame, sizeof frame) == 0) {
        got = true;
        EXPECT_EQ(pkts[k].wire_len, sizeof frame);
        EXPECT_TRUE(pkts[k].flags & kHasVnet);
        EXPECT_EQ(pkts[k].vnet.gso_type, VIRTIO_NET_HDR_GSO_NONE);
      }
    }
    port->rx_release(0);
  }
  EXPECT_TRUE(got) << "frame written by the guest queue never reached the port";

  // vpcd -> guest: the queue reads the vnet header (12 bytes with TUNSETVNETHDRSZ 12) and the frame.
  uint8_t out[14 + 60];
  const uint8_t hdr2[14] = {0x02, 0, 0, 0, 0, 0x0b, 0x02, 0, 0, 0, 0, 0x0a, 0x88, 0xb5};
  std::memcpy(out, hdr2, 14);
  for (int i = 14; i < int(sizeof out); ++i) out[i] = uint8_t(0xff - i);
  Packet p;
  p.data = out;
  p.len = p.wire_len = sizeof out;
  ASSERT_TRUE(port->tx_enqueue(0, p));
  port->tx_flush(0);
  bool read_back = false;
  for (auto t0 = Clock::now(); !read_back && Clock::now() - t0 < 3s;) {
    pollfd pfd{q.get(), POLLIN, 0};
    if (::poll(&pfd, 1, 10) <= 0) continue;
    uint8_t rbuf[2048];
    ssize_t r;
    while ((r = ::read(q.get(), rbuf, sizeof rbuf)) > 0) {
      if (r == ssize_t(12 + sizeof out) && std::memcmp(rbuf + 12, out, sizeof out) == 0) read_back = true;
    }
  }
  EXPECT_TRUE(read_back) << "frame sent by the port never reached the guest queue";
  EXPECT_EQ(port->tx_errors(0), 0u);
}

TEST_F(Tap, RefusesANameTakenByAnotherKindOfInterface) {
  ASSERT_EQ(sh("ip link add " + tap_.ifname + " type veth peer name " + tap_.ifname + "p"), 0);
  std::string err;
  EXPECT_FALSE(tap_ensure(tap_, alias_, &err));
  EXPECT_NE(err.find("not a tap"), std::string::npos) << err;
  EXPECT_FALSE(tap_remove(tap_.ifname, alias_, &err));
  EXPECT_TRUE(link_by_name(tap_.ifname)) << "tap_remove deleted a veth";
  sh("ip link del " + tap_.ifname);
}

TEST_F(Tap, MultiqueueSettingMustMatchTheQueueCount) {
  TapBackend single = tap_;
  single.queues = 1;  // single queue, as QEMU queues=1 needs
  std::string err;
  ASSERT_TRUE(tap_ensure(single, alias_, &err)) << err;
  TapBackend mq = tap_;
  mq.queues = 2;
  EXPECT_FALSE(tap_ensure(mq, alias_, &err));
  EXPECT_NE(err.find("other flags"), std::string::npos) << err;
  EXPECT_TRUE(tap_ensure(single, alias_, &err)) << err;  // adopted
  int fd = tap_open_queue(tap_.ifname);
  EXPECT_GE(fd, 0) << std::strerror(errno);
  // Held by its (single-queue) hypervisor, vpcd's own tap is still adopted on a restart.
  EXPECT_TRUE(tap_ensure(single, alias_, &err)) << err;
  if (fd >= 0) ::close(fd);
}

// What `ip -d link show` says about a device, for "left exactly as it was" (ifindex, alias, flags, owner, group).
struct LinkSnapshot {
  int ifindex = 0;
  std::string alias;
  std::string details;  // `ip -d link show` without the counters-free volatile parts
  bool operator==(const LinkSnapshot&) const = default;
};
LinkSnapshot snapshot(const std::string& ifname) {
  LinkSnapshot s;
  if (auto l = link_by_name(ifname)) {
    s.ifindex = l->ifindex;
    s.alias = l->alias;
  }
  // The detailed tun line: "tun type tap pi off vnet_hdr on persist on user 12345 ..." (owner, group, flags).
  std::string out = sh_out("ip -d link show dev " + ifname);
  auto p = out.find("tun type");
  s.details = p == std::string::npos ? out : out.substr(p, out.find('\n', p) - p);
  return s;
}

// Foreign tun/tap devices under the name a NIC asks for: refused with a clear message, never attached to, changed or
// deleted, by tap_ensure or tap_remove with vpcd's marker.
TEST_F(Tap, LeavesForeignTunTapDevicesExactlyAsTheyWere) {
  struct Case {
    const char* what;
    std::string setup;  // shell command creating the device
    bool hold;          // a process of the test holds a queue open, as a hypervisor
  };
  const std::string name = tap_.ifname;
  const Case cases[] = {
      {"idle persistent tap of another owner", "ip tuntap add dev " + name + " mode tap user 12345 vnet_hdr", false},
      {"idle persistent multiqueue tap, no owner", "ip tuntap add dev " + name + " mode tap multi_queue vnet_hdr",
       false},
      {"TUN device", "ip tuntap add dev " + name + " mode tun", false},
      {"tap held open by a hypervisor", "", true},
      {"tap with another vpcd instance's alias",
       "ip tuntap add dev " + name + " mode tap vnet_hdr && ip link set " + name + " alias vpcd:other:nic", false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    UniqueFd held;
    if (c.hold) {
      // Non-persistent, single queue, like `qemu -netdev tap,ifname=...` run by root.
      held.reset(::open("/dev/net/tun", O_RDWR | O_CLOEXEC));
      ASSERT_TRUE(held.valid());
      ifreq ifr{};
      std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
      ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
      ASSERT_EQ(::ioctl(held.get(), TUNSETIFF, &ifr), 0) << std::strerror(errno);
    } else {
      ASSERT_EQ(sh(c.setup), 0) << c.setup;
    }
    const LinkSnapshot before = snapshot(name);
    ASSERT_NE(before.ifindex, 0);
    std::string err;
    for (uint16_t queues : {1, 2}) {
      TapBackend t = tap_;
      t.queues = queues;
      EXPECT_FALSE(tap_ensure(t, alias_, &err));
      EXPECT_NE(err.find("not vpcd's"), std::string::npos) << err;
      EXPECT_EQ(snapshot(name), before);
    }
    EXPECT_FALSE(tap_remove(name, alias_, &err)) << "removed a tap that is not ours";
    EXPECT_NE(err.find("not vpcd's"), std::string::npos) << err;
    EXPECT_EQ(snapshot(name), before);
    if (c.hold) {
      held.reset();
      EXPECT_FALSE(link_by_name(name));
    } else {
      ASSERT_EQ(sh("ip link del " + name), 0);
    }
  }
}

}  // namespace
}  // namespace vpcd::dp
