// Persistent tap devices for the `tap` NIC backend: vpcd creates them (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, plus
// IFF_MULTI_QUEUE when the NIC has more than one queue, IFF_TUN_EXCL, TUNSETPERSIST) and closes its fd, so the guest's
// hypervisor opens the device by name; vpcd itself drives the kernel side through an AfPacketPort.
//
// Ownership: a tap is vpcd's when its interface alias is this instance's marker for the NIC ("vpcd:<instance>:<nic
// id>"). The alias is set while vpcd still holds the creating fd and before TUNSETPERSIST, so a crash can never leave a
// persistent tap of ours without the marker. vpcd adopts (restart), changes and deletes only taps carrying the marker;
// any other interface under the name (a VM's tap held by its hypervisor, an idle persistent tap of another tool, a TUN
// device, a veth) is an error and is not touched: not attached to, not re-flagged, not deleted.
//
// Threading: plain functions, callable from any thread; they touch only the named device.
#pragma once

#include <string>

#include "datapath/spec.h"

namespace vpcd::dp {

// Creates the tap described by `tap` with IFF_TUN_EXCL and the alias `alias`, or adopts it when a tap carrying `alias`
// already exists (a restart). Applies owner/group (when given), turns IPv6 off and sets the link up. Fails with a
// message, touching nothing, when the name is taken by any interface that does not carry `alias`.
bool tap_ensure(const TapBackend& tap, const std::string& alias, std::string* err);
// Deletes the tap when it is a tun/tap device carrying `alias` (every attached queue is detached by the kernel). true
// when it is gone (also when it never existed); false, leaving it alone, when an interface of that name is not ours.
bool tap_remove(const std::string& ifname, const std::string& alias, std::string* err = nullptr);
// Opens one queue of the tap as a hypervisor would (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, IFF_MULTI_QUEUE when the device
// is multiqueue, TUNSETVNETHDRSZ 12). Returns the fd (O_CLOEXEC, caller closes it) or -1 with errno set.
int tap_open_queue(const std::string& ifname);

}  // namespace vpcd::dp
