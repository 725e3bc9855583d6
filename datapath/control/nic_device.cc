// Shared parts of the NIC backends; see nic_device.h.
#include "datapath/control/nic_device.h"

#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <optional>

#include "datapath/controller.h"
#include "datapath/io/af_packet_port.h"

namespace vpcd::dp {

std::unique_ptr<NicDevice> make_tap_device(const TapBackend& b);
std::unique_ptr<NicDevice> make_netns_device(const NicSpec& nic, const NetnsBackend& b);

std::unique_ptr<NicDevice> make_nic_device(const NicSpec& nic, const Options&) {
  if (const auto* t = std::get_if<TapBackend>(&nic.backend)) return make_tap_device(*t);
  return make_netns_device(nic, std::get<NetnsBackend>(nic.backend));
}

namespace {

// /sys/class/net/IF/carrier: 1, 0, or nullopt (no such link, or administratively down: EINVAL).
// Through SIOCGIFFLAGS in this thread's network namespace, not /sys/class/net: a vpcd started with nsenter --net
// (README: running vpcd inside a network namespace) still sees the host's sysfs. IFF_RUNNING = up with carrier.
std::optional<bool> read_carrier(const std::string& ifname) {
  if (ifname.empty() || ifname.size() >= IFNAMSIZ) return std::nullopt;
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::nullopt;
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, ifname.data(), ifname.size());
  const int rc = ::ioctl(fd, SIOCGIFFLAGS, &ifr);
  ::close(fd);
  if (rc != 0 || !(ifr.ifr_flags & IFF_UP)) return std::nullopt;
  return (ifr.ifr_flags & IFF_RUNNING) != 0;
}

}  // namespace

NicState nic_state_now(const std::string& host, const std::string& error, bool has_port,
                       const std::string& no_carrier_detail) {
  NicState s;
  s.host_ifname = host;
  if (!error.empty()) {
    s.status = NicStatus::kError;
    s.detail = error;
    return s;
  }
  if (!has_port) {
    s.detail = "no port";
    return s;
  }
  auto carrier = read_carrier(host);
  if (carrier && *carrier) {
    s.status = NicStatus::kUp;
  } else if (!carrier) {
    s.detail = "link " + host + " is down or gone";
  } else {
    s.detail = no_carrier_detail;
  }
  return s;
}

AfPacketOptions af_packet_options(const Options& opts, unsigned rx_queues, unsigned workers) {
  AfPacketOptions ao;
  ao.rx_queues = rx_queues;
  ao.tx_workers = workers;
  ao.rx_block_bytes = opts.rx_block_bytes;
  ao.rx_blocks = opts.rx_blocks;
  ao.tx_frames = opts.tx_frames;
  return ao;
}

}  // namespace vpcd::dp
