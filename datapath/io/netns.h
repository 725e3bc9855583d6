// Named network namespaces, compatible with iproute2's `ip netns`: /run/netns/NAME is a bind mount of a namespace's
// nsfs file, and /run/netns is a shared mount point (so the mount propagates to other mount namespaces the way
// `ip netns add` arranges it).
//
// Threading: functions may be called from any thread. netns_create does its unshare() on a short-lived helper thread,
// so the caller's namespace is never changed. NetnsGuard changes the namespace of the calling thread only (setns
// affects one thread) and restores it in its destructor: keep it on the stack of that thread, never hand it over.
#pragma once

#include <string>

#include "datapath/io/unique_fd.h"

namespace vpcd::dp {

inline constexpr const char* kNetnsRunDir = "/run/netns";

// Valid names: 1..255 bytes, no '/', not "." or "..".
bool netns_name_valid(const std::string& name);
// /run/netns/NAME exists and is a mounted namespace file.
bool netns_exists(const std::string& name);
// Creates a new namespace named `name`. Fails (with a message) when it already exists.
bool netns_create(const std::string& name, std::string* err);
// Unmounts and unlinks /run/netns/NAME. The namespace itself lives on while processes or fds still hold it.
bool netns_delete(const std::string& name, std::string* err);
// O_RDONLY|O_CLOEXEC fd of the namespace (for setns or IFLA_NET_NS_FD); invalid on error.
UniqueFd netns_open(const std::string& name, std::string* err);

// Moves the calling thread into the namespace `target_fd` for the guard's lifetime. Check ok() before relying on it;
// when it failed, the thread is still in its original namespace and error() says why.
class NetnsGuard {
 public:
  explicit NetnsGuard(int target_fd);
  ~NetnsGuard();
  NetnsGuard(const NetnsGuard&) = delete;
  NetnsGuard& operator=(const NetnsGuard&) = delete;

  bool ok() const noexcept { return ok_; }
  const std::string& error() const noexcept { return error_; }

 private:
  UniqueFd original_;  // the thread's namespace before the switch
  bool ok_ = false;
  std::string error_;
};

}  // namespace vpcd::dp
