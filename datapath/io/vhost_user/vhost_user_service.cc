// VhostUserService; see vhost_user_service.h.
#include "datapath/io/vhost_user/vhost_user_service.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <system_error>

namespace vpcd::dp::vhost {

namespace {

constexpr uint64_t kTagWake = 0;
constexpr uint64_t kKindListen = 1, kKindSock = 2, kKindAttention = 3;
uint64_t tag(uint64_t id, uint64_t kind) { return id << 2 | kind; }

bool fill_addr(const std::string& path, sockaddr_un& a, std::string* error) {
  std::memset(&a, 0, sizeof a);
  a.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof a.sun_path) {
    *error = "socket path too long";
    return false;
  }
  std::memcpy(a.sun_path, path.c_str(), path.size());
  return true;
}

void set_timeouts(int fd) {
  timeval tv{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

}  // namespace

VhostUserService::VhostUserService(std::string marker_dir) : marker_dir_(std::move(marker_dir)) {
  epfd_.reset(::epoll_create1(EPOLL_CLOEXEC));
  wake_.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!epfd_ || !wake_) throw std::system_error(errno, std::generic_category(), "vhost-user service");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kTagWake;
  if (::epoll_ctl(epfd_.get(), EPOLL_CTL_ADD, wake_.get(), &ev) < 0)
    throw std::system_error(errno, std::generic_category(), "epoll_ctl");
  std::error_code ec;
  std::filesystem::create_directories(marker_dir_, ec);
  thread_ = std::thread([this] { run(); });
}

VhostUserService::~VhostUserService() {
  stop_.store(true, std::memory_order_release);
  uint64_t one = 1;
  (void)!::write(wake_.get(), &one, sizeof one);
  if (thread_.joinable()) thread_.join();
  MutexLock lk(mu_);
  for (auto& [id, c] : conns_) {
    if (c.sock) disconnect(c, "");
    if (c.ep.server) remove_server_socket(c);
  }
  conns_.clear();
}

std::string VhostUserService::marker_path(const std::string& sock_path) const {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(fnv1a(sock_path)));
  return marker_dir_ + "/" + buf;
}

bool VhostUserService::attach(VhostUserPort* port, const VhostUserEndpoint& ep, std::string* error) {
  MutexLock lk(mu_);
  for (const auto& [id, c] : conns_)
    if (c.ep.path == ep.path) {
      *error = "socket " + ep.path + " is already used by another NIC";
      return false;
    }
  Conn c;
  c.id = next_id_++;
  c.port = port;
  c.ep = ep;
  if (ep.server) {
    if (!make_server_socket(c, error)) return false;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = tag(c.id, kKindListen);
    ::epoll_ctl(epfd_.get(), EPOLL_CTL_ADD, c.listen.get(), &ev);
    port->set_waiting("waiting for a front-end to connect to " + ep.path);
  } else {
    port->set_waiting("waiting for the front-end to listen on " + ep.path);
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = tag(c.id, kKindAttention);
  ::epoll_ctl(epfd_.get(), EPOLL_CTL_ADD, port->attention_fd(), &ev);
  auto [it, ok] = conns_.emplace(c.id, std::move(c));
  if (!it->second.ep.server) try_connect(it->second);  // at once: a restarted vpcd resumes without waiting
  uint64_t one = 1;
  (void)!::write(wake_.get(), &one, sizeof one);
  return true;
}

void VhostUserService::detach(VhostUserPort* port) {
  MutexLock lk(mu_);
  for (auto it = conns_.begin(); it != conns_.end(); ++it) {
    if (it->second.port != port) continue;
    Conn& c = it->second;
    if (c.sock) disconnect(c, "");
    ::epoll_ctl(epfd_.get(), EPOLL_CTL_DEL, port->attention_fd(), nullptr);
    if (c.listen) ::epoll_ctl(epfd_.get(), EPOLL_CTL_DEL, c.listen.get(), nullptr);
    if (c.ep.server) remove_server_socket(c);
    conns_.erase(it);
    return;
  }
}

bool VhostUserService::make_server_socket(Conn& c, std::string* error) {
  const std::string& path = c.ep.path;
  const std::string marker = marker_path(path);
  struct stat st{};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      *error = path + " exists and is not a socket";
      return false;
    }
    unsigned long long dev = 0, ino = 0;
    std::ifstream m(marker);
    std::string recorded;
    if (!(m >> dev >> ino >> recorded) || dev != st.st_dev || ino != st.st_ino || recorded != path) {
      *error = path + " exists and was not created by this vpcd";
      return false;
    }
    sockaddr_un a;
    if (!fill_addr(path, a, error)) return false;
    UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (probe && ::connect(probe.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
      *error = path + " is in use (something answers on it)";
      return false;
    }
    ::unlink(path.c_str());  // our own stale socket (a previous run of this instance)
  }
  sockaddr_un a;
  if (!fill_addr(path, a, error)) return false;
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) {
    *error = std::string("socket: ") + std::strerror(errno);
    return false;
  }
  mode_t old = ::umask(0117);
  int rc = ::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a);
  int bind_errno = errno;
  ::umask(old);
  if (rc < 0) {
    *error = "bind " + path + ": " + std::strerror(bind_errno);
    return false;
  }
  if (c.ep.owner || c.ep.group) {
    if (::lchown(path.c_str(), c.ep.owner ? *c.ep.owner : uid_t(-1), c.ep.group ? *c.ep.group : gid_t(-1)) < 0) {
      *error = "chown " + path + ": " + std::strerror(errno);
      ::unlink(path.c_str());
      return false;
    }
  }
  if (::listen(fd.get(), 4) < 0 || ::lstat(path.c_str(), &st) < 0) {
    *error = "listen " + path + ": " + std::strerror(errno);
    ::unlink(path.c_str());
    return false;
  }
  std::ofstream m(marker, std::ios::trunc);
  m << static_cast<unsigned long long>(st.st_dev) << ' ' << static_cast<unsigned long long>(st.st_ino) << ' ' << path
    << '\n';
  m.close();
  if (!m) {
    *error = "cannot write " + marker;
    ::unlink(path.c_str());
    return false;
  }
  c.listen = std::move(fd);
  return true;
}

void VhostUserService::remove_server_socket(Conn& c) {
  const std::string marker = marker_path(c.ep.path);
  struct stat st{};
  unsigned long long dev = 0, ino = 0;
  std::ifstream m(marker);
  if ((m >> dev >> ino) && ::lstat(c.ep.path.c_str(), &st) == 0 && dev == st.st_dev && ino == st.st_ino)
    ::unlink(c.ep.path.c_str());
  ::unlink(marker.c_str());
  c.listen.reset();
}

void VhostUserService::try_connect(Conn& c) {
  std::string err;
  sockaddr_un a;
  auto now = std::chrono::steady_clock::now();
  c.next_try = now + reconnect_interval;
  if (!fill_addr(c.ep.path, a, &err)) {
    c.port->on_disconnect(err, "");
    c.next_try = now + std::chrono::hours(24 * 365);
    return;
  }
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd && ::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    adopt_connection(c, std::move(fd));
    return;
  }
  std::string wait = "waiting for the front-end to listen on " + c.ep.path + " (" + std::strerror(errno) + ")";
  if (wait != c.last_wait) {
    c.last_wait = wait;
    c.port->set_waiting(wait);
  }
}

void VhostUserService::adopt_connection(Conn& c, UniqueFd fd) {
  set_timeouts(fd.get());
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP;
  ev.data.u64 = tag(c.id, kKindSock);
  if (::epoll_ctl(epfd_.get(), EPOLL_CTL_ADD, fd.get(), &ev) < 0) return;
  c.sock = std::move(fd);
  c.last_wait.clear();
  c.port->on_connect();
}

void VhostUserService::disconnect(Conn& c, const std::string& error) {
  std::string wait = c.ep.server ? "waiting for a front-end to connect to " + c.ep.path
                                 : "waiting for the front-end to listen on " + c.ep.path;
  // State first, then close: whoever sees the connection end sees the NIC's new state.
  c.port->on_disconnect(error, wait);
  if (c.sock) {
    ::epoll_ctl(epfd_.get(), EPOLL_CTL_DEL, c.sock.get(), nullptr);
    c.sock.reset();
  }
  c.next_try = std::chrono::steady_clock::now() + (error.empty() ? reconnect_interval : error_backoff);
  if (!error.empty()) std::fprintf(stderr, "vpcd: vhost-user %s: %s\n", c.ep.path.c_str(), error.c_str());
}

void VhostUserService::serve_message(Conn& c) {
  Msg m;
  std::string err;
  switch (read_message(c.sock.get(), m, &err)) {
    case ReadStatus::kClosed:
      disconnect(c, "");
      return;
    case ReadStatus::kError:
      disconnect(c, "front-end protocol error: " + err);
      return;
    case ReadStatus::kOk:
      break;
  }
  Reply r;
  bool ok = c.port->handle_message(m, r, &err);
  if (r.send && !send_reply(c.sock.get(), m, r)) {
    disconnect(c, ok ? "" : "front-end protocol error: " + err);
    return;
  }
  if (!ok) disconnect(c, "front-end protocol error: " + err);
}

void VhostUserService::handle_event(uint64_t t, uint32_t events) {
  auto it = conns_.find(t >> 2);
  if (it == conns_.end()) return;  // detached meanwhile
  Conn& c = it->second;
  switch (t & 3) {
    case kKindListen: {
      UniqueFd fd(::accept4(c.listen.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!fd) return;
      if (c.sock) return;  // one front-end at a time: the new one is closed
      adopt_connection(c, std::move(fd));
      return;
    }
    case kKindSock:
      if (!c.sock) return;
      if (events & EPOLLIN) {
        serve_message(c);
      } else if (events & (EPOLLHUP | EPOLLERR | EPOLLRDHUP)) {
        disconnect(c, "");
      }
      return;
    case kKindAttention:
      c.port->refresh_status();
      return;
    default:
      return;
  }
}

void VhostUserService::run() {
  pthread_setname_np(pthread_self(), "vpcd-vhost");
  epoll_event events[32];
  while (!stop_.load(std::memory_order_acquire)) {
    int timeout_ms = 1000;
    {
      MutexLock lk(mu_);
      auto now = std::chrono::steady_clock::now();
      for (auto& [id, c] : conns_) {
        if (c.ep.server || c.sock) continue;
        if (now >= c.next_try) try_connect(c);
        if (c.sock) continue;
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(c.next_try - now).count();
        timeout_ms = int(std::clamp<long long>(ms, 1, timeout_ms));
      }
    }
    int n = ::epoll_wait(epfd_.get(), events, 32, timeout_ms);
    if (n < 0) continue;
    MutexLock lk(mu_);
    for (int i = 0; i < n; ++i) {
      if (events[i].data.u64 == kTagWake) {
        uint64_t v;
        (void)!::read(wake_.get(), &v, sizeof v);
        continue;
      }
      handle_event(events[i].data.u64, events[i].events);
    }
  }
}

}  // namespace vpcd::dp::vhost
