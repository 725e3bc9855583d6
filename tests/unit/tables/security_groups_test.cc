// Security group compilation: address-set merging, port intervals, the default policy, sharing between NICs, and
// 1000 random rules checked against a straightforward evaluation of the rules.
#include "datapath/tables/security_groups.h"

#include <gtest/gtest.h>

#include <random>

namespace vpcd::dp {
namespace {

Ipv4Addr ip(const char* s) { return *Ipv4Addr::parse(s); }
Ipv4Prefix cidr(const char* s) { return *Ipv4Prefix::parse(s); }

TEST(SecurityGroups, AddrSetMergesAndFinds) {
  AddrSet s({{10, 20}, {21, 30}, {50, 60}, {0xfffffff0u, 0xffffffffu}, {55, 70}});
  EXPECT_EQ(s.lows().size(), 3u);
  EXPECT_TRUE(s.contains(Ipv4Addr{10}));
  EXPECT_TRUE(s.contains(Ipv4Addr{30}));
  EXPECT_FALSE(s.contains(Ipv4Addr{31}));
  EXPECT_TRUE(s.contains(Ipv4Addr{70}));
  EXPECT_FALSE(s.contains(Ipv4Addr{9}));
  EXPECT_TRUE(s.contains(Ipv4Addr{0xffffffffu}));
  EXPECT_FALSE(AddrSet().contains(Ipv4Addr{1}));
}

TEST(SecurityGroups, DefaultPolicy) {
  auto p = compile_security({}, {SgNic{3, {ip("10.0.0.2")}, {}, {cidr("10.0.0.0/16"), cidr("172.16.0.0/24")}}}, 9);
  EXPECT_EQ(p->gen, 9u);
  const NicPolicy* n = p->port(3);
  ASSERT_NE(n, nullptr);
  EXPECT_TRUE(n->is_default);
  EXPECT_EQ(p->port(2), nullptr);
  EXPECT_TRUE(n->egress.allows(6, ip("8.8.8.8"), 443));
  EXPECT_TRUE(n->egress.allows(47, ip("1.1.1.1"), 0));
  EXPECT_TRUE(n->ingress.allows(6, ip("10.0.200.1"), 22));
  EXPECT_TRUE(n->ingress.allows(1, ip("172.16.0.9"), 0));
  EXPECT_FALSE(n->ingress.allows(6, ip("8.8.8.8"), 22));
}

TEST(SecurityGroups, RulesPortsProtocolsAndSharing) {
  SgGroup g{"g", {}};
  g.rules.push_back({SgDirection::kIngress, SgProto::kTcp, 80, 90, cidr("10.1.0.0/16"), ""});
  g.rules.push_back({SgDirection::kIngress, SgProto::kTcp, 85, 100, cidr("192.168.0.0/24"), ""});
  g.rules.push_back({SgDirection::kIngress, SgProto::kUdp, 53, 53, cidr("0.0.0.0/0"), ""});
  g.rules.push_back({SgDirection::kEgress, SgProto::kAny, 0, 65535, cidr("10.0.0.0/8"), ""});
  auto p = compile_security({g}, {SgNic{0, {ip("10.1.0.5")}, {"g"}, {}}, SgNic{1, {ip("10.1.0.6")}, {"g"}, {}}}, 1);
  EXPECT_EQ(p->by_port[0], p->by_port[1]);  // same groups: one compiled policy
  const NicPolicy& n = *p->port(0);
  EXPECT_TRUE(n.ingress.allows(6, ip("10.1.2.3"), 80));
  EXPECT_TRUE(n.ingress.allows(6, ip("10.1.2.3"), 90));
  EXPECT_FALSE(n.ingress.allows(6, ip("10.1.2.3"), 91));
  EXPECT_TRUE(n.ingress.allows(6, ip("192.168.0.1"), 100));
  EXPECT_FALSE(n.ingress.allows(6, ip("192.168.0.1"), 84));
  EXPECT_FALSE(n.ingress.allows(6, ip("192.168.0.1"), 101));
  EXPECT_TRUE(n.ingress.allows(17, ip("8.8.8.8"), 53));
  EXPECT_FALSE(n.ingress.allows(17, ip("8.8.8.8"), 54));
  EXPECT_FALSE(n.ingress.allows(1, ip("10.1.2.3"), 0));  // no ICMP rule
  EXPECT_TRUE(n.egress.allows(1, ip("10.200.0.1"), 0));
  EXPECT_TRUE(n.egress.allows(6, ip("10.200.0.1"), 1));
  EXPECT_FALSE(n.egress.allows(6, ip("11.0.0.1"), 1));
}

TEST(SecurityGroups, GroupWithoutRulesInADirectionDenies) {
  SgGroup g{"g", {{SgDirection::kIngress, SgProto::kIcmp, 0, 65535, cidr("0.0.0.0/0"), ""}}};
  auto p = compile_security({g}, {SgNic{0, {ip("10.0.0.2")}, {"g"}, {}}}, 1);
  EXPECT_FALSE(p->port(0)->egress.allows(6, ip("10.0.0.3"), 80));
  EXPECT_FALSE(p->port(0)->egress.allows(1, ip("10.0.0.3"), 0));
  EXPECT_TRUE(p->port(0)->ingress.allows(1, ip("10.0.0.3"), 0));
}

TEST(SecurityGroups, RemoteGroupIsItsMembersAddresses) {
  SgGroup db{"db", {{SgDirection::kIngress, SgProto::kTcp, 5432, 5432, std::nullopt, "app"}}};
  SgGroup app{"app", {}};
  SgGroup ghost{"ghost", {{SgDirection::kIngress, SgProto::kAny, 0, 65535, std::nullopt, "nonexistent"}}};
  std::vector<SgNic> nics = {SgNic{0, {ip("10.0.0.10")}, {"db", "ghost"}, {}},
                             SgNic{1, {ip("10.0.0.11"), ip("10.0.0.12")}, {"app"}, {}},
                             SgNic{2, {ip("10.0.0.13")}, {}, {cidr("10.0.0.0/24")}}};
  auto p = compile_security({db, app, ghost}, nics, 1);
  EXPECT_TRUE(p->port(0)->ingress.allows(6, ip("10.0.0.11"), 5432));
  EXPECT_TRUE(p->port(0)->ingress.allows(6, ip("10.0.0.12"), 5432));
  EXPECT_FALSE(p->port(0)->ingress.allows(6, ip("10.0.0.13"), 5432));
  nics[2].group_ids = {"app"};
  p = compile_security({db, app, ghost}, nics, 2);
  EXPECT_TRUE(p->port(0)->ingress.allows(6, ip("10.0.0.13"), 5432));
}

struct Naive {
  uint8_t proto;
  uint16_t lo, hi;
  Ipv4Prefix net;
};

TEST(SecurityGroups, ThousandRandomRulesMatchNaiveEvaluation) {
  std::mt19937 rng(7);
  SgGroup g{"g", {}};
  std::vector<Naive> naive;
  for (int i = 0; i < 1000; ++i) {
    const SgProto pr = SgProto(rng() % 4);
    uint16_t lo = uint16_t(rng() % 2000), hi = uint16_t(lo + rng() % 50);
    if (pr != SgProto::kTcp && pr != SgProto::kUdp) lo = 0, hi = 65535;
    const uint8_t len = uint8_t(8 + rng() % 25);
    Ipv4Prefix net{Ipv4Addr{uint32_t(0x0a000000u | (rng() & 0x00ffffffu))}, len};
    net.addr.v &= net.mask();
    g.rules.push_back({SgDirection::kIngress, pr, lo, hi, net, ""});
    const uint8_t proto = pr == SgProto::kTcp ? 6 : pr == SgProto::kUdp ? 17 : pr == SgProto::kIcmp ? 1 : 0;
    naive.push_back({proto, lo, hi, net});
  }
  auto p = compile_security({g}, {SgNic{0, {}, {"g"}, {}}}, 1);
  const RuleSet& rs = p->port(0)->ingress;
  for (int q = 0; q < 20000; ++q) {
    const uint8_t proto = std::array<uint8_t, 4>{6, 17, 1, 47}[rng() % 4];
    const Ipv4Addr a{uint32_t(0x0a000000u | (rng() & 0x00ffffffu))};
    const uint16_t port = (proto == 6 || proto == 17) ? uint16_t(rng() % 2100) : 0;
    bool expect = false;
    for (const auto& r : naive) {
      const bool proto_ok = r.proto == 0 || r.proto == proto;
      const bool port_ok = !(proto == 6 || proto == 17) || (r.lo <= port && port <= r.hi);
      if (proto_ok && port_ok && r.net.contains(a)) {
        expect = true;
        break;
      }
    }
    ASSERT_EQ(rs.allows(proto, a, port), expect) << "query " << q;
  }
}

}  // namespace
}  // namespace vpcd::dp
