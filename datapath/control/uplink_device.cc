// Uplink ports; see uplink_device.h.
#include "datapath/control/uplink_device.h"

#include "datapath/control/nic_device.h"
#include "datapath/controller.h"
#include "datapath/io/af_packet_port.h"
#include "datapath/io/netlink.h"
#include "datapath/io/uplink_os.h"

namespace vpcd::dp {

UplinkDevice open_uplink(const UplinkSpec& u, const Options& opts, unsigned workers, std::string* err) {
  UplinkDevice dev;
  if (!prepare_uplink(u.ifname, err)) return dev;
  auto li = link_by_name(u.ifname, err);
  if (!li) {
    if (err->empty()) *err = "uplink interface " + u.ifname + " does not exist";
    release_uplink(u.ifname);
    return dev;
  }
  dev.mac = li->mac;
  dev.mtu = li->mtu;
  auto port = AfPacketPort::open(u.ifname, af_packet_options(opts, 1, workers, /*uplink=*/true), err);
  if (!port) {
    *err = "af_packet on uplink " + u.ifname + ": " + *err;
    release_uplink(u.ifname);
    return dev;
  }
  dev.io = std::move(port);
  return dev;
}

void release_uplink_device(const std::string& ifname) { release_uplink(ifname); }

}  // namespace vpcd::dp
