// Controller: turns a DesiredState into OS objects (taps, veth pairs in namespaces), AfPacketPorts, worker queue
// assignments and DataplaneConfig snapshots; reports NIC states and sums counters. See controller.h.
//
// apply() runs in three steps, all on the calling (control) thread under mu_:
//   1. NICs that are gone, or whose backend / guest-side parameters changed: publish a snapshot without their ports,
//      wait for every worker's ack (no worker polls or transmits on them any more), then close the ports (their
//      counters go into the removed-ports totals) and remove their OS objects.
//   2. NICs that are new (or being recreated): create the OS objects, open an AfPacketPort on the host interface and
//      give each rx queue to the least loaded worker (by queue count; a queue keeps its worker for the port's life).
//      A failure gives the NIC kError with the reason; the rest goes on.
//   3. Build the DataplaneConfig (an unchanged VPC keeps its FIB / ARP tables; its learned MAC table lives as long as
//      the VPC), publish it together with the queue assignment, wait for every worker's ack.
//
// Threading: every public method except stats() and nic_states() takes mu_ (one apply at a time). stats() and
// nic_states() take only view_mu_, which apply() holds just long enough to swap in the new view, so the REST thread
// never waits for OS operations. Workers are never stopped.
#include "datapath/controller.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <system_error>
#include <unordered_map>

#include "datapath/config/dataplane_config.h"
#include "datapath/control/vhost_user_backend.h"
#include "datapath/io/af_packet_port.h"
#include "datapath/io/netlink.h"
#include "datapath/io/netns_nic.h"
#include "datapath/io/tap_device.h"
#include "datapath/pipeline/counters.h"
#include "datapath/pipeline/worker.h"

namespace vpcd::dp {

namespace {

constexpr auto kAckTimeout = std::chrono::seconds(5);

// FNV-1a, 64 bits: a stable name for a NIC id.
uint64_t fnv1a(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

// "vn" + 12 hex characters derived from the NIC id (the veth host end; <= 15 bytes).
std::string netns_host_ifname(const std::string& nic_id) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "vn%012llx", static_cast<unsigned long long>(fnv1a(nic_id) & 0xffffffffffffull));
  return buf;
}

// The VPC router's MAC: locally administered, derived from the VNI (unique per box).
MacAddr router_mac_for(uint32_t vni) {
  return MacAddr{{0x02, 0x76, 0x70, uint8_t(vni >> 16), uint8_t(vni >> 8), uint8_t(vni)}};
}

void add_into(PortCounters& a, const PortCounters& b) {
  a.rx_packets += b.rx_packets;
  a.rx_bytes += b.rx_bytes;
  a.tx_packets += b.tx_packets;
  a.tx_bytes += b.tx_bytes;
  for (size_t i = 0; i < a.drops.size(); ++i) a.drops[i] += b.drops[i];
}

// /sys/class/net/IF/carrier: 1, 0, or nullopt (no such link, or administratively down: EINVAL).
std::optional<bool> read_carrier(const std::string& ifname) {
  std::ifstream f("/sys/class/net/" + ifname + "/carrier");
  int v = -1;
  if (!(f >> v)) return std::nullopt;
  return v == 1;
}

// A NIC's state from what vpcd knows (backend error, port open) and the host link's carrier right now.
NicState compute_state(const std::string& host, const std::string& error, bool has_port, bool is_tap) {
  NicState s;
  s.host_ifname = host;
  if (!error.empty()) {
    s.status = NicStatus::kError;
    s.detail = error;
    return s;
  }
  if (!has_port) {
    s.detail = "no port";
    return s;
  }
  auto carrier = read_carrier(host);
  if (carrier && *carrier) {
    s.status = NicStatus::kUp;
  } else if (!carrier) {
    s.detail = "link " + host + " is down or gone";
  } else {
    s.detail = is_tap ? "no carrier (no hypervisor attached)" : "no carrier";
  }
  return s;
}

}  // namespace

struct Controller::Impl {
  struct Nic {
    NicSpec spec;
    NicState state;
    std::string backend_error;          // set when the backend failed (state kError)
    std::shared_ptr<PortRuntime> rt;    // null: no port (error)
    std::shared_ptr<PortRuntime> rt_pending_close;  // during apply(): unpublished, waiting for the workers' acks
    uint16_t port = kInvalidPort;
    std::vector<unsigned> queue_worker;  // [rx queue] -> worker
    std::optional<NetnsNicParams> netns;  // what was ensured (for removal)
    bool is_tap = false;
    vhost::VhostUserPort* vhost = nullptr;  // vhost-user backend: the port inside rt (attached to vhost_service)
  };
  struct VpcTables {
    VpcSpec spec;
    std::vector<std::tuple<uint16_t, MacAddr, std::vector<Ipv4Addr>>> members;  // what fib/arp were built from
    std::shared_ptr<const StaticMacFib> fib;
    std::shared_ptr<const ArpAnswerTable> arp;
    std::vector<uint16_t> ports;
    std::shared_ptr<MacTable> learned;
  };
  // What stats()/nic_states() read.
  struct ViewNic {
    std::string host_ifname;
    std::string error;
    bool has_port = false;
    bool is_tap = false;
    std::shared_ptr<PortRuntime> vhost_rt;  // vhost-user: the state comes from the device
  };
  struct View {
    std::vector<std::pair<std::string, std::shared_ptr<PortRuntime>>> ports;  // by NIC id
    std::map<std::string, ViewNic> nics;
    PortCounters removed_totals;
  };

  explicit Impl(Options o)
      : opts(std::move(o)), nworkers(resolve_worker_count(opts.workers)), pub(nworkers), worker_load(nworkers, 0) {
    std::error_code ec;
    std::filesystem::create_directories(opts.run_dir, ec);
    workers.reserve(nworkers);
    for (unsigned w = 0; w < nworkers; ++w) workers.push_back(std::make_unique<Worker>(w, pub, opts.busy_poll));
    for (auto& w : workers) w->start();
  }

  ~Impl() {
    for (auto& w : workers) w->stop();  // workers drop their snapshot references; the publisher still holds them
    workers.clear();
    // Members are destroyed after this body: nics (ports close), then pub (snapshots freed here, control thread).
  }

  std::string alias_prefix() const { return "vpcd:" + opts.instance + ":"; }
  std::string alias_for(const std::string& nic_id) const { return alias_prefix() + nic_id; }

  const VpcSpec* find_vpc(const DesiredState& d, const std::string& id) const {
    for (const auto& v : d.vpcs)
      if (v.id == id) return &v;
    return nullptr;
  }

  // What the guest side of a netns NIC must look like under `d` (nullopt with *err when the spec cannot work).
  std::optional<NetnsNicParams> netns_params(const DesiredState& d, const NicSpec& n, std::string* err) const {
    const auto& b = std::get<NetnsBackend>(n.backend);
    const VpcSpec* vpc = find_vpc(d, n.vpc_id);
    if (!vpc) {
      *err = "unknown vpc " + n.vpc_id;
      return std::nullopt;
    }
    const SubnetSpec* subnet = nullptr;
    for (const auto& s : vpc->subnets)
      if (s.id == n.subnet_id) subnet = &s;
    if (!subnet) {
      *err = "unknown subnet " + n.subnet_id + " in vpc " + vpc->id;
      return std::nullopt;
    }
    if (n.ips.empty()) {
      *err = "a netns NIC needs an IPv4 address";
      return std::nullopt;
    }
    NetnsNicParams p;
    p.host_ifname = netns_host_ifname(n.id);
    p.netns = b.netns;
    p.ifname = b.ifname;
    p.mac = n.mac;
    p.addr = Ipv4Prefix{n.ips.front(), subnet->cidr.len};
    p.gateway = subnet->gateway;
    p.mtu = vpc->mtu;
    p.alias = alias_for(n.id);
    p.run_dir = opts.run_dir;
    return p;
  }

  static bool same_netns_params(const NetnsNicParams& a, const NetnsNicParams& b) {
    return a.host_ifname == b.host_ifname && a.netns == b.netns && a.ifname == b.ifname && a.mac == b.mac &&
           a.addr == b.addr && a.gateway == b.gateway && a.mtu == b.mtu && a.alias == b.alias;
  }

  // True when the existing NIC must be torn down and created again for `want`.
  bool needs_recreate(const Nic& have, const NicSpec& want, const DesiredState& d) const {
    if (have.spec.backend != want.backend) return true;
    if (!find_vpc(d, want.vpc_id)) return true;  // becomes an error: unknown vpc
    if (!have.rt) return true;  // it failed last time: try again
    if (std::holds_alternative<NetnsBackend>(want.backend)) {
      std::string err;
      auto p = netns_params(d, want, &err);
      return !p || !have.netns || !same_netns_params(*p, *have.netns);
    }
    return false;
  }

  uint16_t alloc_port() {
    for (size_t i = 0; i < port_used.size(); ++i)
      if (!port_used[i]) {
        port_used[i] = 1;
        return uint16_t(i);
      }
    port_used.push_back(1);
    return uint16_t(port_used.size() - 1);
  }

  // Picks a worker for each of `queues` rx queues: least loaded first, and one port's queues on distinct workers.
  std::vector<unsigned> assign_queues(unsigned queues) {
    std::vector<unsigned> out;
    std::vector<bool> used(nworkers, false);
    for (unsigned q = 0; q < queues; ++q) {
      unsigned best = nworkers;
      for (unsigned w = 0; w < nworkers; ++w) {
        if (used[w]) continue;
        if (best == nworkers || worker_load[w] < worker_load[best]) best = w;
      }
      if (best == nworkers) best = q % nworkers;  // more queues than workers (not opened that way; be safe)
      used[best] = true;
      ++worker_load[best];
      out.push_back(best);
    }
    return out;
  }

  // Creates the OS objects and the port for nic (already in nics with spec set). Fills state on failure.
  void bring_up(Nic& nic, const DesiredState& d) {
    const NicSpec& n = nic.spec;
    std::string host;
    std::string err;
    unsigned rx_queues = 1;
    nic.backend_error.clear();
    nic.is_tap = std::holds_alternative<TapBackend>(n.backend);
    nic.state = NicState{};
    nic.state.host_ifname = nic.is_tap ? std::get<TapBackend>(n.backend).ifname : netns_host_ifname(n.id);
    if (const auto* vu = std::get_if<VhostUserBackend>(&n.backend)) nic.state.host_ifname = vu->socket;
    if (!find_vpc(d, n.vpc_id)) {
      nic.backend_error = "unknown vpc " + n.vpc_id;
      return;
    }
    // Two NICs must not share an interface (a tap name, or a name inside one namespace).
    for (const auto& [oid, o] : nics) {
      if (&o == &nic || !o.rt) continue;
      if (o.state.host_ifname == nic.state.host_ifname) {
        nic.backend_error = "interface " + nic.state.host_ifname + " is already used by NIC " + oid;
        return;
      }
      const auto* mine = std::get_if<NetnsBackend>(&n.backend);
      const auto* theirs = std::get_if<NetnsBackend>(&o.spec.backend);
      if (mine && theirs && mine->netns == theirs->netns && mine->ifname == theirs->ifname) {
        nic.backend_error = "namespace " + mine->netns + " interface " + mine->ifname + " is already used by NIC " + oid;
        return;
      }
    }
    if (const auto* vu = std::get_if<VhostUserBackend>(&n.backend)) {
      bring_up_vhost_user(nic, d, *vu);
      return;
    }
    if (nic.is_tap) {
      const auto& tap = std::get<TapBackend>(n.backend);
      if (!tap_ensure(tap, alias_for(n.id), &err)) {
        nic.backend_error = "tap " + tap.ifname + ": " + err;
        return;
      }
      host = tap.ifname;
      rx_queues = std::clamp<unsigned>(tap.queues, 1, nworkers);
    } else {
      auto p = netns_params(d, n, &err);
      if (!p) {
        nic.backend_error = err;
        return;
      }
      if (!netns_nic_ensure(*p, &err)) {
        nic.backend_error = "namespace " + p->netns + ": " + err;
        netns_nic_remove(*p);
        return;
      }
      nic.netns = *p;
      host = p->host_ifname;
    }
    AfPacketOptions ao;
    ao.rx_queues = rx_queues;
    ao.tx_workers = nworkers;
    ao.rx_block_bytes = opts.rx_block_bytes;
    ao.rx_blocks = opts.rx_blocks;
    ao.tx_frames = opts.tx_frames;
    auto port = AfPacketPort::open(host, ao, &err);
    if (!port) {
      nic.backend_error = "af_packet on " + host + ": " + err;
      return;
    }
    auto rt = std::make_shared<PortRuntime>();
    rt->nic_id = n.id;
    rt->seq = next_seq++;
    rt->io = std::move(port);
    nic.rt = std::move(rt);
    nic.port = alloc_port();
    nic.queue_worker = assign_queues(nic.rt->io->rx_queues());
  }

  // ---- vhost-user backend (datapath/control/vhost_user_backend.h) ----
  void bring_up_vhost_user(Nic& nic, const DesiredState& d, const VhostUserBackend& b) {
    if (!vhost_service) {
      try {
        vhost_service = std::make_unique<vhost::VhostUserService>(vhost_user_marker_dir(opts.run_dir));
      } catch (const std::exception& e) {
        nic.backend_error = std::string("vhost-user service: ") + e.what();
        return;
      }
    }
    const VpcSpec* vpc = find_vpc(d, nic.spec.vpc_id);
    std::string err;
    auto port = vhost_user_bring_up(*vhost_service, nic.spec, b, vpc ? vpc->mtu : 1500, nworkers,
                                    [this] { state_changed(); }, &err);
    if (!port) {
      nic.backend_error = "vhost-user " + b.socket + ": " + err;
      return;
    }
    nic.vhost = port.get();
    auto rt = std::make_shared<PortRuntime>();
    rt->nic_id = nic.spec.id;
    rt->seq = next_seq++;
    rt->io = std::move(port);
    nic.rt = std::move(rt);
    nic.port = alloc_port();
    nic.queue_worker = assign_queues(nic.rt->io->rx_queues());
  }

  // A datapath thread saw a NIC change state on its own: tell the control plane.
  void state_changed() {
    std::scoped_lock lk(listener_mu);
    if (listener) listener();
  }

  // Closes the port (after the workers let go of it) and removes the OS objects.
  void tear_down(Nic& nic, bool remove_os_objects) {
    if (nic.vhost) {
      vhost_service->detach(nic.vhost);  // no more messages; rings stopped, guest memory unmapped
      nic.vhost = nullptr;
    }
    if (nic.rt) {
      add_into(removed_totals, nic.rt->sum());
      {
        std::scoped_lock lk(view_mu);
        std::erase_if(view.ports, [&](const auto& e) { return e.second == nic.rt; });
        view.removed_totals = removed_totals;
      }
      for (unsigned w : nic.queue_worker) --worker_load[w];
      port_used[nic.port] = 0;
      nic.rt.reset();  // the last reference once every worker acked: closes the sockets
    }
    nic.queue_worker.clear();
    nic.port = kInvalidPort;
    if (!remove_os_objects) return;
    if (nic.is_tap) {
      tap_remove(std::get<TapBackend>(nic.spec.backend).ifname);
    } else if (nic.netns) {
      netns_nic_remove(*nic.netns);
    }
    nic.netns.reset();
  }

  // The config and queue assignment for the NICs in `nics` that have a port, under desired state `d`.
  std::shared_ptr<const DatapathSnapshot> build(const DesiredState& d) {
    auto cfg = std::make_shared<DataplaneConfig>();
    cfg->generation = pub.next_generation();
    cfg->ports.resize(port_used.size());
    auto snap = std::make_shared<DatapathSnapshot>();
    snap->rx.resize(nworkers);
    std::unordered_map<std::string, uint16_t> vpc_index;
    for (const auto& v : d.vpcs) {
      uint16_t idx = uint16_t(cfg->vpcs.size());
      vpc_index.emplace(v.id, idx);
      VpcConfig vc;
      vc.index = idx;
      vc.id = v.id;
      vc.vni = v.vni;
      vc.mtu = v.mtu;
      vc.router_mac = router_mac_for(v.vni);
      cfg->vpcs.push_back(std::move(vc));
    }
    for (auto& [id, nic] : nics) {
      if (!nic.rt) continue;
      PortConfig& pc = cfg->ports[nic.port];
      pc.index = nic.port;
      auto vi = vpc_index.find(nic.spec.vpc_id);
      pc.vpc = vi == vpc_index.end() ? kNoVpcIndex : vi->second;
      pc.mac = nic.spec.mac;
      pc.ips = nic.spec.ips;
      pc.port_security = nic.spec.port_security;
      const VpcSpec* vs = find_vpc(d, nic.spec.vpc_id);
      pc.mtu = vs ? vs->mtu : 1500;
      pc.rt = nic.rt;
      for (unsigned q = 0; q < nic.queue_worker.size(); ++q)
        snap->rx[nic.queue_worker[q]].push_back(RxQueueRef{nic.port, uint16_t(q)});
    }
    std::map<std::string, VpcTables> next_tables;
    for (size_t i = 0; i < d.vpcs.size(); ++i) {
      const VpcSpec& vs = d.vpcs[i];
      VpcConfig& vc = cfg->vpcs[i];
      VpcTables t;
      t.spec = vs;
      for (const auto& pc : cfg->ports)
        if (pc.present() && pc.vpc == vc.index) t.members.emplace_back(pc.index, pc.mac, pc.ips);
      auto old = vpc_tables.find(vs.id);
      if (old != vpc_tables.end()) t.learned = old->second.learned;  // learned MACs live as long as the VPC
      if (old != vpc_tables.end() && old->second.spec == vs && old->second.members == t.members) {
        t.fib = old->second.fib;
        t.arp = old->second.arp;
        t.ports = old->second.ports;
        vc.fib = t.fib;
        vc.arp = t.arp;
        vc.ports = t.ports;
        vc.learned = t.learned;
      } else {
        std::vector<Ipv4Addr> gateways;
        for (const auto& s : vs.subnets) gateways.push_back(s.gateway);
        vc.learned = t.learned;
        build_vpc_tables(*cfg, vc, gateways);
        t.fib = vc.fib;
        t.arp = vc.arp;
        t.ports = vc.ports;
        t.learned = vc.learned;
      }
      next_tables.emplace(vs.id, std::move(t));
    }
    vpc_tables = std::move(next_tables);
    snap->config = std::move(cfg);
    return snap;
  }

  // Publishes and waits for every worker. false when some worker did not ack in time.
  bool publish(std::shared_ptr<const DatapathSnapshot> snap) {
    uint64_t g = pub.publish(std::move(snap));
    if (pub.wait_acked(g, kAckTimeout)) return true;
    std::fprintf(stderr, "vpcd: datapath workers did not acknowledge snapshot %llu within %lld s\n",
                 static_cast<unsigned long long>(g), static_cast<long long>(kAckTimeout.count()));
    return false;
  }

  NicState live_state(const Nic& nic) const {
    if (nic.vhost && nic.backend_error.empty()) return vhost_user_state(*nic.vhost, nic.state.host_ifname);
    NicState s = compute_state(nic.state.host_ifname, nic.backend_error, nic.rt != nullptr, nic.is_tap);
    return s;
  }

  // Removes links carrying this instance's alias that no NIC of the last applied state uses, and namespaces vpcd
  // created (marker in run_dir/netns) that no netns NIC names any more (only when nothing but lo is left in them).
  void remove_stale() {
    std::set<std::string> known_links, known_netns;
    std::set<std::string> known_sockets;
    for (const auto& n : last.nics) {
      if (const auto* t = std::get_if<TapBackend>(&n.backend)) {
        known_links.insert(t->ifname);
      } else if (const auto* vu = std::get_if<VhostUserBackend>(&n.backend)) {
        known_sockets.insert(vu->socket);
      } else {
        known_links.insert(netns_host_ifname(n.id));
        known_netns.insert(std::get<NetnsBackend>(n.backend).netns);
      }
    }
    for (const auto& name : links_with_alias_prefix(alias_prefix())) {
      if (known_links.count(name)) continue;
      std::string err;
      auto li = link_by_name(name, &err);
      if (!li) continue;
      if (li->kind == "tun") {
        if (!tap_remove(name, &err)) std::fprintf(stderr, "vpcd: removing stale tap %s: %s\n", name.c_str(), err.c_str());
        continue;
      }
      auto nl = Netlink::open(&err);
      if (!nl || !nl->delete_link(name, &err))
        std::fprintf(stderr, "vpcd: removing stale link %s: %s\n", name.c_str(), err.c_str());
    }
    vhost_user_remove_stale(vhost_user_marker_dir(opts.run_dir), known_sockets);
    std::error_code ec;
    std::vector<std::string> markers;
    for (const auto& e : std::filesystem::directory_iterator(opts.run_dir + "/netns", ec))
      markers.push_back(e.path().filename().string());
    for (const auto& ns : markers) {
      if (known_netns.count(ns)) continue;
      NetnsNicParams p;
      p.netns = ns;
      p.run_dir = opts.run_dir;
      netns_nic_remove(p);
    }
  }

  void refresh_view() {
    View v;
    for (auto& [id, nic] : nics) {
      nic.state = live_state(nic);
      v.nics.emplace(id, ViewNic{nic.state.host_ifname, nic.backend_error, nic.rt != nullptr, nic.is_tap,
                                 nic.vhost ? nic.rt : nullptr});
      if (nic.rt) v.ports.emplace_back(id, nic.rt);
    }
    v.removed_totals = removed_totals;
    std::scoped_lock lk(view_mu);
    view = std::move(v);
  }

  std::map<std::string, NicState> apply(const DesiredState& d) {
    // 1. Removals and recreations: unpublish, wait, close, remove OS objects.
    std::map<std::string, const NicSpec*> want;
    for (const auto& n : d.nics) want[n.id] = &n;
    std::vector<std::string> gone, recreate;
    for (auto& [id, nic] : nics) {
      auto w = want.find(id);
      if (w == want.end())
        gone.push_back(id);
      else if (needs_recreate(nic, *w->second, d))
        recreate.push_back(id);
    }
    if (!gone.empty() || !recreate.empty()) {
      bool had_port = false;
      for (const auto* list : {&gone, &recreate})
        for (const auto& id : *list) {
          Nic& nic = nics[id];
          if (nic.rt) had_port = true;
          nic.rt_pending_close = std::move(nic.rt);
        }
      bool acked = true;
      if (had_port) acked = publish(build(last));
      for (const auto* list : {&gone, &recreate})
        for (const auto& id : *list) {
          Nic& nic = nics[id];
          nic.rt = std::move(nic.rt_pending_close);
          if (!acked && nic.rt) zombies.push_back(nic.rt);  // a stuck worker may still use it: never close it
          tear_down(nic, true);
        }
      for (const auto& id : gone) nics.erase(id);
    }
    // 2. New NICs, and updates that keep the port.
    for (const auto& n : d.nics) {
      auto it = nics.find(n.id);
      if (it == nics.end()) {
        Nic& nic = nics[n.id];
        nic.spec = n;
        bring_up(nic, d);
      } else {
        it->second.spec = n;  // same backend: MAC / IPs / port security / VPC take effect through the snapshot
        if (!it->second.rt) bring_up(it->second, d);
      }
    }
    last = d;
    // 3. Publish the new configuration.
    publish(build(d));
    refresh_view();
    std::map<std::string, NicState> out;
    for (const auto& [id, nic] : nics) out.emplace(id, nic.state);
    return out;
  }

  Options opts;
  unsigned nworkers;
  std::mutex mu;  // serialises the control operations
  DatapathPublisher pub;
  std::vector<unsigned> worker_load;  // rx queues per worker
  std::vector<std::unique_ptr<Worker>> workers;
  DesiredState last;
  std::map<std::string, Nic> nics;
  std::map<std::string, VpcTables> vpc_tables;
  std::vector<uint8_t> port_used;
  uint64_t next_seq = 1;
  PortCounters removed_totals;
  std::vector<std::shared_ptr<PortRuntime>> zombies;  // ports a stuck worker might still touch: kept open

  mutable std::mutex view_mu;
  View view;  // guarded by view_mu

  std::mutex listener_mu;
  std::function<void()> listener;  // guarded by listener_mu; called by state_changed()
  // Last member: destroyed first, while every port it serves is still alive (held by nics and the publisher).
  std::unique_ptr<vhost::VhostUserService> vhost_service;
};

Controller::Controller(Options opts) : impl_(std::make_unique<Impl>(std::move(opts))) {
  std::scoped_lock lk(impl_->mu);
  impl_->publish(impl_->build(impl_->last));
  impl_->refresh_view();
}

Controller::~Controller() = default;

std::map<std::string, NicState> Controller::apply(const DesiredState& desired) {
  std::scoped_lock lk(impl_->mu);
  return impl_->apply(desired);
}

void Controller::remove_stale_os_objects() {
  std::scoped_lock lk(impl_->mu);
  impl_->remove_stale();
}

NicState Controller::add_nic(const NicSpec& nic) {
  std::scoped_lock lk(impl_->mu);
  DesiredState d = impl_->last;
  auto it = std::find_if(d.nics.begin(), d.nics.end(), [&](const NicSpec& n) { return n.id == nic.id; });
  if (it != d.nics.end())
    *it = nic;
  else
    d.nics.push_back(nic);
  return impl_->apply(d).at(nic.id);
}

void Controller::remove_nic(const std::string& nic_id) {
  std::scoped_lock lk(impl_->mu);
  DesiredState d = impl_->last;
  std::erase_if(d.nics, [&](const NicSpec& n) { return n.id == nic_id; });
  impl_->apply(d);
}

void Controller::add_vpc(const VpcSpec& vpc) {
  std::scoped_lock lk(impl_->mu);
  DesiredState d = impl_->last;
  auto it = std::find_if(d.vpcs.begin(), d.vpcs.end(), [&](const VpcSpec& v) { return v.id == vpc.id; });
  if (it != d.vpcs.end())
    *it = vpc;
  else
    d.vpcs.push_back(vpc);
  impl_->apply(d);
}

void Controller::remove_vpc(const std::string& vpc_id) {
  std::scoped_lock lk(impl_->mu);
  DesiredState d = impl_->last;
  std::erase_if(d.vpcs, [&](const VpcSpec& v) { return v.id == vpc_id; });
  std::erase_if(d.nics, [&](const NicSpec& n) { return n.vpc_id == vpc_id; });
  impl_->apply(d);
}

std::map<std::string, NicState> Controller::nic_states() const {
  std::map<std::string, Impl::ViewNic> nics;
  {
    std::scoped_lock lk(impl_->view_mu);
    nics = impl_->view.nics;
  }
  // Carrier is read now: a hypervisor may have attached to a tap since the last apply().
  std::map<std::string, NicState> out;
  for (const auto& [id, n] : nics) {
    if (n.vhost_rt && n.error.empty())
      out.emplace(id, vhost_user_state(*static_cast<const vhost::VhostUserPort*>(n.vhost_rt->io.get()), n.host_ifname));
    else
      out.emplace(id, compute_state(n.host_ifname, n.error, n.has_port, n.is_tap));
  }
  return out;
}

void Controller::set_state_listener(std::function<void()> fn) {
  std::scoped_lock lk(impl_->listener_mu);
  impl_->listener = std::move(fn);
}

Stats Controller::stats() const {
  Stats st;
  std::vector<std::pair<std::string, std::shared_ptr<PortRuntime>>> ports;
  {
    std::scoped_lock lk(impl_->view_mu);
    ports = impl_->view.ports;
    st.totals = impl_->view.removed_totals;
  }
  for (const auto& [id, rt] : ports) {
    PortCounters c = rt->sum();
    add_into(st.totals, c);
    st.nics[id] = c;
  }
  for (const auto& w : impl_->workers) st.workers.push_back(w->counters());
  st.snapshot_generation = impl_->pub.generation();
  return st;
}

unsigned Controller::worker_count() const { return impl_->nworkers; }
const Options& Controller::options() const { return impl_->opts; }

}  // namespace vpcd::dp
