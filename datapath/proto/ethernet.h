// Ethernet II and 802.1Q / 802.1ad wire formats and EtherType constants.
//
// Wire structs hold network byte order in be16/be32 (datapath/proto/types.h); read them with Cursor::try_read().
// Threading: plain data, no state.
#pragma once

#include <cstddef>
#include <cstdint>

#include "datapath/proto/types.h"

namespace vpcd::proto {

inline constexpr uint16_t kEthTypeIpv4 = 0x0800;
inline constexpr uint16_t kEthTypeArp = 0x0806;
inline constexpr uint16_t kEthTypeVlan = 0x8100;  // 802.1Q C-tag
inline constexpr uint16_t kEthTypeQinQ = 0x88a8;  // 802.1ad S-tag
inline constexpr uint16_t kEthTypeIpv6 = 0x86dd;
inline constexpr uint16_t kEthTypeMinType = 0x0600;  // below this the field is an 802.3 length

inline constexpr size_t kEthHdrLen = 14;
inline constexpr size_t kVlanHdrLen = 4;
inline constexpr size_t kEthMinFrameLen = 60;  // without FCS
inline constexpr uint16_t kVlanVidMask = 0x0fff;

constexpr bool is_vlan_tpid(uint16_t ethertype) noexcept {
  return ethertype == kEthTypeVlan || ethertype == kEthTypeQinQ;
}

struct EthHdr {
  MacAddr dst;
  MacAddr src;
  be16 ethertype;
};
static_assert(sizeof(EthHdr) == kEthHdrLen);

// The 4 bytes after a TPID: tag control (PCP/DEI/VID) and the next EtherType.
struct VlanHdr {
  be16 tci;
  be16 ethertype;
};
static_assert(sizeof(VlanHdr) == kVlanHdrLen);

}  // namespace vpcd::proto
