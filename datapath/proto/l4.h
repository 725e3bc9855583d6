// TCP (RFC 9293), UDP (RFC 768) and ICMP/ICMPv6 (RFC 792 / RFC 4443) wire formats.
//
// Threading: plain data, no state.
#pragma once

#include <cstddef>
#include <cstdint>

#include "datapath/proto/ipv4.h"
#include "datapath/proto/types.h"

namespace vpcd::proto {

inline constexpr size_t kTcpMinHdrLen = 20;
inline constexpr size_t kUdpHdrLen = 8;
inline constexpr size_t kIcmpHdrLen = 4;   // type, code, checksum
inline constexpr size_t kIcmpEchoLen = 8;  // plus identifier and sequence

inline constexpr uint8_t kTcpFin = 0x01;
inline constexpr uint8_t kTcpSyn = 0x02;
inline constexpr uint8_t kTcpRst = 0x04;
inline constexpr uint8_t kTcpPsh = 0x08;
inline constexpr uint8_t kTcpAck = 0x10;
inline constexpr uint8_t kTcpUrg = 0x20;

inline constexpr uint8_t kIcmpEchoReply = 0;
inline constexpr uint8_t kIcmpDestUnreachable = 3;
inline constexpr uint8_t kIcmpEchoRequest = 8;
inline constexpr uint8_t kIcmpTimeExceeded = 11;
inline constexpr uint8_t kIcmpv6DestUnreachable = 1;
inline constexpr uint8_t kIcmpv6PacketTooBig = 2;
inline constexpr uint8_t kIcmpv6TimeExceeded = 3;
inline constexpr uint8_t kIcmpv6EchoRequest = 128;
inline constexpr uint8_t kIcmpv6EchoReply = 129;

struct TcpHdr {
  be16 src_port;
  be16 dst_port;
  be32 seq;
  be32 ack;
  uint8_t doff_rsvd;  // data offset in 32-bit words (high nibble)
  uint8_t flags;      // CWR ECE URG ACK PSH RST SYN FIN
  be16 window;
  be16 csum;
  be16 urg_ptr;

  constexpr size_t hdr_len_bytes() const noexcept { return size_t(doff_rsvd >> 4) * 4; }
};
static_assert(sizeof(TcpHdr) == kTcpMinHdrLen);

struct UdpHdr {
  be16 src_port;
  be16 dst_port;
  be16 len;  // header + payload
  be16 csum;
};
static_assert(sizeof(UdpHdr) == kUdpHdrLen);

struct IcmpHdr {
  uint8_t type;
  uint8_t code;
  be16 csum;
};
static_assert(sizeof(IcmpHdr) == kIcmpHdrLen);

// ICMP / ICMPv6 echo request and reply.
struct IcmpEchoHdr {
  uint8_t type;
  uint8_t code;
  be16 csum;
  be16 id;
  be16 seq;
};
static_assert(sizeof(IcmpEchoHdr) == kIcmpEchoLen);

constexpr bool is_icmp_echo(uint8_t ip_proto, uint8_t type) noexcept {
  return ip_proto == kIpProtoIcmp ? (type == kIcmpEchoRequest || type == kIcmpEchoReply)
                       : (type == kIcmpv6EchoRequest || type == kIcmpv6EchoReply);
}

}  // namespace vpcd::proto
