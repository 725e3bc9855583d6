// The MAC address of a VPC's router, derived from the VPC's VNI. The datapath answers ARP for the VPC's gateways with
// it and routes frames sent to it; the API refuses it as a NIC's or remote NIC's MAC (such a guest would be
// unreachable). Both sides include this header so they can never disagree.
//
// Threading: a pure function.
#pragma once

#include <cstdint>

#include "datapath/proto/types.h"

namespace vpcd {

// 02:76:70:VV:VV:VV (locally administered, unicast; "vp" in ASCII), VV the 24-bit VNI: unique per VPC on a box, and
// the same on every box that carries the VPC.
inline MacAddr router_mac_for(uint32_t vni) {
  return MacAddr{{0x02, 0x76, 0x70, uint8_t(vni >> 16), uint8_t(vni >> 8), uint8_t(vni)}};
}

}  // namespace vpcd
