// The vhost-user NIC backend; see vhost_user_backend.h.
#include "datapath/control/vhost_user_backend.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

namespace vpcd::dp {

std::unique_ptr<vhost::VhostUserPort> vhost_user_bring_up(vhost::VhostUserService& svc, const NicSpec& nic,
                                                          const VhostUserBackend& b, uint32_t mtu, unsigned nworkers,
                                                          std::function<void()> listener, std::string* error) {
  vhost::VhostUserPortConfig pc;
  pc.name = "vhost-user:" + b.socket;
  pc.queue_pairs = std::clamp<unsigned>(b.queues, 1, vhost::kMaxQueuePairs);
  pc.mtu = mtu;
  pc.mac = nic.mac;
  pc.tx_workers = nworkers;
  auto port = vhost::VhostUserPort::create(pc, error);
  if (!port) return nullptr;
  port->set_status_listener(std::move(listener));
  vhost::VhostUserEndpoint ep;
  ep.path = b.socket;
  ep.server = b.server;
  ep.owner = b.owner;
  ep.group = b.group;
  if (!svc.attach(port.get(), ep, error)) return nullptr;
  return port;
}

NicState vhost_user_state(const vhost::VhostUserPort& port, const std::string& socket) {
  NicState s;
  s.host_ifname = socket;
  vhost::DeviceStatus d = port.status();
  switch (d.state) {
    case vhost::DeviceState::kUp:
      s.status = NicStatus::kUp;
      s.detail = d.detail;
      break;
    case vhost::DeviceState::kError:
      s.status = NicStatus::kError;
      s.detail = d.detail;
      break;
    case vhost::DeviceState::kWaiting:
    case vhost::DeviceState::kNegotiating:
      s.status = NicStatus::kDown;
      s.detail = d.detail;
      break;
  }
  return s;
}

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
