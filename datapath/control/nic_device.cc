// Shared parts of the NIC backends; see nic_device.h.
#include "datapath/control/nic_device.h"

#include <optional>

#include "datapath/controller.h"
#include "datapath/io/af_packet_port.h"
#include "datapath/io/kernel_fastpath.h"
#include "datapath/io/netlink.h"

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

// Carrier of IF: true, false, or nullopt (no such link, or administratively down). From rtnetlink in this thread's
// network namespace, not /sys/class/net (a vpcd started with nsenter --net, as the README's "inside a network
// namespace" does, still sees the host's sysfs), and IFF_LOWER_UP rather than SIOCGIFFLAGS's IFF_RUNNING: the kernel
// sets RUNNING from the operstate, which linkwatch updates up to a second after the carrier comes up.
std::optional<bool> read_carrier(const std::string& ifname) {
  auto li = link_by_name(ifname);
  if (!li || !li->up) return std::nullopt;
  return li->lower_up;
}

}  // namespace

std::optional<CarrierMap> read_carriers() {
  std::string err;
  auto nl = Netlink::open(&err);
  if (!nl) return std::nullopt;
  std::vector<LinkInfo> links;
  if (!nl->list_links(&links, &err)) return std::nullopt;
  CarrierMap out;
  out.reserve(links.size());
  for (auto& l : links)
    if (l.up) out.emplace(std::move(l.name), l.lower_up);
  return out;
}

NicState nic_state_now(const std::string& host, const std::string& error, bool has_port,
                       const std::string& no_carrier_detail, const CarrierMap* carriers) {
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
  std::optional<bool> carrier;
  if (carriers) {
    if (auto it = carriers->find(host); it != carriers->end()) carrier = it->second;
  } else {
    carrier = read_carrier(host);
  }
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
  ao.rx_queue_bytes = rings.rx_queue_bytes;
  ao.tx_frame_bytes = opts.tx_frame_bytes;
  ao.tx_frames = rings.tx_frames;
  ao.tx_big_frames = rings.tx_big_frames;
  return ao;
}

AfPacketOptions af_packet_options(const DeviceContext& ctx, unsigned rx_queues) {
  AfPacketOptions ao = af_packet_options(ctx.opts, rx_queues, ctx.workers);
  if (ctx.fastpath) ao.rx_filter_fd = ctx.fastpath->socket_filter_fd();
  return ao;
}

int attach_fastpath(AfPacketPort& port, const DeviceContext& ctx) {
  if (!ctx.fastpath) {
    KernelFastPath::detach(port.ifindex());
    return 0;
  }
  std::string e;
  if (!ctx.fastpath->attach(port.ifindex(), &e)) {
    std::fprintf(stderr, "vpcd: %s: kernel fast path not attached (%s); the NIC forwards through the pipeline\n",
                 port.ifname().c_str(), e.c_str());
    return 0;
  }
  port.set_fastpath(ctx.fastpath);
  return port.ifindex();
}

}  // namespace vpcd::dp
