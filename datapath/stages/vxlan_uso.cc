// VXLAN by UDP segmentation offload; behaviour, limits and threading in vxlan_uso.h.
#include "datapath/stages/vxlan_uso.h"

#include <cstring>

#include "datapath/proto/checksum.h"
#include "datapath/proto/gso.h"
#include "datapath/stages/vxlan_decap.h"

namespace vpcd::dp {

UsoPlan vxlan_uso_plan(const Packet& p) noexcept {
  UsoPlan plan;
  const size_t n = proto::gso_segment_count(p);
  const size_t seg_max = proto::gso_max_segment_bytes(p);
  if (n == 0 || seg_max == 0) return plan;
  const size_t chunk = proto::kVxlanHdrLen + seg_max;
  const size_t room = kUsoMaxFrameBytes - kUsoOuterBytes;  // < kUsoMaxIpLen - 28: the frame limit is the tighter
  if (chunk > room) return plan;
  size_t per = room / chunk;
  if (per > kUsoTxMaxSegments) per = kUsoTxMaxSegments;
  plan.segments = n;
  plan.chunk = chunk;
  plan.per_frame = per;
  return plan;
}

size_t vxlan_uso_frame(const Packet& p, const UsoPlan& plan, const proto::VxlanOuter& tmpl, size_t first, size_t count,
                       uint8_t* out, size_t cap, virtio_net_hdr* vnet) noexcept {
  using namespace proto;
  if (count == 0 || count > plan.per_frame || first + count > plan.segments || cap < kUsoFrameBytes) return 0;
  const size_t seg_max = plan.chunk - kVxlanHdrLen;
  size_t pos = kUsoOuterBytes;
  for (size_t i = first; i < first + count; ++i) {
    std::memcpy(out + pos, &tmpl.vxlan, kVxlanHdrLen);
    GsoSegment seg;
    if (!gso_segment_one(p, i, GsoCsum::kSoftware, out + pos + kVxlanHdrLen, seg_max, &seg)) return 0;
    // Every chunk but the frame's last must be exactly gso_size: the kernel cuts at gso_size.
    if (i + 1 < first + count && seg.len != seg_max) return 0;
    pos += kVxlanHdrLen + seg.len;
  }
  VxlanOuter o = tmpl;
  finish_vxlan_outer(o, uint32_t(pos - kVxlanOverhead), o.udp.src_port.to_host());
  // NEEDS_CSUM: the field holds the folded pseudo-header sum over the whole length; __udp_gso_segment adjusts it per
  // datagram, the checksum offload (or the kernel) completes it.
  o.udp.csum = be16::from_host(
      fold_sum(ipv4_pseudo_sum(Ipv4Addr::from_be(o.ip.src), Ipv4Addr::from_be(o.ip.dst), kIpProtoUdp,
                               o.udp.len.to_host())));
  std::memcpy(out, o.bytes(), kUsoOuterBytes);
  *vnet = virtio_net_hdr{};
  vnet->flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  vnet->gso_type = count > 1 ? kVnetGsoUdpL4 : VIRTIO_NET_HDR_GSO_NONE;
  vnet->hdr_len = uint16_t(kUsoOuterBytes);
  vnet->gso_size = count > 1 ? uint16_t(plan.chunk) : 0;
  vnet->csum_start = uint16_t(kEthHdrLen + kIpv4MinHdrLen);
  vnet->csum_offset = 6;
  return pos;
}

}  // namespace vpcd::dp
