// NIC backend `vhost-user`: vpcd is the virtio-net device for a QEMU / DPDK virtio-user front-end. The device here is
// a VhostUserPort (datapath/io/vhost_user/) attached to the controller's VhostUserService (client mode: vpcd
// connects to the hypervisor's socket and reconnects; server mode: vpcd creates the socket with owner/group). There
// is no link and no carrier: the NIC's state is the device's (waiting for the front-end, negotiating, up, error with
// the reason), and every change of it calls DeviceContext::state_changed, so the API shows it at once.
// Threading: control thread (nic_device.h); state_reader()'s function may be called from any thread.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "datapath/control/nic_device.h"
#include "datapath/controller.h"
#include "datapath/io/vhost_user/vhost_user_port.h"
#include "datapath/io/vhost_user/vhost_user_service.h"

namespace vpcd::dp {
namespace {

NicState to_nic_state(const vhost::DeviceStatus& d, const std::string& socket) {
  NicState s;
  s.host_ifname = socket;
  s.detail = d.detail;
  switch (d.state) {
    case vhost::DeviceState::kUp: s.status = NicStatus::kUp; break;
    case vhost::DeviceState::kError: s.status = NicStatus::kError; break;
    case vhost::DeviceState::kWaiting:
    case vhost::DeviceState::kNegotiating: s.status = NicStatus::kDown; break;
  }
  return s;
}

class VhostUserNic final : public NicDevice {
 public:
  explicit VhostUserNic(VhostUserBackend b) : b_(std::move(b)) {}
  ~VhostUserNic() override { before_close(); }

  const std::string& host_ifname() const override { return b_.socket; }

  std::unique_ptr<PortIo> up(const NicSpec& nic, const DeviceContext& ctx, std::string* err) override {
    if (!ctx.vhost_service) {
      *err = "vhost-user: no service";
      return nullptr;
    }
    uint32_t mtu = 1500;
    for (const auto& v : ctx.desired.vpcs)
      if (v.id == nic.vpc_id) mtu = v.mtu;
    vhost::VhostUserPortConfig pc;
    pc.name = "vhost-user:" + b_.socket;
    pc.queue_pairs = std::clamp<unsigned>(b_.queues, 1, vhost::kMaxQueuePairs);
    pc.mtu = mtu;
    pc.mac = nic.mac;
    pc.announce = !nic.port_security;  // with port security on, the RARP would be the guest's own drop
    pc.tx_workers = ctx.workers;
    std::string e;
    auto port = vhost::VhostUserPort::create(pc, &e);
    if (!port) {
      *err = "vhost-user " + b_.socket + ": " + e;
      return nullptr;
    }
    port->set_status_listener(ctx.state_changed);
    vhost::VhostUserEndpoint ep;
    ep.path = b_.socket;
    ep.server = b_.server;
    ep.owner = b_.owner;
    ep.group = b_.group;
    if (!ctx.vhost_service->attach(port.get(), ep, &e)) {
      *err = "vhost-user " + b_.socket + ": " + e;
      return nullptr;
    }
    svc_ = ctx.vhost_service;
    port_ = port.get();
    return port;
  }

  bool needs_recreate(const NicSpec& want, const DeviceContext&) const override {
    const auto* v = std::get_if<VhostUserBackend>(&want.backend);
    return !v || *v != b_;  // the MAC (RARP) and MTU are read at up(): a change of those recreates too
  }
  bool update(const NicSpec& want, const DeviceContext&, std::string* err) override {
    // MAC, IPs and port security live in the snapshot; the port keeps the MAC it announces and follows port security
    // for whether it announces at all.
    (void)err;
    if (port_) port_->set_announce(!want.port_security);
    return true;
  }

  void before_close() override {
    if (svc_ && port_) svc_->detach(port_);  // synchronous: the service never touches the port again
    port_ = nullptr;
  }
  void remove() override { before_close(); }  // detach also removed a server-mode socket and its marker

  std::function<NicState()> state_reader() const override {
    if (!port_) return nullptr;
    const vhost::VhostUserPort* p = port_;
    std::string socket = b_.socket;
    return [p, socket] { return to_nic_state(p->status(), socket); };
  }

 private:
  VhostUserBackend b_;
  vhost::VhostUserService* svc_ = nullptr;
  vhost::VhostUserPort* port_ = nullptr;  // owned by the PortRuntime; valid until before_close()
};

}  // namespace

std::unique_ptr<NicDevice> make_vhost_user_device(const VhostUserBackend& b) { return std::make_unique<VhostUserNic>(b); }

std::string vhost_user_marker_dir(const std::string& run_dir) { return run_dir + "/vhost-user"; }

void vhost_user_remove_stale(const std::string& marker_dir, const std::set<std::string>& known) {
  std::error_code ec;
  std::vector<std::filesystem::path> markers;
  for (const auto& e : std::filesystem::directory_iterator(marker_dir, ec)) markers.push_back(e.path());
  for (const auto& m : markers) {
    unsigned long long dev = 0, ino = 0;
    std::string path;
    {
      std::ifstream f(m);
      if (!(f >> dev >> ino >> path)) continue;
    }
    if (known.count(path)) continue;
    struct stat st{};
    if (::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == dev && st.st_ino == ino)
      ::unlink(path.c_str());
    ::unlink(m.c_str());
  }
}

}  // namespace vpcd::dp
