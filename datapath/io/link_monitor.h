// LinkMonitor: tells the control plane at once when one of the interfaces vpcd drives changes its link state on its
// own (a hypervisor opens or closes a tap, a guest takes its end of a veth down, an uplink loses carrier), instead of
// at the next periodic pass. It listens to the kernel's link notifications (a NETLINK_ROUTE socket in vpcd's own
// namespace, member of RTNLGRP_LINK) and calls `changed` when the administrative state (IFF_UP) or the carrier
// (IFF_LOWER_UP) of a watched interface differs from what it last saw, or when a watched interface is deleted.
// Notifications for other interfaces, and those that change neither flag (MTU, address, statistics), are ignored, so
// vpcd's own creation of many NICs does not turn into one wake-up per netlink message. When the kernel dropped
// notifications (ENOBUFS: the socket's buffer overran) it calls `changed` once: a full pass reads every state again.
//
// `watched(ifname)` and `changed()` run on the monitor's thread; `changed` must only signal (Reconciler::notify).
//
// Threading: one thread of its own ("vpcd-links"), started by start() and joined by the destructor.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>

#include "datapath/io/unique_fd.h"

struct nl_sock;
struct nl_msg;

namespace vpcd::dp {

class LinkMonitor {
 public:
  using Watched = std::function<bool(const std::string& ifname)>;
  LinkMonitor(Watched watched, std::function<void()> changed);
  ~LinkMonitor();
  LinkMonitor(const LinkMonitor&) = delete;
  LinkMonitor& operator=(const LinkMonitor&) = delete;

  // Opens the socket and starts the thread. false with *err when the kernel refuses the socket (the control plane
  // then sees changes at its periodic pass, as before).
  bool start(std::string* err);

 private:
  void run();
  // One link message (libnl's valid-message callback): sets pending_ when `changed` should be called.
  static int on_message(nl_msg* msg, void* self);

  Watched watched_;
  std::function<void()> changed_;
  nl_sock* sock_ = nullptr;  // libnl's NETLINK_ROUTE socket, member of RTNLGRP_LINK
  UniqueFd stop_;            // an eventfd the destructor writes
  std::thread thread_;
  std::unordered_map<int, unsigned> flags_;  // ifindex -> the IFF_UP | IFF_LOWER_UP last seen (monitor thread only)
  bool pending_ = false;                     // monitor thread only
  bool priming_ = false;                     // start(): the initial dump only records
};

}  // namespace vpcd::dp
