// libFuzzer target: the router's decision and rewrites (datapath/stages/router.h) on single frames.
//
// Input: one Ethernet frame. The VPC has subnets 10.0.1.0/24 and 10.0.2.0/24 (gateways .1), a route via a NIC, a
// blackhole and a route whose next hop nobody owns. Invariants (abort on violation): a forwarded frame has its TTL
// one lower, a valid IPv4 header checksum and the next hop's MAC; an answered ping has valid IP and ICMP checksums;
// an ICMP error frame, when one may be sent, parses, has valid checksums and is at most 590 bytes.
// Seed corpus: fuzz/corpus/router/ (fuzz/make_router_corpus.py). Run: scripts/fuzz.sh 60 router.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "datapath/proto/checksum.h"
#include "datapath/stages/parse.h"
#include "datapath/stages/router.h"

namespace {

using namespace vpcd;
using namespace vpcd::dp;

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz_router: invariant violated: %s\n", what);
    std::abort();
  }
}

Ipv4Addr ip(const char* s) { return *Ipv4Addr::parse(s); }
Ipv4Prefix cidr(const char* s) { return *Ipv4Prefix::parse(s); }
const MacAddr kRouter{{2, 0xfe, 0, 0, 0, 1}};

struct Vpc {
  RouteTable routes{{{cidr("10.0.1.0/24"), {RouteKind::kConnected, {}, ip("10.0.1.1")}},
                     {cidr("10.0.2.0/24"), {RouteKind::kConnected, {}, ip("10.0.2.1")}},
                     {cidr("10.0.1.1/32"), {RouteKind::kLocal, {}, {}}},
                     {cidr("10.0.2.1/32"), {RouteKind::kLocal, {}, {}}},
                     {cidr("192.168.0.0/16"), {RouteKind::kVia, ip("10.0.2.9"), {}}},
                     {cidr("192.168.66.0/24"), {RouteKind::kBlackhole, {}, {}}},
                     {cidr("172.16.0.0/12"), {RouteKind::kVia, ip("10.0.2.200"), {}}}}};
  ArpAnswerTable arp{{{ip("10.0.1.5"), MacAddr{{2, 0, 0, 0, 0, 0xa}}},
                      {ip("10.0.2.7"), MacAddr{{2, 0, 0, 0, 0, 0xb}}},
                      {ip("10.0.2.9"), MacAddr{{2, 0, 0, 0, 0, 0xf}}},
                      {ip("10.0.1.1"), kRouter}}};
};

bool ip_csum_ok(const Packet& p) { return proto::checksum_valid({p.data + p.l3_offset, (p.data[p.l3_offset] & 15u) * 4u}); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Vpc vpc;
  std::vector<uint8_t> buf(data, data + size);
  Packet p;
  p.data = buf.data();
  p.len = p.wire_len = uint32_t(buf.size());
  parse(p);
  if (p.dropped() || !(p.flags & kIsIpv4)) return 0;
  // Only frames whose IP header checksum is valid are checked for valid checksums after the rewrite.
  const bool csum_was_ok = ip_csum_ok(p);
  const uint8_t ttl = p.data[p.l3_offset + 8];
  const std::vector<uint8_t> before = buf;
  Packet orig = p;
  orig.data = const_cast<uint8_t*>(before.data());
  const RouterOutcome o = route_ipv4(vpc.routes, vpc.arp, kRouter, p);
  if (o.action == RouterAction::kForward) {
    check(p.data[p.l3_offset + 8] == ttl - 1, "TTL not decremented by one");
    check(!csum_was_ok || ip_csum_ok(p), "IP checksum broken by the TTL update");
    check(std::memcmp(p.data + 6, kRouter.b.data(), 6) == 0, "source MAC is not the router's");
    check(*vpc.arp.find(vpc.routes.lookup(p.ip4_dst)->kind == RouteKind::kVia ? vpc.routes.lookup(p.ip4_dst)->via
                                                                                : p.ip4_dst) ==
              MacAddr::from_bytes(p.data),
          "destination MAC is not the next hop's");
  } else if (o.action == RouterAction::kReply) {
    check(!csum_was_ok || ip_csum_ok(p), "IP checksum broken by the echo reply");
  } else {
    check(p.dropped(), "a drop without a reason");
    if (o.icmp_type != kNoIcmp && may_send_icmp_error(orig)) {
      std::vector<uint8_t> out(kIcmpErrorMaxFrame);
      const size_t n = build_icmp_error(orig, o.icmp_type, o.icmp_code, kRouter, o.icmp_src, out.data(), out.size());
      check(n <= kIcmpErrorMaxFrame, "ICMP error too long");
      if (n > 0) {
        out.resize(n);
        Packet e;
        e.data = out.data();
        e.len = e.wire_len = uint32_t(n);
        parse(e);
        check(!e.dropped() && (e.flags & kIsIcmp), "the ICMP error does not parse");
        check(ip_csum_ok(e), "ICMP error IP checksum");
        check(proto::checksum_valid({e.data + e.l4_offset, e.l4_len}), "ICMP error checksum");
      }
    }
  }
  return 0;
}
