// Stage "parse": header validation and metadata extraction. Rules and threading: see parse.h.
#include "datapath/stages/parse.h"

#include <cstring>

#include "datapath/pipeline/input_runs.h"
#include "datapath/pipeline/packet.h"  // includes <linux/virtio_net.h> C++-safely
#include "datapath/proto/arp.h"
#include "datapath/proto/cursor.h"
#include "datapath/proto/ethernet.h"
#include "datapath/proto/ipv4.h"
#include "datapath/proto/ipv6.h"
#include "datapath/proto/l4.h"

namespace vpcd::dp {
namespace {

using namespace vpcd::proto;

constexpr DropReason kOk = DropReason::kCount;

// VIRTIO_NET_HDR_GSO_UDP_L4 (UDP segmentation offload) came to the uapi header after Debian 12's linux-libc-dev 6.1,
// so it is spelled out here; the running 6.18 kernel emits it (see tests/data/kernel_frames.hex).
constexpr uint8_t kVnetGsoUdpL4 = 5;

uint8_t vnet_gso_type(const Packet& p) noexcept {
  if (!(p.flags & kHasVnet)) return VIRTIO_NET_HDR_GSO_NONE;
  return p.vnet.gso_type & uint8_t(~VIRTIO_NET_HDR_GSO_ECN);
}

bool is_udp_gso(uint8_t gso) noexcept { return gso == VIRTIO_NET_HDR_GSO_UDP || gso == kVnetGsoUdpL4; }

// Checks the virtio_net_hdr against the frame length, before any header is read.
DropReason check_vnet(const Packet& p) noexcept {
  const virtio_net_hdr& v = p.vnet;
  if (v.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
    if (uint32_t(v.csum_start) + uint32_t(v.csum_offset) + 2 > p.len) [[unlikely]]
      return DropReason::kBadVnetHeader;
  }
  const uint8_t gso = vnet_gso_type(p);
  if (gso == VIRTIO_NET_HDR_GSO_NONE) return kOk;
  const bool known = gso == VIRTIO_NET_HDR_GSO_TCPV4 || gso == VIRTIO_NET_HDR_GSO_TCPV6 || is_udp_gso(gso);
  if (!known || v.gso_size == 0 || v.hdr_len > p.len) [[unlikely]]
    return DropReason::kBadVnetHeader;
  return kOk;
}

// Checks that a GSO type describes the headers that were parsed.
DropReason check_vnet_matches(const Packet& p, uint8_t gso) noexcept {
  if (p.flags & kIsFragment) return DropReason::kBadVnetHeader;
  bool ok = false;
  switch (gso) {
    case VIRTIO_NET_HDR_GSO_TCPV4:
      ok = (p.flags & kIsIpv4) && (p.flags & kIsTcp);
      break;
    case VIRTIO_NET_HDR_GSO_TCPV6:
      ok = (p.flags & kIsIpv6) && (p.flags & kIsTcp);
      break;
    default:  // UDP (UFO) or UDP_L4 (USO); check_vnet() allowed nothing else
      ok = (p.flags & kIsUdp) != 0;
      break;
  }
  return ok ? kOk : DropReason::kBadVnetHeader;
}

DropReason parse_arp(Packet& p, Cursor& c) noexcept {
  ArpHdr a;
  if (!c.try_read(a)) [[unlikely]]
    return DropReason::kTooShortArp;
  const uint16_t op = a.op.to_host();
  if (a.htype.to_host() != kArpHtypeEthernet || a.ptype.to_host() != kEthTypeIpv4 || a.hlen != 6 || a.plen != 4 ||
      (op != kArpOpRequest && op != kArpOpReply)) [[unlikely]]
    return DropReason::kBadArpFormat;
  p.flags |= kIsArp;
  p.ip4_src = a.sender_ip();
  p.ip4_dst = a.target_ip();
  return kOk;
}

// c spans exactly the L4 bytes stated by IP. first_fragment: MF set with offset 0.
DropReason parse_l4(Packet& p, Cursor& c, bool first_fragment) noexcept {
  const size_t l4_bytes = c.remaining();
  switch (p.ip_proto) {
    case kIpProtoTcp: {
      TcpHdr t;
      if (!c.try_peek(t)) [[unlikely]]
        return DropReason::kTooShortTcp;
      const size_t hl = t.hdr_len_bytes();
      if (hl < kTcpMinHdrLen || hl > l4_bytes) [[unlikely]]
        return DropReason::kBadTcpHeaderLen;
      p.flags |= kIsTcp;
      p.src_port = t.src_port.to_host();
      p.dst_port = t.dst_port.to_host();
      break;
    }
    case kIpProtoUdp: {
      UdpHdr u;
      if (!c.try_peek(u)) [[unlikely]]
        return DropReason::kTooShortUdp;
      const size_t ulen = u.len.to_host();
      if (!is_udp_gso(vnet_gso_type(p))) {
        if (ulen < kUdpHdrLen || (!first_fragment && ulen > l4_bytes)) [[unlikely]]
          return DropReason::kBadUdpLen;
      }
      p.flags |= kIsUdp;
      p.src_port = u.src_port.to_host();
      p.dst_port = u.dst_port.to_host();
      break;
    }
    case kIpProtoIcmp:
    case kIpProtoIcmpv6: {
      // ICMP belongs to IPv4 and ICMPv6 to IPv6; the other pairing is an unknown upper layer.
      if ((p.ip_proto == kIpProtoIcmp) != ((p.flags & kIsIpv4) != 0)) return kOk;
      IcmpHdr h;
      if (!c.try_peek(h)) [[unlikely]]
        return DropReason::kTooShortIcmp;
      uint16_t id = 0;
      if (is_icmp_echo(p.ip_proto, h.type)) {
        IcmpEchoHdr e;
        if (!c.try_peek(e)) [[unlikely]]
          return DropReason::kTooShortIcmp;
        id = e.id.to_host();
      }
      p.flags |= kIsIcmp;
      p.src_port = id;
      p.dst_port = uint16_t(uint16_t(h.type) << 8 | h.code);
      break;
    }
    default:
      return kOk;  // an upper layer we do not look into
  }
  p.l4_offset = uint16_t(c.offset());
  p.l4_len = uint16_t(l4_bytes);
  return kOk;
}

DropReason parse_ipv4(Packet& p, Cursor& c) noexcept {
  Ipv4Hdr h;
  if (!c.try_peek(h)) [[unlikely]]
    return DropReason::kTooShortIpv4;
  if (h.version() != 4) [[unlikely]]
    return DropReason::kBadIpv4Version;
  const size_t avail = c.remaining();
  const size_t hl = h.hdr_len_bytes();
  if (hl < kIpv4MinHdrLen || hl > avail) [[unlikely]]
    return DropReason::kBadIpv4HeaderLen;
  const size_t tot = h.tot_len.to_host();
  if (tot < hl || tot > avail) [[unlikely]]
    return DropReason::kBadIpv4TotalLen;

  p.flags |= kIsIpv4;
  p.ip_proto = h.proto;
  p.ip4_src = Ipv4Addr::from_be(h.src);
  p.ip4_dst = Ipv4Addr::from_be(h.dst);
  c.limit(tot);  // drop Ethernet padding
  c.try_skip(hl);
  bool first_fragment = false;
  if (h.is_fragment()) {
    p.flags |= kIsFragment;
    if (h.frag_offset_units() != 0) return kOk;  // no L4 header in this fragment
    first_fragment = true;
  }
  return parse_l4(p, c, first_fragment);
}

DropReason parse_ipv6(Packet& p, Cursor& c) noexcept {
  Ipv6Hdr h;
  if (!c.try_read(h)) [[unlikely]]
    return DropReason::kTooShortIpv6;
  if (h.version() != 6) [[unlikely]]
    return DropReason::kBadIpv6Version;
  const size_t payload = h.payload_len.to_host();
  if (payload > c.remaining()) [[unlikely]]
    return DropReason::kBadIpv6PayloadLen;
  p.flags |= kIsIpv6;
  c.limit(payload);

  uint8_t next = h.next_hdr;
  bool first_fragment = false;
  for (size_t walked = 0;; ++walked) {
    const bool ext = next == kIpProtoHopOpts || next == kIpProtoRouting || next == kIpProtoDstOpts ||
                     next == kIpProtoFragment;
    if (!ext) break;
    if (walked == kMaxIpv6ExtHeaders) [[unlikely]]
      return DropReason::kBadIpv6ExtHeader;
    if (next == kIpProtoFragment) {
      Ipv6FragHdr f;
      if (!c.try_read(f)) [[unlikely]]
        return DropReason::kBadIpv6ExtHeader;
      next = f.next_hdr;
      if (f.offset_units() != 0) {  // non-first fragment: the rest is payload data
        p.flags |= kIsFragment;
        p.ip_proto = next;
        return kOk;
      }
      if (f.more_fragments()) {  // offset 0 and M clear is an atomic fragment (RFC 6946): not a fragment
        p.flags |= kIsFragment;
        first_fragment = true;
      }
    } else {
      Ipv6ExtHdr e;
      if (!c.try_peek(e) || !c.try_skip(e.len_bytes())) [[unlikely]]
        return DropReason::kBadIpv6ExtHeader;
      next = e.next_hdr;
    }
  }
  p.ip_proto = next;
  return parse_l4(p, c, first_fragment);
}

DropReason parse_frame(Packet& p) noexcept {
  if (p.len < p.wire_len) [[unlikely]]
    return (p.flags & kRxQueueFull) ? DropReason::kRxQueueFull : DropReason::kTruncated;
  if (p.flags & kHasVnet) {
    if (DropReason r = check_vnet(p); r != kOk) [[unlikely]]
      return r;
  }

  Cursor c(p.data, p.len);
  EthHdr eth;
  if (!c.try_read(eth)) [[unlikely]]
    return DropReason::kTooShortEthernet;
  if (eth.src.is_multicast()) [[unlikely]]
    return DropReason::kSourceMacMulticast;
  uint16_t type = eth.ethertype.to_host();
  for (size_t tags = 0; is_vlan_tpid(type); ++tags) {
    if (tags == kMaxVlanTags) [[unlikely]]
      return DropReason::kTooManyVlanTags;
    VlanHdr v;
    if (!c.try_read(v)) [[unlikely]]
      return DropReason::kTooShortVlan;
    if (tags == 0) {
      p.flags |= kHasVlan;
      p.vlan_tci = v.tci.to_host();
    }
    type = v.ethertype.to_host();
  }
  p.ethertype = type;
  p.l3_offset = uint8_t(c.offset());

  DropReason r = kOk;
  switch (type) {
    case kEthTypeArp:
      r = parse_arp(p, c);
      break;
    case kEthTypeIpv4:
      r = parse_ipv4(p, c);
      break;
    case kEthTypeIpv6:
      r = parse_ipv6(p, c);
      break;
    default:
      break;  // switched as plain L2
  }
  if (r != kOk) return r;
  if (const uint8_t gso = vnet_gso_type(p); gso != VIRTIO_NET_HDR_GSO_NONE) return check_vnet_matches(p, gso);
  return kOk;
}

void reset_metadata(Packet& p) noexcept {
  p.flags &= kHasVnet | kRxQueueFull;  // both set by the port
  p.ethertype = 0;
  p.vlan_tci = 0;
  p.l3_offset = 0;
  p.ip_proto = 0;
  p.l4_offset = 0;
  p.l4_len = 0;
  p.ip4_src = {};
  p.ip4_dst = {};
  p.src_port = 0;
  p.dst_port = 0;
  p.drop = kOk;
}

// Loads of big-endian fields at any alignment.
inline uint16_t load_be16(const uint8_t* b) noexcept {
  uint16_t v;
  std::memcpy(&v, b, sizeof v);
  return __builtin_bswap16(v);
}
inline uint32_t load_be32(const uint8_t* b) noexcept {
  uint32_t v;
  std::memcpy(&v, b, sizeof v);
  return __builtin_bswap32(v);
}

// The frame most guest traffic is, read by direct loads: untagged Ethernet, IPv4 without options that is not a
// fragment, TCP or UDP, not cut by the ring. Either fills the metadata exactly as reset_metadata + parse_frame would
// for that frame and returns true, or writes nothing and returns false: then parse_frame decides, and every drop
// reason stays its. (parse_frame reads each header through a bounds-checked Cursor into a copy: about 140
// instructions for such a frame, this about 40; tests/unit/stages/parse_test.cc and fuzz/fuzz_parse.cc check that
// both give the same result on every frame.)
[[gnu::always_inline]] inline bool parse_fast(Packet& p) noexcept {
  constexpr size_t kL3 = sizeof(EthHdr), kL4 = kL3 + kIpv4MinHdrLen;
  constexpr uint8_t kVersion4NoOptions = 0x45;
  constexpr uint16_t kFragmentBits = kIpv4FlagMf | kIpv4FragOffsetMask;
  const uint8_t* d = p.data;
  if (p.len < kL4 || p.len < p.wire_len) return false;
  if ((d[6] & 1) || load_be16(d + 12) != kEthTypeIpv4 || d[kL3] != kVersion4NoOptions) return false;
  const uint32_t tot = load_be16(d + kL3 + 2);
  if (tot < kIpv4MinHdrLen || tot > p.len - kL3 || (load_be16(d + kL3 + 6) & kFragmentBits) != 0) return false;
  const uint8_t gso = vnet_gso_type(p);
  const uint8_t proto = d[kL3 + 9];
  const uint32_t l4_bytes = tot - kIpv4MinHdrLen;
  uint16_t l4_flag;
  if (proto == kIpProtoTcp) {
    if (l4_bytes < sizeof(TcpHdr)) return false;
    const uint32_t hl = uint32_t(d[kL4 + 12] >> 4) * 4;  // data offset
    if (hl < kTcpMinHdrLen || hl > l4_bytes) return false;
    if (gso != VIRTIO_NET_HDR_GSO_NONE && gso != VIRTIO_NET_HDR_GSO_TCPV4) return false;
    l4_flag = kIsTcp;
  } else if (proto == kIpProtoUdp) {
    if (l4_bytes < sizeof(UdpHdr)) return false;
    const bool udp_gso = is_udp_gso(gso);
    const uint32_t ulen = load_be16(d + kL4 + 4);
    if (!udp_gso && (ulen < kUdpHdrLen || ulen > l4_bytes)) return false;
    if (gso != VIRTIO_NET_HDR_GSO_NONE && !udp_gso) return false;
    l4_flag = kIsUdp;
  } else {
    return false;
  }
  if ((p.flags & kHasVnet) && check_vnet(p) != kOk) return false;

  p.flags = uint16_t((p.flags & kHasVnet) | kIsIpv4 | l4_flag);
  p.ethertype = kEthTypeIpv4;
  p.vlan_tci = 0;
  p.l3_offset = uint8_t(kL3);
  p.ip_proto = proto;
  p.ip4_src = Ipv4Addr{load_be32(d + kL3 + 12)};
  p.ip4_dst = Ipv4Addr{load_be32(d + kL3 + 16)};
  p.src_port = load_be16(d + kL4);
  p.dst_port = load_be16(d + kL4 + 2);
  p.l4_offset = uint16_t(kL4);
  p.l4_len = uint16_t(l4_bytes);
  p.drop = kOk;
  return true;
}

}  // namespace

void parse_general(Packet& p) noexcept {
  reset_metadata(p);
  p.drop = parse_frame(p);
}

void parse(Packet& p) noexcept {
  if (parse_fast(p)) [[likely]]
    return;
  parse_general(p);
}

void parse_batch(std::span<Packet* const> pkts) noexcept {
  for (Packet* p : pkts) parse(*p);
}

NextSet ParseStage::process(WorkerContext& ctx, const DataplaneConfig& cfg, std::span<Packet* const> pkts) noexcept {
  return for_each_input_run(ctx, pkts, [&](uint16_t in_port, uint16_t, std::span<Packet* const> run) noexcept {
    const PortConfig* in = cfg.port(in_port);
    const NextFor next(in ? in->features : 0, Next::kParse);
    NextSet nexts = 0;
    for (Packet* p : run) {
      parse(*p);
      if (p->dropped()) [[unlikely]]
        p->next = Next::kDrop;
      else
        p->next = next(*p);
      nexts |= stage_bit(p->next);
    }
    return nexts;
  });
}

}  // namespace vpcd::dp
