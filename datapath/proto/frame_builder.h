// FrameBuilder: composes Ethernet frames with correct lengths and checksums, for tests, benchmarks and (later) frames
// the datapath generates itself, such as ICMP errors and ARP replies.
//
//   auto f = FrameBuilder().eth(src_mac, dst_mac).vlan(100).ipv4(a, b).udp(1000, 53).payload(bytes).build();
//
// Layers are set in any order; build() lays them out as Ethernet, VLAN tags (outer first), L3 (ARP / IPv4 / IPv6 +
// extension headers), L4 (UDP / TCP / ICMP / ICMPv6), payload, then zero padding up to pad_to(). IPv4 total length,
// IPv6 payload length, UDP length and every checksum are computed (UDP over IPv6 always gets a checksum). Without an
// L4 layer the payload follows L3 directly and the IP protocol comes from Ipv4Opts::proto / ipv6 next_hdr argument.
// Lengths are not range-checked: keep IP payloads under 64 KiB.
// Threading: a value type, one per thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "datapath/pipeline/packet.h"
#include "datapath/proto/ethernet.h"
#include "datapath/proto/ipv4.h"
#include "datapath/proto/ipv6.h"
#include "datapath/proto/l4.h"
#include "datapath/proto/types.h"

namespace vpcd::proto {

struct Ipv4Opts {
  uint8_t ttl = 64;
  uint8_t tos = 0;
  uint16_t id = 0;
  uint16_t frag_off = 0;  // host order: kIpv4FlagDf | kIpv4FlagMf | offset in 8-byte units
  uint8_t proto = 0xfd;   // used only without an L4 layer (0xfd: RFC 3692 experimentation)
  std::vector<uint8_t> options;  // raw option bytes; zero-padded to a multiple of 4 (at most 40 bytes kept)
};

struct TcpOpts {
  uint32_t seq = 0;
  uint32_t ack = 0;
  uint8_t flags = 0x02;  // SYN
  uint16_t window = 65535;
};

class FrameBuilder {
 public:
  FrameBuilder& eth(MacAddr src, MacAddr dst);
  FrameBuilder& vlan(uint16_t tci, uint16_t tpid = kEthTypeVlan);  // call again for an inner tag
  FrameBuilder& ethertype(uint16_t type);                           // raw L2: payload follows the tags
  FrameBuilder& arp(uint16_t op, MacAddr sha, Ipv4Addr spa, MacAddr tha, Ipv4Addr tpa);
  FrameBuilder& ipv4(Ipv4Addr src, Ipv4Addr dst, const Ipv4Opts& opts = {});
  FrameBuilder& ipv6(const Ipv6Addr& src, const Ipv6Addr& dst, uint8_t hop_limit = 64, uint8_t next_hdr = 0xfd);
  // An IPv6 hop-by-hop (0), routing (43) or destination-options (60) header of len_bytes (rounded up to a multiple of
  // 8 in 8..2048), padded with one PadN option; in call order after the fixed header.
  FrameBuilder& ipv6_ext(uint8_t type, size_t len_bytes = 8);
  FrameBuilder& ipv6_frag(uint16_t offset_units, bool more, uint32_t id = 1);
  FrameBuilder& udp(uint16_t src_port, uint16_t dst_port);
  FrameBuilder& tcp(uint16_t src_port, uint16_t dst_port, const TcpOpts& opts = {});
  // ICMP over IPv4 or ICMPv6 over IPv6: type, code, then the 4 "rest of header" bytes (id/seq for echo).
  FrameBuilder& icmp(uint8_t type, uint8_t code, uint32_t rest_of_header = 0);
  FrameBuilder& icmp_echo(bool request, uint16_t id, uint16_t seq);
  FrameBuilder& payload(std::span<const uint8_t> bytes);
  FrameBuilder& payload_size(size_t n_bytes);  // n bytes of a counting pattern
  FrameBuilder& pad_to(size_t min_len_bytes);

  std::vector<uint8_t> build() const;

 private:
  enum class L3 : uint8_t { kNone, kArp, kIpv4, kIpv6 };
  enum class L4 : uint8_t { kNone, kUdp, kTcp, kIcmp };
  enum class Echo : uint8_t { kNone, kRequest, kReply };
  struct Ext {
    uint8_t type;
    size_t len_bytes;
    uint16_t frag_off_flags;  // fragment header only
    uint32_t frag_id;
  };

  std::vector<uint8_t> build_l4(size_t l4_len_bytes) const;

  MacAddr eth_src_{{0x02, 0, 0, 0, 0, 1}};
  MacAddr eth_dst_{{0x02, 0, 0, 0, 0, 2}};
  std::vector<std::pair<uint16_t, uint16_t>> vlans_;  // {tpid, tci}, outer first
  uint16_t raw_ethertype_ = 0x88b5;  // IEEE local experimental, when there is no L3 layer
  L3 l3_ = L3::kNone;
  L4 l4_ = L4::kNone;
  // ARP
  uint16_t arp_op_ = 0;
  MacAddr arp_sha_, arp_tha_;
  Ipv4Addr arp_spa_, arp_tpa_;
  // IPv4 / IPv6
  Ipv4Addr ip4_src_, ip4_dst_;
  Ipv4Opts ip4_opts_;
  Ipv6Addr ip6_src_, ip6_dst_;
  uint8_t ip6_hop_limit_ = 64;
  uint8_t ip6_next_hdr_ = 0xfd;
  std::vector<Ext> ip6_exts_;
  // L4
  uint16_t src_port_ = 0, dst_port_ = 0;
  TcpOpts tcp_opts_;
  uint8_t icmp_type_ = 0, icmp_code_ = 0;
  Echo echo_ = Echo::kNone;  // icmp_echo(): ICMP or ICMPv6 echo type, chosen by the L3 layer
  uint32_t icmp_rest_ = 0;
  std::vector<uint8_t> payload_;
  size_t pad_to_ = 0;
};

// A Packet viewing buf (which must outlive it): data, len and wire_len set, metadata default.
inline dp::Packet make_packet(std::vector<uint8_t>& buf) noexcept {
  dp::Packet p;
  p.data = buf.data();
  p.len = uint32_t(buf.size());
  p.wire_len = uint32_t(buf.size());
  return p;
}

}  // namespace vpcd::proto
