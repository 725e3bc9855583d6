// Helpers for the datapath integration tests: run a command with a timeout (ip, ping, iperf3 inside the test's own
// namespaces), read interface counters, count fds/threads, and a guard that removes the namespaces and links a test
// created even when it fails.
//
// Threading: each call is self-contained; run_cmd may be called from several threads (posix_spawn, no shared state).
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

extern char** environ;

namespace vpcd::dp::test {

struct CmdResult {
  int exit_code = -1;  // -1: did not exit normally (killed, timed out, failed to start)
  bool timed_out = false;
  std::string output;  // stdout and stderr interleaved
};

// Runs argv (PATH lookup), kills it with SIGKILL after `timeout`.
inline CmdResult run_cmd(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  CmdResult res;
  int pfd[2];
  if (::pipe2(pfd, O_CLOEXEC) < 0) {
    res.output = "pipe failed";
    return res;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
  posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid;
  int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(pfd[1]);
  if (rc != 0) {
    ::close(pfd[0]);
    res.output = "spawn failed: " + argv[0];
    return res;
  }
  auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[4096];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      res.timed_out = true;
      ::kill(pid, SIGKILL);
      break;
    }
    pollfd p{pfd[0], POLLIN, 0};
    int n = ::poll(&p, 1, int(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) continue;
    ssize_t r = ::read(pfd[0], buf, sizeof buf);
    if (r <= 0) break;  // EOF: the child (and anything it spawned with our pipe) is done writing
    res.output.append(buf, size_t(r));
  }
  ::close(pfd[0]);
  int status = 0;
  if (res.timed_out) {
    ::waitpid(pid, &status, 0);
    return res;
  }
  // Output closed; give the child the rest of the budget to exit.
  for (;;) {
    pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      res.timed_out = true;
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return res;
    }
    ::usleep(2000);
  }
  if (WIFEXITED(status)) res.exit_code = WEXITSTATUS(status);
  return res;
}

inline CmdResult run_cmd(const std::vector<std::string>& argv) {
  return run_cmd(argv, std::chrono::seconds(20));
}

// `ip netns exec NS argv...`
inline CmdResult in_ns(const std::string& ns, std::vector<std::string> argv,
                       std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  std::vector<std::string> full{"ip", "netns", "exec", ns};
  full.insert(full.end(), argv.begin(), argv.end());
  return run_cmd(full, timeout);
}

inline bool netns_exists(const std::string& ns) { return std::filesystem::exists("/run/netns/" + ns); }
inline bool link_exists(const std::string& ifname) {
  return std::filesystem::exists("/sys/class/net/" + ifname);
}

// A statistics counter of an interface inside namespace `ns` (rx_packets, tx_packets, ...); UINT64_MAX on error.
inline uint64_t ns_link_stat(const std::string& ns, const std::string& ifname, const std::string& stat) {
  auto r = in_ns(ns, {"cat", "/sys/class/net/" + ifname + "/statistics/" + stat}, std::chrono::seconds(5));
  if (r.exit_code != 0) return UINT64_MAX;
  try {
    return std::stoull(r.output);
  } catch (...) {
    return UINT64_MAX;
  }
}

inline size_t count_dir(const char* dir) {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) ++n;
  return n;
}
inline size_t open_fd_count() { return count_dir("/proc/self/fd"); }
inline size_t thread_count() { return count_dir("/proc/self/task"); }
// Threads whose name starts (or does not start, `without`) with `prefix`, e.g. the OsReaper's "vpcd-reaper": its pool
// grows on demand and keeps its threads, so a leak check counts the other threads and bounds the pool.
inline size_t thread_count_named(const std::string& prefix, bool without = false) {
  size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream f(e.path() / "comm");
    std::string comm;
    std::getline(f, comm);
    if ((comm.rfind(prefix, 0) == 0) != without) ++n;
  }
  return n;
}

// Removes, at scope exit, the namespaces and host links a test named (only those: each name carries the test's pid).
class OsObjectGuard {
 public:
  OsObjectGuard() = default;
  OsObjectGuard(const OsObjectGuard&) = delete;
  OsObjectGuard& operator=(const OsObjectGuard&) = delete;
  ~OsObjectGuard() {
    for (const auto& l : links_)
      if (link_exists(l)) run_cmd({"ip", "link", "del", l}, std::chrono::seconds(10));
    for (const auto& n : namespaces_)
      if (netns_exists(n)) run_cmd({"ip", "netns", "del", n}, std::chrono::seconds(10));
  }
  void add_netns(std::string n) { namespaces_.push_back(std::move(n)); }
  void add_link(std::string l) { links_.push_back(std::move(l)); }

 private:
  std::vector<std::string> namespaces_;
  std::vector<std::string> links_;
};

}  // namespace vpcd::dp::test
