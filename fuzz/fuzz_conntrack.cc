// libFuzzer target: connection tracking and security groups (datapath/tables/conntrack.h) on a sequence of frames.
//
// Input: records of [flags][clock step][length lo][length hi][frame bytes] until the input ends. flags bit 0: the
// frame is sent by NIC A (port 0) else by NIC B (port 1); bit 1: run the firewall-ingress check too (track=false);
// bit 2: recompile the policies first (bit 3 chooses groups for B or the default), so rule changes meet live entries.
// One table per input (8 entries: full-table paths are reached). Invariants (abort on violation): the table never
// holds more than its limit; after every timeout has passed, expiry empties it.
// Seed corpus: fuzz/corpus/conntrack/ (fuzz/make_router_corpus.py). Run: scripts/fuzz.sh 60 conntrack.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "datapath/stages/parse.h"
#include "datapath/tables/conntrack.h"

namespace {

using namespace vpcd;
using namespace vpcd::dp;

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz_conntrack: invariant violated: %s\n", what);
    std::abort();
  }
}

std::shared_ptr<const SecurityPolicies> policies(bool groups, uint32_t gen) {
  const Ipv4Prefix vpc = *Ipv4Prefix::parse("10.0.0.0/16");
  std::vector<SgNic> nics = {SgNic{0, {*Ipv4Addr::parse("10.0.0.2")}, {}, {vpc}},
                             SgNic{1, {*Ipv4Addr::parse("10.0.0.3")}, {}, {vpc}}};
  std::vector<SgGroup> gs;
  if (groups) {
    SgGroup g{"g", {}};
    g.rules.push_back({SgDirection::kIngress, SgProto::kTcp, 20, 80, *Ipv4Prefix::parse("10.0.0.0/24"), ""});
    g.rules.push_back({SgDirection::kIngress, SgProto::kIcmp, 0, 65535, std::nullopt, "g"});
    g.rules.push_back({SgDirection::kEgress, SgProto::kUdp, 53, 53, *Ipv4Prefix::parse("0.0.0.0/0"), ""});
    gs.push_back(g);
    nics[1].group_ids = {"g"};
  }
  return compile_security(gs, nics, gen);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ConnTableOptions o;
  o.max_conns = 8;
  o.max_conns_per_vpc = 6;
  o.shards = 2;
  ConnTable table(o);
  uint32_t gen = 1, now = 1000;
  auto pol = policies(false, gen);
  size_t off = 0;
  std::vector<uint8_t> buf;
  while (off + 4 <= size) {
    const uint8_t flags = data[off];
    now += data[off + 1];
    size_t len = size_t(data[off + 2]) | size_t(data[off + 3]) << 8;
    off += 4;
    if (len > size - off) len = size - off;
    buf.assign(data + off, data + off + len);
    off += len;
    if (flags & 4) pol = policies(flags & 8, ++gen);
    Packet p;
    p.data = buf.data();
    p.len = p.wire_len = uint32_t(buf.size());
    parse(p);
    if (p.dropped() || !(p.flags & kIsIpv4)) continue;
    CtRequest r;
    r.dir = CtDir::kEgress;
    r.port = (flags & 1) ? 0 : 1;
    r.vpc = 3;
    r.vpc_gen = 9;
    r.now_s = now;
    const CtVerdict v = conntrack(table, *pol, r, p);
    if (v == CtVerdict::kAllowed && (flags & 2)) {
      r.dir = CtDir::kIngress;
      r.port = (flags & 1) ? 1 : 0;
      r.track = false;
      (void)conntrack(table, *pol, r, p);
    }
    table.expire(now, 64);
    check(table.size() <= o.max_conns, "table over its limit");
  }
  uint32_t longest = 0;
  for (uint32_t t : o.timeout_s) longest = t > longest ? t : longest;
  for (uint32_t step = 0; step <= longest / 4000 + 1; ++step) table.expire(now + (step + 1) * 4000, 1u << 20);
  check(table.size() == 0, "entries left after every timeout passed");
  return 0;
}
