// libFuzzer target: the vhost-user message parser and handler table. The input is a byte stream a front-end writes to
// the socket; its first byte says which messages (by position) carry a guest-memory memfd as their fds. Every message
// is read with read_message() from a socketpair and dispatched with VhostUserPort::handle_message(); a protocol error
// ends the session like the service does (on_disconnect), after which the stream starts a new session. Afterwards a
// worker's calls (rx_burst, tx_enqueue, tx_flush) run on whatever rings the stream set up.
// Build: scripts/fuzz.sh (clang++, -DVPCD_FUZZ=ON); seeds in fuzz/corpus/vhost_msg/.
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "datapath/io/vhost_user/message.h"
#include "datapath/io/vhost_user/vhost_user_port.h"

using namespace vpcd::dp;
using namespace vpcd::dp::vhost;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 || size > 64 * 1024) return 0;
  const uint8_t fd_mask = data[0];
  ++data, --size;
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return 0;
  int mfd = ::memfd_create("fuzz-guest", MFD_CLOEXEC);
  if (mfd < 0 || ::ftruncate(mfd, 1 << 16) < 0) return 0;
  VhostUserPortConfig pc;
  pc.name = "fuzz";
  pc.queue_pairs = 2;
  std::string err;
  auto port = VhostUserPort::create(pc, &err);
  port->on_connect();
  // Write the stream as messages: each header's size field decides where the next one starts (as on a real socket);
  // message k carries the memfd (as many copies as the header asks for, at most 8) when bit k % 8 of fd_mask is set.
  size_t off = 0;
  unsigned k = 0;
  while (off < size) {
    size_t n = size - off;
    size_t want = sizeof(MsgHeader);  // what read_message will wait for
    if (n >= sizeof(MsgHeader)) {
      MsgHeader h;
      std::memcpy(&h, data + off, sizeof h);
      want = sizeof h + std::min<size_t>(h.size, kMaxPayload);
      n = std::min(n, want);
    }
    iovec iov{const_cast<uint8_t*>(data + off), n};
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * 8)];
    if (fd_mask & (1u << (k % 8))) {
      unsigned nfds = 1 + (k / 8) % 8;
      mh.msg_control = cbuf;
      mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
      cmsghdr* c = CMSG_FIRSTHDR(&mh);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
      for (unsigned i = 0; i < nfds; ++i) std::memcpy(CMSG_DATA(c) + i * sizeof(int), &mfd, sizeof(int));
    }
    if (::sendmsg(sv[0], &mh, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) break;
    // The input ends inside a message: the front-end hangs up there (vpcd's service would time the read out after
    // 1 s; here EOF ends it at once instead of blocking the fuzzer).
    if (n < want) ::shutdown(sv[0], SHUT_WR);
    off += n;
    ++k;
    // Serve what is queued so the socket buffer never fills.
    Msg m;
    ReadStatus st = read_message(sv[1], m, &err);
    if (st != ReadStatus::kOk) {
      port->on_disconnect(err, "");
      port->on_connect();
      // A stream error leaves the socket out of step: start over on a fresh pair.
      ::close(sv[0]);
      ::close(sv[1]);
      if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) break;
      continue;
    }
    Reply r;
    if (!port->handle_message(m, r, &err)) {
      port->on_disconnect(err, "");
      port->on_connect();
    }
  }
  // A worker's turn on whatever the stream configured.
  Packet pkts[32];
  for (unsigned q = 0; q < 2; ++q) {
    unsigned n = port->rx_burst(q, pkts, 32);
    for (unsigned i = 0; i < n; ++i) {
      Packet p = pkts[i];
      port->tx_enqueue(q, p);
    }
    if (n) port->rx_release(q);
    port->tx_flush(q);
  }
  port->refresh_status();
  port->on_disconnect("", "");
  ::close(sv[0]);
  ::close(sv[1]);
  ::close(mfd);
  return 0;
}
