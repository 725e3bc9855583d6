// Persistent tap devices for the `tap` NIC backend: vpcd creates them (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, plus
// IFF_MULTI_QUEUE when the NIC has more than one queue, TUNSETPERSIST) and closes its fd, so the guest's hypervisor opens the device by name; vpcd itself
// drives the kernel side through an AfPacketPort.
//
// Threading: plain functions, callable from any thread; they touch only the named device.
#pragma once

#include <string>

#include "datapath/spec.h"

namespace vpcd::dp {

// Creates the tap described by `tap`, or adopts it when a tap with these flags already exists (a restart). Applies
// owner/group (when given), sets the interface alias, turns IPv6 off and sets the link up. Fails with a message when
// the name is taken by something that is not such a tap.
bool tap_ensure(const TapBackend& tap, const std::string& alias, std::string* err);
// Deletes the tap (every attached queue is detached by the kernel). true when it is gone (also when it never existed).
bool tap_remove(const std::string& ifname, std::string* err = nullptr);
// Opens one queue of the tap as a hypervisor would (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, IFF_MULTI_QUEUE when the device
// is multiqueue, TUNSETVNETHDRSZ 12). Returns the fd (O_CLOEXEC, caller closes it) or -1 with errno set.
int tap_open_queue(const std::string& ifname);

}  // namespace vpcd::dp
