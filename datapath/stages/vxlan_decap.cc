// VXLAN decapsulation; behaviour and threading in vxlan_decap.h.
#include "datapath/stages/vxlan_decap.h"

#include <cstring>
#include <span>

#include "datapath/proto/ethernet.h"
#include "datapath/proto/l4.h"
#include "datapath/proto/vxlan.h"
#include "datapath/stages/parse.h"

namespace vpcd::dp {

DropReason vxlan_decap(Packet& p, const VxlanDecapParams& c, VxlanDecapResult& out) noexcept {
  using namespace proto;
  if (p.flags & kIsFragment) [[unlikely]]
    return DropReason::kVxlanOuterFragment;
  // parse checked 8 <= udp.len <= the L4 bytes IP states, and that those bytes are in the frame.
  const uint8_t* udp = p.data + p.l4_offset;
  UdpHdr u;
  std::memcpy(&u, udp, sizeof u);
  const size_t udp_len = u.len.to_host();
  if (udp_len < kUdpHdrLen + kVxlanHdrLen + kEthHdrLen) [[unlikely]]
    return DropReason::kVxlanTruncated;
  const bool data_valid = (p.flags & kHasVnet) && (p.vnet.flags & VIRTIO_NET_HDR_F_DATA_VALID);
  // A sender on this machine (a kernel vxlan device across a veth underlay, udpcsum on) leaves a checksum to
  // offload: NEEDS_CSUM at the outer UDP (the field holds the pseudo-header sum), or inside the inner frame (local
  // checksum offload: the outer sum is right only once the inner field is filled in). Nothing crossed a wire, and
  // the bytes are not final: there is nothing to verify yet.
  const bool outer_partial = (p.flags & kHasVnet) && (p.vnet.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM);
  if (u.csum.raw != 0 && !data_valid && !outer_partial &&
      !vxlan_udp_checksum_ok(p.ip4_src, p.ip4_dst, std::span<const uint8_t>(udp, udp_len))) [[unlikely]]
    return DropReason::kVxlanBadUdpChecksum;
  VxlanHdr v;
  std::memcpy(&v, udp + kUdpHdrLen, sizeof v);
  if (!v.has_vni()) [[unlikely]]
    return DropReason::kVxlanBadFlags;
  const uint16_t vpc = c.table->vpc_of_vni(v.vni());
  if (vpc == OverlayTable::kNone) [[unlikely]]
    return DropReason::kVxlanUnknownVni;
  const uint16_t tunnel = c.table->tunnel(vpc, p.ip4_src);
  if (tunnel == OverlayTable::kNone) [[unlikely]]
    return DropReason::kVxlanUnknownVtep;
  out.vpc = vpc;
  out.tunnel = tunnel;
  out.remote = p.ip4_src;

  // The inner frame: exactly what the UDP length states (outer Ethernet padding is not part of it).
  const size_t inner_off = size_t(p.l4_offset) + kUdpHdrLen + kVxlanHdrLen;
  const size_t inner_len = udp_len - kUdpHdrLen - kVxlanHdrLen;
  // Inner VLAN tags are refused before anything else is read of the inner frame.
  be16 inner_type;
  std::memcpy(&inner_type, p.data + inner_off + 12, 2);
  if (is_vlan_tpid(inner_type.to_host())) [[unlikely]]
    return DropReason::kVxlanInnerVlan;
  p.data += inner_off;
  p.len = uint32_t(inner_len);
  p.wire_len = uint32_t(inner_len);
  // A partial inner checksum (the sender's kernel left it to offload: CHECKSUM_PARTIAL across a veth underlay) stays
  // partial, re-based on the inner frame; everything else in the outer vnet header describes the outer packet.
  const bool partial = (p.flags & kHasVnet) && (p.vnet.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) &&
                       p.vnet.csum_start >= inner_off;
  if (partial) {
    virtio_net_hdr rebased{};
    rebased.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    rebased.csum_start = uint16_t(p.vnet.csum_start - inner_off);
    rebased.csum_offset = p.vnet.csum_offset;
    p.vnet = rebased;
    p.flags = kHasVnet;
  } else {
    p.vnet = virtio_net_hdr{};
    p.flags = 0;
  }
  parse(p);
  if (p.dropped()) [[unlikely]]
    return p.drop;
  if (p.flags & kHasVlan) [[unlikely]]
    return DropReason::kVxlanInnerVlan;
  return DropReason::kCount;
}

}  // namespace vpcd::dp
