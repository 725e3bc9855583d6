// NicDevice: one NIC's OS objects and its port I/O behind one interface, one file per backend (like OVS's
// netdev_class in lib/netdev-provider.h): tap_nic.cc, netns_nic_device.cc, later vhost-user. The controller's apply
// step (controller.cc) only calls this interface; adding a backend is a new file plus one line in make_nic_device().
//
// Life of a device: make_nic_device(spec) -> up() creates or adopts the OS objects (only ones marked with this
// instance's alias) and opens the PortIo the workers drive -> activate() once a snapshot holding the port has been
// acknowledged by every worker (e.g. the guest's link goes up only now, so its first frame is not lost) -> update()
// for changes the device can take in place -> remove() after the port has been closed. needs_recreate() says when a
// change cannot be taken in place.
//
// Threading: control thread only (the controller's apply, under its mutex), except remove() of a device whose
// remove_off_thread() is true: that runs on the reaper thread, which owns the device from then on.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "datapath/io/port.h"
#include "datapath/spec.h"

namespace vpcd::dp {

struct Options;
class AfPacketRingPool;
class KernelFastPath;
class AfPacketPort;
namespace vhost {
class VhostUserService;
}

// What a device may need to know besides its own spec.
struct DeviceContext {
  const Options& opts;
  unsigned workers;             // number of datapath workers (TX rings per port, most useful RX queues)
  const DesiredState& desired;  // the whole desired state (the NIC's VPC and subnet)
  std::string alias;            // this instance's marker for this NIC ("vpcd:<instance>:<nic id>")
  vhost::VhostUserService* vhost_service = nullptr;  // the controller's vhost-user socket thread
  std::function<void()> state_changed;  // a device whose state changes on its own calls this (any thread)
  AfPacketRingPool* ring_pool = nullptr;  // sockets of the guest ring layout set up ahead (null: none)
  std::shared_ptr<KernelFastPath> fastpath;  // the kernel fast path (null: off, or it failed to load)
};

class NicDevice {
 public:
  virtual ~NicDevice() = default;

  // The interface the datapath drives (tap name, veth near end); known before up().
  virtual const std::string& host_ifname() const = 0;
  // Creates or adopts the OS objects and opens the port. nullptr with *err on failure; then nothing that belongs to
  // someone else has been touched, and remove() cleans up only what up() created.
  virtual std::unique_ptr<PortIo> up(const NicSpec& nic, const DeviceContext& ctx, std::string* err) = 0;
  // The port is in a snapshot every worker acknowledged.
  virtual void activate() {}
  // True when `want` cannot be reached from this device without tearing it down and creating it again.
  virtual bool needs_recreate(const NicSpec& want, const DeviceContext& ctx) const = 0;
  // Takes a change that needs no recreation (the guest side's MAC, address, gateway, MTU) in place: the device, its
  // ifindex and the port stay. false with *err when the OS refused (the controller then recreates the device).
  virtual bool update(const NicSpec& /*want*/, const DeviceContext& /*ctx*/, std::string* /*err*/) { return true; }
  // Removes the OS objects up() created or adopted (the port is closed by then).
  virtual void remove() = 0;
  // The names of the OS objects this device creates ("if:<host ifname>", "netns:<namespace>"): a new device waits
  // until no pending removal (OsReaper) holds any of them before up().
  virtual std::vector<std::string> os_keys() const { return {"if:" + host_ifname()}; }
  // True when remove() (and closing the port) may run on the controller's reaper thread (os_reaper.h) after the
  // control thread let go of the device: remove() then touches nothing but the device's own members and the OS.
  virtual bool remove_off_thread() const { return false; }
  // The detail to show when the device is there but its link has no carrier.
  virtual std::string no_carrier_detail() const { return "no carrier"; }
  // For a device whose state comes from the device itself (vhost-user: the front-end's negotiation), not from a
  // link's carrier: a function any thread may call while it holds a reference to the port. nullptr: carrier.
  virtual std::function<NicState()> state_reader() const { return nullptr; }
  // The port is about to be closed (every worker has let go of it): stop feeding it from other threads.
  virtual void before_close() {}
  // The host interface the kernel fast path is attached to (kernel_fastpath.h), 0 when it is not.
  virtual int fastpath_ifindex() const { return 0; }
  // How frames for this NIC leave the fast path: true = into the veth peer's ingress (the guest end of a netns NIC),
  // false = out of the interface itself (a tap: to the hypervisor).
  virtual bool fastpath_to_peer() const { return true; }
};

// The device for nic's backend type.
std::unique_ptr<NicDevice> make_nic_device(const NicSpec& nic, const Options& opts);

// Carrier (IFF_LOWER_UP) of every administratively up link in this thread's network namespace, by name, read with
// one rtnetlink dump; nullopt when the dump failed. A reconcile pass reads all its NICs' carriers from one of these
// instead of one netlink socket and request per NIC.
using CarrierMap = std::unordered_map<std::string, bool>;
std::optional<CarrierMap> read_carriers();

// The NIC's state from what the controller knows (backend error, port open) and the host link's carrier right now:
// from `carriers` when given (a link missing there is down or gone), else read for this link alone.
NicState nic_state_now(const std::string& host_ifname, const std::string& error, bool has_port,
                       const std::string& no_carrier_detail, const CarrierMap* carriers = nullptr);

// vhost-user (vhost_user_nic.cc): the directory where the service records the server-mode sockets it created, and
// the clean-up of those (and their markers) a crash left behind for NICs that are gone (only a socket that is still
// the file vpcd created is removed).
std::string vhost_user_marker_dir(const std::string& run_dir);
void vhost_user_remove_stale(const std::string& marker_dir, const std::set<std::string>& known_sockets);

// The veth near end's name of a netns NIC: "vn" + 12 hex digits of a hash of the NIC id (<= 15 bytes).
std::string netns_host_ifname(const std::string& nic_id);

// The AfPacketPort options for a port with rx_queues queues under opts: ring layout and the ring sizes of its role
// (guest NIC: opts.guest_rings; uplink: opts.uplink_rings).
struct AfPacketOptions;
AfPacketOptions af_packet_options(const Options& opts, unsigned rx_queues, unsigned workers, bool uplink = false);
// A guest NIC's port options: af_packet_options plus the kernel fast path's socket filter when it runs.
AfPacketOptions af_packet_options(const DeviceContext& ctx, unsigned rx_queues);
// Puts the kernel fast path's program on a guest NIC's host interface and ties its counters to the port: the ifindex,
// or 0 when the fast path is off or the attach failed (logged; the NIC then forwards through the pipeline alone).
// With the fast path off, a program a previous vpcd left on the interface is removed.
int attach_fastpath(AfPacketPort& port, const DeviceContext& ctx);

}  // namespace vpcd::dp
