// VXLAN decapsulation; behaviour and threading in vxlan_decap.h.
#include "datapath/stages/vxlan_decap.h"

#include <cstring>
#include <span>

#include "datapath/proto/ethernet.h"
#include "datapath/proto/gso.h"
#include "datapath/proto/l4.h"
#include "datapath/proto/vxlan.h"
#include "datapath/stages/parse.h"

namespace vpcd::dp {
// The checks and the rewrite from the VXLAN header on: vx points at the VXLAN header, vx_len bytes of VXLAN header and
// inner frame (>= kVxlanHdrLen + kEthHdrLen), p.ip4_src the outer source. partial_start >= 0: the inner frame's
// partial checksum starts there (the rest of p.vnet describes it), else the vnet header is cleared.
static DropReason decap_payload(Packet& p, const uint8_t* vx, size_t vx_len, int partial_start,
                                const VxlanDecapParams& c, VxlanDecapResult& out) noexcept;

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
  // A partial inner checksum (the sender's kernel left it to offload: CHECKSUM_PARTIAL across a veth underlay) stays
  // partial, re-based on the inner frame; everything else in the outer vnet header describes the outer packet.
  const size_t inner_off = size_t(p.l4_offset) + kUdpHdrLen + kVxlanHdrLen;
  const bool partial = (p.flags & kHasVnet) && (p.vnet.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) &&
                       p.vnet.csum_start >= inner_off;
  return decap_payload(p, udp + kUdpHdrLen, udp_len - kUdpHdrLen,
                       partial ? int(p.vnet.csum_start - inner_off) : -1, c, out);
}

bool is_udp_gso_frame(const Packet& p) noexcept {
  return (p.flags & kHasVnet) && (p.vnet.gso_type & uint8_t(~VIRTIO_NET_HDR_GSO_ECN)) == proto::kVnetGsoUdpL4;
}

DropReason vxlan_uso_check(const Packet& p, unsigned* segments) noexcept {
  using namespace proto;
  if (p.flags & kIsFragment) [[unlikely]]
    return DropReason::kVxlanOuterFragment;
  const uint32_t gso = p.vnet.gso_size;
  if (gso < kVxlanHdrLen + kEthHdrLen || p.l4_len < kUdpHdrLen) [[unlikely]]
    return DropReason::kVxlanBadGso;
  if (p.vnet.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
    // The kernel's USO needs the checksum at the outer UDP header (virtio_net_hdr_to_skb, __udp_gso_segment).
    if (p.vnet.csum_start != p.l4_offset || p.vnet.csum_offset != 6) [[unlikely]]
      return DropReason::kVxlanBadGso;
  } else if (!(p.vnet.flags & VIRTIO_NET_HDR_F_DATA_VALID)) {
    // A finished checksum over a super-datagram describes no single datagram: only "none" (0) can be taken.
    UdpHdr u;
    std::memcpy(&u, p.data + p.l4_offset, sizeof u);
    if (u.csum.raw != 0) [[unlikely]]
      return DropReason::kVxlanBadGso;
  }
  const uint32_t payload = uint32_t(p.l4_len) - uint32_t(kUdpHdrLen);
  if (payload == 0) [[unlikely]]
    return DropReason::kVxlanTruncated;
  const uint32_t n = (payload + gso - 1) / gso;
  if (n > kUsoMaxSegments) [[unlikely]]
    return DropReason::kVxlanBadGso;
  *segments = n;
  return DropReason::kCount;
}

DropReason vxlan_decap_uso_segment(Packet& c, const Packet& super, unsigned i, const VxlanDecapParams& params,
                                   VxlanDecapResult& out) noexcept {
  using namespace proto;
  const uint32_t gso = super.vnet.gso_size;
  const uint32_t payload = uint32_t(super.l4_len) - uint32_t(kUdpHdrLen);
  const uint32_t off = i * gso;
  if (off >= payload) [[unlikely]]
    return DropReason::kVxlanTruncated;
  const uint32_t len = payload - off < gso ? payload - off : gso;
  if (len < kVxlanHdrLen + kEthHdrLen) [[unlikely]]
    return DropReason::kVxlanTruncated;
  return decap_payload(c, super.data + super.l4_offset + kUdpHdrLen + off, len, -1, params, out);
}

static DropReason decap_payload(Packet& p, const uint8_t* vx, size_t vx_len, int partial_start,
                                const VxlanDecapParams& c, VxlanDecapResult& out) noexcept {
  using namespace proto;
  VxlanHdr v;
  std::memcpy(&v, vx, sizeof v);
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
  const uint8_t* inner = vx + kVxlanHdrLen;
  const size_t inner_len = vx_len - kVxlanHdrLen;
  // Inner VLAN tags are refused before anything else is read of the inner frame.
  be16 inner_type;
  std::memcpy(&inner_type, inner + 12, 2);
  if (is_vlan_tpid(inner_type.to_host())) [[unlikely]]
    return DropReason::kVxlanInnerVlan;
  p.data = const_cast<uint8_t*>(inner);
  p.len = uint32_t(inner_len);
  p.wire_len = uint32_t(inner_len);
  if (partial_start >= 0) {
    virtio_net_hdr rebased{};
    rebased.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    rebased.csum_start = uint16_t(partial_start);
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
