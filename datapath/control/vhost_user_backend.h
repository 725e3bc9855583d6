// The `vhost-user` NIC backend as the Controller uses it: create a VhostUserPort for a NIC and attach it to the
// vhost-user service (client or server mode), map the device's state to the NIC's state, and clean up server-mode
// sockets a crash left behind. The datapath side (virtqueues, messages, sockets) lives in datapath/io/vhost_user/.
//
// Threading: control thread (the Controller's apply), except vhost_user_state(), which any thread may call while it
// holds a reference to the port.
#pragma once

#include <functional>
#include <memory>
#include <set>
#include <string>

#include "datapath/controller.h"
#include "datapath/io/vhost_user/vhost_user_port.h"
#include "datapath/io/vhost_user/vhost_user_service.h"

namespace vpcd::dp {

// Creates the NIC's port (queue pairs, the VPC's MTU, the NIC's MAC, one TX slot per worker), sets `listener` as its
// state listener and attaches it to `svc`. nullptr and *error when the port or a server socket cannot be created.
std::unique_ptr<vhost::VhostUserPort> vhost_user_bring_up(vhost::VhostUserService& svc, const NicSpec& nic,
                                                          const VhostUserBackend& b, uint32_t mtu, unsigned nworkers,
                                                          std::function<void()> listener, std::string* error);

// The NIC state of a vhost-user port: up when queue pair 0 runs, down while waiting for or negotiating with the
// front-end (the detail says which), error with the reason the device gave.
NicState vhost_user_state(const vhost::VhostUserPort& port, const std::string& socket);

// Where the service records the server-mode sockets it created.
std::string vhost_user_marker_dir(const std::string& run_dir);

// Removes server-mode sockets (and their markers) recorded under marker_dir whose path is not in `known`: what a
// crash left behind for NICs that are gone. A socket is removed only when it is still the file vpcd created.
void vhost_user_remove_stale(const std::string& marker_dir, const std::set<std::string>& known);

}  // namespace vpcd::dp
