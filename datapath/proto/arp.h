// ARP for Ethernet/IPv4 (RFC 826) wire format.
//
// The protocol addresses sit at unaligned offsets (14 and 24), so they are kept as byte arrays and read through
// accessors instead of be32 members (which would force padding into the struct).
// Threading: plain data, no state.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "datapath/proto/types.h"

namespace vpcd::proto {

inline constexpr uint16_t kArpHtypeEthernet = 1;
inline constexpr uint16_t kArpOpRequest = 1;
inline constexpr uint16_t kArpOpReply = 2;
inline constexpr size_t kArpEthIpv4Len = 28;

struct ArpHdr {
  be16 htype;
  be16 ptype;
  uint8_t hlen;
  uint8_t plen;
  be16 op;
  MacAddr sha;
  std::array<uint8_t, 4> spa;
  MacAddr tha;
  std::array<uint8_t, 4> tpa;

  Ipv4Addr sender_ip() const noexcept { return load(spa); }
  Ipv4Addr target_ip() const noexcept { return load(tpa); }
  void set_sender_ip(Ipv4Addr a) noexcept { store(spa, a); }
  void set_target_ip(Ipv4Addr a) noexcept { store(tpa, a); }

 private:
  static Ipv4Addr load(const std::array<uint8_t, 4>& b) noexcept {
    be32 v;
    std::memcpy(&v, b.data(), 4);
    return Ipv4Addr::from_be(v);
  }
  static void store(std::array<uint8_t, 4>& b, Ipv4Addr a) noexcept {
    be32 v = a.to_be();
    std::memcpy(b.data(), &v, 4);
  }
};
static_assert(sizeof(ArpHdr) == kArpEthIpv4Len);

}  // namespace vpcd::proto
