// A packet in flight: a view of a frame in an RX ring (or a test buffer, or a buffer of the worker's PacketPool) plus
// the metadata the stages fill in.
//
// The frame bytes are not owned: they live in the RX ring block (TPACKET_V3) until the worker has run the whole batch
// and returned the block, or in the PacketPool buffer `buf` (frames a stage generated or kept), which the runner
// frees after output. `vnet` is the virtio_net_hdr the kernel gave with the frame (PACKET_VNET_HDR): GSO super-frames
// and partial checksums travel with it unchanged to the output port, which writes it back in front of the frame.
#pragma once

// <linux/virtio_net.h> names a member `class` (struct virtio_net_ctrl_hdr), a C++ keyword: rename it while including.
// Nothing in vpcd uses that struct.
#define class class_
#include <linux/virtio_net.h>
#undef class

#include <cstddef>
#include <cstdint>

#include "datapath/pipeline/drop_reason.h"
#include "datapath/pipeline/stage.h"
#include "datapath/proto/types.h"

namespace vpcd::dp {

inline constexpr uint16_t kInvalidPort = 0xffff;
inline constexpr uint16_t kNoVpcIndex = 0xffff;  // Packet::vpc / PortConfig::vpc: no VPC (yet)
inline constexpr uint16_t kNoBuf = 0xffff;       // Packet::buf: the bytes are not a PacketPool buffer
inline constexpr uint16_t kFloodPort = 0xfffe;  // out_port value: flood within the VPC
inline constexpr uint16_t kFloodUnknownPort = 0xfffd;  // out_port value: unknown unicast, to VpcConfig::flood_unknown

// Parsed-header flags (Packet::flags).
enum PacketFlags : uint16_t {
  kHasVlan = 1 << 0,
  kIsArp = 1 << 1,
  kIsIpv4 = 1 << 2,
  kIsIpv6 = 1 << 3,
  kIsTcp = 1 << 4,
  kIsUdp = 1 << 5,
  kIsIcmp = 1 << 6,    // ICMP or ICMPv6
  kIsFragment = 1 << 7,  // IPv4/IPv6 fragment: MF set or offset > 0 (non-first: no L4 header parsed)
  kHasVnet = 1 << 8,     // vnet header present and meaningful
  kCtTracked = 1 << 9,   // conntrack's state machine has seen this packet (firewall-ingress does not run it again)
  // A GSO super-frame vxlan-encap sends to the uplink whole: output cuts it into segments (datapath/proto/gso.h),
  // each written with the outer headers at `prefix` (a template: lengths and checksums are stamped per segment)
  // straight into the port's transmit ring (PortIo::tx_slot_acquire).
  kSegmentOnTx = 1 << 10,
  // Set by the port: the frame was cut short (len < wire_len) because the socket's queue for frames larger than a ring
  // slot was full, not because it was captured short; parse drops it as rx_queue_full instead of truncated.
  kRxQueueFull = 1 << 11,
};

// Layout: the first 64 bytes hold every field the common path (parse, port security, switching, routing, conntrack,
// output) reads or writes, the last 16 what only some packets need (outer headers, the receive time). Not padded to a
// cache line: a stage loops over a chunk's packets in array order, so what counts is the bytes per packet (a chunk,
// kMaxBatch in worker_context.h, must stay in L1 across the stages together with its frames).
struct Packet {
  // ---- hot: the first 64 bytes ----
  uint8_t* data = nullptr;  // first byte of the Ethernet header
  uint32_t len = 0;         // bytes available at data
  uint32_t wire_len = 0;    // original frame length (>= len when the ring truncated it)
  Ipv4Addr ip4_src, ip4_dst;  // when kIsIpv4 (and for ARP: sender / target protocol address)
  virtio_net_hdr vnet{};    // as received; host byte order fields on x86 (virtio 1.0 little-endian)
  // Logical input port: the NIC's port, or for a decapsulated frame the tunnel pseudo-port of (VPC, source VTEP).
  uint16_t in_port = kInvalidPort;
  uint16_t out_port = kInvalidPort;  // a port index, kFloodPort, or kInvalidPort
  uint16_t vpc = kNoVpcIndex;        // VPC slot (DataplaneConfig::vpcs); set by the runner or by vxlan-decap
  uint16_t acct_port = kInvalidPort;  // the port a drop is charged to (in_port unless an egress stage says otherwise)
  uint16_t buf = kNoBuf;              // PacketPool buffer owning `data`, or kNoBuf
  uint16_t prefix_len = 0;            // bytes at `prefix` the output port writes in front of `data` (outer headers)
  uint16_t flags = 0;
  uint16_t ethertype = 0;  // host order, after VLAN tags
  uint16_t vlan_tci = 0;   // host order, when kHasVlan
  uint16_t l4_offset = 0;  // from data; 0 when no L4 header was parsed
  uint16_t l4_len = 0;     // L4 header + payload bytes as stated by IP
  uint16_t src_port = 0, dst_port = 0;  // TCP/UDP host order, ICMP: type/code and id
  uint8_t l3_offset = 0;   // from data; Ethernet + VLAN tags
  uint8_t ip_proto = 0;    // IPv4 protocol / IPv6 upper-layer next header (after the extension headers)
  Next next = Next::kParse;           // the stage this packet goes to next (stage.h); kDrop with `drop` set
  DropReason drop = DropReason::kCount;  // kCount = not dropped

  // ---- cold ----
  const uint8_t* prefix = nullptr;    // meaningful only when prefix_len != 0
  uint64_t ts_ns = 0;                 // receive time (CLOCK_REALTIME ns) when the port gives one, else 0

  const uint8_t* dst_mac() const noexcept { return data; }
  const uint8_t* src_mac() const noexcept { return data + 6; }
  bool dropped() const noexcept { return drop != DropReason::kCount; }
  // Marks the packet dropped for reason r: the runner charges it to acct_port (in_port when unset).
  void drop_with(DropReason r) noexcept {
    drop = r;
    next = Next::kDrop;
  }
};

static_assert(offsetof(Packet, prefix) == 64 && sizeof(Packet) == 80, "Packet: 64 hot bytes, then 16 cold ones");
static_assert(sizeof(DropReason) == 1 && sizeof(Next) == 1);

// The stage after `after` among `features` (next_stage), skipping the ARP responder for a packet that is not ARP (it
// would only pass it on): one stage dispatch less per packet on the common path. Worked out once per input port, for
// ARP and for everything else; NextFor(features, after)(p) is p's next stage.
struct NextFor {
  Next arp = Next::kDrop, other = Next::kDrop;
  constexpr NextFor() noexcept = default;
  constexpr NextFor(uint32_t features, Next after) noexcept
      : arp(next_stage(features, after)),
        other(arp == Next::kArpResponder ? next_stage(features, Next::kArpResponder) : arp) {}
  constexpr Next operator()(const Packet& p) const noexcept { return (p.flags & kIsArp) ? arp : other; }
};

}  // namespace vpcd::dp
