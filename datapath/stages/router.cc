// Stage "router": the routing decision, in-place rewrites and ICMP error frames. See router.h.
#include "datapath/stages/router.h"

#include <time.h>

#include <cstring>

#include "datapath/proto/checksum.h"
#include "datapath/proto/cursor.h"
#include "datapath/proto/ethernet.h"
#include "datapath/proto/ipv4.h"
#include "datapath/proto/l4.h"
#include "datapath/pipeline/worker_context.h"
#include "datapath/stages/l2_switch.h"
#include "datapath/stages/parse.h"

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
                        uint8_t* out, size_t cap, uint16_t next_hop_mtu) noexcept {
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
  const be16 mtu = be16::from_host(next_hop_mtu);
  std::memcpy(icmp + 6, &mtu, 2);
  std::memcpy(icmp + kIcmpEchoLen, orig.data + orig.l3_offset, quote);
  const be16 c = internet_checksum({icmp, kIcmpEchoLen + quote});
  std::memcpy(icmp + 2, &c, 2);
  return kHdrs + quote;
}

RouterOutcome route_decide(const RouteTable& routes, const ArpAnswerTable& arp, const MacAddr& router_mac,
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
  o.action = RouterAction::kForward;
  o.next_hop = mac;
  return o;
}

void forward_rewrite(Packet& p, const MacAddr& next_hop, const MacAddr& router_mac) noexcept {
  decrement_ttl(p);
  std::memcpy(p.data, next_hop.b.data(), 6);
  std::memcpy(p.data + 6, router_mac.b.data(), 6);
}

RouterOutcome route_ipv4(const RouteTable& routes, const ArpAnswerTable& arp, const MacAddr& router_mac,
                         Packet& p) noexcept {
  const RouterOutcome o = route_decide(routes, arp, router_mac, p);
  if (o.action == RouterAction::kForward) forward_rewrite(p, *o.next_hop, router_mac);
  return o;
}

RouterOutcome too_big_outcome(const RouteTable& routes, Packet& p, uint32_t mtu) noexcept {
  RouterOutcome o;
  o.action = RouterAction::kDrop;
  uint16_t frag_off = 0;
  if (p.flags & kIsIpv4) frag_off = uint16_t(p.data[p.l3_offset + 6] << 8 | p.data[p.l3_offset + 7]);
  if (!(frag_off & kIpv4FlagDf)) {
    p.drop = DropReason::kTooBig;
    return o;
  }
  p.drop = DropReason::kFragNeeded;
  o.icmp_type = kIcmpDestUnreachable;
  o.icmp_code = 4;
  o.icmp_src = routes.source_for(p.ip4_src);
  o.next_hop_mtu = uint16_t(std::min<uint32_t>(mtu, 0xffff));
  return o;
}

namespace {

bool is_gso(const Packet& p) noexcept {
  return (p.flags & kHasVnet) && (p.vnet.gso_type & ~VIRTIO_NET_HDR_GSO_ECN) != VIRTIO_NET_HDR_GSO_NONE;
}

uint64_t now_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

// An ICMP error about p back to p's input port, when allowed and within the worker's budget.
void send_icmp_error(WorkerContext& ctx, const DataplaneConfig& cfg, const VpcConfig& vpc, const Packet& p,
                     const RouterOutcome& o) noexcept {
  if (o.icmp_type == kNoIcmp || !may_send_icmp_error(p)) return;
  const PortConfig* in = cfg.port(p.in_port);
  if (!in) return;
  if (!ctx.icmp_limiter.allow(now_ns())) {
    counter_add(ctx.icmp_rate_limited, 1);
    return;
  }
  Packet* e = ctx.alloc_packet();
  if (!e) return;
  const size_t n = build_icmp_error(p, o.icmp_type, o.icmp_code, vpc.router_mac, o.icmp_src, e->data,
                                    PacketPool::kMaxFrame, o.next_hop_mtu);
  if (n == 0) {
    e->drop_with(DropReason::kNoStage);
    e->in_port = e->acct_port = p.in_port;
    ctx.emit(e, Next::kDrop);
    return;
  }
  e->len = e->wire_len = uint32_t(n);
  parse(*e);  // the metadata the egress stages read (firewall-ingress matches it to its flow)
  e->flags |= kCtTracked;
  e->in_port = p.in_port;
  e->acct_port = p.in_port;
  e->vpc = p.vpc;
  e->out_port = p.in_port;
  ctx.emit(e, egress_stage(in->out_features));
}

}  // namespace

NextSet RouterStage::process(WorkerContext& ctx, const DataplaneConfig& cfg, std::span<Packet* const> pkts) noexcept {
  const uint32_t now_s = ctx.clock_s();
  for (Packet* p : pkts) {
    const VpcConfig* vpc = cfg.vpc(p->vpc);
    if (!vpc || !vpc->routes || !(p->flags & kIsIpv4)) [[unlikely]] {
      p->drop_with(DropReason::kNotRouted);
      continue;
    }
    const RouterOutcome o = route_decide(*vpc->routes, *vpc->arp, vpc->router_mac, *p);
    switch (o.action) {
      case RouterAction::kForward: {
        const uint16_t out = l2_lookup_unicast(cfg, *vpc, *o.next_hop, now_s);
        const PortConfig* op = cfg.port(out);
        if (!op) {
          p->drop_with(DropReason::kNextHopUnresolved);
          break;
        }
        if (p->len > op->mtu + p->l3_offset && !is_gso(*p)) [[unlikely]] {
          // Checked before the rewrite: the ICMP error goes to the sender's MAC and quotes the datagram as sent.
          send_icmp_error(ctx, cfg, *vpc, *p, too_big_outcome(*vpc->routes, *p, op->mtu));
          p->drop_with(p->drop);
          break;
        }
        forward_rewrite(*p, *o.next_hop, vpc->router_mac);
        p->out_port = out;
        p->next = egress_stage(op->out_features);
        break;
      }
      case RouterAction::kReply: {
        const PortConfig* in = cfg.port(p->in_port);
        if (!in) {
          p->drop_with(DropReason::kPortDown);
          break;
        }
        p->out_port = p->in_port;
        p->next = egress_stage(in->out_features);
        break;
      }
      case RouterAction::kDrop:
        send_icmp_error(ctx, cfg, *vpc, *p, o);
        p->drop_with(p->drop);
        break;
    }
  }
  return kNextsUnknown;
}

}  // namespace vpcd::dp
