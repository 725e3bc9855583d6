// Stage "parse": validates a frame's headers with explicit bounds checks and fills the Packet metadata
// (flags, ethertype, vlan_tci, l3_offset, ip_proto, l4_offset, l4_len, ip4_src/ip4_dst, src_port/dst_port).
//
// Either every checked header is consistent and p.drop stays DropReason::kCount, or p.drop is one of the parse-group
// reasons (kTooShortEthernet .. kSourceMacMulticast in drop_reason.h); the caller counts drops per reason. The parser
// only reads bytes in [data, data + len) and never writes the frame. Rules (OVS lib/flow.c style):
// - len < wire_len (the ring cut the frame): kTruncated, checked first.
// - kHasVnet set: NEEDS_CSUM needs csum_start + csum_offset + 2 <= len; a GSO type must be TCPV4, UDP, TCPV6 or UDP_L4
//   with gso_size > 0 and hdr_len <= len, and must match the parsed headers (TCPV4: IPv4+TCP, TCPV6: IPv6+TCP,
//   UDP/UDP_L4: UDP; never a fragment). Otherwise kBadVnetHeader.
// - Ethernet: 14 bytes; a multicast source MAC is kSourceMacMulticast. Up to two 802.1Q/802.1ad tags (a third is
//   kTooManyVlanTags); vlan_tci holds the outer tag. Unknown EtherTypes are not drops: plain L2, no L3 flags.
// - ARP: Ethernet/IPv4 only (htype 1, ptype 0x0800, hlen 6, plen 4, op 1 or 2); ip4_src/ip4_dst = SPA/TPA.
// - IPv4: version 4, 20 <= ihl*4 <= available, ihl*4 <= tot_len <= available (Ethernet padding after tot_len is
//   ignored; GSO super-frames with tot_len up to 65535 are ordinary here). MF or offset > 0 sets kIsFragment; non-first
//   fragments get no L4 parse.
// - IPv6: version 6, 40 + payload_len <= available; walks at most kMaxIpv6ExtHeaders hop-by-hop / routing / fragment /
//   destination-options headers (kBadIpv6ExtHeader when one is cut short or there are more). A fragment header with
//   M or offset > 0 sets kIsFragment; after a non-first fragment nothing more is parsed. Other next headers (ESP, AH,
//   no-next, ...) end the walk with ip_proto set and no L4 parse.
// - TCP: 20 bytes, 5 <= doff and doff*4 <= L4 bytes. UDP: 8 bytes, 8 <= udp.len <= L4 bytes, except (a) in a first
//   fragment, where only 8 <= udp.len is required (the datagram continues in later fragments), and (b) in a UDP GSO
//   super-frame (kHasVnet with gso_type UDP or UDP_L4), where udp.len is not checked at all: the segmenter rewrites it
//   per segment, so it carries no information we rely on. (Linux 6.18 writes the whole length there, see the UDP_L4
//   frame in tests/data/kernel_frames.hex, but GRO/BIG-packet paths may differ; nothing downstream reads it.)
//   ICMP (IPv4 proto 1) / ICMPv6 (IPv6 next header 58): 4 bytes; echo request/reply need 8. dst_port = type << 8 |
//   code; src_port = echo identifier (0 for other types).
// - l4_offset/l4_len are set only when an L4 header was parsed; l4_len is the L4 byte count stated by IP.
// Not supported: IPv6 jumbograms / BIG TCP (payload_len 0, tot_len 0) are dropped as bad lengths.
//
// Threading: pure functions of the packet; call from any worker on its own packets.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>

#include "datapath/config/dataplane_config.h"
#include "datapath/pipeline/drop_reason.h"
#include "datapath/pipeline/packet.h"
#include "datapath/pipeline/worker_context.h"

namespace vpcd::dp {

inline constexpr std::string_view kParseStageName = "parse";
inline constexpr size_t kMaxIpv6ExtHeaders = 8;
inline constexpr size_t kMaxVlanTags = 2;

// The parse group of DropReason is the contiguous range [kFirstParseDrop, kLastParseDrop].
inline constexpr DropReason kFirstParseDrop = DropReason::kTooShortEthernet;
inline constexpr DropReason kLastParseDrop = DropReason::kSourceMacMulticast;
constexpr bool is_parse_drop(DropReason r) noexcept {
  return size_t(r) >= size_t(kFirstParseDrop) && size_t(r) <= size_t(kLastParseDrop);
}

// Resets the metadata (keeping kHasVnet, kRxQueueFull, in_port, out_port, vnet) and parses p. On failure sets p.drop.
// The common frame (untagged IPv4 without options, not a fragment, TCP or UDP) takes a fast path of direct loads;
// the result is the same as parse_general's.
void parse(Packet& p) noexcept;

// parse() without the fast path: every frame through the bounds-checked general parser. For the tests that check
// both agree.
void parse_general(Packet& p) noexcept;

// parse() on every packet of the batch.
void parse_batch(std::span<Packet* const> pkts) noexcept;

// The pipeline stage: parse(), then next = the first stage the input port's feature bitmap enables (kDrop on a
// parse drop).
struct ParseStage {
  static constexpr std::string_view kName = kParseStageName;
  static constexpr Next kId = Next::kParse;
  static NextSet process(WorkerContext& ctx, const DataplaneConfig& cfg, std::span<Packet* const> pkts) noexcept;
};

}  // namespace vpcd::dp
