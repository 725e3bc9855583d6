// Table-driven tests for the parse stage (datapath/stages/parse): real kernel captures and built frames with their
// expected metadata, at least one case per parse-group DropReason (checked), a truncation sweep over every prefix of
// every good frame (exact-size heap copies, so ASan catches any read past len), random corruption, and batch parsing.
#include "datapath/stages/parse.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "datapath/proto/frame_builder.h"
#include "datapath/proto/ipv4.h"
#include "datapath/proto/l4.h"
#include "tests/unit/proto/test_hex.h"

namespace vpcd::dp {
namespace {

using proto::FrameBuilder;
using proto::Ipv4Opts;
using proto::Ipv6Addr;
using testutil::from_hex;

constexpr uint8_t kVnetGsoUdpL4 = 5;  // not in Debian 12's <linux/virtio_net.h>
constexpr DropReason kOk = DropReason::kCount;

std::string_view verdict(DropReason r) { return r == kOk ? "accepted" : drop_reason_name(r); }

const MacAddr kMacA{{0x02, 0, 0, 0, 0, 0x0a}};
const MacAddr kMacB{{0x02, 0, 0, 0, 0, 0x0b}};
const Ipv4Addr kIpA{0x0a000001};  // 10.0.0.1
const Ipv4Addr kIpB{0x0a000002};  // 10.0.0.2
const Ipv6Addr kIp6A = *Ipv6Addr::parse("fd00::a");
const Ipv6Addr kIp6B = *Ipv6Addr::parse("fd00::b");

// Expected metadata of a frame that parses.
struct Want {
  uint16_t flags = 0;
  uint16_t ethertype = 0;
  uint16_t vlan_tci = 0;
  uint8_t l3_offset = 14;
  uint8_t ip_proto = 0;
  uint16_t l4_offset = 0;
  uint16_t l4_len = 0;
  uint32_t ip4_src = 0;
  uint32_t ip4_dst = 0;
  uint16_t src_port = 0;
  uint16_t dst_port = 0;
};

struct Case {
  std::string name;
  std::vector<uint8_t> bytes;
  DropReason drop = DropReason::kCount;  // kCount: must parse, with `want`
  Want want{};
  std::optional<virtio_net_hdr> vnet{};
  uint32_t wire_extra = 0;  // wire_len = len + wire_extra (the ring cut the frame)
  uint16_t port_flags = 0;  // flags the port set (kRxQueueFull)
};

FrameBuilder eth() { return FrameBuilder().eth(kMacA, kMacB); }

std::vector<uint8_t> set_byte(std::vector<uint8_t> b, size_t at, uint8_t v) {
  b.at(at) = v;
  return b;
}
std::vector<uint8_t> set_be16(std::vector<uint8_t> b, size_t at, uint16_t v) {
  b.at(at) = uint8_t(v >> 8);
  b.at(at + 1) = uint8_t(v);
  return b;
}
std::vector<uint8_t> cut(std::vector<uint8_t> b, size_t n) {
  b.resize(n);
  return b;
}

virtio_net_hdr vnet_gso(uint8_t type, uint16_t gso_size, uint16_t hdr_len) {
  virtio_net_hdr v{};
  v.gso_type = type;
  v.gso_size = gso_size;
  v.hdr_len = hdr_len;
  return v;
}
virtio_net_hdr vnet_csum(uint16_t start, uint16_t offset) {
  virtio_net_hdr v{};
  v.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  v.csum_start = start;
  v.csum_offset = offset;
  return v;
}

std::vector<uint8_t> ipv4_udp(size_t payload = 10) {
  return eth().ipv4(kIpA, kIpB).udp(1000, 53).payload_size(payload).build();
}
std::vector<uint8_t> ipv4_raw(uint8_t proto, size_t payload) {
  return eth().ipv4(kIpA, kIpB, {.proto = proto}).payload_size(payload).build();
}
std::vector<uint8_t> ipv6_raw(uint8_t next, size_t payload) {
  return eth().ipv6(kIp6A, kIp6B, 64, next).payload_size(payload).build();
}

constexpr uint16_t kV4Udp = kIsIpv4 | kIsUdp;
constexpr uint16_t kV4Tcp = kIsIpv4 | kIsTcp;
constexpr uint16_t kV6Udp = kIsIpv6 | kIsUdp;

std::vector<Case> make_cases() {
  using proto::kEthTypeQinQ;
  std::vector<Case> v;
  const uint32_t cap_a = 0x0afa0001, cap_b = 0x0afa0002;  // 10.250.0.1 / .2 in the capture

  // ---- Real frames from tests/data/kernel_frames.hex (Linux 6.18, veth, see capture_frames.py) ----
  v.push_back({"kernel_arp_request",
               from_hex("ffffffffffff fae36f258aaf 0806 0001 0800 06 04 0001 fae36f258aaf 0afa0001 000000000000 "
                        "0afa0002"),
               kOk, {.flags = kIsArp, .ethertype = 0x0806, .ip4_src = cap_a, .ip4_dst = cap_b}});
  v.push_back({"kernel_icmp_echo_request",
               from_hex("b2c04741247c fae36f258aaf 0800 4500002cba6c400040016a6e0afa00010afa0002 "
                        "0800f02744330001a569026b0000000018cf030000000000"),
               kOk, {.flags = kIsIpv4 | kIsIcmp, .ethertype = 0x0800, .ip_proto = 1, .l4_offset = 34, .l4_len = 24,
                    .ip4_src = cap_a, .ip4_dst = cap_b, .src_port = 0x4433, .dst_port = 0x0800}});
  v.push_back({"kernel_udp4",
               from_hex("b2c04741247c fae36f258aaf 0800 450000 27bf6340004011656c0afa00010afa0002 "
                        "a95614e90013161b 767063642d7564702d7634"),
               kOk, {.flags = kV4Udp, .ethertype = 0x0800, .ip_proto = 17, .l4_offset = 34, .l4_len = 19,
                    .ip4_src = cap_a, .ip4_dst = cap_b, .src_port = 0xa956, .dst_port = 5353}});
  v.push_back({"kernel_tcp_syn_with_options",
               from_hex("b2c04741247c fae36f258aaf 0800 4500003cb84e400040066c770afa00010afa0002 "
                        "b8c200096208947a00000000a002faf016250000020405b40402080a8c97686e000000000103030a"),
               kOk, {.flags = kV4Tcp, .ethertype = 0x0800, .ip_proto = 6, .l4_offset = 34, .l4_len = 40,
                    .ip4_src = cap_a, .ip4_dst = cap_b, .src_port = 0xb8c2, .dst_port = 9}});
  v.push_back({"kernel_icmpv6_neighbor_solicitation",
               from_hex("3333ff000002 fae36f258aaf 86dd 6000000000203aff fd000250000000000000000000000001 "
                        "ff0200000000000000000001ff000002 8700863f00000000fd0002500000000000000000000000020101"
                        "fae36f258aaf"),
               kOk, {.flags = kIsIpv6 | kIsIcmp, .ethertype = 0x86dd, .ip_proto = 58, .l4_offset = 54, .l4_len = 32,
                    .dst_port = 0x8700}});
  v.push_back({"kernel_mldv2_report_hop_by_hop",
               from_hex("333300000016 fae36f258aaf 86dd 600000000038000100000000000000000000000000000000 "
                        "ff020000000000000000000000000016 3a00050200000100 8f00e29a0000000204000000ff02000000000000"
                        "0000000001ff258aaf04000000ff0200000000000000000001ff000001"),
               kOk, {.flags = kIsIpv6 | kIsIcmp, .ethertype = 0x86dd, .ip_proto = 58, .l4_offset = 62, .l4_len = 48,
                    .dst_port = 0x8f00}});
  v.push_back({"kernel_icmpv6_echo_request",
               from_hex("b2c04741247c fae36f258aaf 86dd 600be0c700183a40 fd000250000000000000000000000001 "
                        "fd000250000000000000000000000002 80000ba344350001a569026b00000000855a040000000000"),
               kOk, {.flags = kIsIpv6 | kIsIcmp, .ethertype = 0x86dd, .ip_proto = 58, .l4_offset = 54, .l4_len = 24,
                    .src_port = 0x4435, .dst_port = 0x8000}});
  v.push_back({"kernel_udp6",
               from_hex("b2c04741247c fae36f258aaf 86dd 600e8e6200131140 fd000250000000000000000000000001 "
                        "fd000250000000000000000000000002 e20614e90013fec8767063642d7564702d7636"),
               kOk, {.flags = kV6Udp, .ethertype = 0x86dd, .ip_proto = 17, .l4_offset = 54, .l4_len = 19,
                    .src_port = 0xe206, .dst_port = 5353}});
  v.push_back({"kernel_icmpv6_router_solicitation",
               from_hex("333300000002 fae36f258aaf 86dd 6000000000103aff fe80000000000000f8e36ffffe258aaf "
                        "ff020000000000000000000000000002 850095bc000000000101fae36f258aaf"),
               kOk, {.flags = kIsIpv6 | kIsIcmp, .ethertype = 0x86dd, .ip_proto = 58, .l4_offset = 54, .l4_len = 16,
                    .dst_port = 0x8500}});

  // ---- Built frames that parse ----
  v.push_back({"ipv4_udp", ipv4_udp(), kOk,
               {.flags = kV4Udp, .ethertype = 0x0800, .ip_proto = 17, .l4_offset = 34, .l4_len = 18,
                .ip4_src = kIpA.v, .ip4_dst = kIpB.v, .src_port = 1000, .dst_port = 53}});
  v.push_back({"ipv4_udp_ethernet_padding", eth().ipv4(kIpA, kIpB).udp(1000, 53).payload_size(2).pad_to(60).build(),
               kOk, {.flags = kV4Udp, .ethertype = 0x0800, .ip_proto = 17, .l4_offset = 34, .l4_len = 10,
                    .ip4_src = kIpA.v, .ip4_dst = kIpB.v, .src_port = 1000, .dst_port = 53}});
  v.push_back({"ipv4_udp_len_shorter_than_ip_payload", set_be16(ipv4_udp(10), 38, 8), kOk,
               {.flags = kV4Udp, .ethertype = 0x0800, .ip_proto = 17, .l4_offset = 34, .l4_len = 18,
                .ip4_src = kIpA.v, .ip4_dst = kIpB.v, .src_port = 1000, .dst_port = 53}});
  v.push_back({"ipv4_options_tcp",
               eth().ipv4(kIpA, kIpB, {.options = {0x94, 0x04, 0, 0}}).tcp(40000, 443).payload_size(5).build(), kOk,
               {.flags = kV4Tcp, .ethertype = 0x0800, .ip_proto = 6, .l4_offset = 38, .l4_len = 25,
                .ip4_src = kIpA.v, .ip4_dst = kIpB.v, .src_port = 40000, .dst_port = 443}});
  v.push_back({"ipv4_tcp_doff_15_all_present",
               set_byte(eth().ipv4(kIpA, kIpB).tcp(1, 2).payload_size(40).build(), 46, 0xf0), kOk,
               {.flags = kV4Tcp, .ethertype = 0x0800, .ip_proto = 6, .l4_offset = 34, .l4_len = 60,
                .ip4_src = kIpA.v, .ip4_dst = kIpB.v, .src_port = 1, .dst_port = 2}});
  v.push_back({"ipv4_icmp_dest_unreachable", eth().ipv4(kIpA, kIpB).icmp(3, 1).payload_size(28).build(), kOk,
               {.flags = kIsIpv4 | kIsIcmp, .ethertype = 0x0800, .ip_proto = 1, .l4_offset = 34, .l4_len = 36,
                .ip4_src = kIpA.v, .ip4_dst = kIpB.v, .src_port = 0, .dst_port = 0x0301}});
  v.push_back({"ipv4_icmp_4_bytes_non_echo", cut(eth().ipv4(kIpA, kIpB).icmp(11, 0).build(), 38), kOk, {}});
  // tot_len must match the cut
  v.back().bytes = set_be16(v.back().bytes, 16, 24);
  v.back().want = {.flags = kIsIpv4 | kIsIcmp, .ethertype = 0x0800, .ip_proto = 1, .l4_offset = 34, .l4_len = 4,
                   .ip4_src = kIpA.v, .ip4_dst = kIpB.v, .dst_port = 0x0b00};
  v.push_back({"ipv4_unknown_protocol_gre", ipv4_raw(47, 12), kOk,
               {.flags = kIsIpv4, .ethertype = 0x0800, .ip_proto = 47, .ip4_src = kIpA.v, .ip4_dst = kIpB.v}});
  v.push_back({"ipv4_first_fragment_udp_len_spans_fragments",
               set_be16(eth().ipv4(kIpA, kIpB, {.frag_off = proto::kIpv4FlagMf}).udp(7, 8).payload_size(16).build(),
                        38, 1480),
               kOk, {.flags = kV4Udp | kIsFragment, .ethertype = 0x0800, .ip_proto = 17, .l4_offset = 34, .l4_len = 24,
                    .ip4_src = kIpA.v, .ip4_dst = kIpB.v, .src_port = 7, .dst_port = 8}});
  v.push_back({"ipv4_non_first_fragment_no_l4",
               eth().ipv4(kIpA, kIpB, {.frag_off = 185, .proto = 17}).payload_size(3).build(), kOk,
               {.flags = kIsIpv4 | kIsFragment, .ethertype = 0x0800, .ip_proto = 17, .ip4_src = kIpA.v,
                .ip4_dst = kIpB.v}});
  v.push_back({"ipv4_df_is_not_fragment",
               eth().ipv4(kIpA, kIpB, {.frag_off = proto::kIpv4FlagDf}).udp(7, 8).build(), kOk,
               {.flags = kV4Udp, .ethertype = 0x0800, .ip_proto = 17, .l4_offset = 34, .l4_len = 8,
                .ip4_src = kIpA.v, .ip4_dst = kIpB.v, .src_port = 7, .dst_port = 8}});
  v.push_back({"arp_reply", eth().arp(2, kMacA, kIpA, kMacB, kIpB).pad_to(60).build(), kOk,
               {.flags = kIsArp, .ethertype = 0x0806, .ip4_src = kIpA.v, .ip4_dst = kIpB.v}});
  v.push_back({"vlan_ipv4_udp", eth().vlan(0x2064).ipv4(kIpA, kIpB).udp(1, 2).build(), kOk,
               {.flags = kV4Udp | kHasVlan, .ethertype = 0x0800, .vlan_tci = 0x2064, .l3_offset = 18,
                .ip_proto = 17, .l4_offset = 38, .l4_len = 8, .ip4_src = kIpA.v, .ip4_dst = kIpB.v,
                .src_port = 1, .dst_port = 2}});
  v.push_back({"qinq_arp", eth().vlan(100, kEthTypeQinQ).vlan(200).arp(1, kMacA, kIpA, {}, kIpB).build(), kOk,
               {.flags = kIsArp | kHasVlan, .ethertype = 0x0806, .vlan_tci = 100, .l3_offset = 22,
                .ip4_src = kIpA.v, .ip4_dst = kIpB.v}});
  v.push_back({"unknown_ethertype_plain_l2", eth().ethertype(0x88b5).payload_size(46).build(), kOk,
               {.ethertype = 0x88b5}});
  v.push_back({"ieee_802_3_length_field_plain_l2", eth().ethertype(0x0026).payload_size(46).build(), kOk,
               {.ethertype = 0x0026}});
  v.push_back({"ethernet_header_only", eth().ethertype(0x88b5).build(), kOk, {.ethertype = 0x88b5}});
  v.push_back({"ipv6_udp", eth().ipv6(kIp6A, kIp6B).udp(5000, 53).payload_size(4).build(), kOk,
               {.flags = kV6Udp, .ethertype = 0x86dd, .ip_proto = 17, .l4_offset = 54, .l4_len = 12,
                .src_port = 5000, .dst_port = 53}});
  v.push_back({"ipv6_tcp_padded", eth().ipv6(kIp6A, kIp6B).tcp(5000, 80).pad_to(100).build(), kOk,
               {.flags = kIsIpv6 | kIsTcp, .ethertype = 0x86dd, .ip_proto = 6, .l4_offset = 54, .l4_len = 20,
                .src_port = 5000, .dst_port = 80}});
  v.push_back({"ipv6_icmpv6_echo_reply", eth().ipv6(kIp6A, kIp6B).icmp_echo(false, 77, 1).build(), kOk,
               {.flags = kIsIpv6 | kIsIcmp, .ethertype = 0x86dd, .ip_proto = 58, .l4_offset = 54, .l4_len = 8,
                .src_port = 77, .dst_port = 0x8100}});
  v.push_back({"ipv6_hop_dst_routing_then_udp",
               eth().ipv6(kIp6A, kIp6B).ipv6_ext(0, 8).ipv6_ext(60, 16).ipv6_ext(43, 24).udp(1, 2).build(), kOk,
               {.flags = kV6Udp, .ethertype = 0x86dd, .ip_proto = 17, .l4_offset = 54 + 48, .l4_len = 8,
                .src_port = 1, .dst_port = 2}});
  v.push_back({"ipv6_eight_ext_headers_is_the_limit",
               [] {
                 FrameBuilder b = eth().ipv6(kIp6A, kIp6B);
                 for (int i = 0; i < 8; ++i) b.ipv6_ext(60);
                 return b.udp(1, 2).build();
               }(),
               kOk, {.flags = kV6Udp, .ethertype = 0x86dd, .ip_proto = 17, .l4_offset = 54 + 64, .l4_len = 8,
                    .src_port = 1, .dst_port = 2}});
  v.push_back({"ipv6_first_fragment_udp", eth().ipv6(kIp6A, kIp6B).ipv6_frag(0, true).udp(1, 2).payload_size(8).build(),
               kOk, {.flags = kV6Udp | kIsFragment, .ethertype = 0x86dd, .ip_proto = 17, .l4_offset = 62,
                    .l4_len = 16, .src_port = 1, .dst_port = 2}});
  v.push_back({"ipv6_non_first_fragment_no_l4",
               eth().ipv6(kIp6A, kIp6B, 64, 17).ipv6_frag(100, false).payload_size(5).build(), kOk,
               {.flags = kIsIpv6 | kIsFragment, .ethertype = 0x86dd, .ip_proto = 17}});
  v.push_back({"ipv6_atomic_fragment_is_not_fragment",
               eth().ipv6(kIp6A, kIp6B).ipv6_frag(0, false).udp(1, 2).build(), kOk,
               {.flags = kV6Udp, .ethertype = 0x86dd, .ip_proto = 17, .l4_offset = 62, .l4_len = 8,
                .src_port = 1, .dst_port = 2}});
  v.push_back({"ipv6_esp_not_parsed", ipv6_raw(proto::kIpProtoEsp, 16), kOk,
               {.flags = kIsIpv6, .ethertype = 0x86dd, .ip_proto = 50}});
  v.push_back({"ipv6_no_next_header", ipv6_raw(proto::kIpProtoNoNext, 0), kOk,
               {.flags = kIsIpv6, .ethertype = 0x86dd, .ip_proto = 59}});
  v.push_back({"ipv6_carrying_icmpv4_is_unknown_l4", ipv6_raw(proto::kIpProtoIcmp, 1), kOk,
               {.flags = kIsIpv6, .ethertype = 0x86dd, .ip_proto = 1}});
  v.push_back({"ipv4_carrying_icmpv6_is_unknown_l4", ipv4_raw(proto::kIpProtoIcmpv6, 1), kOk,
               {.flags = kIsIpv4, .ethertype = 0x0800, .ip_proto = 58, .ip4_src = kIpA.v, .ip4_dst = kIpB.v}});

  // ---- virtio_net_hdr (kHasVnet) that is valid ----
  const auto tso64k = eth().ipv4(kIpA, kIpB).tcp(1, 2, {.flags = proto::kTcpAck}).payload_size(65535 - 40).build();
  v.push_back({"vnet_tso_v4_64k_super_frame", tso64k, kOk,
               {.flags = kV4Tcp | kHasVnet, .ethertype = 0x0800, .ip_proto = 6, .l4_offset = 34, .l4_len = 65515,
                .ip4_src = kIpA.v, .ip4_dst = kIpB.v, .src_port = 1, .dst_port = 2},
               [] {
                 auto h = vnet_gso(VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN, 1448, 54);
                 h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
                 h.csum_start = 34;
                 h.csum_offset = 16;
                 return h;
               }()});
  v.push_back({"vnet_tso_v6", eth().ipv6(kIp6A, kIp6B).tcp(1, 2).payload_size(3000).build(), kOk,
               {.flags = kIsIpv6 | kIsTcp | kHasVnet, .ethertype = 0x86dd, .ip_proto = 6, .l4_offset = 54,
                .l4_len = 3020, .src_port = 1, .dst_port = 2},
               vnet_gso(VIRTIO_NET_HDR_GSO_TCPV6, 1428, 74)});
  v.push_back({"vnet_udp_gso_len_field_zero", set_be16(ipv4_udp(4000), 38, 0), kOk,
               {.flags = kV4Udp | kHasVnet, .ethertype = 0x0800, .ip_proto = 17, .l4_offset = 34, .l4_len = 4008,
                .ip4_src = kIpA.v, .ip4_dst = kIpB.v, .src_port = 1000, .dst_port = 53},
               vnet_gso(kVnetGsoUdpL4, 1400, 42)});
  v.push_back({"vnet_needs_csum_at_last_bytes", ipv4_udp(10), kOk,
               {.flags = kV4Udp | kHasVnet, .ethertype = 0x0800, .ip_proto = 17, .l4_offset = 34, .l4_len = 18,
                .ip4_src = kIpA.v, .ip4_dst = kIpB.v, .src_port = 1000, .dst_port = 53},
               vnet_csum(34, 18 - 2)});
  v.push_back({"vnet_plain_no_offload", eth().ethertype(0x88b5).build(), kOk, {.flags = kHasVnet, .ethertype = 0x88b5},
               virtio_net_hdr{}});

  // ---- Drops: every parse-group reason ----
  const auto good_v4 = ipv4_udp();
  const auto good_v6 = eth().ipv6(kIp6A, kIp6B).udp(1, 2).payload_size(8).build();
  const auto good_arp = eth().arp(1, kMacA, kIpA, {}, kIpB).build();
  using D = DropReason;
  v.push_back({"truncated_by_ring", good_v4, D::kTruncated, {}, {}, 1});
  v.push_back({"truncated_checked_before_anything", cut(good_v4, 3), D::kTruncated, {}, {}, 100});
  v.push_back({"cut_because_the_rx_queue_was_full", good_v4, D::kRxQueueFull, {}, {}, 4000, kRxQueueFull});
  v.push_back({"empty_frame", {}, D::kTooShortEthernet});
  v.push_back({"thirteen_bytes", cut(good_v4, 13), D::kTooShortEthernet});
  v.push_back({"source_mac_multicast", FrameBuilder().eth(MacAddr{{0x01, 0, 0x5e, 0, 0, 1}}, kMacB).ethertype(0x88b5)
                                           .build(), D::kSourceMacMulticast});
  v.push_back({"source_mac_broadcast", FrameBuilder().eth(kBroadcastMac, kMacB).ethertype(0x88b5).build(),
               D::kSourceMacMulticast});
  v.push_back({"vlan_tag_cut", cut(eth().vlan(5).ipv4(kIpA, kIpB).build(), 16), D::kTooShortVlan});
  v.push_back({"second_vlan_tag_cut", cut(eth().vlan(5, kEthTypeQinQ).vlan(6).ethertype(0x88b5).build(), 20),
               D::kTooShortVlan});
  v.push_back({"three_vlan_tags", eth().vlan(1).vlan(2).vlan(3).ipv4(kIpA, kIpB).build(), D::kTooManyVlanTags});
  v.push_back({"arp_27_bytes", cut(good_arp, 14 + 27), D::kTooShortArp});
  v.push_back({"arp_htype_not_ethernet", set_byte(good_arp, 15, 6), D::kBadArpFormat});
  v.push_back({"arp_ptype_ipv6", set_be16(good_arp, 16, 0x86dd), D::kBadArpFormat});
  v.push_back({"arp_hlen_8", set_byte(good_arp, 18, 8), D::kBadArpFormat});
  v.push_back({"arp_plen_16", set_byte(good_arp, 19, 16), D::kBadArpFormat});
  v.push_back({"arp_op_3", set_be16(good_arp, 20, 3), D::kBadArpFormat});
  v.push_back({"arp_op_0", set_be16(good_arp, 20, 0), D::kBadArpFormat});
  v.push_back({"ipv4_19_bytes", cut(good_v4, 14 + 19), D::kTooShortIpv4});
  v.push_back({"ipv4_version_6", set_byte(good_v4, 14, 0x65), D::kBadIpv4Version});
  v.push_back({"ipv4_ihl_4", set_byte(good_v4, 14, 0x44), D::kBadIpv4HeaderLen});
  v.push_back({"ipv4_ihl_0", set_byte(good_v4, 14, 0x40), D::kBadIpv4HeaderLen});
  v.push_back({"ipv4_ihl_beyond_frame", set_byte(cut(good_v4, 14 + 24), 14, 0x47), D::kBadIpv4HeaderLen});
  v.push_back({"ipv4_tot_len_below_ihl", set_be16(good_v4, 16, 19), D::kBadIpv4TotalLen});
  v.push_back({"ipv4_tot_len_beyond_frame", set_be16(good_v4, 16, 39), D::kBadIpv4TotalLen});
  v.push_back({"ipv4_tot_len_zero_no_gso", set_be16(good_v4, 16, 0), D::kBadIpv4TotalLen});
  v.push_back({"ipv6_39_bytes", cut(good_v6, 14 + 39), D::kTooShortIpv6});
  v.push_back({"ipv6_version_4", set_byte(good_v6, 14, 0x40), D::kBadIpv6Version});
  v.push_back({"ipv6_payload_len_beyond_frame", set_be16(good_v6, 18, 17), D::kBadIpv6PayloadLen});
  v.push_back({"ipv6_ext_header_beyond_payload",
               set_byte(eth().ipv6(kIp6A, kIp6B).ipv6_ext(60, 8).udp(1, 2).build(), 55, 2), D::kBadIpv6ExtHeader});
  v.push_back({"ipv6_ext_header_first_bytes_missing", ipv6_raw(proto::kIpProtoHopOpts, 1), D::kBadIpv6ExtHeader});
  v.push_back({"ipv6_fragment_header_cut", ipv6_raw(proto::kIpProtoFragment, 7), D::kBadIpv6ExtHeader});
  v.push_back({"ipv6_nine_ext_headers",
               [] {
                 FrameBuilder b = eth().ipv6(kIp6A, kIp6B);
                 for (int i = 0; i < 9; ++i) b.ipv6_ext(60);
                 return b.udp(1, 2).build();
               }(),
               D::kBadIpv6ExtHeader});
  v.push_back({"tcp_19_bytes", ipv4_raw(proto::kIpProtoTcp, 19), D::kTooShortTcp});
  v.push_back({"tcp6_19_bytes", ipv6_raw(proto::kIpProtoTcp, 19), D::kTooShortTcp});
  v.push_back({"tcp_tiny_first_fragment",
               eth().ipv4(kIpA, kIpB, {.frag_off = proto::kIpv4FlagMf, .proto = 6}).payload_size(8).build(),
               D::kTooShortTcp});
  v.push_back({"tcp_doff_4", set_byte(eth().ipv4(kIpA, kIpB).tcp(1, 2).build(), 46, 0x40), D::kBadTcpHeaderLen});
  v.push_back({"tcp_doff_beyond_ip_payload",
               set_byte(eth().ipv4(kIpA, kIpB).tcp(1, 2).payload_size(39).pad_to(200).build(), 46, 0xf0),
               D::kBadTcpHeaderLen});
  v.push_back({"udp_7_bytes", ipv4_raw(proto::kIpProtoUdp, 7), D::kTooShortUdp});
  v.push_back({"udp6_7_bytes", ipv6_raw(proto::kIpProtoUdp, 7), D::kTooShortUdp});
  v.push_back({"udp_len_7", set_be16(good_v4, 38, 7), D::kBadUdpLen});
  v.push_back({"udp_len_beyond_ip_payload", set_be16(ipv4_udp(10), 38, 19), D::kBadUdpLen});
  v.push_back({"udp_len_zero_without_gso", set_be16(ipv4_udp(10), 38, 0), D::kBadUdpLen});
  v.push_back({"udp_first_fragment_len_7",
               set_be16(eth().ipv4(kIpA, kIpB, {.frag_off = proto::kIpv4FlagMf}).udp(7, 8).build(), 38, 7),
               D::kBadUdpLen});
  v.push_back({"udp_len_zero_with_tso_vnet_is_still_checked", set_be16(ipv4_udp(10), 38, 0), D::kBadUdpLen, {},
               vnet_gso(VIRTIO_NET_HDR_GSO_TCPV4, 1000, 42)});
  v.push_back({"icmp_3_bytes", ipv4_raw(proto::kIpProtoIcmp, 3), D::kTooShortIcmp});
  v.push_back({"icmpv6_3_bytes", ipv6_raw(proto::kIpProtoIcmpv6, 3), D::kTooShortIcmp});
  v.push_back({"icmp_echo_without_id", set_byte(ipv4_raw(proto::kIpProtoIcmp, 6), 34, 8), D::kTooShortIcmp});
  v.push_back({"icmpv6_echo_without_id", set_byte(ipv6_raw(proto::kIpProtoIcmpv6, 7), 54, 128), D::kTooShortIcmp});
  v.push_back({"vnet_csum_field_past_end", good_v4, D::kBadVnetHeader, {}, vnet_csum(34, 18 - 1)});
  v.push_back({"vnet_csum_start_past_end", good_v4, D::kBadVnetHeader, {}, vnet_csum(0xffff, 0xffff)});
  v.push_back({"vnet_gso_size_zero", good_v4, D::kBadVnetHeader, {}, vnet_gso(kVnetGsoUdpL4, 0, 42)});
  v.push_back({"vnet_hdr_len_past_end", good_v4, D::kBadVnetHeader, {},
               vnet_gso(kVnetGsoUdpL4, 1400, uint16_t(good_v4.size() + 1))});
  v.push_back({"vnet_unknown_gso_type", good_v4, D::kBadVnetHeader, {}, vnet_gso(2, 1400, 42)});
  v.push_back({"vnet_tcpv4_gso_on_udp", good_v4, D::kBadVnetHeader, {}, vnet_gso(VIRTIO_NET_HDR_GSO_TCPV4, 1400, 42)});
  v.push_back({"vnet_tcpv6_gso_on_ipv4_tcp", eth().ipv4(kIpA, kIpB).tcp(1, 2).build(), D::kBadVnetHeader, {},
               vnet_gso(VIRTIO_NET_HDR_GSO_TCPV6, 1400, 54)});
  v.push_back({"vnet_udp_gso_on_arp", good_arp, D::kBadVnetHeader, {}, vnet_gso(VIRTIO_NET_HDR_GSO_UDP, 1400, 42)});
  v.push_back({"vnet_gso_on_fragment",
               eth().ipv4(kIpA, kIpB, {.frag_off = proto::kIpv4FlagMf}).udp(7, 8).build(), D::kBadVnetHeader, {},
               vnet_gso(kVnetGsoUdpL4, 1400, 42)});
  return v;
}

const std::vector<Case> kCases = make_cases();

// A Packet over buf (an exact-size copy of the case's bytes) set up as the case says.
Packet packet_for(const Case& c, std::vector<uint8_t>& buf) {
  Packet p = proto::make_packet(buf);
  p.wire_len += c.wire_extra;
  p.flags |= c.port_flags;
  if (c.vnet) {
    p.vnet = *c.vnet;
    p.flags |= kHasVnet;
  }
  return p;
}

void expect_metadata(const Packet& p, const Want& w) {
  EXPECT_EQ(p.flags, w.flags);
  EXPECT_EQ(p.ethertype, w.ethertype);
  EXPECT_EQ(p.vlan_tci, w.vlan_tci);
  EXPECT_EQ(p.l3_offset, w.l3_offset);
  EXPECT_EQ(p.ip_proto, w.ip_proto);
  EXPECT_EQ(p.l4_offset, w.l4_offset);
  EXPECT_EQ(p.l4_len, w.l4_len);
  EXPECT_EQ(p.ip4_src.v, w.ip4_src);
  EXPECT_EQ(p.ip4_dst.v, w.ip4_dst);
  EXPECT_EQ(p.src_port, w.src_port);
  EXPECT_EQ(p.dst_port, w.dst_port);
}

bool same_metadata(const Packet& a, const Packet& b) {
  return a.flags == b.flags && a.ethertype == b.ethertype && a.vlan_tci == b.vlan_tci && a.l3_offset == b.l3_offset &&
         a.ip_proto == b.ip_proto && a.l4_offset == b.l4_offset && a.l4_len == b.l4_len && a.ip4_src == b.ip4_src &&
         a.ip4_dst == b.ip4_dst && a.src_port == b.src_port && a.dst_port == b.dst_port;
}

// Offsets of an accepted packet stay inside its bytes.
void expect_in_bounds(const Packet& p) {
  EXPECT_LE(p.l3_offset, p.len);
  if (p.l4_offset != 0) {
    EXPECT_GE(p.l4_offset, p.l3_offset);
    EXPECT_LE(size_t(p.l4_offset) + p.l4_len, p.len);
  }
}

TEST(Parse, Cases) {
  size_t checked = 0;
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.name);
    std::vector<uint8_t> buf = c.bytes;
    Packet p = packet_for(c, buf);
    p.in_port = 3;
    p.out_port = 9;
    parse(p);
    EXPECT_EQ(verdict(p.drop), verdict(c.drop));
    if (c.drop == DropReason::kCount) {
      expect_metadata(p, c.want);
      expect_in_bounds(p);
    } else {
      EXPECT_TRUE(is_parse_drop(p.drop));
    }
    EXPECT_EQ(p.in_port, 3);
    EXPECT_EQ(p.out_port, 9);
    EXPECT_EQ(buf, c.bytes);  // the parser never writes the frame
    ++checked;
  }
  EXPECT_EQ(checked, kCases.size());
}

// OVS test-flows style: replay every frame captured from the kernel (tests/data/kernel_frames.hex); all must parse.
// GSO super-frames come with the virtio_net_hdr the kernel gave PACKET_VNET_HDR, and must parse with it.
TEST(Parse, ReplaysKernelCapture) {
  // VPCD_SOURCE_DIR (CMake) rather than __FILE__: ccache's base_dir makes __FILE__ relative to the build dir.
  const auto path = std::filesystem::path(VPCD_SOURCE_DIR) / "tests/data/kernel_frames.hex";
  std::ifstream in(path);
  ASSERT_TRUE(in) << path;
  size_t frames = 0, gso_frames = 0;
  std::set<uint16_t> l4_kinds;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    SCOPED_TRACE(line.substr(0, 80));
    std::istringstream fields(line);
    std::string first, vnet_hex, frame_hex;
    fields >> first;
    const bool has_vnet = first == "vnet";
    if (has_vnet) {
      fields >> vnet_hex >> frame_hex;
    } else {
      frame_hex = first;
    }
    std::vector<uint8_t> buf = from_hex(frame_hex);
    buf.shrink_to_fit();
    Packet p = proto::make_packet(buf);
    if (has_vnet) {
      const auto v = from_hex(vnet_hex);
      ASSERT_EQ(v.size(), sizeof(virtio_net_hdr));
      std::memcpy(&p.vnet, v.data(), sizeof(virtio_net_hdr));  // little-endian fields, as on x86
      p.flags |= kHasVnet;
    }
    parse(p);
    ++frames;
    EXPECT_FALSE(p.dropped()) << verdict(p.drop);
    expect_in_bounds(p);
    l4_kinds.insert(p.flags & (kIsTcp | kIsUdp | kIsIcmp | kIsArp));
    if (has_vnet && p.vnet.gso_type != VIRTIO_NET_HDR_GSO_NONE) {
      ++gso_frames;
      // A super-frame: one L4 header, more payload than one segment, and the IP length covers all of it.
      EXPECT_GT(p.l4_len, p.vnet.gso_size);
      EXPECT_EQ(size_t(p.l4_offset) + p.l4_len, p.len);
      EXPECT_LE(p.vnet.hdr_len, p.len);
    }
  }
  std::printf("checked %zu captured frames (%zu GSO super-frames)\n", frames, gso_frames);
  EXPECT_GE(frames, 20u);
  EXPECT_GE(gso_frames, 2u);  // a UDP_L4 and a TCPV4 super-frame
  EXPECT_GE(l4_kinds.size(), 4u);
}

TEST(Parse, EveryParseDropReasonHasACase) {
  std::set<DropReason> covered;
  for (const Case& c : kCases) {
    if (c.drop != DropReason::kCount) covered.insert(c.drop);
  }
  size_t n = 0;
  for (size_t r = size_t(kFirstParseDrop); r <= size_t(kLastParseDrop); ++r, ++n) {
    SCOPED_TRACE(drop_reason_name(DropReason(r)));
    EXPECT_TRUE(covered.count(DropReason(r)));
  }
  EXPECT_EQ(n, 22u);  // update with drop_reason.h when the parse group changes
  for (DropReason r : covered) EXPECT_TRUE(is_parse_drop(r)) << drop_reason_name(r);
}

TEST(Parse, ResetsStaleMetadataAndKeepsVnetFlag) {
  auto bytes = eth().ethertype(0x88b5).build();
  Packet p = proto::make_packet(bytes);
  p.flags = kIsIpv4 | kIsTcp | kHasVlan | kIsFragment | kHasVnet;
  p.ethertype = 0x0800;
  p.vlan_tci = 7;
  p.ip_proto = 6;
  p.l4_offset = 34;
  p.l4_len = 100;
  p.ip4_src = kIpA;
  p.src_port = 5;
  p.dst_port = 6;
  p.drop = DropReason::kTooShortTcp;
  parse(p);
  EXPECT_FALSE(p.dropped());
  expect_metadata(p, {.flags = kHasVnet, .ethertype = 0x88b5});
}

// Every prefix of every good frame must be dropped or parse to exactly the full frame's metadata (the cut only removed
// padding or unparsed payload); with wire_len left at the full size it must be kTruncated. Each prefix is its own
// exact-size heap allocation, so under ASan any read past len faults.
TEST(Parse, TruncationSweep) {
  size_t prefixes = 0, accepted = 0;
  for (const Case& c : kCases) {
    if (c.drop != DropReason::kCount) continue;
    SCOPED_TRACE(c.name);
    std::vector<uint8_t> full_buf = c.bytes;
    Packet full = packet_for(c, full_buf);
    parse(full);
    ASSERT_FALSE(full.dropped());
    const size_t n_full = c.bytes.size();
    for (size_t n = 0; n < n_full; ++n) {
      if (n_full > 4096 && n > 512 && n < n_full - 512) continue;  // big GSO frames: headers and tail only
      SCOPED_TRACE(n);
      std::vector<uint8_t> buf(c.bytes.begin(), c.bytes.begin() + ptrdiff_t(n));
      buf.shrink_to_fit();
      Packet p = packet_for(c, buf);
      p.wire_len = uint32_t(n);
      parse(p);
      ++prefixes;
      if (p.dropped()) {
        ASSERT_TRUE(is_parse_drop(p.drop)) << verdict(p.drop);
        if (n < 14) {
          EXPECT_TRUE(p.drop == DropReason::kTooShortEthernet || p.drop == DropReason::kBadVnetHeader);
        }
      } else {
        ++accepted;
        EXPECT_TRUE(same_metadata(p, full));
        expect_in_bounds(p);
      }
      Packet cut_by_ring = packet_for(c, buf);
      cut_by_ring.wire_len = uint32_t(n_full);
      parse(cut_by_ring);
      EXPECT_EQ(cut_by_ring.drop, DropReason::kTruncated);
    }
  }
  EXPECT_GT(prefixes, 5000u);
  EXPECT_GT(accepted, 0u);  // padded and plain-L2 frames accept some prefixes
}

// Random byte corruption of good frames: whatever the verdict, no out-of-bounds read (ASan) and accepted offsets stay
// inside the frame.
TEST(Parse, RandomCorruptionStaysInBounds) {
  std::mt19937 rng(1234);
  size_t dropped = 0, total = 0;
  for (const Case& c : kCases) {
    if (c.drop != DropReason::kCount || c.bytes.size() > 4096 || c.bytes.empty()) continue;
    SCOPED_TRACE(c.name);
    for (int iter = 0; iter < 300; ++iter) {
      std::vector<uint8_t> buf = c.bytes;
      const size_t limit = std::min<size_t>(buf.size(), 80);  // the header area
      const int flips = 1 + int(rng() % 4);
      for (int k = 0; k < flips; ++k) buf[rng() % limit] = uint8_t(rng());
      buf.resize(buf.size() - rng() % std::min<size_t>(buf.size(), 8));
      buf.shrink_to_fit();
      Packet p = packet_for(c, buf);
      p.wire_len = p.len;
      parse(p);
      ++total;
      if (p.dropped()) {
        ++dropped;
        ASSERT_TRUE(is_parse_drop(p.drop));
      } else {
        expect_in_bounds(p);
      }
    }
  }
  EXPECT_GT(dropped, 0u);
  EXPECT_LT(dropped, total);
}

// parse() takes a fast path for untagged IPv4 TCP/UDP frames; parse_general() never does. Both must give the same
// verdict and metadata on every frame: the cases, every prefix of them, and many corruptions aimed at the fields the
// fast path reads (EtherType, version/IHL, total length, fragment bits, protocol, TCP data offset, UDP length), with
// and without random virtio_net_hdrs, starting from stale metadata.
TEST(Parse, FastPathAgreesWithGeneralParser) {
  std::mt19937 rng(4321);
  const size_t kHot[] = {6, 12, 13, 14, 16, 17, 20, 21, 23, 38, 39, 46};  // bytes the fast path decides on
  const uint8_t kGso[] = {VIRTIO_NET_HDR_GSO_NONE, VIRTIO_NET_HDR_GSO_TCPV4, VIRTIO_NET_HDR_GSO_TCPV6,
                          VIRTIO_NET_HDR_GSO_UDP, kVnetGsoUdpL4, 7};
  size_t compared = 0, fast_shaped = 0;
  const auto compare = [&](const Case& c, std::vector<uint8_t> buf, bool random_vnet) {
    buf.shrink_to_fit();
    Packet a = packet_for(c, buf);
    if (random_vnet) {
      a.flags |= kHasVnet;
      a.vnet.flags = uint8_t(rng() % 2 ? VIRTIO_NET_HDR_F_NEEDS_CSUM : 0);
      a.vnet.gso_type = kGso[rng() % std::size(kGso)];
      a.vnet.gso_size = uint16_t(rng() % 3 == 0 ? 0 : 1 + rng() % 1500);
      a.vnet.hdr_len = uint16_t(rng() % (buf.size() + 16));
      a.vnet.csum_start = uint16_t(rng() % (buf.size() + 8));
      a.vnet.csum_offset = uint16_t(rng() % 24);
    }
    a.ethertype = 0x1234;  // stale metadata from an earlier life of the slot
    a.vlan_tci = 9;
    a.l4_offset = 77;
    a.src_port = 1;
    a.ip4_dst = kIpB;
    Packet b = a;
    parse(a);
    parse_general(b);
    ASSERT_EQ(verdict(a.drop), verdict(b.drop));
    ASSERT_TRUE(same_metadata(a, b));
    ++compared;
    if (!a.dropped() && (a.flags & kIsIpv4) && (a.flags & (kIsTcp | kIsUdp)) && !(a.flags & (kHasVlan | kIsFragment)) &&
        a.l4_offset == 34)
      ++fast_shaped;
  };
  for (const Case& c : kCases) {
    if (c.bytes.size() > 4096) continue;
    SCOPED_TRACE(c.name);
    compare(c, c.bytes, false);
    for (size_t n = 0; n < c.bytes.size() && n < 80; ++n)
      compare(c, std::vector<uint8_t>(c.bytes.begin(), c.bytes.begin() + ptrdiff_t(n)), false);
    for (int iter = 0; iter < 800; ++iter) {
      std::vector<uint8_t> buf = c.bytes;
      const int flips = 1 + int(rng() % 3);
      for (int k = 0; k < flips; ++k) {
        const size_t at = rng() % 2 ? kHot[rng() % std::size(kHot)] : rng() % std::min<size_t>(buf.size() + 1, 64);
        if (at < buf.size()) buf[at] = rng() % 2 ? uint8_t(rng()) : uint8_t(buf[at] ^ (1u << (rng() % 8)));
      }
      if (rng() % 4 == 0) buf.resize(buf.size() - rng() % std::min<size_t>(buf.size() + 1, 24));
      compare(c, std::move(buf), rng() % 3 == 0);
    }
  }
  EXPECT_GT(compared, 10000u);
  EXPECT_GT(fast_shaped, 1000u);  // the comparison did cover frames the fast path takes
}

TEST(Parse, BatchMatchesSingle) {
  std::vector<std::vector<uint8_t>> bufs;
  bufs.reserve(kCases.size());
  std::vector<Packet> batch;
  batch.reserve(kCases.size());
  for (const Case& c : kCases) {
    bufs.push_back(c.bytes);
    batch.push_back(packet_for(c, bufs.back()));
  }
  std::vector<Packet*> ptrs;
  for (Packet& p : batch) ptrs.push_back(&p);
  parse_batch(ptrs);
  for (size_t i = 0; i < kCases.size(); ++i) {
    SCOPED_TRACE(kCases[i].name);
    std::vector<uint8_t> buf = kCases[i].bytes;
    Packet single = packet_for(kCases[i], buf);
    parse(single);
    EXPECT_EQ(batch[i].drop, single.drop);
    EXPECT_TRUE(same_metadata(batch[i], single));
  }
  parse_batch({});  // empty batch is fine
}

}  // namespace
}  // namespace vpcd::dp
