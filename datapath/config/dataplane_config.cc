// Construction of the per-VPC shared tables of a DataplaneConfig (control thread only).
#include "datapath/config/dataplane_config.h"

namespace vpcd::dp {

StaticMacFib::StaticMacFib(const std::vector<std::pair<MacAddr, uint16_t>>& entries) {
  std::vector<std::pair<uint64_t, uint16_t>> items;
  items.reserve(entries.size());
  for (const auto& [mac, port] : entries) items.emplace_back(key(mac), port);
  map_ = FlatU64Map<uint16_t>(items);
}

ArpAnswerTable::ArpAnswerTable(const std::vector<std::pair<Ipv4Addr, MacAddr>>& entries) {
  std::vector<std::pair<uint64_t, MacAddr>> items;
  items.reserve(entries.size());
  for (const auto& [ip, mac] : entries) items.emplace_back(key(ip), mac);
  map_ = FlatU64Map<MacAddr>(items);
}

uint32_t default_features(const PortConfig& p) noexcept {
  switch (p.kind) {
    case PortKind::kGuest:
      return p.port_security ? stage_bit(Next::kPortSecurity) : 0;
    case PortKind::kUplink:
      return stage_bit(Next::kUplinkInput);
    case PortKind::kTunnel:
      return 0;
  }
  return 0;
}

void build_vpc_tables(const DataplaneConfig& cfg, VpcConfig& vpc, const std::vector<Ipv4Addr>& gateways) {
  std::vector<std::pair<MacAddr, uint16_t>> macs;
  std::vector<std::pair<Ipv4Addr, MacAddr>> answers;
  vpc.ports.clear();
  vpc.tunnels.clear();
  vpc.gateways = gateways;
  for (const auto& p : cfg.ports) {
    if (!p.present() || p.vpc != vpc.index || p.kind == PortKind::kUplink) continue;
    vpc.ports.push_back(p.index);
    if (p.kind == PortKind::kTunnel) {
      vpc.tunnels.push_back(p.index);
      continue;
    }
    macs.emplace_back(p.mac, p.index);
    for (auto ip : p.ips) answers.emplace_back(ip, p.mac);
  }
  // Gateways last: later entries win, so a NIC configured with a gateway's address (the control plane rejects that)
  // cannot take the gateway over.
  for (auto gw : gateways) answers.emplace_back(gw, vpc.router_mac);
  vpc.fib = std::make_shared<const StaticMacFib>(macs);
  vpc.arp = std::make_shared<const ArpAnswerTable>(answers);
  if (!vpc.learned) vpc.learned = std::make_shared<MacTable>();
}

}  // namespace vpcd::dp
