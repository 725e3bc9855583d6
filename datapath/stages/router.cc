// Stage "router": the routing decision, in-place rewrites and ICMP error frames. See router.h.
#include "datapath/stages/router.h"

#include <cstring>

#include "datapath/proto/checksum.h"
#include "datapath/proto/cursor.h"
#include "datapath/proto/ethernet.h"
#include "datapath/proto/ipv4.h"
#include "datapath/proto/l4.h"

namespace vpcd::dp {
namespace {

using namespace proto;

bool bad_source(uint32_t a) noexcept {
  const uint8_t first = uint8_t(a >> 24);
  return a == 0 || a == 0xffffffffu || first == 127 || first >= 224;
}

}  // namespace

void decrement_ttl(Packet& p) noexcept {
  // The TTL is the high byte of the 16-bit word (ttl, protocol) at offset 8 of the IPv4 header.
  uint8_t* h = p.data + p.l3_offset;
  be16 old_word, new_word, csum;
  std::memcpy(&old_word, h + 8, 2);
  h[8] = uint8_t(h[8] - 1);
  std::memcpy(&new_word, h + 8, 2);
  std::memcpy(&csum, h + 10, 2);
  csum = checksum_update16(csum, old_word, new_word);
  std::memcpy(h + 10, &csum, 2);
}

bool answer_echo(Packet& p, const MacAddr& router_mac) noexcept {
  if (p.ip_proto != kIpProtoIcmp || (p.flags & kIsFragment) || p.l4_offset == 0) return false;
  if ((p.dst_port >> 8) != kIcmpEchoRequest || p.l4_len < kIcmpEchoLen) return false;
  uint8_t* h = p.data + p.l3_offset;
  // IP: swap addresses (the checksum is unchanged), TTL 64.
  uint8_t tmp[4];
  std::memcpy(tmp, h + 12, 4);
  std::memcpy(h + 12, h + 16, 4);
  std::memcpy(h + 16, tmp, 4);
  be16 old_word, new_word, csum;
  std::memcpy(&old_word, h + 8, 2);
  h[8] = 64;
  std::memcpy(&new_word, h + 8, 2);
  std::memcpy(&csum, h + 10, 2);
  csum = checksum_update16(csum, old_word, new_word);
  std::memcpy(h + 10, &csum, 2);
  // ICMP: type 8 -> 0.
  uint8_t* icmp = p.data + p.l4_offset;
  std::memcpy(&old_word, icmp, 2);
  icmp[0] = kIcmpEchoReply;
  std::memcpy(&new_word, icmp, 2);
  std::memcpy(&csum, icmp + 2, 2);
  csum = checksum_update16(csum, old_word, new_word);
  std::memcpy(icmp + 2, &csum, 2);
  // Ethernet: back to the sender, from the router.
  std::memcpy(p.data, p.data + 6, 6);
  std::memcpy(p.data + 6, router_mac.b.data(), 6);
  std::swap(p.ip4_src, p.ip4_dst);
  p.dst_port = uint16_t(kIcmpEchoReply << 8);
  p.vnet = virtio_net_hdr{};  // no offloads on the reply
  return true;
}

bool may_send_icmp_error(const Packet& p) noexcept {
  if (!(p.flags & kIsIpv4)) return false;
  if ((p.flags & kIsFragment) && p.l4_offset == 0) return false;  // a non-first fragment
  if (p.ip_proto == kIpProtoIcmp && p.l4_offset != 0) {
    const uint8_t type = uint8_t(p.dst_port >> 8);
    if (type != kIcmpEchoRequest && type != kIcmpEchoReply && type != 13 && type != 15 && type != 17) return false;
  }
  if (MacAddr::from_bytes(p.data).is_multicast()) return false;
  if (bad_source(p.ip4_src.v)) return false;
  const uint8_t dfirst = uint8_t(p.ip4_dst.v >> 24);
  return p.ip4_dst.v != 0xffffffffu && !(dfirst >= 224 && dfirst < 240);
}

size_t build_icmp_error(const Packet& orig, uint8_t type, uint8_t code, const MacAddr& router_mac, Ipv4Addr src,
                        uint8_t* out, size_t cap) noexcept {
  constexpr size_t kHdrs = kEthHdrLen + kIpv4MinHdrLen + kIcmpEchoLen;
  if (cap < kHdrs + kIpv4MinHdrLen + 8) return 0;
  // The quote: the offending datagram from its IP header, as much as fits in 576 bytes and in the frame we have.
  Cursor cur(orig.data + orig.l3_offset, orig.len - orig.l3_offset);
  Ipv4Hdr oh{};
  if (!cur.try_peek(oh)) return 0;
  size_t quote = std::min<size_t>(oh.tot_len.to_host(), orig.len - orig.l3_offset);
  quote = std::min(quote, size_t(576 - kIpv4MinHdrLen - kIcmpEchoLen));
  quote = std::min(quote, cap - kHdrs);
  uint8_t* e = out;
  std::memcpy(e, orig.data + 6, 6);  // to the sender's MAC
  std::memcpy(e + 6, router_mac.b.data(), 6);
  e[12] = 0x08;
  e[13] = 0x00;
  Ipv4Hdr ih{};
  ih.ver_ihl = 0x45;
  ih.tot_len = be16::from_host(uint16_t(kIpv4MinHdrLen + kIcmpEchoLen + quote));
  ih.ttl = 64;
  ih.proto = kIpProtoIcmp;
  ih.src = src.to_be();
  ih.dst = orig.ip4_src.to_be();
  ih.csum = internet_checksum({reinterpret_cast<const uint8_t*>(&ih), sizeof(ih)});
  std::memcpy(out + kEthHdrLen, &ih, sizeof(ih));
  uint8_t* icmp = out + kEthHdrLen + kIpv4MinHdrLen;
  std::memset(icmp, 0, kIcmpEchoLen);
  icmp[0] = type;
  icmp[1] = code;
  std::memcpy(icmp + kIcmpEchoLen, orig.data + orig.l3_offset, quote);
  const be16 c = internet_checksum({icmp, kIcmpEchoLen + quote});
  std::memcpy(icmp + 2, &c, 2);
  return kHdrs + quote;
}

RouterOutcome route_ipv4(const RouteTable& routes, const ArpAnswerTable& arp, const MacAddr& router_mac,
                         Packet& p) noexcept {
  RouterOutcome o;
  auto drop = [&](DropReason r, uint8_t type, uint8_t code) {
    p.drop = r;
    o.action = RouterAction::kDrop;
    o.icmp_type = type;
    o.icmp_code = code;
    o.icmp_src = routes.source_for(p.ip4_src);
    return o;
  };
  if (routes.is_local(p.ip4_dst)) {
    if (answer_echo(p, router_mac)) {
      o.action = RouterAction::kReply;
      return o;
    }
    return drop(DropReason::kToRouter, kNoIcmp, 0);
  }
  const uint8_t ttl = p.data[p.l3_offset + 8];
  if (ttl <= 1) return drop(DropReason::kTtlExceeded, kIcmpTimeExceeded, 0);
  const Route* r = routes.lookup(p.ip4_dst);
  if (!r) return drop(DropReason::kNoRoute, kIcmpDestUnreachable, 0);
  if (r->kind == RouteKind::kBlackhole) return drop(DropReason::kBlackholeRoute, kIcmpDestUnreachable, 0);
  const Ipv4Addr nh = r->kind == RouteKind::kVia ? r->via : p.ip4_dst;
  const MacAddr* mac = arp.find(nh);
  if (!mac || *mac == router_mac) return drop(DropReason::kNextHopUnresolved, kIcmpDestUnreachable, 1);
  decrement_ttl(p);
  std::memcpy(p.data, mac->b.data(), 6);
  std::memcpy(p.data + 6, router_mac.b.data(), 6);
  o.action = RouterAction::kForward;
  return o;
}

}  // namespace vpcd::dp
