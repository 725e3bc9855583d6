// Persistent multiqueue tap devices: create or adopt, remove, and open a queue the way a hypervisor does.
// See tap_device.h.
#include "datapath/io/tap_device.h"

#include <fcntl.h>
#include <net/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "datapath/io/netlink.h"
#include "datapath/io/unique_fd.h"

namespace vpcd::dp {

namespace {

// IFF_MULTI_QUEUE only when the NIC has more than one queue: QEMU opens a `queues=1` tap without it, and the kernel
// refuses (EINVAL) a TUNSETIFF whose multiqueue setting differs from the device's.
constexpr int kTapBaseFlags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
constexpr int tap_flags(bool multi_queue) { return kTapBaseFlags | (multi_queue ? IFF_MULTI_QUEUE : 0); }
constexpr int kVnetHdrBytes = 12;  // virtio_net_hdr_mrg_rxbuf, what QEMU sets

std::string errno_text(const std::string& what, int e) { return what + ": " + std::strerror(e); }

bool name_ok(const std::string& n) {
  return !n.empty() && n.size() < IFNAMSIZ && n.find('/') == std::string::npos && n != "." && n != "..";
}

// Opens /dev/net/tun and attaches one queue of `name` (creating the device when absent).
UniqueFd attach_queue(const std::string& name, bool multi_queue, int* err_no) {
  UniqueFd fd(::open("/dev/net/tun", O_RDWR | O_CLOEXEC));
  if (!fd) {
    *err_no = errno;
    return fd;
  }
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, name.c_str(), name.size());
  ifr.ifr_flags = short(tap_flags(multi_queue));
  if (::ioctl(fd.get(), TUNSETIFF, &ifr) != 0) {
    *err_no = errno;
    fd.reset();
  }
  return fd;
}

}  // namespace

namespace {

bool set_owner_group(int fd, const TapBackend& tap, std::string* err) {
  if (tap.owner && ::ioctl(fd, TUNSETOWNER, static_cast<unsigned long>(*tap.owner)) != 0) {
    *err = errno_text("tap " + tap.ifname + ": TUNSETOWNER", errno);
    return false;
  }
  if (tap.group && ::ioctl(fd, TUNSETGROUP, static_cast<unsigned long>(*tap.group)) != 0) {
    *err = errno_text("tap " + tap.ifname + ": TUNSETGROUP", errno);
    return false;
  }
  return true;
}

std::string describe_foreign(const LinkInfo& l) {
  std::string what = l.kind == "tun" ? "a tun/tap device" : l.kind.empty() ? "an interface" : "a " + l.kind + " interface";
  return what + (l.alias.empty() ? " with no alias" : " with alias '" + l.alias + "'");
}

// A new tap: IFF_TUN_EXCL (EBUSY if the name appeared meanwhile), alias while we hold the only fd, then persist.
bool create_tap(Netlink& nl, const TapBackend& tap, const std::string& alias, std::string* err) {
  const bool multi_queue = tap.queues > 1;
  UniqueFd fd(::open("/dev/net/tun", O_RDWR | O_CLOEXEC));
  if (!fd) {
    *err = errno_text("open /dev/net/tun", errno);
    return false;
  }
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, tap.ifname.c_str(), tap.ifname.size());
  ifr.ifr_flags = short(tap_flags(multi_queue) | IFF_TUN_EXCL);
  if (::ioctl(fd.get(), TUNSETIFF, &ifr) != 0) {
    *err = errno == EBUSY ? "interface " + tap.ifname + " appeared while vpcd created it; left alone"
                          : errno_text("tap " + tap.ifname + ": TUNSETIFF", errno);
    return false;
  }
  // Until TUNSETPERSIST the device lives only as long as fd: any failure below leaves nothing behind.
  if (!nl.set_alias(tap.ifname, alias, err) || !set_owner_group(fd.get(), tap, err)) return false;
  if (::ioctl(fd.get(), TUNSETPERSIST, 1) != 0) {
    *err = errno_text("tap " + tap.ifname + ": TUNSETPERSIST", errno);
    return false;
  }
  return true;
}

// Our tap from an earlier run (a restart): attach a queue to check its flags and apply owner/group. A single-queue tap
// its hypervisor holds refuses a second queue (EBUSY): it is ours and in use, so it is adopted as it is.
bool adopt_tap(const TapBackend& tap, std::string* err) {
  const bool multi_queue = tap.queues > 1;
  const int want = tap_flags(multi_queue);
  int err_no = 0;
  UniqueFd fd = attach_queue(tap.ifname, multi_queue, &err_no);
  if (!fd && err_no == EBUSY && !multi_queue) return true;
  if (!fd) {
    *err = err_no == EINVAL ? "tap " + tap.ifname + " exists with other flags (need tap" +
                                  (multi_queue ? ", multi_queue)" : ", single queue)")
                            : errno_text("tap " + tap.ifname + ": TUNSETIFF", err_no);
    return false;
  }
  ifreq ifr{};
  if (::ioctl(fd.get(), TUNGETIFF, &ifr) != 0) {
    *err = errno_text("tap " + tap.ifname + ": TUNGETIFF", errno);
    return false;
  }
  if ((ifr.ifr_flags & want) != want) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "0x%x", unsigned(uint16_t(ifr.ifr_flags)));
    *err = "tap " + tap.ifname + " is attached with other flags (" + buf + "; need tap, no_pi, vnet_hdr" +
           (multi_queue ? ", multi_queue)" : ")");
    return false;
  }
  return set_owner_group(fd.get(), tap, err);
}

}  // namespace

bool tap_ensure(const TapBackend& tap, const std::string& alias, std::string* err) {
  if (!name_ok(tap.ifname)) {
    *err = "invalid tap name '" + tap.ifname + "'";
    return false;
  }
  if (alias.empty()) {
    *err = "tap " + tap.ifname + ": no ownership marker (alias)";
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
    if (existing->kind != "tun") {
      *err = "interface " + tap.ifname + " exists and is not a tap device (" + describe_foreign(*existing) +
             "); not vpcd's, left alone";
      return false;
    }
    if (existing->alias != alias) {
      *err = "interface " + tap.ifname + " is held by someone else (" + describe_foreign(*existing) +
             "); not vpcd's, left alone";
      return false;
    }
    if (!adopt_tap(tap, err)) return false;
  } else if (!create_tap(*nl, tap, alias, err)) {
    return false;
  }
  return nl->disable_ipv6(tap.ifname, err) && nl->set_up(tap.ifname, true, err);
}

bool tap_remove(const std::string& ifname, const std::string& alias, std::string* err) {
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
    *err = "interface " + ifname + " is not a tap device; left alone";
    return false;
  }
  if (alias.empty() || link->alias != alias) {
    *err = "tap " + ifname + " is not vpcd's (" + describe_foreign(*link) + "); left alone";
    return false;
  }
  if (nl->delete_link(ifname, err)) return true;
  // Fallback for kernels without RTM_DELLINK for tun: drop persistence; the device goes with the last fd.
  int err_no = 0;
  UniqueFd fd = attach_queue(ifname, true, &err_no);
  if (!fd && err_no == EINVAL) fd = attach_queue(ifname, false, &err_no);
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
  // TUNSETIFF would create a new (non-persistent) tap under a missing name; a hypervisor attaching to vpcd's tap
  // expects the device to be there.
  if (::if_nametoindex(ifname.c_str()) == 0) {
    errno = ENODEV;
    return -1;
  }
  // Like QEMU: the queue's multiqueue flag must match the device's; try the device's multiqueue setting first.
  int err_no = 0;
  UniqueFd fd = attach_queue(ifname, true, &err_no);
  if (!fd && err_no == EINVAL) fd = attach_queue(ifname, false, &err_no);
  if (!fd) {
    errno = err_no;
    return -1;
  }
  int sz = kVnetHdrBytes;
  if (::ioctl(fd.get(), TUNSETVNETHDRSZ, &sz) != 0) return -1;
  return fd.release();
}

}  // namespace vpcd::dp
