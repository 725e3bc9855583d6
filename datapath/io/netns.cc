// Named network namespaces (iproute2-compatible) and the per-thread NetnsGuard. See netns.h.
#include "datapath/io/netns.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

namespace vpcd::dp {

namespace {

constexpr long kNsfsMagic = 0x6e736673;  // NSFS_MAGIC from <linux/magic.h>

std::string errno_text(const std::string& what, int e) { return what + ": " + std::strerror(e); }

std::string netns_path(const std::string& name) { return std::string(kNetnsRunDir) + "/" + name; }

// As `ip netns add`: /run/netns must be a shared mount point so bind mounts below it propagate to other mount
// namespaces. Make it one (a bind mount onto itself) when it is not.
bool prepare_run_dir(std::string* err) {
  if (::mkdir(kNetnsRunDir, 0755) != 0 && errno != EEXIST) {
    *err = errno_text(std::string("mkdir ") + kNetnsRunDir, errno);
    return false;
  }
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (::mount("", kNetnsRunDir, "none", MS_SHARED | MS_REC, nullptr) == 0) return true;
    if (errno != EINVAL || attempt == 1) {
      *err = errno_text(std::string("mount --make-rshared ") + kNetnsRunDir, errno);
      return false;
    }
    if (::mount(kNetnsRunDir, kNetnsRunDir, "none", MS_BIND | MS_REC, nullptr) != 0) {
      *err = errno_text(std::string("mount --bind ") + kNetnsRunDir, errno);
      return false;
    }
  }
  return true;
}

}  // namespace

bool netns_name_valid(const std::string& name) {
  return !name.empty() && name.size() <= 255 && name.find('/') == std::string::npos && name != "." && name != "..";
}

bool netns_exists(const std::string& name) {
  if (!netns_name_valid(name)) return false;
  struct statfs fs{};
  return ::statfs(netns_path(name).c_str(), &fs) == 0 && fs.f_type == kNsfsMagic;
}

bool netns_create(const std::string& name, std::string* err) {
  if (!netns_name_valid(name)) {
    *err = "invalid namespace name '" + name + "'";
    return false;
  }
  if (!prepare_run_dir(err)) return false;
  const std::string path = netns_path(name);
  int fd = ::open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
  if (fd < 0) {
    *err = errno == EEXIST ? "namespace " + name + " already exists" : errno_text("create " + path, errno);
    return false;
  }
  ::close(fd);
  // unshare() on a helper thread: only that thread enters the new namespace, and it ends right after the bind mount.
  int result = 0;
  std::string stage;
  std::thread helper([&] {
    if (::unshare(CLONE_NEWNET) != 0) {
      result = errno;
      stage = "unshare(CLONE_NEWNET)";
      return;
    }
    if (::mount("/proc/thread-self/ns/net", path.c_str(), "none", MS_BIND, nullptr) != 0) {
      result = errno;
      stage = "bind mount " + path;
    }
  });
  helper.join();
  if (result != 0) {
    ::unlink(path.c_str());
    *err = errno_text(stage, result);
    return false;
  }
  return true;
}

bool netns_delete(const std::string& name, std::string* err) {
  if (!netns_name_valid(name)) {
    *err = "invalid namespace name '" + name + "'";
    return false;
  }
  const std::string path = netns_path(name);
  if (::umount2(path.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
    *err = errno_text("umount " + path, errno);
    return false;
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    *err = errno_text("unlink " + path, errno);
    return false;
  }
  return true;
}

UniqueFd netns_open(const std::string& name, std::string* err) {
  if (!netns_name_valid(name)) {
    *err = "invalid namespace name '" + name + "'";
    return UniqueFd();
  }
  UniqueFd fd(::open(netns_path(name).c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    *err = errno_text("namespace " + name, errno);
    return fd;
  }
  struct statfs fs{};
  if (::fstatfs(fd.get(), &fs) != 0 || fs.f_type != kNsfsMagic) {
    *err = "namespace " + name + ": not a namespace file";
    fd.reset();
  }
  return fd;
}

NetnsGuard::NetnsGuard(int target_fd) {
  original_.reset(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  if (!original_) {
    error_ = errno_text("open /proc/thread-self/ns/net", errno);
    return;
  }
  if (::setns(target_fd, CLONE_NEWNET) != 0) {
    error_ = errno_text("setns", errno);
    original_.reset();
    return;
  }
  ok_ = true;
}

NetnsGuard::~NetnsGuard() {
  if (!ok_) return;
  if (::setns(original_.get(), CLONE_NEWNET) != 0) {
    // A thread left in a guest's namespace would act on the wrong interfaces from now on: stop here.
    std::fprintf(stderr, "vpcd: cannot return to the original network namespace: %s\n", std::strerror(errno));
    std::abort();
  }
}

}  // namespace vpcd::dp
