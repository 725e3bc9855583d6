// SnapshotBuilder without root: ports and VPCs from a desired state, stable VPC slots with generations, feature
// bitmaps from port kinds and settings, queue assignment, and table reuse across builds.
#include "datapath/control/snapshot_builder.h"

#include <gtest/gtest.h>

namespace vpcd::dp {
namespace {

MacAddr mac(uint8_t last) { return MacAddr{{0x02, 0, 0, 0, 0, last}}; }
Ipv4Addr ip(const char* s) { return *Ipv4Addr::parse(s); }

VpcSpec vpc(const std::string& id, uint32_t vni) {
  VpcSpec v;
  v.id = id;
  v.vni = vni;
  v.mtu = 1400;
  v.subnets.push_back(SubnetSpec{id + "-sn", *Ipv4Prefix::parse("10.0.0.0/24"), ip("10.0.0.1")});
  return v;
}

NicSpec nic(const std::string& id, const std::string& vpc_id, uint8_t m, const char* addr, bool ps = true) {
  NicSpec n;
  n.id = id;
  n.vpc_id = vpc_id;
  n.subnet_id = vpc_id + "-sn";
  n.mac = mac(m);
  n.ips = {ip(addr)};
  n.port_security = ps;
  n.backend = NetnsBackend{"ns-" + id, "eth0"};
  return n;
}

PortBinding bind(const std::string& id, uint16_t port, unsigned worker) {
  PortBinding b;
  b.object_id = id;
  b.port = port;
  b.rt = std::make_shared<PortRuntime>();
  b.rt->nic_id = id;
  b.queue_worker = {worker};
  return b;
}

TEST(SnapshotBuilder, PortsVpcsFeaturesAndQueues) {
  DesiredState d;
  d.vpcs = {vpc("v1", 100)};
  d.nics = {nic("a", "v1", 1, "10.0.0.2"), nic("b", "v1", 2, "10.0.0.3", /*ps=*/false)};
  SnapshotBuilder sb(2);
  auto snap = sb.build(d, {bind("a", 0, 0), bind("b", 2, 1)}, 3, 7);
  const DataplaneConfig& cfg = *snap->config;
  EXPECT_EQ(cfg.generation, 7u);
  ASSERT_EQ(cfg.ports.size(), 3u);
  EXPECT_FALSE(cfg.ports[1].present());  // a hole
  const PortConfig& a = cfg.ports[0];
  const PortConfig& b = cfg.ports[2];
  EXPECT_EQ(a.kind, PortKind::kGuest);
  // b has port security off, so the VPC gets firewalls (policy_builder.h): both NICs meet firewall-egress/-ingress.
  EXPECT_EQ(a.features, stage_bit(Next::kPortSecurity) | stage_bit(Next::kFirewallEgress));
  EXPECT_EQ(b.features, stage_bit(Next::kFirewallEgress));  // port security off: no port-security stage
  EXPECT_EQ(b.out_features & stage_bit(Next::kFirewallIngress), stage_bit(Next::kFirewallIngress));
  EXPECT_EQ(a.mtu, 1400u);
  const VpcConfig* v = cfg.vpc(a.vpc);
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->vni, 100u);
  EXPECT_EQ(v->router_mac, router_mac_for(100));
  EXPECT_EQ(v->ports, (std::vector<uint16_t>{0, 2}));
  EXPECT_EQ(v->gateways, std::vector<Ipv4Addr>{ip("10.0.0.1")});
  EXPECT_EQ(v->fib->find(mac(2)), 2);
  ASSERT_NE(v->arp->find(ip("10.0.0.1")), nullptr);
  EXPECT_EQ(*v->arp->find(ip("10.0.0.1")), router_mac_for(100));
  ASSERT_EQ(snap->rx.size(), 2u);
  EXPECT_EQ(snap->rx[0], (std::vector<RxQueueRef>{{0, 0}}));
  EXPECT_EQ(snap->rx[1], (std::vector<RxQueueRef>{{2, 0}}));
}

TEST(SnapshotBuilder, VpcSlotsAreStableAndReusedSlotsGetANewGeneration) {
  SnapshotBuilder sb(1);
  DesiredState d;
  d.vpcs = {vpc("v1", 100), vpc("v2", 200)};
  auto s1 = sb.build(d, {}, 0, 1);
  const uint16_t slot1 = sb.vpc_slot("v1"), slot2 = sb.vpc_slot("v2");
  ASSERT_NE(slot1, slot2);
  const uint64_t key2 = s1->config->vpcs[slot2].key();
  // v1 goes; v2 keeps its slot and key.
  d.vpcs = {vpc("v2", 200)};
  auto s2 = sb.build(d, {}, 0, 2);
  EXPECT_EQ(sb.vpc_slot("v2"), slot2);
  EXPECT_EQ(s2->config->vpcs[slot2].key(), key2);
  EXPECT_EQ(sb.vpc_slot("v1"), kNoVpcIndex);
  EXPECT_EQ(s2->config->vpc(slot1), nullptr);  // an empty slot
  // v3 takes v1's slot with another generation: per-worker state keyed by (slot, gen) cannot mix them.
  d.vpcs = {vpc("v2", 200), vpc("v3", 300)};
  auto s3 = sb.build(d, {}, 0, 3);
  EXPECT_EQ(sb.vpc_slot("v3"), slot1);
  EXPECT_NE(s3->config->vpcs[slot1].key(), s1->config->vpcs[slot1].key());
  EXPECT_EQ(s3->config->vpcs[slot1].vni, 300u);
}

TEST(SnapshotBuilder, UnchangedVpcKeepsItsTablesAndLearnedMacs) {
  SnapshotBuilder sb(1);
  DesiredState d;
  d.vpcs = {vpc("v1", 100), vpc("v2", 200)};
  d.nics = {nic("a", "v1", 1, "10.0.0.2"), nic("c", "v2", 3, "10.0.0.2")};
  std::vector<PortBinding> ports = {bind("a", 0, 0), bind("c", 1, 0)};
  auto s1 = sb.build(d, ports, 2, 1);
  const auto& v1 = s1->config->vpcs[sb.vpc_slot("v1")];
  const auto& v2 = s1->config->vpcs[sb.vpc_slot("v2")];
  // A NIC added to v2 changes v2's tables only.
  d.nics.push_back(nic("d", "v2", 4, "10.0.0.3"));
  ports.push_back(bind("d", 2, 0));
  auto s2 = sb.build(d, ports, 3, 2);
  const auto& w1 = s2->config->vpcs[sb.vpc_slot("v1")];
  const auto& w2 = s2->config->vpcs[sb.vpc_slot("v2")];
  EXPECT_EQ(w1.fib, v1.fib);
  EXPECT_EQ(w1.arp, v1.arp);
  EXPECT_NE(w2.fib, v2.fib);
  EXPECT_EQ(w2.learned, v2.learned);  // learned MACs live as long as the VPC
  EXPECT_EQ(w2.ports, (std::vector<uint16_t>{1, 2}));
}

TEST(SnapshotBuilder, PortsOfUnknownObjectsAndVpcsAreLeftOutOrDetached) {
  SnapshotBuilder sb(1);
  DesiredState d;
  d.vpcs = {vpc("v1", 100)};
  d.nics = {nic("a", "v1", 1, "10.0.0.2"), nic("orphan", "gone", 2, "10.0.0.3")};
  auto snap = sb.build(d, {bind("a", 0, 0), bind("orphan", 1, 0), bind("not-in-d", 2, 0)}, 3, 1);
  const auto& cfg = *snap->config;
  EXPECT_TRUE(cfg.ports[0].present());
  ASSERT_TRUE(cfg.ports[1].present());
  EXPECT_EQ(cfg.ports[1].vpc, kNoVpcIndex);  // in no VPC: its frames are counted no_vpc
  EXPECT_FALSE(cfg.ports[2].present());
}

TEST(SnapshotBuilder, TunnelPortsJoinTheFloodListNotTheFib) {
  SnapshotBuilder sb(1);
  DesiredState d;
  d.vpcs = {vpc("v1", 100)};
  d.nics = {nic("a", "v1", 1, "10.0.0.2")};
  UplinkSpec up;
  up.id = "u1";
  up.ifname = "eth9";
  up.address = *Ipv4Prefix::parse("192.0.2.1/24", false);
  d.uplinks = {up};
  VtepPeerSpec peer;  // a VTEP peer: its tunnel is on the head-end replication list (a remote NIC's alone is not)
  peer.id = "p1";
  peer.vpc_id = "v1";
  peer.underlay_ip = ip("192.0.2.2");
  d.vtep_peers = {peer};
  PortBinding uplink = bind("u1", 1, 0);
  uplink.kind = PortKind::kUplink;
  PortBinding tun = bind("v1/192.0.2.2", 2, 0);
  tun.kind = PortKind::kTunnel;
  tun.queue_worker.clear();
  tun.vpc_id = "v1";
  tun.remote_ip = ip("192.0.2.2");
  tun.uplink = 1;
  auto snap = sb.build(d, {bind("a", 0, 0), uplink, tun}, 3, 1);
  const auto& cfg = *snap->config;
  EXPECT_EQ(cfg.ports[1].kind, PortKind::kUplink);
  EXPECT_EQ(cfg.ports[1].vpc, kNoVpcIndex);
  EXPECT_EQ(cfg.ports[1].features, stage_bit(Next::kUplinkInput));
  EXPECT_EQ(cfg.ports[2].kind, PortKind::kTunnel);
  EXPECT_EQ(cfg.ports[2].uplink, 1);
  const VpcConfig* v = cfg.vpc(cfg.ports[0].vpc);
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->ports, (std::vector<uint16_t>{0, 2}));
  EXPECT_EQ(v->tunnels, std::vector<uint16_t>{2});
  EXPECT_EQ(v->fib->size(), 1u);
  EXPECT_EQ(snap->rx[0], (std::vector<RxQueueRef>{{0, 0}, {1, 0}}));
  // The overlay half (overlay_builder): the underlay, the VNI and VTEP lookups, the tunnel's egress feature.
  ASSERT_TRUE(cfg.overlay.underlay.has_value());
  EXPECT_EQ(cfg.overlay.underlay->port, 1);
  EXPECT_EQ(cfg.overlay.table->vpc_of_vni(100), v->index);
  EXPECT_EQ(cfg.overlay.table->tunnel(v->index, ip("192.0.2.2")), 2);
  EXPECT_EQ(cfg.overlay.table->tunnel(v->index, ip("192.0.2.9")), OverlayTable::kNone);
  EXPECT_EQ(cfg.ports[2].out_features, stage_bit(Next::kVxlanEncap));
}

// tcp-coalesce (software GRO) goes on the way to guest ports that take GSO super-frames (tap, netns) in VPCs with
// tunnels: not to a vhost-user NIC, not in a VPC without tunnels.
TEST(SnapshotBuilder, TcpCoalesceTowardsAfPacketGuestsOfOverlayVpcs) {
  SnapshotBuilder sb(1);
  DesiredState d;
  d.vpcs = {vpc("v1", 100), vpc("v2", 200)};
  NicSpec vhost = nic("c", "v1", 3, "10.0.0.4");
  vhost.backend = VhostUserBackend{"/run/vm.sock"};
  d.nics = {nic("a", "v1", 1, "10.0.0.2"), vhost, nic("d", "v2", 4, "10.0.0.5")};
  UplinkSpec up;
  up.id = "u1";
  up.ifname = "eth9";
  up.address = *Ipv4Prefix::parse("192.0.2.1/24", false);
  d.uplinks = {up};
  VtepPeerSpec peer;
  peer.id = "p1";
  peer.vpc_id = "v1";
  peer.underlay_ip = ip("192.0.2.2");
  d.vtep_peers = {peer};
  PortBinding uplink = bind("u1", 1, 0);
  uplink.kind = PortKind::kUplink;
  PortBinding tun = bind("v1/192.0.2.2", 2, 0);
  tun.kind = PortKind::kTunnel;
  tun.queue_worker.clear();
  tun.vpc_id = "v1";
  tun.remote_ip = ip("192.0.2.2");
  tun.uplink = 1;
  auto snap = sb.build(d, {bind("a", 0, 0), uplink, tun, bind("c", 3, 0), bind("d", 4, 0)}, 5, 1);
  const auto& cfg = *snap->config;
  const uint32_t gro = stage_bit(Next::kTcpCoalesce);
  EXPECT_TRUE(cfg.ports[0].gso_tx);
  EXPECT_EQ(cfg.ports[0].out_features & gro, gro);
  EXPECT_FALSE(cfg.ports[3].gso_tx);
  EXPECT_EQ(cfg.ports[3].out_features & gro, 0u);  // vhost-user
  EXPECT_TRUE(cfg.ports[4].gso_tx);
  EXPECT_EQ(cfg.ports[4].out_features & gro, 0u);  // a VPC without tunnels
  EXPECT_EQ(cfg.ports[2].out_features & gro, 0u);  // the tunnel itself
}

TEST(SnapshotBuilder, RemoteNicsAnsweredLocallyAndOnlyPeersFlooded) {
  SnapshotBuilder sb(1);
  DesiredState d;
  d.vpcs = {vpc("v1", 100)};
  d.nics = {nic("a", "v1", 1, "10.0.0.2")};
  RemoteNicSpec r;
  r.id = "r1";
  r.vpc_id = "v1";
  r.mac = MacAddr{{0x02, 0, 0, 0, 0, 0x77}};
  r.ips = {ip("10.0.0.77")};
  r.underlay_ip = ip("192.0.2.3");
  d.remote_nics = {r};
  PortBinding tun = bind("v1/192.0.2.3", 1, 0);
  tun.kind = PortKind::kTunnel;
  tun.queue_worker.clear();
  tun.vpc_id = "v1";
  tun.remote_ip = ip("192.0.2.3");
  auto snap = sb.build(d, {bind("a", 0, 0), tun}, 2, 1);
  const VpcConfig* v = snap->config->vpc(snap->config->ports[0].vpc);
  ASSERT_NE(v, nullptr);
  EXPECT_TRUE(v->tunnels.empty());  // a remote NIC's VTEP gets unicast only
  EXPECT_EQ(v->fib->find(r.mac), 1);
  const MacAddr* answer = v->arp->find(ip("10.0.0.77"));
  ASSERT_NE(answer, nullptr);
  EXPECT_EQ(*answer, r.mac);
}

}  // namespace
}  // namespace vpcd::dp
