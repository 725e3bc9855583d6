// Persistent multiqueue tap devices: create or adopt, remove, and open a queue the way a hypervisor does.
// See tap_device.h.
#include "datapath/io/tap_device.h"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "datapath/io/netlink.h"
#include "datapath/io/unique_fd.h"

namespace vpcd::dp {

namespace {

constexpr int kTapFlags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE;
constexpr int kVnetHdrBytes = 12;  // virtio_net_hdr_mrg_rxbuf, what QEMU sets

std::string errno_text(const std::string& what, int e) { return what + ": " + std::strerror(e); }

bool name_ok(const std::string& n) {
  return !n.empty() && n.size() < IFNAMSIZ && n.find('/') == std::string::npos && n != "." && n != "..";
}

// Opens /dev/net/tun and attaches one queue of `name` (creating the device when absent).
UniqueFd attach_queue(const std::string& name, int* err_no) {
  UniqueFd fd(::open("/dev/net/tun", O_RDWR | O_CLOEXEC));
  if (!fd) {
    *err_no = errno;
    return fd;
  }
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, name.c_str(), name.size());
  ifr.ifr_flags = kTapFlags;
  if (::ioctl(fd.get(), TUNSETIFF, &ifr) != 0) {
    *err_no = errno;
    fd.reset();
  }
  return fd;
}

// tun_flags from sysfs (hex), or -1.
long tun_flags(const std::string& name) {
  std::ifstream f("/sys/class/net/" + name + "/tun_flags");
  std::string s;
  if (!(f >> s)) return -1;
  try {
    return std::stol(s, nullptr, 16);
  } catch (...) {
    return -1;
  }
}

}  // namespace

bool tap_ensure(const TapBackend& tap, const std::string& alias, std::string* err) {
  if (!name_ok(tap.ifname)) {
    *err = "invalid tap name '" + tap.ifname + "'";
    return false;
  }
  auto nl = Netlink::open(err);
  if (!nl) return false;
  std::string e;
  auto existing = nl->find_link(tap.ifname, &e);
  if (!e.empty()) {
    *err = e;
    return false;
  }
  if (existing) {
    const long flags = tun_flags(tap.ifname);
    if (existing->kind != "tun" || flags < 0) {
      *err = "interface " + tap.ifname + " exists and is not a tap device";
      return false;
    }
    if ((flags & kTapFlags) != kTapFlags) {
      char buf[24];
      std::snprintf(buf, sizeof buf, "0x%lx", flags);
      *err = "tap " + tap.ifname + " exists with other flags (" + buf + "; need tap, no_pi, vnet_hdr, multi_queue)";
      return false;
    }
  }
  int err_no = 0;
  UniqueFd fd = attach_queue(tap.ifname, &err_no);
  if (!fd) {
    *err = errno_text("tap " + tap.ifname + ": TUNSETIFF", err_no);
    return false;
  }
  if (::ioctl(fd.get(), TUNSETPERSIST, 1) != 0) {
    *err = errno_text("tap " + tap.ifname + ": TUNSETPERSIST", errno);
    return false;
  }
  if (tap.owner && ::ioctl(fd.get(), TUNSETOWNER, static_cast<unsigned long>(*tap.owner)) != 0) {
    *err = errno_text("tap " + tap.ifname + ": TUNSETOWNER", errno);
    return false;
  }
  if (tap.group && ::ioctl(fd.get(), TUNSETGROUP, static_cast<unsigned long>(*tap.group)) != 0) {
    *err = errno_text("tap " + tap.ifname + ": TUNSETGROUP", errno);
    return false;
  }
  fd.reset();  // the device persists; the hypervisor attaches its own queues
  if (!nl->set_alias(tap.ifname, alias, err) || !nl->disable_ipv6(tap.ifname, err) ||
      !nl->set_up(tap.ifname, true, err)) {
    return false;
  }
  return true;
}

bool tap_remove(const std::string& ifname, std::string* err) {
  std::string local;
  if (!err) err = &local;
  if (!name_ok(ifname)) {
    *err = "invalid tap name '" + ifname + "'";
    return false;
  }
  auto nl = Netlink::open(err);
  if (!nl) return false;
  auto link = nl->find_link(ifname, err);
  if (!link) return err->empty();  // gone already
  if (link->kind != "tun") {
    *err = "interface " + ifname + " is not a tap device";
    return false;
  }
  if (nl->delete_link(ifname, err)) return true;
  // Fallback for kernels without RTM_DELLINK for tun: drop persistence; the device goes with the last fd.
  int err_no = 0;
  UniqueFd fd = attach_queue(ifname, &err_no);
  if (!fd || ::ioctl(fd.get(), TUNSETPERSIST, 0) != 0) {
    *err = errno_text("tap " + ifname + ": remove", fd ? errno : err_no);
    return false;
  }
  err->clear();
  return true;
}

int tap_open_queue(const std::string& ifname) {
  if (!name_ok(ifname)) {
    errno = EINVAL;
    return -1;
  }
  int err_no = 0;
  UniqueFd fd = attach_queue(ifname, &err_no);
  if (!fd) {
    errno = err_no;
    return -1;
  }
  int sz = kVnetHdrBytes;
  if (::ioctl(fd.get(), TUNSETVNETHDRSZ, &sz) != 0) return -1;
  return fd.release();
}

}  // namespace vpcd::dp
