// vhost-user message framing; see message.h.
#include "datapath/io/vhost_user/message.h"

#include <sys/socket.h>

#include <unistd.h>

#include <cerrno>

namespace vpcd::dp::vhost {

namespace {

// recv() until len bytes or failure. 0 = ok, otherwise the errno-like reason (EPIPE for EOF).
int recv_all(int sock, uint8_t* p, size_t len) {
  while (len > 0) {
    ssize_t n = ::recv(sock, p, len, MSG_CMSG_CLOEXEC);
    if (n == 0) return EPIPE;
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    p += n;
    len -= size_t(n);
  }
  return 0;
}

}  // namespace

ReadStatus read_message(int sock, Msg& m, std::string* error) {
  for (auto& fd : m.fds) fd.reset();
  m.nfds = 0;
  m.hdr = {};
  alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * kMaxFds)];
  iovec iov{&m.hdr, sizeof m.hdr};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = cbuf;
  mh.msg_controllen = sizeof cbuf;
  ssize_t n;
  do {
    n = ::recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n == 0) return ReadStatus::kClosed;
  if (n < 0) {
    *error = std::string("recvmsg: ") + std::strerror(errno);
    return ReadStatus::kError;
  }
  // Take ownership of every fd first, so an error below still closes them.
  for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t cnt = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < cnt; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      if (m.nfds < kMaxFds)
        m.fds[m.nfds++].reset(fd);
      else
        ::close(fd);
    }
  }
  if (mh.msg_flags & MSG_CTRUNC) {
    *error = "too many file descriptors in one message";
    return ReadStatus::kError;
  }
  if (size_t(n) < sizeof m.hdr) {
    if (int e = recv_all(sock, reinterpret_cast<uint8_t*>(&m.hdr) + n, sizeof m.hdr - size_t(n))) {
      *error = e == EPIPE ? "connection closed inside a message header" : std::string("recv: ") + std::strerror(e);
      return ReadStatus::kError;
    }
  }
  if ((m.hdr.flags & kMsgVersionMask) != kMsgVersion) {
    *error = "request " + std::to_string(m.hdr.request) + ": unsupported message version " +
             std::to_string(m.hdr.flags & kMsgVersionMask);
    return ReadStatus::kError;
  }
  if (m.hdr.flags & kMsgFlagReply) {
    *error = "request " + std::to_string(m.hdr.request) + " has the reply flag set";
    return ReadStatus::kError;
  }
  if (m.hdr.size > kMaxPayload) {
    *error = "request " + std::to_string(m.hdr.request) + ": payload of " + std::to_string(m.hdr.size) +
             " bytes exceeds " + std::to_string(kMaxPayload);
    return ReadStatus::kError;
  }
  std::memset(m.payload, 0, sizeof m.payload);
  if (m.hdr.size > 0) {
    if (int e = recv_all(sock, m.payload, m.hdr.size)) {
      *error = e == EPIPE ? "connection closed inside a message payload" : std::string("recv: ") + std::strerror(e);
      return ReadStatus::kError;
    }
  }
  return ReadStatus::kOk;
}

bool validate_message(const Msg& m, FdRule fds, uint32_t min_size, uint32_t max_size, std::string* error) {
  if (m.hdr.size < min_size || m.hdr.size > max_size) {
    *error = "payload of " + std::to_string(m.hdr.size) + " bytes (expected " + std::to_string(min_size) +
             (min_size == max_size ? "" : ".." + std::to_string(max_size)) + ")";
    return false;
  }
  unsigned want = 0;
  switch (fds) {
    case FdRule::kNone: want = 0; break;
    case FdRule::kOne: want = 1; break;
    case FdRule::kVringFd: want = (m.u64() & kVringNoFd) ? 0 : 1; break;
    case FdRule::kPerRegion: {
      uint32_t nregions = m.as<uint32_t>();
      if (nregions == 0 || nregions > kMaxMemRegions) {
        *error = std::to_string(nregions) + " memory regions (1.." + std::to_string(kMaxMemRegions) + " allowed)";
        return false;
      }
      if (m.hdr.size < 8 + nregions * sizeof(MemRegion)) {
        *error = "payload too short for " + std::to_string(nregions) + " memory regions";
        return false;
      }
      want = nregions;
      break;
    }
  }
  if (m.nfds != want) {
    *error = std::to_string(m.nfds) + " file descriptors (expected " + std::to_string(want) + ")";
    return false;
  }
  return true;
}

bool send_reply(int sock, const Msg& req, const Reply& r) {
  struct {
    MsgHeader hdr;
    uint8_t payload[kMaxPayload];
  } out;
  out.hdr.request = req.hdr.request;
  out.hdr.flags = kMsgVersion | kMsgFlagReply;
  out.hdr.size = r.size;
  std::memcpy(out.payload, r.payload, r.size);
  const uint8_t* p = reinterpret_cast<const uint8_t*>(&out);
  size_t len = sizeof(MsgHeader) + r.size;
  while (len > 0) {
    ssize_t n = ::send(sock, p, len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += n;
    len -= size_t(n);
  }
  return true;
}

}  // namespace vpcd::dp::vhost
