// The overlay half of the snapshot builder; see overlay_builder.h.
#include "datapath/control/overlay_builder.h"

#include <set>
#include <utility>

#include "datapath/control/snapshot_builder.h"

namespace vpcd::dp {

std::string tunnel_key(const std::string& vpc_id, Ipv4Addr underlay_ip) {
  return vpc_id + "/" + underlay_ip.to_string();
}

void build_overlay(const DesiredState& d, const std::vector<PortBinding>& ports,
                   const std::map<std::string, uint16_t>& vpc_slots, uint16_t vxlan_port, DataplaneConfig& cfg) {
  // The underlay uplink: role underlay or both (the API allows one), with a port.
  for (const UplinkSpec& u : d.uplinks) {
    if (u.role == UplinkRole::kExternal) continue;
    for (const PortBinding& b : ports) {
      if (b.kind != PortKind::kUplink || b.object_id != u.id || !b.rt || !cfg.port(b.port)) continue;
      UnderlayConfig uc;
      uc.port = b.port;
      uc.id = u.id;
      uc.mac = b.mac;
      uc.address = u.address;
      uc.gateway = u.gateway;
      uc.vxlan_port = vxlan_port;
      uc.mtu = b.mtu;
      cfg.ports[b.port].mac = b.mac;
      cfg.ports[b.port].ips = {u.address.addr};
      cfg.overlay.underlay = uc;
      break;
    }
    if (cfg.overlay.underlay) break;
  }

  std::vector<std::pair<uint32_t, uint16_t>> vnis;
  for (const VpcSpec& v : d.vpcs) {
    auto s = vpc_slots.find(v.id);
    if (s != vpc_slots.end()) vnis.emplace_back(v.vni, s->second);
  }
  std::vector<OverlayTable::Tunnel> tunnels;
  std::map<std::string, uint16_t> tunnel_port;  // tunnel key -> port id
  for (const PortBinding& b : ports) {
    if (b.kind != PortKind::kTunnel || !cfg.port(b.port)) continue;
    PortConfig& pc = cfg.ports[b.port];
    pc.out_features |= stage_bit(Next::kVxlanEncap);
    if (cfg.overlay.underlay) pc.uplink = cfg.overlay.underlay->port;
    tunnels.push_back({pc.vpc, b.remote_ip, b.port});
    tunnel_port.emplace(tunnel_key(b.vpc_id, b.remote_ip), b.port);
  }
  cfg.overlay.table = std::make_shared<const OverlayTable>(vnis, tunnels);

  // Software GRO (tcp-coalesce) towards the guests of VPCs with tunnels whose ports take GSO super-frames: segments
  // the underlay carried one MTU at a time reach the guest as one frame.
  std::set<uint16_t> overlay_vpcs;
  for (const OverlayTable::Tunnel& t : tunnels) overlay_vpcs.insert(t.vpc);
  for (PortConfig& pc : cfg.ports)
    if (pc.present() && pc.kind == PortKind::kGuest && pc.gso_tx && overlay_vpcs.count(pc.vpc))
      pc.out_features |= stage_bit(Next::kTcpCoalesce);

  // Head-end replication goes to VTEP peers only (a remote NIC's VTEP gets unicast only).
  std::set<uint16_t> peer_ports;
  for (const VtepPeerSpec& p : d.vtep_peers) {
    auto t = tunnel_port.find(tunnel_key(p.vpc_id, p.underlay_ip));
    if (t != tunnel_port.end()) peer_ports.insert(t->second);
  }
  std::map<uint16_t, std::vector<const RemoteNicSpec*>> remote_by_slot;
  for (const RemoteNicSpec& r : d.remote_nics) {
    auto s = vpc_slots.find(r.vpc_id);
    if (s != vpc_slots.end() && tunnel_port.count(tunnel_key(r.vpc_id, r.underlay_ip)))
      remote_by_slot[s->second].push_back(&r);
  }
  for (VpcConfig& vc : cfg.vpcs) {
    if (!vc.present()) continue;
    std::erase_if(vc.tunnels, [&](uint16_t t) { return !peer_ports.count(t); });
    auto rn = remote_by_slot.find(vc.index);
    if (rn == remote_by_slot.end()) continue;
    // The VPC's tables again, with its remote NICs (build_vpc_tables' order: ports, then remote NICs, gateways last).
    std::vector<std::pair<MacAddr, uint16_t>> macs;
    std::vector<std::pair<Ipv4Addr, MacAddr>> answers;
    for (const PortConfig& p : cfg.ports) {
      if (!p.present() || p.vpc != vc.index || p.kind != PortKind::kGuest) continue;
      macs.emplace_back(p.mac, p.index);
      for (auto ip : p.ips) answers.emplace_back(ip, p.mac);
    }
    for (const RemoteNicSpec* r : rn->second) {
      const VpcSpec* vs = nullptr;
      for (const auto& v : d.vpcs)
        if (v.id == r->vpc_id) vs = &v;
      if (!vs) continue;
      macs.emplace_back(r->mac, tunnel_port.at(tunnel_key(r->vpc_id, r->underlay_ip)));
      for (auto ip : r->ips) answers.emplace_back(ip, r->mac);
    }
    for (auto gw : vc.gateways) answers.emplace_back(gw, vc.router_mac);
    vc.fib = std::make_shared<const StaticMacFib>(macs);
    vc.arp = std::make_shared<const ArpAnswerTable>(answers);
  }
}

}  // namespace vpcd::dp
