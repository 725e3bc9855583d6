// Test harness for the overlay stages: one VPC (VNI kVni) with a guest port and an uplink (FakePorts) and tunnel
// pseudo-ports to two remote VTEPs, run through the real runner like a worker. Shared by
// tests/unit/overlay/overlay_pipeline_test.cc and fuzz/fuzz_uplink_input.cc. Single-threaded.
#pragma once

#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "datapath/config/dataplane_config.h"
#include "datapath/io/fake_port.h"
#include "datapath/pipeline/pipeline.h"
#include "datapath/proto/checksum.h"
#include "datapath/proto/frame_builder.h"
#include "datapath/proto/vxlan.h"
#include "datapath/stages/uplink_input.h"

namespace vpcd::dp::overlaytest {

inline const MacAddr kUplinkMac{{0x02, 0xaa, 0, 0, 0, 1}};
inline const MacAddr kPeerMac{{0x02, 0xbb, 0, 0, 0, 2}};
inline const MacAddr kGuestMac{{0x02, 0, 0, 0, 0, 0x0a}};
inline const MacAddr kRemoteMac{{0x02, 0, 0, 0, 0, 0x0b}};
inline const MacAddr kRouterMac{{0x02, 0xee, 0, 0, 0, 1}};
inline const Ipv4Addr kMe = *Ipv4Addr::parse("198.18.0.1");
inline const Ipv4Addr kPeer = *Ipv4Addr::parse("198.18.0.2");
inline const Ipv4Addr kPeer2 = *Ipv4Addr::parse("198.18.0.3");
inline const Ipv4Addr kGuestIp = *Ipv4Addr::parse("10.0.0.10");
inline const Ipv4Addr kRemoteIp = *Ipv4Addr::parse("10.0.0.20");
inline constexpr uint32_t kVni = 4242;

inline uint64_t g_seq = 1000;

struct OverlayNet {
  OverlayNet() {
    VpcConfig v;
    v.index = 0;
    v.gen = 1;
    v.id = "vpc";
    v.vni = kVni;
    v.mtu = 1450;
    v.router_mac = kRouterMac;
    cfg.vpcs.push_back(std::move(v));
    guest = add(PortKind::kGuest);
    uplink = add(PortKind::kUplink);
    t1 = add(PortKind::kTunnel, kPeer);
    t2 = add(PortKind::kTunnel, kPeer2);
    cfg.ports[guest].mac = kGuestMac;
    cfg.ports[guest].gso_tx = true;  // as a tap / netns NIC: tcp-coalesce on the way to it (overlay_builder)
    cfg.ports[guest].out_features |= stage_bit(Next::kTcpCoalesce);
    cfg.ports[guest].ips = {kGuestIp};
    build_vpc_tables(cfg, cfg.vpcs[0], {*Ipv4Addr::parse("10.0.0.1")});
    UnderlayConfig u;
    u.port = uplink;
    u.mac = kUplinkMac;
    u.address = Ipv4Prefix{kMe, 24};
    cfg.overlay.underlay = u;
    cfg.overlay.table = std::make_shared<const OverlayTable>(
        std::vector<std::pair<uint32_t, uint16_t>>{{kVni, 0}},
        std::vector<OverlayTable::Tunnel>{{0, kPeer, t1}, {0, kPeer2, t2}});
  }

  uint16_t add(PortKind kind, Ipv4Addr remote = {}) {
    PortConfig p;
    p.index = uint16_t(cfg.ports.size());
    p.kind = kind;
    p.vpc = kind == PortKind::kUplink ? kNoVpcIndex : 0;
    p.mtu = kind == PortKind::kUplink ? 1500 : 1450;
    p.port_security = kind == PortKind::kGuest;
    p.remote_ip = remote;
    p.rt = std::make_shared<PortRuntime>();
    p.rt->seq = g_seq++;
    FakePort* f = nullptr;
    if (kind != PortKind::kTunnel) {
      auto io = std::make_unique<FakePort>("f" + std::to_string(p.index));
      f = io.get();
      p.rt->io = std::move(io);
    } else {
      p.out_features = stage_bit(Next::kVxlanEncap);
      p.uplink = 1;
    }
    p.features = default_features(p);
    fakes.push_back(f);
    cfg.ports.push_back(std::move(p));
    return cfg.ports.back().index;
  }

  void receive(uint16_t in, const std::vector<uint8_t>& frame, std::optional<virtio_net_hdr> vnet = std::nullopt) {
    receive_on(ctx, in, frame, vnet);
  }
  // The same on another worker's context w (w.worker: its tx ring and counter slot).
  void receive_on(WorkerContext& w, uint16_t in, const std::vector<uint8_t>& frame,
                  std::optional<virtio_net_hdr> vnet = std::nullopt) {
    fakes[in]->inject(frame, vnet);
    std::vector<Packet> pkts(2);
    unsigned n = fakes[in]->rx_burst(0, pkts.data(), 2);
    run_batch(w, cfg, in, std::span<Packet>(pkts.data(), n));
    flush_outputs(w, cfg);
    fakes[in]->rx_release(0);
  }
  // Receives frames as one batch on port `in` (at most 64: one rx burst), as a worker does.
  void receive_batch(uint16_t in, const std::vector<std::vector<uint8_t>>& frames) {
    for (const auto& f : frames) fakes[in]->inject(f);
    std::vector<Packet> pkts(frames.size() + 1);
    unsigned n = fakes[in]->rx_burst(0, pkts.data(), unsigned(pkts.size()));
    run_batch(ctx, cfg, in, std::span<Packet>(pkts.data(), n));
    flush_outputs(ctx, cfg);
    fakes[in]->rx_release(0);
  }
  void tick(uint64_t now_ms) { tick_on(ctx, now_ms); }
  void tick_on(WorkerContext& w, uint64_t now_ms) {
    overlay_tick(w, cfg, now_ms);
    run_pending(w, cfg);
    flush_outputs(w, cfg);
  }
  uint64_t drops(uint16_t port, DropReason r) const { return cfg.ports[port].rt->sum().drops[size_t(r)]; }

  DataplaneConfig cfg;
  WorkerContext ctx;
  std::vector<FakePort*> fakes;
  uint16_t guest, uplink, t1, t2;
};

// A VXLAN datagram from the VTEP at src to this box (outer UDP checksum 0, DF) carrying inner in VNI vni.
inline std::vector<uint8_t> vxlan_datagram(Ipv4Addr src, uint32_t vni, const std::vector<uint8_t>& inner,
                                           MacAddr dst = kUplinkMac) {
  std::vector<uint8_t> v(8);
  const proto::VxlanHdr h = proto::VxlanHdr::make(vni);
  std::memcpy(v.data(), &h, 8);
  v.insert(v.end(), inner.begin(), inner.end());
  proto::Ipv4Opts df;
  df.frag_off = proto::kIpv4FlagDf;
  auto f = proto::FrameBuilder().eth(kPeerMac, dst).ipv4(src, kMe, df).udp(50000, 4789).payload(v).build();
  f[40] = f[41] = 0;
  return f;
}

// A guest's TSO super-frame as the kernel hands it over (TCP checksum partial: the pseudo-header sum in place; MSS
// 1398; a payload pattern so misplaced bytes show) from src to dst, with its vnet header.
inline std::pair<std::vector<uint8_t>, virtio_net_hdr> tso_frame(size_t payload, MacAddr src_mac = kGuestMac,
                                                                 MacAddr dst_mac = kRemoteMac, Ipv4Addr src = kGuestIp,
                                                                 Ipv4Addr dst = kRemoteIp) {
  auto super =
      proto::FrameBuilder().eth(src_mac, dst_mac).ipv4(src, dst).tcp(40000, 5201).payload_size(payload).build();
  for (size_t i = 54; i < super.size(); ++i) super[i] = uint8_t(i * 7);
  const uint16_t l4_len = uint16_t(super.size() - 34);
  const be16 ps = be16::from_host(proto::fold_sum(proto::ipv4_pseudo_sum(src, dst, 6, l4_len)));
  std::memcpy(&super[34 + 16], &ps, 2);
  virtio_net_hdr v{};
  v.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  v.csum_start = 34;
  v.csum_offset = 16;
  v.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
  v.gso_size = 1398;
  v.hdr_len = 54;
  return {super, v};
}

}  // namespace vpcd::dp::overlaytest
