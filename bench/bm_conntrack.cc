// Connection tracking and security-group benchmarks (issue 9 targets: >= 10 Mpps established lookups per core,
// >= 1M new flows/s per core, first-packet classification with 1000 rules, <= 256 bytes per connection).
//
//   build/bm_conntrack --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
//
// Items are packets (or flows, or queries): read items_per_second as the rate on one core. Threads:2 variants run two
// workers on the SAME flows (one per direction), the contended case of the sharded table.
#include <benchmark/benchmark.h>

#include <memory>
#include <random>
#include <vector>

#include "datapath/proto/frame_builder.h"
#include "datapath/stages/parse.h"
#include "datapath/tables/conntrack.h"

namespace vpcd::dp {
namespace {

using proto::FrameBuilder;

const MacAddr kMacA{{2, 0, 0, 0, 0, 0xa}}, kMacB{{2, 0, 0, 0, 0, 0xb}};

// Parsed frames for n flows A:port -> B:80, and their replies.
struct Frames {
  std::vector<std::vector<uint8_t>> bufs;
  std::vector<Packet> pkts;
  void add(std::vector<uint8_t> b) {
    bufs.push_back(std::move(b));
  }
  void finish() {
    pkts.resize(bufs.size());
    for (size_t i = 0; i < bufs.size(); ++i) {
      pkts[i] = proto::make_packet(bufs[i]);
      parse(pkts[i]);
    }
  }
};

Ipv4Addr addr_of(uint32_t i) { return Ipv4Addr{0x0a000000u | (i & 0xffff)}; }

std::vector<uint8_t> udp_frame(uint32_t flow, bool reply) {
  const Ipv4Addr a = addr_of(flow), b{0x0a010001};
  const uint16_t sport = uint16_t(1024 + (flow >> 16) * 7919 % 60000);
  if (reply) return FrameBuilder().eth(kMacB, kMacA).ipv4(b, a).udp(80, sport).payload_size(18).build();
  return FrameBuilder().eth(kMacA, kMacB).ipv4(a, b).udp(sport, 80).payload_size(18).build();
}

std::vector<uint8_t> tcp_frame(uint32_t flow, bool reply, uint32_t seq, uint32_t ack, uint8_t flags) {
  const Ipv4Addr a = addr_of(flow), b{0x0a010001};
  const uint16_t sport = uint16_t(1024 + (flow >> 16) * 7919 % 60000);
  proto::TcpOpts o{seq, ack, flags, 65535};
  if (reply) return FrameBuilder().eth(kMacB, kMacA).ipv4(b, a).tcp(80, sport, o).build();
  return FrameBuilder().eth(kMacA, kMacB).ipv4(a, b).tcp(sport, 80, o).build();
}

std::shared_ptr<const SecurityPolicies> default_policies() {
  return compile_security({}, {SgNic{0, {}, {}, {*Ipv4Prefix::parse("10.0.0.0/8")}},
                               SgNic{1, {}, {}, {*Ipv4Prefix::parse("10.0.0.0/8")}}},
                          1);
}

CtRequest request(CtDir dir, uint16_t port, uint32_t now = 100) {
  CtRequest r;
  r.dir = dir;
  r.port = port;
  r.vpc = 1;
  r.vpc_gen = 1;
  r.now_s = now;
  return r;
}

// Established TCP flows: n flows set up by a handshake, then ACK segments in both directions, round robin over the
// flows (each packet: one lookup under the shard lock, the window checks and the state update).
struct Established {
  std::unique_ptr<ConnTable> table;
  std::shared_ptr<const SecurityPolicies> pol = default_policies();
  Frames fwd, rev;
  explicit Established(uint32_t n) {
    ConnTableOptions o;
    o.max_conns = std::max<uint32_t>(n * 2, 1024);
    o.max_conns_per_vpc = o.max_conns;
    table = std::make_unique<ConnTable>(o);
    Frames hs;
    for (uint32_t i = 0; i < n; ++i) {
      hs.add(tcp_frame(i, false, 1000, 0, proto::kTcpSyn));
      hs.add(tcp_frame(i, true, 5000, 1001, proto::kTcpSyn | proto::kTcpAck));
      hs.add(tcp_frame(i, false, 1001, 5001, proto::kTcpAck));
      fwd.add(tcp_frame(i, false, 1001, 5001, proto::kTcpAck));
      rev.add(tcp_frame(i, true, 5001, 1001, proto::kTcpAck));
    }
    hs.finish();
    fwd.finish();
    rev.finish();
    for (size_t i = 0; i < hs.pkts.size(); ++i)
      (void)conntrack(*table, *pol, request(CtDir::kEgress, i % 3 == 1 ? 1 : 0),
                      hs.pkts[i]);
  }
};

void BM_CtEstablished(benchmark::State& state) {
  static std::unique_ptr<Established> e;
  const uint32_t n = uint32_t(state.range(0));
  if (state.thread_index() == 0) e = std::make_unique<Established>(n);
  size_t i = 0;
  const bool reverse = state.thread_index() == 1;
  const Frames& f = reverse ? e->rev : e->fwd;
  const CtRequest req = request(CtDir::kEgress, reverse ? 1 : 0);
  uint64_t bad = 0;
  for (auto _ : state) {
    bad += conntrack(*e->table, *e->pol, req, f.pkts[i]) != CtVerdict::kAllowed;
    if (++i == f.pkts.size()) i = 0;
  }
  if (bad) state.SkipWithError("a packet of an established flow was not allowed");
  state.SetItemsProcessed(int64_t(state.iterations()));
}
BENCHMARK(BM_CtEstablished)->Arg(1000)->Arg(100000)->Arg(1000000)->Unit(benchmark::kNanosecond);
BENCHMARK(BM_CtEstablished)->Arg(100000)->Threads(2)->Unit(benchmark::kNanosecond);

// New UDP flows per second: every packet opens a flow (classification with the default policy + insert). The table
// is replaced, outside the timing, whenever it holds 1M flows.
void BM_CtNewFlows(benchmark::State& state) {
  constexpr uint32_t kFlows = 1u << 20;
  auto pol = default_policies();
  Frames f;
  for (uint32_t i = 0; i < 65536; ++i) f.add(udp_frame(i, false));
  f.finish();
  ConnTableOptions o;
  o.max_conns = kFlows + 1024;
  o.max_conns_per_vpc = o.max_conns;
  auto table = std::make_unique<ConnTable>(o);
  uint32_t made = 0, round = 0;
  uint64_t bad = 0;
  for (auto _ : state) {
    Packet& p = f.pkts[made & 0xffff];
    p.src_port = uint16_t(1024 + round);  // a new flow each time: (addr, port) pairs never repeat in a table
    bad += conntrack(*table, *pol, request(CtDir::kEgress, 0), p) != CtVerdict::kAllowed;
    if ((++made & 0xffff) == 0) ++round;
    if (made == kFlows) {
      state.PauseTiming();
      table = std::make_unique<ConnTable>(o);
      made = 0;
      round = 0;
      state.ResumeTiming();
    }
  }
  if (bad) state.SkipWithError("a new flow was refused");
  state.SetItemsProcessed(int64_t(state.iterations()));
}
BENCHMARK(BM_CtNewFlows)->Unit(benchmark::kNanosecond);

// 1000 rules over random CIDRs and port ranges in one group.
std::shared_ptr<const SecurityPolicies> thousand_rules() {
  std::mt19937 rng(1);
  SgGroup g{"g", {}};
  for (int i = 0; i < 1000; ++i) {
    const SgProto pr = SgProto(1 + rng() % 3);
    const uint16_t lo = uint16_t(rng() % 60000);
    const uint8_t len = uint8_t(16 + rng() % 17);
    Ipv4Prefix net{Ipv4Addr{uint32_t(0x0a000000u | (rng() & 0xffffff))}, len};
    net.addr.v &= net.mask();
    g.rules.push_back({i % 2 ? SgDirection::kIngress : SgDirection::kEgress, pr, lo, uint16_t(lo + rng() % 100), net, ""});
  }
  // The benchmark's flows are allowed by one more rule.
  g.rules.push_back({SgDirection::kEgress, SgProto::kUdp, 80, 80, *Ipv4Prefix::parse("10.1.0.0/16"), ""});
  return compile_security({g}, {SgNic{0, {}, {"g"}, {}}}, 1);
}

void BM_SgLookup1000Rules(benchmark::State& state) {
  auto pol = thousand_rules();
  const RuleSet& rs = pol->port(0)->egress;
  std::mt19937 rng(2);
  std::vector<std::pair<Ipv4Addr, uint16_t>> q(4096);
  for (auto& x : q) x = {Ipv4Addr{uint32_t(0x0a000000u | (rng() & 0xffffff))}, uint16_t(rng() % 65536)};
  size_t i = 0, hits = 0;
  for (auto _ : state) {
    hits += rs.allows(6, q[i].first, q[i].second);
    i = (i + 1) & 4095;
  }
  benchmark::DoNotOptimize(hits);
  state.SetItemsProcessed(int64_t(state.iterations()));
}
BENCHMARK(BM_SgLookup1000Rules);

// First packet of a flow through a NIC whose group has 1000 rules: classification + conntrack insert.
void BM_CtFirstPacket1000Rules(benchmark::State& state) {
  auto pol = thousand_rules();
  Frames f;
  for (uint32_t i = 0; i < 65536; ++i) f.add(udp_frame(i, false));
  f.finish();
  ConnTableOptions o;
  o.max_conns = (1u << 20) + 1024;
  o.max_conns_per_vpc = o.max_conns;
  auto table = std::make_unique<ConnTable>(o);
  uint32_t made = 0, round = 0;
  uint64_t bad = 0;
  for (auto _ : state) {
    Packet& p = f.pkts[made & 0xffff];
    p.src_port = uint16_t(1024 + round);
    bad += conntrack(*table, *pol, request(CtDir::kEgress, 0), p) != CtVerdict::kAllowed;
    if ((++made & 0xffff) == 0) ++round;
    if (made == (1u << 20)) {
      state.PauseTiming();
      table = std::make_unique<ConnTable>(o);
      made = round = 0;
      state.ResumeTiming();
    }
  }
  if (bad) state.SkipWithError("a flow was refused");
  state.SetItemsProcessed(int64_t(state.iterations()));
}
BENCHMARK(BM_CtFirstPacket1000Rules);

// Compiling 1000 rules (the control thread's cost per change).
void BM_SgCompile1000Rules(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(thousand_rules());
}
BENCHMARK(BM_SgCompile1000Rules)->Unit(benchmark::kMillisecond);

// Bytes per connection: allocated storage of a table sized for 1M connections, divided by 1M.
void BM_CtBytesPerConnection(benchmark::State& state) {
  for (auto _ : state) {
    ConnTableOptions o;
    o.max_conns = 1u << 20;
    ConnTable t(o);
    benchmark::DoNotOptimize(t.size());
    const double slots_per_shard = double(std::bit_ceil(t.capacity_per_shard() * 2));
    const double bytes = double(t.shard_count()) *
                         (double(t.capacity_per_shard()) * (sizeof(Conn) + 8) + slots_per_shard * 8);
    state.counters["bytes_per_conn_allocated"] = bytes / double(o.max_conns);
    state.counters["bytes_per_conn_in_use"] = double(ConnTable::kBytesPerConn);
  }
}
BENCHMARK(BM_CtBytesPerConnection)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace vpcd::dp
