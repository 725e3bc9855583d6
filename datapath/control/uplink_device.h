// The uplink as a port kind driven by AfPacketPort: prepares the interface (datapath/io/uplink_os.h: GRO/LRO off,
// tc ingress drop so only vpcd handles its frames, link up), reads its MAC and MTU, and opens the rings (one rx
// queue, a tx ring per worker). release() removes the ingress filter when the uplink is deleted.
// Threading: control thread only, in vpcd's network namespace.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "datapath/io/port.h"
#include "datapath/spec.h"

namespace vpcd::dp {

struct Options;

struct UplinkDevice {
  std::unique_ptr<PortIo> io;
  MacAddr mac;
  uint32_t mtu = 1500;
};

// nullopt-like: io null and *err set on failure (nothing left installed).
UplinkDevice open_uplink(const UplinkSpec& u, const Options& opts, unsigned workers, std::string* err);
void release_uplink_device(const std::string& ifname);

}  // namespace vpcd::dp
