// GRO and threaded NAPI on a guest's veth end. See guest_napi.h.
#include "datapath/io/guest_napi.h"

#include <fcntl.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "datapath/io/unique_fd.h"

namespace vpcd::dp {

namespace {

std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }

bool ethtool(int sock, const std::string& ifname, void* cmd) {
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, ifname.c_str(), ifname.size());
  ifr.ifr_data = static_cast<char*>(cmd);
  return ::ioctl(sock, SIOCETHTOOL, &ifr) == 0;
}

// Turns the named features on (by their ethtool string names; the bit numbers are the kernel's business).
bool enable_features(const std::string& ifname, const std::vector<std::string>& names, std::string* err) {
  UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock) {
    *err = errno_text("socket");
    return false;
  }
  // ethtool_sset_info is followed by one u32 per set asked for (the string count).
  alignas(8) uint8_t ssbuf[sizeof(ethtool_sset_info) + sizeof(uint32_t)] = {};
  auto* ss = reinterpret_cast<ethtool_sset_info*>(ssbuf);
  ss->cmd = ETHTOOL_GSSET_INFO;
  ss->sset_mask = 1ull << ETH_SS_FEATURES;
  if (!ethtool(sock.get(), ifname, ss) || !(ss->sset_mask & (1ull << ETH_SS_FEATURES))) {
    *err = errno_text("ETHTOOL_GSSET_INFO " + ifname);
    return false;
  }
  uint32_t n = 0;
  std::memcpy(&n, ssbuf + sizeof(ethtool_sset_info), sizeof n);
  if (n == 0 || n > 4096) {
    *err = "ETHTOOL_GSSET_INFO " + ifname + ": unexpected feature count";
    return false;
  }
  std::vector<uint8_t> sbuf(sizeof(ethtool_gstrings) + size_t(n) * ETH_GSTRING_LEN);
  auto* gs = reinterpret_cast<ethtool_gstrings*>(sbuf.data());
  gs->cmd = ETHTOOL_GSTRINGS;
  gs->string_set = ETH_SS_FEATURES;
  gs->len = n;
  if (!ethtool(sock.get(), ifname, gs)) {
    *err = errno_text("ETHTOOL_GSTRINGS " + ifname);
    return false;
  }
  const uint32_t blocks = (n + 31) / 32;
  std::vector<uint8_t> fbuf(sizeof(ethtool_sfeatures) + blocks * sizeof(ethtool_set_features_block));
  auto* sf = reinterpret_cast<ethtool_sfeatures*>(fbuf.data());
  sf->cmd = ETHTOOL_SFEATURES;
  sf->size = blocks;
  for (const auto& want : names) {
    bool found = false;
    for (uint32_t i = 0; i < n && !found; ++i) {
      const char* s = reinterpret_cast<const char*>(gs->data) + size_t(i) * ETH_GSTRING_LEN;
      if (::strncmp(s, want.c_str(), ETH_GSTRING_LEN) != 0) continue;
      sf->features[i / 32].valid |= 1u << (i % 32);
      sf->features[i / 32].requested |= 1u << (i % 32);
      found = true;
    }
    if (!found) {
      *err = ifname + ": the kernel has no feature " + want;
      return false;
    }
  }
  // Returns a positive ETHTOOL_F_* mask when some request was changed or refused; the features are read back below.
  if (!ethtool(sock.get(), ifname, sf)) {
    *err = errno_text("ETHTOOL_SFEATURES " + ifname);
    return false;
  }
  return true;
}

bool write_file(const std::string& path, const char* text, std::string* err) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  const size_t len = std::strlen(text);
  if (!fd || ::write(fd.get(), text, len) != ssize_t(len)) {
    *err = errno_text(path);
    return false;
  }
  return true;
}

}  // namespace

bool veth_threaded_napi(int netns_fd, const std::string& ifname, std::string* err) {
  if (ifname.empty() || ifname.size() >= IFNAMSIZ || ifname.find('/') != std::string::npos || ifname == "." ||
      ifname == "..") {
    *err = "invalid interface name '" + ifname + "'";
    return false;
  }
  bool ok = false;
  std::string e;
  // A thread of its own: setns and unshare(CLONE_NEWNS) change only the calling thread, which then ends.
  std::thread t([&] {
    if (::unshare(CLONE_NEWNS) != 0) {
      e = errno_text("unshare(CLONE_NEWNS)");
      return;
    }
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
      e = errno_text("mount --make-rprivate /");
      return;
    }
    if (::setns(netns_fd, CLONE_NEWNET) != 0) {
      e = errno_text("setns");
      return;
    }
    if (!enable_features(ifname, {"rx-gro", "rx-udp-gro-forwarding"}, &e)) return;
    if (::mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
      e = errno_text("mount sysfs");
      return;
    }
    ok = write_file("/sys/class/net/" + ifname + "/threaded", "1", &e);
  });
  t.join();
  if (!ok) *err = e;
  return ok;
}

}  // namespace vpcd::dp
