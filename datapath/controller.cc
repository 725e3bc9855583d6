// Controller: the apply step. It turns a DesiredState into OS objects and ports through the NIC backends
// (datapath/control/nic_device.h, one file per backend), builds snapshots with the pure SnapshotBuilder
// (datapath/control/snapshot_builder.h), publishes them to the workers and reports NIC states and counters.
// See controller.h.
//
// apply() runs in three steps, all on the calling (control) thread under mu_:
//   1. NICs that are gone, or whose device cannot take the change in place (NicDevice::needs_recreate): publish a
//      snapshot without their ports, wait for every worker's ack (no worker polls or transmits on them any more), then
//      close the ports (their counters go into the removed-ports totals) and remove their OS objects.
//      A change the device can take in place (NicDevice::update: a netns NIC's MAC, address, MTU) is made now, and
//      the device, its ifindex and the port stay.
//   2. NICs that are new (or being recreated): NicDevice::up() creates the OS objects and opens the port; each rx
//      queue goes to the least loaded worker (by queue count; a queue keeps its worker for the port's life). A failure
//      gives the NIC kError with the reason; the rest goes on. MAC, IPs, port security and security groups reach the
//      workers through the snapshot.
//   3. Build the snapshot, publish it, wait for every worker's ack, then activate() the new devices.
// A removed netns NIC's sockets and OS objects go to the OsReaper (its own thread, os_reaper.h) once the workers let
// go of its port: apply() does not wait for the RCU grace periods their removal takes; a new device whose names
// (host interface, namespace) a pending removal still holds waits for it in bring_up().
//
// Packet capture: a CaptureManager (its own thread and lock) does the work; start_capture() only looks the port up in
// the view. Its reclamation asks for a no-op republish through try_lock(mu) (capture_quiesce below).
//
// Threading: every public method except stats(), nic_states(), uplink_states() and start_capture() takes mu_ (one
// apply at a time). Those four take only view_mu_, which apply() holds just long enough to swap in the new view, so
// the REST thread never waits for OS operations. Workers are never stopped.
#include "datapath/controller.h"

#include "datapath/control/overlay_builder.h"
#include "datapath/control/uplink_device.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <system_error>
#include <unordered_map>

#include "datapath/capture/capture_manager.h"
#include "datapath/config/dataplane_config.h"
#include "datapath/control/nic_device.h"
#include "datapath/control/os_reaper.h"
#include "datapath/control/policy_builder.h"
#include "datapath/io/kernel_fastpath.h"
#include "datapath/io/link_monitor.h"
#include "datapath/router_mac.h"
#include "datapath/control/retry_backoff.h"
#include "datapath/io/vhost_user/vhost_user_service.h"
#include "datapath/control/snapshot_builder.h"
#include "datapath/io/af_packet_port.h"
#include "datapath/io/netlink.h"
#include "datapath/io/netns_nic.h"
#include "datapath/io/tap_device.h"
#include "datapath/pipeline/counters.h"
#include "datapath/pipeline/worker.h"

namespace vpcd::dp {

namespace {
constexpr auto kAckTimeout = std::chrono::seconds(5);
}  // namespace

struct Controller::Impl {
  struct Nic {
    NicSpec spec;
    NicState state;
    std::unique_ptr<NicDevice> dev;
    std::string backend_error;          // set when the backend failed (state kError)
    std::shared_ptr<PortRuntime> rt;    // null: no port (error)
    std::shared_ptr<PortRuntime> rt_pending_close;  // during apply(): unpublished, waiting for the workers' acks
    uint16_t port = kInvalidPort;
    std::vector<unsigned> queue_worker;  // [rx queue] -> worker
    bool activated = false;
    std::optional<RetryBackoff> retry;  // after backend failures: when apply() may try again (null: none yet)
  };
  // An uplink the datapath drives (role underlay or both; external-only uplinks wait for NAT).
  struct Uplink {
    UplinkSpec spec;
    std::string error;
    std::shared_ptr<PortRuntime> rt;
    std::shared_ptr<PortRuntime> rt_pending_close;
    uint16_t port = kInvalidPort;
    std::vector<unsigned> queue_worker;
    MacAddr mac;
    uint32_t mtu = 1500;
  };
  // A tunnel pseudo-port: one per (VPC, remote VTEP address) named by a VTEP peer or a remote NIC.
  struct Tunnel {
    std::string vpc_id;
    Ipv4Addr remote;
    std::shared_ptr<PortRuntime> rt;  // counters only (no io)
    std::shared_ptr<PortRuntime> rt_pending_close;
    uint16_t port = kInvalidPort;
  };
  // A NIC the kernel fast path may carry (fastpath_candidates).
  struct FpCandidate {
    KernelFastPath::Port port;
    std::weak_ptr<PortRuntime> rt;  // its capture list is checked at every push
  };
  // What stats()/nic_states() read.
  struct ViewNic {
    std::string host_ifname;
    std::string error;
    bool has_port = false;
    std::string no_carrier_detail;
    std::function<NicState()> state_reader;  // set: the state comes from the device (vhost-user)
    std::shared_ptr<PortRuntime> rt_hold;    // keeps the port state_reader reads alive
  };
  struct View {
    std::vector<std::pair<std::string, std::shared_ptr<PortRuntime>>> ports;  // by NIC id
    std::vector<std::pair<std::string, std::shared_ptr<PortRuntime>>> uplink_ports;  // by uplink id
    std::vector<std::pair<std::string, std::shared_ptr<PortRuntime>>> tunnel_ports;  // by tunnel_key()
    std::map<std::string, ViewNic> nics;
    std::map<std::string, ViewNic> uplinks;  // the uplinks the datapath drives (role underlay or both)
    PortCounters removed_totals;
  };

  // Refuses worker_cpus naming CPUs this process may not use, a CPU twice, or disagreeing with `workers`, before
  // anything is created.
  static Options checked(Options o) {
    if (o.worker_cpus.empty()) return o;
    check_worker_cpus(o.worker_cpus);
    if (o.workers != 0 && o.workers != o.worker_cpus.size()) {
      throw std::invalid_argument("workers (" + std::to_string(o.workers) + ") and worker-cpus (" +
                                  std::to_string(o.worker_cpus.size()) + " CPUs) disagree: one worker per CPU listed");
    }
    return o;
  }
  // One worker per CPU of worker_cpus; otherwise `workers`.
  static unsigned worker_count(const Options& o) {
    return o.worker_cpus.empty() ? resolve_worker_count(o.workers) : unsigned(o.worker_cpus.size());
  }

  explicit Impl(Options o)
      : opts(checked(std::move(o))),
        vhost_service(std::make_unique<vhost::VhostUserService>(vhost_user_marker_dir(opts.run_dir))),
        nworkers(worker_count(opts)),
        pub(nworkers),
        builder(nworkers),
        worker_load(nworkers, 0) {
    builder.set_vxlan_port(opts.vxlan_port);
    builder.set_vxlan_uso(opts.vxlan_uso);
    std::error_code ec;
    std::filesystem::create_directories(opts.run_dir, ec);
    workers.reserve(nworkers);
    for (unsigned w = 0; w < nworkers; ++w) {
      workers.push_back(std::make_unique<Worker>(w, pub, opts.poll));
      workers.back()->set_icmp_error_rate(opts.icmp_error_rate, opts.icmp_error_burst);
    }
    builder.policy().set_conntrack_options(opts.conntrack);
    for (unsigned w = 0; w < nworkers; ++w) {
      workers[w]->start(opts.worker_cpus.empty() ? std::nullopt : std::optional<unsigned>(opts.worker_cpus[w]));
    }
    if (opts.ring_pool_nics > 0) {  // the layout of a netns NIC's port (netns_nic_device.cc)
      const unsigned queues =
          std::clamp<unsigned>(opts.netns_queues == 0 ? nworkers : opts.netns_queues, 1, nworkers);
      ring_pool = std::make_unique<AfPacketRingPool>(af_packet_options(opts, queues, nworkers),
                                                     opts.ring_pool_nics * queues, opts.ring_pool_nics * nworkers);
    }
    capture = std::make_unique<CaptureManager>(nworkers, capture_quiesce(), [](const std::string& line) {
      std::fprintf(stderr, "vpcd: %s\n", line.c_str());
    });
    if (opts.kernel_fastpath) {
      std::string err;
      fastpath = KernelFastPath::load(&err);
      if (!fastpath) {
        fastpath_error = err;
        std::fprintf(stderr, "vpcd: kernel fast path off: %s\n", err.c_str());
      } else {
        // A capture on a NIC takes it off the fast path at once (the capture sees every frame), and back on after.
        capture->set_hooks_listener([this] {
          std::scoped_lock lk(fp_mu);
          push_fastpath_locked();
        });
      }
    }
    // Carrier and up/down changes of the interfaces the datapath drives reach the control plane at once.
    links = std::make_unique<LinkMonitor>([this](const std::string& ifname) { return watches(ifname); },
                                          [this] { state_changed(); });
    if (std::string err; !links->start(&err)) {
      std::fprintf(stderr, "vpcd: link notifications off (link states follow at the next pass): %s\n", err.c_str());
      links.reset();
    }
  }

  ~Impl() {
    links.reset();  // its thread reads the view and calls the listener
    reaper.wait_idle();  // removals of deleted NICs finish; only live NICs' objects stay for a restart
    for (auto& w : workers) w->stop();  // workers drop their snapshot references; the publisher still holds them
    workers.clear();
    for (auto& [id, nic] : nics)
      if (nic.dev) nic.dev->before_close();  // the vhost-user service lets go of its ports before they close
    capture.reset();  // after the workers: frees the capture rings and unhooks them from the ports
    // Members are destroyed after this body: nics (ports close), then pub (snapshots freed here, control thread).
  }

  std::string alias_prefix() const { return "vpcd:" + opts.instance + ":"; }
  std::string alias_for(const std::string& nic_id) const { return alias_prefix() + nic_id; }
  DeviceContext device_context(const DesiredState& d, const std::string& nic_id) const {
    return DeviceContext{opts, nworkers, d, alias_for(nic_id), vhost_service.get(), [this] { state_changed(); },
                         ring_pool.get(), fastpath};
  }

  // Whether `ifname` is a NIC's host interface or an uplink's (LinkMonitor's thread).
  bool watches(const std::string& ifname) const {
    std::scoped_lock lk(view_mu);
    for (const auto& [id, n] : view.nics)
      if (n.host_ifname == ifname) return true;
    for (const auto& [id, u] : view.uplinks)
      if (u.host_ifname == ifname) return true;
    return false;
  }

  // A device changed state on its own (vhost-user service thread, LinkMonitor): tell the control plane.
  void state_changed() const {
    std::scoped_lock lk(listener_mu);
    if (listener) listener();
  }

  static bool has_vpc(const DesiredState& d, const std::string& id) {
    return std::any_of(d.vpcs.begin(), d.vpcs.end(), [&](const VpcSpec& v) { return v.id == id; });
  }

  // True when the existing NIC must be torn down and created again for `want`.
  bool needs_recreate(const Nic& have, const NicSpec& want, const DesiredState& d) const {
    if (!has_vpc(d, want.vpc_id)) return true;  // becomes an error: unknown vpc
    if (!have.rt || !have.dev) return retry_due(have);  // it failed last time: again once its backoff has passed
    return have.dev->needs_recreate(want, device_context(d, want.id));
  }

  bool retry_due(const Nic& nic) const { return !nic.retry || nic.retry->due(opts.now()); }

  // bring_up() plus the retry bookkeeping: a failure schedules the next attempt and says when in the NIC's detail.
  void bring_up_with_backoff(Nic& nic, const DesiredState& d) {
    bring_up(nic, d);
    if (nic.rt) {
      nic.retry.reset();
      return;
    }
    if (!nic.retry) nic.retry.emplace(opts.retry_base, opts.retry_cap);
    const auto now = opts.now();
    nic.retry->failed(now);
    nic.backend_error += " (" + nic.retry->describe(now) + ")";
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

  // Creates the OS objects and the port for nic (already in nics with spec set). Fills backend_error on failure.
  void bring_up(Nic& nic, const DesiredState& d) {
    const NicSpec& n = nic.spec;
    nic.backend_error.clear();
    nic.activated = false;
    nic.dev = make_nic_device(n, opts);
    nic.state = NicState{};
    nic.state.host_ifname = nic.dev->host_ifname();
    if (!has_vpc(d, n.vpc_id)) {
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
    reaper.wait_clear(nic.dev->os_keys());  // a removal of the same names still under way finishes first
    std::string err;
    auto io = nic.dev->up(n, device_context(d, n.id), &err);
    if (!io) {
      nic.backend_error = err;
      return;
    }
    auto rt = std::make_shared<PortRuntime>();
    rt->nic_id = n.id;
    rt->seq = next_seq++;
    rt->io = std::move(io);
    nic.rt = std::move(rt);
    nic.port = alloc_port();
    nic.queue_worker = assign_queues(nic.rt->io->rx_queues());
  }

  // Closes the port (after the workers let go of it) and removes the OS objects.
  void tear_down(Nic& nic, bool remove_os_objects) {
    if (nic.dev) nic.dev->before_close();
    if (nic.rt) {
      removed_totals.add(nic.rt->sum());
      {
        std::scoped_lock lk(view_mu);
        std::erase_if(view.ports, [&](const auto& e) { return e.second == nic.rt; });
        view.removed_totals = removed_totals;
      }
      for (unsigned w : nic.queue_worker) --worker_load[w];
      port_used[nic.port] = 0;
    }
    nic.queue_worker.clear();
    nic.port = kInvalidPort;
    if (remove_os_objects && nic.dev && nic.dev->remove_off_thread()) {
      // Closing the sockets and removing the namespace wait for RCU grace periods: on the reaper's thread, so the
      // NICs created next need not wait (a new device with one of these names waits in bring_up).
      auto keys = nic.dev->os_keys();
      std::shared_ptr<NicDevice> dev(std::move(nic.dev));  // std::function needs a copyable capture
      reaper.submit(std::move(keys), [rt = std::move(nic.rt), dev]() mutable {
        rt.reset();  // the last reference once every worker acked: closes the sockets
        dev->remove();
      });
      return;
    }
    nic.rt.reset();  // the last reference once every worker acked: closes the sockets
    if (remove_os_objects && nic.dev) nic.dev->remove();
    nic.dev.reset();
  }

  // The snapshot for the NICs in `nics` that have a port, under desired state `d`.
  std::shared_ptr<const DatapathSnapshot> build(const DesiredState& d) {
    std::vector<PortBinding> ports;
    for (const auto& [id, nic] : nics) {
      if (!nic.rt) continue;
      PortBinding b;
      b.object_id = id;
      b.kind = PortKind::kGuest;
      b.port = nic.port;
      b.rt = nic.rt;
      b.queue_worker = nic.queue_worker;
      ports.push_back(std::move(b));
    }
    uint16_t underlay = kInvalidPort;
    for (const auto& [id, up] : uplinks) {
      if (!up.rt) continue;
      PortBinding b;
      b.object_id = id;
      b.kind = PortKind::kUplink;
      b.port = up.port;
      b.rt = up.rt;
      b.queue_worker = up.queue_worker;
      b.mac = up.mac;
      b.mtu = up.mtu;
      if (up.spec.role != UplinkRole::kExternal) underlay = up.port;
      ports.push_back(std::move(b));
    }
    for (const auto& [key, t] : tunnels) {
      if (!t.rt) continue;
      PortBinding b;
      b.object_id = key;
      b.kind = PortKind::kTunnel;
      b.port = t.port;
      b.rt = t.rt;
      b.vpc_id = t.vpc_id;
      b.remote_ip = t.remote;
      b.uplink = underlay;
      ports.push_back(std::move(b));
    }
    return builder.build(d, ports, port_used.size(), pub.next_generation());
  }

  // How the capture thread learns that the workers let go of an unhooked capture list (capture_manager.h): the
  // publisher's acks, with a no-op republish of the current snapshot when nothing else publishes. The republish takes
  // mu with try_lock: an apply() holding it publishes by itself, and the capture thread asks again a little later.
  CaptureManager::Quiesce capture_quiesce() {
    CaptureManager::Quiesce q;
    q.next_generation = [this] { return pub.next_generation(); };
    q.min_acked = [this] {
      uint64_t m = UINT64_MAX;
      for (unsigned r = 0; r < pub.readers(); ++r) m = std::min(m, pub.acked(r));
      return m;
    };
    q.poke = [this] {
      std::unique_lock lk(mu, std::try_to_lock);
      if (!lk.owns_lock()) return;
      auto [cur, gen] = pub.take();
      pub.publish(std::move(cur));
    };
    return q;
  }

  // Publishes and waits for every worker. false when some worker did not ack in time.
  bool publish(std::shared_ptr<const DatapathSnapshot> snap) {
    uint64_t g = pub.publish(std::move(snap));
    if (pub.wait_acked(g, kAckTimeout)) return true;
    std::fprintf(stderr, "vpcd: datapath workers did not acknowledge snapshot %llu within %lld s\n",
                 static_cast<unsigned long long>(g), static_cast<long long>(kAckTimeout.count()));
    return false;
  }

  // `carriers`: the host links' carriers read once for the whole pass (nullptr: read this NIC's link alone).
  NicState live_state(const Nic& nic, const CarrierMap* carriers) const {
    if (nic.rt && nic.dev && nic.backend_error.empty())
      if (auto reader = nic.dev->state_reader()) return reader();
    return nic_state_now(nic.state.host_ifname, nic.backend_error, nic.rt != nullptr,
                         nic.dev ? nic.dev->no_carrier_detail() : "no carrier", carriers);
  }

  // Removes links carrying this instance's alias that no NIC of the last applied state uses, and namespaces vpcd
  // created (marker in run_dir/netns) that no netns NIC names any more (only when nothing but lo is left in them).
  void remove_stale() {
    reaper.wait_idle();  // what the reaper is removing is neither known nor stale
    std::set<std::string> known_links, known_netns, known_sockets;
    for (const auto& n : last.nics) {
      if (const auto* v = std::get_if<VhostUserBackend>(&n.backend)) known_sockets.insert(v->socket);
      known_links.insert(make_nic_device(n, opts)->host_ifname());
      if (const auto* b = std::get_if<NetnsBackend>(&n.backend)) known_netns.insert(b->netns);
    }
    for (const auto& name : links_with_alias_prefix(alias_prefix())) {
      if (known_links.count(name)) continue;
      std::string err;
      auto li = link_by_name(name, &err);
      if (!li) continue;
      if (li->kind == "tun") {
        if (!tap_remove(name, li->alias, &err)) std::fprintf(stderr, "vpcd: removing stale tap %s: %s\n", name.c_str(), err.c_str());
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
    // One link dump for every NIC's carrier (was: a netlink socket and a request per NIC, every pass). A failed dump
    // falls back to reading each link.
    std::optional<CarrierMap> carriers;
    if (std::any_of(nics.begin(), nics.end(), [](const auto& e) { return e.second.rt != nullptr; }))
      carriers = read_carriers();
    for (auto& [id, nic] : nics) {
      nic.state = live_state(nic, carriers ? &*carriers : nullptr);
      ViewNic vn{nic.state.host_ifname, nic.backend_error, nic.rt != nullptr,
                 nic.dev ? nic.dev->no_carrier_detail() : "no carrier", nullptr, nullptr};
      if (nic.rt && nic.dev && nic.backend_error.empty()) {
        vn.state_reader = nic.dev->state_reader();
        if (vn.state_reader) vn.rt_hold = nic.rt;
      }
      v.nics.emplace(id, std::move(vn));
      if (nic.rt) v.ports.emplace_back(id, nic.rt);
    }
    for (auto& [id, up] : uplinks) {
      if (up.rt) v.uplink_ports.emplace_back(id, up.rt);
      v.uplinks.emplace(id, ViewNic{up.spec.ifname, up.error, up.rt != nullptr, "uplink " + up.spec.ifname +
                                    " has no carrier", nullptr, nullptr});
    }
    for (auto& [key, t] : tunnels)
      if (t.rt) v.tunnel_ports.emplace_back(key, t.rt);
    v.removed_totals = removed_totals;
    std::scoped_lock lk(view_mu);
    view = std::move(v);
  }

  // Closes a port the workers no longer see (counters into the removed totals).
  void close_port(std::shared_ptr<PortRuntime>& rt, uint16_t& port, std::vector<unsigned>* queue_worker) {
    if (!rt) return;
    removed_totals.add(rt->sum());
    if (queue_worker)
      for (unsigned w : *queue_worker) --worker_load[w];
    port_used[port] = 0;
    rt.reset();
    port = kInvalidPort;
  }

  // Uplinks and tunnel ports for `d` (issue 8): removals first (unpublished and acked before they close), then new
  // ones. The snapshot published by apply() afterwards carries them.
  void apply_overlay_ports(const DesiredState& d) {
    std::map<std::string, const UplinkSpec*> want_up;
    for (const auto& u : d.uplinks)
      if (u.role != UplinkRole::kExternal) want_up[u.id] = &u;
    std::map<std::string, std::pair<std::string, Ipv4Addr>> want_tn;
    auto vpc_known = [&](const std::string& id) { return has_vpc(d, id); };
    for (const auto& p : d.vtep_peers)
      if (vpc_known(p.vpc_id)) want_tn[tunnel_key(p.vpc_id, p.underlay_ip)] = {p.vpc_id, p.underlay_ip};
    for (const auto& r : d.remote_nics)
      if (vpc_known(r.vpc_id)) want_tn[tunnel_key(r.vpc_id, r.underlay_ip)] = {r.vpc_id, r.underlay_ip};

    std::vector<std::string> gone_up, gone_tn;
    for (auto& [id, up] : uplinks) {
      auto w = want_up.find(id);
      if (w == want_up.end() || w->second->ifname != up.spec.ifname || !up.rt) gone_up.push_back(id);
    }
    for (auto& [key, t] : tunnels)
      if (!want_tn.count(key)) gone_tn.push_back(key);
    bool had_port = false;
    for (const auto& id : gone_up) {
      Uplink& up = uplinks[id];
      had_port |= up.rt != nullptr;
      up.rt_pending_close = std::move(up.rt);
    }
    for (const auto& key : gone_tn) {
      Tunnel& t = tunnels[key];
      had_port |= t.rt != nullptr;
      t.rt_pending_close = std::move(t.rt);
    }
    if (had_port) publish(build(last));
    for (const auto& id : gone_up) {
      Uplink& up = uplinks[id];
      up.rt = std::move(up.rt_pending_close);
      const bool had = up.rt != nullptr;
      close_port(up.rt, up.port, &up.queue_worker);
      up.queue_worker.clear();
      if (had) release_uplink_device(up.spec.ifname);
      uplinks.erase(id);
    }
    for (const auto& key : gone_tn) {
      Tunnel& t = tunnels[key];
      t.rt = std::move(t.rt_pending_close);
      close_port(t.rt, t.port, nullptr);
      tunnels.erase(key);
    }
    for (const auto& [id, spec] : want_up) {
      Uplink& up = uplinks[id];
      up.spec = *spec;
      if (up.rt) continue;
      std::string err;
      UplinkDevice dev = open_uplink(*spec, opts, nworkers, &err);
      if (!dev.io) {
        up.error = err;
        std::fprintf(stderr, "vpcd: uplink %s: %s\n", spec->ifname.c_str(), err.c_str());
        continue;
      }
      up.error.clear();
      up.mac = dev.mac;
      up.mtu = dev.mtu;
      auto rt = std::make_shared<PortRuntime>();
      rt->nic_id = id;
      rt->seq = next_seq++;
      rt->io = std::move(dev.io);
      up.rt = std::move(rt);
      up.port = alloc_port();
      up.queue_worker = assign_queues(up.rt->io->rx_queues());
    }
    for (const auto& [key, vt] : want_tn) {
      Tunnel& t = tunnels[key];
      if (t.rt) continue;
      t.vpc_id = vt.first;
      t.remote = vt.second;
      auto rt = std::make_shared<PortRuntime>();
      rt->nic_id = key;
      rt->seq = next_seq++;
      t.rt = std::move(rt);
      t.port = alloc_port();
    }
  }

  // ---- kernel fast path (Options::kernel_fastpath) ----
  // The NICs `d` lets the fast path carry: netns and tap NICs whose host interface has the program, with a port
  // every worker has (activated), port security on, in a VPC without firewall stages; grouped by subnet (a group id
  // stays the same while its subnet exists).
  std::vector<FpCandidate> fastpath_candidates(const DesiredState& d) {
    std::vector<FpCandidate> out;
    if (!fastpath) return out;
    const std::set<std::string> firewalled = firewalled_vpcs(d);
    std::set<std::string> groups_used;
    for (const auto& n : d.nics) {
      auto it = nics.find(n.id);
      if (it == nics.end()) continue;
      const Nic& nic = it->second;
      if (!nic.rt || !nic.dev || !nic.activated || !nic.backend_error.empty() || nic.spec != n) continue;
      const int ifindex = nic.dev->fastpath_ifindex();
      const auto v = std::find_if(d.vpcs.begin(), d.vpcs.end(), [&](const VpcSpec& x) { return x.id == n.vpc_id; });
      if (ifindex <= 0 || !n.port_security || v == d.vpcs.end() || firewalled.count(n.vpc_id)) continue;
      const auto s = std::find_if(v->subnets.begin(), v->subnets.end(),
                                  [&](const SubnetSpec& x) { return x.id == n.subnet_id; });
      if (s == v->subnets.end()) continue;
      auto [g, fresh] = fp_groups.try_emplace(n.vpc_id + "/" + n.subnet_id, fp_next_group);
      if (fresh) ++fp_next_group;
      groups_used.insert(g->first);
      KernelFastPath::Port p{.ifindex = ifindex, .mac = n.mac, .group = g->second, .vpc = v->vni,
                             .router_mac = router_mac_for(v->vni), .ips = {}, .to_peer = nic.dev->fastpath_to_peer(),
                             .mtu = v->mtu};
      // Only addresses the pipeline routes to this NIC: inside its subnet, not the gateway (the API refuses others;
      // a stored state from elsewhere is not trusted to).
      for (Ipv4Addr a : n.ips)
        if (s->cidr.contains(a) && a != s->gateway) p.ips.push_back(a);
      out.push_back({std::move(p), nic.rt});
    }
    std::erase_if(fp_groups, [&](const auto& e) { return !groups_used.count(e.first); });
    return out;
  }

  // Before `d`'s snapshot is published: of the NICs on the fast path, only those `d` keeps unchanged stay.
  void fastpath_before_publish(const DesiredState& d) {
    if (!fastpath) return;
    auto next = fastpath_candidates(d);
    std::scoped_lock lk(fp_mu);
    std::unordered_map<int, const FpCandidate*> had;  // by ifindex (a thousand NICs: no quadratic pass per apply)
    for (const auto& c : fp_candidates) had.emplace(c.port.ifindex, &c);
    std::erase_if(next, [&](const FpCandidate& c) {
      auto h = had.find(c.port.ifindex);
      return h == had.end() || !(h->second->port == c.port) || h->second->rt.lock() != c.rt.lock();
    });
    fp_candidates = std::move(next);
    push_fastpath_locked();
  }

  // Once every worker has `d`'s snapshot: everything `d` allows.
  void fastpath_after_publish(const DesiredState& d) {
    if (!fastpath) return;
    auto next = fastpath_candidates(d);
    std::scoped_lock lk(fp_mu);
    fp_candidates = std::move(next);
    push_fastpath_locked();
  }

  // fp_candidates without the NICs a capture runs on, into the kernel's maps (fp_mu held).
  void push_fastpath_locked() {
    std::vector<KernelFastPath::Port> ports;
    for (const auto& c : fp_candidates) {
      auto rt = c.rt.lock();
      if (rt && rt->capture.load(std::memory_order_acquire) == nullptr) ports.push_back(c.port);
    }
    std::string err;
    if (!fastpath->set_ports(ports, &err)) std::fprintf(stderr, "vpcd: kernel fast path: %s\n", err.c_str());
  }

  std::map<std::string, NicState> apply(const DesiredState& d) {
    // 0. Nothing `d` no longer allows stays on the kernel fast path while the snapshot that enforces it is published.
    fastpath_before_publish(d);
    // 1. Removals and recreations: unpublish, wait, close, remove OS objects.
    std::map<std::string, const NicSpec*> want;
    for (const auto& n : d.nics) want[n.id] = &n;
    std::vector<std::string> gone, recreate;
    for (auto& [id, nic] : nics) {
      auto w = want.find(id);
      if (w != want.end() && nic.spec != *w->second) nic.retry.reset();  // a changed NIC is tried at once
      if (w == want.end()) {
        gone.push_back(id);
      } else if (needs_recreate(nic, *w->second, d)) {
        recreate.push_back(id);
      } else if (nic.rt && nic.spec != *w->second) {
        std::string err;  // taken in place: the device and the port stay
        if (!nic.dev->update(*w->second, device_context(d, id), &err)) {
          std::fprintf(stderr, "vpcd: NIC %s: in-place change failed (%s); recreating it\n", id.c_str(), err.c_str());
          recreate.push_back(id);
        }
      }
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
        bring_up_with_backoff(nic, d);
      } else {
        it->second.spec = n;  // the device takes it in place: MAC / IPs / port security / VPC through the snapshot
        if (!it->second.rt && retry_due(it->second)) bring_up_with_backoff(it->second, d);
      }
    }
    apply_overlay_ports(d);
    last = d;
    // 3. Publish the new configuration; then the new devices may carry traffic.
    if (publish(build(d)))
      for (auto& [id, nic] : nics)
        if (nic.rt && !nic.activated) {
          nic.dev->activate();
          nic.activated = true;
        }
    fastpath_after_publish(d);
    refresh_view();
    std::map<std::string, NicState> out;
    for (const auto& [id, nic] : nics) out.emplace(id, nic.state);
    return out;
  }

  Options opts;
  // Declared early: destroyed after the NICs and snapshots (their devices detach from it first).
  std::unique_ptr<vhost::VhostUserService> vhost_service;
  unsigned nworkers;
  std::mutex mu;  // serialises the control operations
  DatapathPublisher pub;
  SnapshotBuilder builder;
  std::vector<unsigned> worker_load;  // rx queues per worker
  std::vector<std::unique_ptr<Worker>> workers;
  DesiredState last;
  std::map<std::string, Nic> nics;
  std::map<std::string, Uplink> uplinks;  // by uplink id
  std::map<std::string, Tunnel> tunnels;  // by tunnel_key()
  std::vector<uint8_t> port_used;
  uint64_t next_seq = 1;
  PortCounters removed_totals;
  std::vector<std::shared_ptr<PortRuntime>> zombies;  // ports a stuck worker might still touch: kept open
  OsReaper reaper;  // removes deleted netns NICs' sockets and OS objects off the control thread; thread-safe
  std::unique_ptr<AfPacketRingPool> ring_pool;  // set in the constructor (null: none); thread-safe

  mutable std::mutex view_mu;
  View view;  // guarded by view_mu

  mutable std::mutex listener_mu;
  std::function<void()> listener;  // guarded by listener_mu; called by state_changed()
  std::unique_ptr<LinkMonitor> links;  // null when the kernel refused its socket; stopped first by ~Impl
  std::unique_ptr<CaptureManager> capture;  // set in the constructor; thread-safe

  // Kernel fast path: null when off or not loaded (fastpath_error says why). Declared after `capture`, whose thread
  // calls push_fastpath_locked, and destroyed before it (the destructor empties the maps).
  std::shared_ptr<KernelFastPath> fastpath;
  std::string fastpath_error;
  std::map<std::string, uint32_t> fp_groups;  // "VPC id/subnet id" -> group (control thread)
  uint32_t fp_next_group = 1;
  mutable std::mutex fp_mu;  // guards fp_candidates and the pushes into the maps (control and capture threads)
  std::vector<FpCandidate> fp_candidates;
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

void Controller::wait_background() {
  impl_->reaper.wait_idle();
  if (impl_->ring_pool) impl_->ring_pool->wait_full();
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
  auto st = impl_->apply(d).at(nic.id);
  impl_->reaper.wait_idle();
  return st;
}

void Controller::remove_nic(const std::string& nic_id) {
  std::scoped_lock lk(impl_->mu);
  DesiredState d = impl_->last;
  std::erase_if(d.nics, [&](const NicSpec& n) { return n.id == nic_id; });
  impl_->apply(d);
  impl_->reaper.wait_idle();
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
  impl_->reaper.wait_idle();
}

void Controller::remove_vpc(const std::string& vpc_id) {
  std::scoped_lock lk(impl_->mu);
  DesiredState d = impl_->last;
  std::erase_if(d.vpcs, [&](const VpcSpec& v) { return v.id == vpc_id; });
  std::erase_if(d.nics, [&](const NicSpec& n) { return n.vpc_id == vpc_id; });
  impl_->apply(d);
  impl_->reaper.wait_idle();
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
    if (n.state_reader)
      out.emplace(id, n.state_reader());
    else
      out.emplace(id, nic_state_now(n.host_ifname, n.error, n.has_port, n.no_carrier_detail));
  }
  return out;
}

std::map<std::string, NicState> Controller::uplink_states() const {
  std::map<std::string, Impl::ViewNic> ups;
  {
    std::scoped_lock lk(impl_->view_mu);
    ups = impl_->view.uplinks;
  }
  std::map<std::string, NicState> out;
  for (const auto& [id, u] : ups)
    out.emplace(id, nic_state_now(u.host_ifname, u.error, u.has_port, u.no_carrier_detail));
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
  std::vector<std::pair<std::string, std::shared_ptr<PortRuntime>>> ups, tns;
  {
    std::scoped_lock lk(impl_->view_mu);
    ups = impl_->view.uplink_ports;
    tns = impl_->view.tunnel_ports;
  }
  for (const auto& [id, rt] : ports) {
    PortCounters c = rt->sum();
    st.totals.add(c);
    st.nics[id] = c;
  }
  for (const auto& [id, rt] : ups) {
    PortCounters c = rt->sum();
    st.totals.add(c);
    st.uplinks[id] = c;
  }
  // Tunnel counters describe the same frames as the uplink's (per VTEP): not added to the totals again.
  for (const auto& [key, rt] : tns) st.tunnels[key] = rt->sum();
  for (const auto& w : impl_->workers) st.workers.push_back(w->counters());
  st.snapshot_generation = impl_->pub.generation();
  st.capture = impl_->capture->stats();
  st.fastpath.enabled = impl_->fastpath != nullptr;
  st.fastpath.error = impl_->fastpath_error;
  if (impl_->fastpath) st.fastpath.ports = impl_->fastpath->port_count();
  return st;
}

Controller::CaptureResult Controller::start_capture(const std::string& id, const CaptureSpec& spec, CaptureOn on) {
  const bool uplink = on == CaptureOn::kUplink;
  std::shared_ptr<PortRuntime> rt;
  {
    std::scoped_lock lk(impl_->view_mu);
    for (const auto& [pid, p] : uplink ? impl_->view.uplink_ports : impl_->view.ports)
      if (pid == id) rt = p;
  }
  const std::string what = (uplink ? "uplink " : "NIC ") + id;
  if (!rt) return CaptureError{CaptureError::Kind::kNoPort, what + " has no datapath port (state is not up)"};
  auto r = impl_->capture->start(rt, (uplink ? "uplink " : "nic ") + id, spec);
  if (auto* s = std::get_if<std::shared_ptr<CaptureSession>>(&r)) return std::move(*s);
  return std::get<CaptureError>(std::move(r));
}

unsigned Controller::worker_count() const { return impl_->nworkers; }
const Options& Controller::options() const { return impl_->opts; }

}  // namespace vpcd::dp
