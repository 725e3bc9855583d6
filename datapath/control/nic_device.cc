// Shared parts of the NIC backends; see nic_device.h.
#include "datapath/control/nic_device.h"

#include <fstream>
#include <optional>

#include "datapath/controller.h"
#include "datapath/io/af_packet_port.h"

namespace vpcd::dp {

std::unique_ptr<NicDevice> make_tap_device(const TapBackend& b);
std::unique_ptr<NicDevice> make_netns_device(const NicSpec& nic, const NetnsBackend& b);
std::unique_ptr<NicDevice> make_vhost_user_device(const VhostUserBackend& b);

std::unique_ptr<NicDevice> make_nic_device(const NicSpec& nic, const Options&) {
  if (const auto* t = std::get_if<TapBackend>(&nic.backend)) return make_tap_device(*t);
  if (const auto* v = std::get_if<VhostUserBackend>(&nic.backend)) return make_vhost_user_device(*v);
  return make_netns_device(nic, std::get<NetnsBackend>(nic.backend));
}

namespace {

// /sys/class/net/IF/carrier: 1, 0, or nullopt (no such link, or administratively down: EINVAL).
std::optional<bool> read_carrier(const std::string& ifname) {
  std::ifstream f("/sys/class/net/" + ifname + "/carrier");
  int v = -1;
  if (!(f >> v)) return std::nullopt;
  return v == 1;
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

AfPacketOptions af_packet_options(const Options& opts, unsigned rx_queues, unsigned workers, bool uplink) {
  const Options::Rings& rings = uplink ? opts.uplink_rings : opts.guest_rings;
  AfPacketOptions ao;
  ao.rx_queues = rx_queues;
  ao.tx_workers = workers;
  ao.rx_ring = opts.rx_ring_v3 ? RxRing::kV3 : RxRing::kV2;
  ao.rx_block_bytes = opts.rx_block_bytes;
  ao.rx_blocks = opts.rx_blocks;
  ao.rx_frame_bytes = opts.rx_frame_bytes;
  ao.rx_frames = rings.rx_frames;
  ao.tx_frame_bytes = opts.tx_frame_bytes;
  ao.tx_frames = rings.tx_frames;
  return ao;
}

}  // namespace vpcd::dp
