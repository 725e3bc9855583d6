// NIC backend `tap`: a persistent tap the guest's hypervisor opens by name (datapath/io/tap_device.*), driven from
// its kernel side through an AfPacketPort. Nothing of the guest's side is configured here: MAC, IPs and port
// security live in the snapshot, so changing them never touches the device (the hypervisor's fd stays open).
// Threading: control thread (nic_device.h).
#include <algorithm>

#include "datapath/control/nic_device.h"
#include "datapath/controller.h"
#include "datapath/io/af_packet_port.h"
#include "datapath/io/tap_device.h"

namespace vpcd::dp {
namespace {

class TapNic final : public NicDevice {
 public:
  explicit TapNic(TapBackend b) : b_(std::move(b)) {}

  const std::string& host_ifname() const override { return b_.ifname; }

  std::unique_ptr<PortIo> up(const NicSpec&, const DeviceContext& ctx, std::string* err) override {
    alias_ = ctx.alias;
    std::string e;
    if (!tap_ensure(b_, ctx.alias, &e)) {
      *err = "tap " + b_.ifname + ": " + e;
      return nullptr;
    }
    const unsigned queues = std::clamp<unsigned>(b_.queues, 1, ctx.workers);
    auto port = AfPacketPort::open(b_.ifname, af_packet_options(ctx, queues), &e, ctx.ring_pool);
    if (!port) {
      *err = "af_packet on " + b_.ifname + ": " + e;
      return nullptr;
    }
    fastpath_ifindex_ = attach_fastpath(*port, ctx);
    return port;
  }

  bool needs_recreate(const NicSpec& want, const DeviceContext&) const override {
    const auto* t = std::get_if<TapBackend>(&want.backend);
    return !t || *t != b_;
  }

  // Only a tap carrying this NIC's alias: a foreign device under the name (the reason up() failed) stays.
  void remove() override {
    if (!alias_.empty()) tap_remove(b_.ifname, alias_);
  }

  std::string no_carrier_detail() const override { return "no carrier (no hypervisor attached)"; }
  int fastpath_ifindex() const override { return fastpath_ifindex_; }
  // Frames for the guest leave by the tap's transmit (to the hypervisor's queue).
  bool fastpath_to_peer() const override { return false; }

 private:
  TapBackend b_;
  std::string alias_;  // this NIC's ownership marker (set by up())
  int fastpath_ifindex_ = 0;  // the tap carries the kernel fast path's program
};

}  // namespace

std::unique_ptr<NicDevice> make_tap_device(const TapBackend& b) { return std::make_unique<TapNic>(b); }

}  // namespace vpcd::dp
