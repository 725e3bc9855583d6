// LinkMonitor; see link_monitor.h.
#include "datapath/io/link_monitor.h"

#include <linux/if.h>
#include <linux/rtnetlink.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace vpcd::dp {

LinkMonitor::LinkMonitor(Watched watched, std::function<void()> changed)
    : watched_(std::move(watched)), changed_(std::move(changed)) {}

LinkMonitor::~LinkMonitor() {
  if (thread_.joinable()) {
    const uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(stop_.get(), &one, sizeof one);
    thread_.join();
  }
  if (sock_) nl_socket_free(sock_);
}

bool LinkMonitor::start(std::string* err) {
  stop_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop_) {
    *err = std::string("eventfd: ") + std::strerror(errno);
    return false;
  }
  sock_ = nl_socket_alloc();
  if (!sock_) {
    *err = "cannot allocate a netlink socket";
    return false;
  }
  nl_socket_disable_seq_check(sock_);  // notifications carry no sequence number of ours
  nl_socket_modify_cb(sock_, NL_CB_VALID, NL_CB_CUSTOM, &LinkMonitor::on_message, this);
  int r = nl_connect(sock_, NETLINK_ROUTE);
  if (r == 0) r = nl_socket_add_membership(sock_, RTNLGRP_LINK);
  if (r == 0) {
    // What every interface looks like now (a dump, read to its end while blocking): later messages are compared
    // with it, so a tap whose hypervisor leaves right after start-up is seen to change.
    ifinfomsg req{};
    req.ifi_family = AF_UNSPEC;
    priming_ = true;
    r = nl_send_simple(sock_, RTM_GETLINK, NLM_F_DUMP, &req, sizeof req);
    if (r >= 0) r = nl_recvmsgs_default(sock_);
    priming_ = false;
    if (r > 0) r = 0;
  }
  if (r == 0) r = nl_socket_set_nonblocking(sock_);
  if (r != 0) {
    *err = std::string("link notifications: ") + nl_geterror(r);
    return false;
  }
  // A mass creation of NICs sends thousands of notifications in a burst: room for them, so that overruns stay rare.
  nl_socket_set_buffer_size(sock_, 4 << 20, 0);
  thread_ = std::thread([this] { run(); });
  return true;
}

int LinkMonitor::on_message(nl_msg* msg, void* self_ptr) {
  auto* self = static_cast<LinkMonitor*>(self_ptr);
  nlmsghdr* h = nlmsg_hdr(msg);
  if (h->nlmsg_type != RTM_NEWLINK && h->nlmsg_type != RTM_DELLINK) return NL_OK;
  nlattr* tb[IFLA_MAX + 1];
  if (nlmsg_parse(h, sizeof(ifinfomsg), tb, IFLA_MAX, nullptr) < 0 || !tb[IFLA_IFNAME]) return NL_OK;
  const auto* ifi = static_cast<const ifinfomsg*>(nlmsg_data(h));
  const unsigned flags = ifi->ifi_flags & (IFF_UP | IFF_LOWER_UP);
  const bool gone = h->nlmsg_type == RTM_DELLINK;
  auto it = self->flags_.find(ifi->ifi_index);
  const bool known = it != self->flags_.end();
  if (gone) {
    if (!known) return NL_OK;
    self->flags_.erase(it);
  } else {
    if (known && it->second == flags) return NL_OK;
    self->flags_[ifi->ifi_index] = flags;
    // The start-up dump only records; an interface seen for the first time (just created, by vpcd's own apply() as a
    // rule, which reads its state itself) counts only when it already has carrier.
    if (self->priming_ || (!known && !(flags & IFF_LOWER_UP))) return NL_OK;
  }
  if (self->watched_(nla_get_string(tb[IFLA_IFNAME]))) self->pending_ = true;
  return NL_OK;
}

void LinkMonitor::run() {
  pthread_setname_np(pthread_self(), "vpcd-links");
  pollfd fds[2] = {{nl_socket_get_fd(sock_), POLLIN, 0}, {stop_.get(), POLLIN, 0}};
  for (;;) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents) return;
    // POLLERR too: an overrun (ENOBUFS) is reported as a socket error, cleared only by reading it.
    if (!fds[0].revents) continue;
    for (;;) {
      const int r = nl_recvmsgs_default(sock_);
      if (r >= 0) continue;
      if (r != -NLE_AGAIN) pending_ = true;  // an overrun (ENOBUFS) or a broken message: read everything again
      break;
    }
    if (pending_) {
      pending_ = false;
      changed_();
    }
  }
}

}  // namespace vpcd::dp
