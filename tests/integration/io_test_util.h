// Helpers for the io integration tests: unique names, shell commands for setup/inspection, RAII guards that remove
// the namespaces and interfaces a test created even when it fails, and /proc/self/fd counting.
//
// Threading: used from the gtest main thread (and helper threads a test starts itself).
#pragma once

#include <dirent.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "datapath/io/netns.h"

namespace vpcd::dp::iotest {

// "<prefix><pid>": unique per test process; interface names stay <= 15 bytes for short prefixes.
inline std::string unique(const std::string& prefix) { return prefix + std::to_string(::getpid()); }

// Runs a shell command; returns its exit status (or -1).
inline int sh(const std::string& cmd) {
  int rc = std::system((cmd + " >/dev/null 2>&1").c_str());
  return rc == -1 ? -1 : WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

// Runs a shell command and returns its stdout.
inline std::string sh_out(const std::string& cmd) {
  std::string out;
  if (FILE* f = ::popen((cmd + " 2>/dev/null").c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
    ::pclose(f);
  }
  return out;
}

// Deletes a named namespace at scope exit (whatever created it).
class NetnsCleanup {
 public:
  explicit NetnsCleanup(std::string name) : name_(std::move(name)) {}
  ~NetnsCleanup() {
    if (netns_exists(name_)) {
      std::string err;
      netns_delete(name_, &err);
    }
  }
  NetnsCleanup(const NetnsCleanup&) = delete;
  NetnsCleanup& operator=(const NetnsCleanup&) = delete;
  const std::string& name() const { return name_; }

 private:
  std::string name_;
};

// Creates a namespace now (through `ip netns add`, independent of the code under test) and deletes it at scope exit.
class ScopedNetns : public NetnsCleanup {
 public:
  explicit ScopedNetns(std::string name) : NetnsCleanup(std::move(name)) {
    ok_ = sh("ip netns add " + this->name()) == 0;
    if (ok_) {
      // No IPv6 chatter (router solicitations, MLD) in test namespaces: counts stay exact.
      sh("ip netns exec " + this->name() + " sysctl -w net.ipv6.conf.default.disable_ipv6=1");
      sh("ip netns exec " + this->name() + " sysctl -w net.ipv6.conf.all.disable_ipv6=1");
      sh("ip -n " + this->name() + " link set lo up");
    }
  }
  bool ok() const { return ok_; }

 private:
  bool ok_ = false;
};

// Deletes an interface in the current namespace (or in `netns`) at scope exit, if it still exists.
class LinkCleanup {
 public:
  explicit LinkCleanup(std::string ifname, std::string netns = "") : ifname_(std::move(ifname)), netns_(std::move(netns)) {}
  ~LinkCleanup() {
    std::string n = netns_.empty() ? "" : "-n " + netns_ + " ";
    if (sh("ip " + n + "link show dev " + ifname_) == 0) sh("ip " + n + "link del dev " + ifname_);
  }
  LinkCleanup(const LinkCleanup&) = delete;
  LinkCleanup& operator=(const LinkCleanup&) = delete;

 private:
  std::string ifname_, netns_;
};

inline int count_open_fds() {
  int n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] != '.') ++n;
    }
    ::closedir(d);
  }
  return n;
}

using Clock = std::chrono::steady_clock;

}  // namespace vpcd::dp::iotest
