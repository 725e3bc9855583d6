// Test harness for the switching pipeline: a hand-built DataplaneConfig whose ports are FakePorts, a WorkerContext
// with an injectable clock, and helpers that push frames through rx_burst -> run_batch -> flush_outputs the way a
// worker does. Single-threaded; one SwitchTestNet per test.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "datapath/config/dataplane_config.h"
#include "datapath/io/fake_port.h"
#include "datapath/pipeline/pipeline.h"
#include "datapath/proto/frame_builder.h"

namespace vpcd::dp::testing {

inline uint32_t g_test_now_s = 1000;
inline uint32_t test_clock() noexcept { return g_test_now_s; }
inline uint64_t g_next_seq = 1;

inline MacAddr mac(uint8_t last, uint8_t fifth = 0) { return MacAddr{{0x02, 0, 0, 0, fifth, last}}; }
inline Ipv4Addr ip(const char* s) { return *Ipv4Addr::parse(s); }

class SwitchTestNet {
 public:
  explicit SwitchTestNet(unsigned worker = 0) {
    ctx.worker = worker;
    ctx.clock_s = &test_clock;
    g_test_now_s = 1000;
  }

  uint16_t add_vpc(const MacAddr& router_mac, uint32_t mtu = 1450, std::vector<Ipv4Addr> gateways = {}) {
    VpcConfig v;
    v.index = uint16_t(cfg.vpcs.size());
    v.gen = 1;
    v.id = "vpc-" + std::to_string(v.index);
    v.vni = 100 + v.index;
    v.mtu = mtu;
    v.router_mac = router_mac;
    cfg.vpcs.push_back(std::move(v));
    gateways_.push_back(std::move(gateways));
    return cfg.vpcs.back().index;
  }

  uint16_t add_port(uint16_t vpc, const MacAddr& m, std::vector<Ipv4Addr> ips, bool port_security = true,
                    uint32_t mtu = 1450, unsigned tx_capacity = 256) {
    PortConfig p;
    p.index = uint16_t(cfg.ports.size());
    p.vpc = vpc;
    p.mac = m;
    p.ips = std::move(ips);
    p.port_security = port_security;
    p.mtu = mtu;
    p.rt = std::make_shared<PortRuntime>();
    p.rt->nic_id = "nic-" + std::to_string(p.index);
    p.rt->seq = g_next_seq++;
    p.features = default_features(p);
    auto io = std::make_unique<FakePort>("fake" + std::to_string(p.index), tx_capacity);
    fakes.push_back(io.get());
    p.rt->io = std::move(io);
    cfg.ports.push_back(std::move(p));
    return cfg.ports.back().index;
  }

  // Builds every VPC's FIB / ARP table / flood list (keeps the learned tables).
  void build() {
    for (auto& v : cfg.vpcs) build_vpc_tables(cfg, v, gateways_[v.index]);
  }

  // Receives frames on port `in` (one batch) and runs them through the pipeline like a worker.
  void receive(uint16_t in, const std::vector<std::vector<uint8_t>>& frames,
               std::optional<virtio_net_hdr> vnet = std::nullopt) {
    for (const auto& f : frames) fakes[in]->inject(f, vnet);
    std::vector<Packet> pkts(frames.size() + 1);
    unsigned n = fakes[in]->rx_burst(0, pkts.data(), unsigned(pkts.size()));
    run_batch(ctx, cfg, in, std::span<Packet>(pkts.data(), n));
    flush_outputs(ctx, cfg);
    fakes[in]->rx_release(0);
  }
  void receive(uint16_t in, const std::vector<uint8_t>& frame, std::optional<virtio_net_hdr> vnet = std::nullopt) {
    receive(in, std::vector<std::vector<uint8_t>>{frame}, vnet);
  }

  std::vector<std::vector<uint8_t>> out(uint16_t port) { return fakes[port]->drain_bytes(); }
  // Frames transmitted per port since the last call (drains every port).
  std::vector<size_t> out_counts() {
    std::vector<size_t> n;
    for (auto* f : fakes) n.push_back(f->drain().size());
    return n;
  }
  PortCounters counters(uint16_t port) const { return cfg.ports[port].rt->sum(); }
  uint64_t drops(uint16_t port, DropReason r) const { return counters(port).drops[size_t(r)]; }

  DataplaneConfig cfg;
  WorkerContext ctx;
  std::vector<FakePort*> fakes;  // by port id; owned by cfg.ports[i].rt->io

 private:
  std::vector<std::vector<Ipv4Addr>> gateways_;
};

}  // namespace vpcd::dp::testing
