// KernelFastPath; see kernel_fastpath.h and datapath/bpf/fastpath.bpf.c.
#include "datapath/io/kernel_fastpath.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/pkt_cls.h>
#include <net/if.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>

extern "C" {
#include "datapath/bpf/fastpath_maps.h"
}

namespace vpcd::dp {

extern const unsigned char kFastpathBpfObject[];
extern const std::size_t kFastpathBpfObjectSize;

namespace {

// Where the program sits in the clsact ingress hook: a fixed handle and priority, so a restarted vpcd replaces its
// predecessor's program instead of stacking a second one.
constexpr uint32_t kTcHandle = 0xf00d;
constexpr uint32_t kTcPriority = 0xf00d;

std::string errno_text(const std::string& what, int e) { return what + ": " + std::strerror(e); }

// Set while this thread makes a request whose failure is expected (detach() where nothing is attached).
thread_local bool libbpf_quiet = false;

// libbpf prints its warnings and debug lines to stderr by default; only its warnings are worth a line in our log.
[[gnu::format(printf, 2, 0)]] int libbpf_log(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (level != LIBBPF_WARN || libbpf_quiet) return 0;
  std::fputs("vpcd: libbpf: ", stderr);
  return std::vfprintf(stderr, fmt, args);
}

fp_port to_value(const KernelFastPath::Port& p) {
  fp_port v{};
  std::memcpy(v.mac, p.mac.b.data(), 6);
  v.group = p.group;
  v.flags = p.to_peer ? FP_TO_PEER : 0;
  v.mtu = p.mtu;
  std::memcpy(v.router_mac, p.router_mac.b.data(), 6);
  v.vpc = p.vpc;
  return v;
}

fp_mac_key mac_key(const KernelFastPath::Port& p) {
  fp_mac_key k{};
  k.group = p.group;
  std::memcpy(k.mac, p.mac.b.data(), 6);
  return k;
}

fp_src_key src_key(int ifindex, Ipv4Addr a) {
  fp_src_key k{};
  k.ifindex = uint32_t(ifindex);
  k.addr = htonl(a.v);
  return k;
}

fp_host_key host_key(uint32_t vpc, Ipv4Addr a) {
  fp_host_key k{};
  k.vpc = vpc;
  k.addr = htonl(a.v);
  return k;
}

bpf_tc_hook ingress_hook(int ifindex) {
  bpf_tc_hook h{};
  h.sz = sizeof h;
  h.ifindex = ifindex;
  h.attach_point = BPF_TC_INGRESS;
  return h;
}

bpf_tc_opts tc_opts(int prog_fd) {
  bpf_tc_opts o{};
  o.sz = sizeof o;
  o.handle = kTcHandle;
  o.priority = kTcPriority;
  o.prog_fd = prog_fd;
  return o;
}

}  // namespace

std::unique_ptr<KernelFastPath> KernelFastPath::load(std::string* err) {
  std::unique_ptr<KernelFastPath> fp(new KernelFastPath());
  if (!fp->load_object(err)) return nullptr;
  return fp;
}

bool KernelFastPath::load_object(std::string* err) {
  libbpf_set_print(libbpf_log);
  bpf_object_open_opts oo{};
  oo.sz = sizeof oo;
  oo.object_name = "vpcd_fastpath";
  obj_ = bpf_object__open_mem(kFastpathBpfObject, kFastpathBpfObjectSize, &oo);
  if (!obj_) {
    *err = errno_text("opening the BPF object", errno);
    return false;
  }
  if (int r = bpf_object__load(obj_); r != 0) {
    *err = errno_text("loading the BPF programs", -r);
    return false;
  }
  auto prog_fd = [&](const char* name) {
    bpf_program* p = bpf_object__find_program_by_name(obj_, name);
    return p ? bpf_program__fd(p) : -1;
  };
  auto map_fd = [&](const char* name) { return bpf_object__find_map_fd_by_name(obj_, name); };
  tc_fd_ = prog_fd("fp_ingress");
  sock_fd_ = prog_fd("fp_sock");
  ports_fd_ = map_fd("fp_ports");
  macs_fd_ = map_fd("fp_macs");
  srcs_fd_ = map_fd("fp_srcs");
  hosts_fd_ = map_fd("fp_hosts");
  stats_fd_ = map_fd("fp_stats");
  if (tc_fd_ < 0 || sock_fd_ < 0 || ports_fd_ < 0 || macs_fd_ < 0 || srcs_fd_ < 0 || hosts_fd_ < 0 || stats_fd_ < 0) {
    *err = "the BPF object lacks a program or map";
    return false;
  }
  ncpus_ = libbpf_num_possible_cpus();
  if (ncpus_ < 1) {
    *err = "cannot count the possible CPUs";
    return false;
  }
  return true;
}

KernelFastPath::~KernelFastPath() {
  if (obj_) {
    // The programs stay on the interfaces (a restart replaces them): leave them nothing to forward.
    std::string err;
    set_ports({}, &err);
    bpf_object__close(obj_);
  }
}

bool KernelFastPath::attach(int ifindex, std::string* err) {
  std::vector<fp_counters> zero(static_cast<size_t>(ncpus_));
  uint32_t key = uint32_t(ifindex);
  if (bpf_map_update_elem(stats_fd_, &key, zero.data(), BPF_ANY) != 0) {
    *err = errno_text("fast path counters", errno);
    return false;
  }
  bpf_tc_hook hook = ingress_hook(ifindex);
  int r = bpf_tc_hook_create(&hook);
  if (r != 0 && r != -EEXIST) {
    *err = errno_text("clsact qdisc", -r);
    return false;
  }
  bpf_tc_opts o = tc_opts(tc_fd_);
  o.flags = BPF_TC_F_REPLACE;
  if (r = bpf_tc_attach(&hook, &o); r != 0) {
    *err = errno_text("tc ingress program", -r);
    return false;
  }
  return true;
}

void KernelFastPath::detach(int ifindex) {
  bpf_tc_hook hook = ingress_hook(ifindex);
  bpf_tc_opts o = tc_opts(0);
  libbpf_set_print(libbpf_log);
  libbpf_quiet = true;
  bpf_tc_detach(&hook, &o);  // fails when there is none (no clsact qdisc, no program): nothing to do
  libbpf_quiet = false;
}

// Order, so that no frame takes the fast path between NICs that are not both fully listed: first the ports that
// leave or change are taken out of fp_ports (a frame needs both of its ends there), then their sources, MACs and
// routed addresses; then the new sources, MACs and addresses are put in, and the new ports last.
bool KernelFastPath::set_ports(const std::vector<Port>& ports, std::string* err) {
  std::scoped_lock lk(mu_);
  std::map<int, Port> want;
  std::set<std::pair<uint32_t, std::array<uint8_t, 6>>> macs;
  std::set<std::pair<uint32_t, uint32_t>> hosts;
  for (const auto& p : ports) {
    if (p.ifindex <= 0 || want.count(p.ifindex) || macs.count({p.group, p.mac.b})) continue;
    std::set<std::pair<uint32_t, uint32_t>> own;
    for (Ipv4Addr a : p.ips) own.insert({p.vpc, a.v});
    if (std::any_of(own.begin(), own.end(), [&](const auto& h) { return hosts.count(h) != 0; })) continue;
    macs.insert({p.group, p.mac.b});
    hosts.insert(own.begin(), own.end());
    want.emplace(p.ifindex, p);
  }
  bool ok = true;
  auto fail = [&](const char* what) {
    if (ok) *err = errno_text(what, errno);
    ok = false;
  };
  std::vector<int> gone;
  for (const auto& [ifx, p] : listed_) {
    auto w = want.find(ifx);
    if (w != want.end() && w->second == p) continue;
    gone.push_back(ifx);
    uint32_t k = uint32_t(ifx);
    if (bpf_map_delete_elem(ports_fd_, &k) != 0 && errno != ENOENT) fail("fast path ports");
  }
  // A port's MAC and source entries, out (left behind, a MAC entry could later send frames to whatever port reuses
  // its ifindex in the same group).
  auto remove_entries = [&](const Port& p) {
    fp_mac_key mk = mac_key(p);
    if (bpf_map_delete_elem(macs_fd_, &mk) != 0 && errno != ENOENT) fail("fast path MACs");
    for (Ipv4Addr a : p.ips) {
      fp_src_key sk = src_key(p.ifindex, a);
      if (bpf_map_delete_elem(srcs_fd_, &sk) != 0 && errno != ENOENT) fail("fast path sources");
      fp_host_key hk = host_key(p.vpc, a);
      if (bpf_map_delete_elem(hosts_fd_, &hk) != 0 && errno != ENOENT) fail("fast path addresses");
    }
  };
  for (int ifx : gone) {
    remove_entries(listed_.at(ifx));
    listed_.erase(ifx);
  }
  for (const auto& [ifx, p] : want) {
    if (listed_.count(ifx)) continue;
    for (Ipv4Addr a : p.ips) {
      fp_src_key sk = src_key(ifx, a);
      uint8_t one = 1;
      if (bpf_map_update_elem(srcs_fd_, &sk, &one, BPF_ANY) != 0) fail("fast path sources");
    }
    uint32_t out = uint32_t(ifx);
    for (Ipv4Addr a : p.ips) {
      fp_host_key hk = host_key(p.vpc, a);
      if (bpf_map_update_elem(hosts_fd_, &hk, &out, BPF_ANY) != 0) fail("fast path addresses");
    }
    fp_mac_key mk = mac_key(p);
    if (bpf_map_update_elem(macs_fd_, &mk, &out, BPF_ANY) != 0) fail("fast path MACs");
  }
  for (const auto& [ifx, p] : want) {
    if (listed_.count(ifx)) continue;
    fp_port v = to_value(p);
    uint32_t k = uint32_t(ifx);
    if (bpf_map_update_elem(ports_fd_, &k, &v, BPF_ANY) != 0) {
      fail("fast path ports");
      remove_entries(p);  // not listed: nothing of it stays in the maps (the next call tries again)
      continue;
    }
    listed_.emplace(ifx, p);
  }
  return ok;
}

size_t KernelFastPath::port_count() const {
  std::scoped_lock lk(mu_);
  return listed_.size();
}

PortCounters KernelFastPath::counters(int ifindex) const {
  PortCounters c;
  std::vector<fp_counters> per_cpu(static_cast<size_t>(ncpus_));
  uint32_t key = uint32_t(ifindex);
  if (bpf_map_lookup_elem(stats_fd_, &key, per_cpu.data()) != 0) return c;
  for (const auto& v : per_cpu) {
    c.rx_packets += v.rx_packets;
    c.rx_bytes += v.rx_bytes;
    c.tx_packets += v.tx_packets;
    c.tx_bytes += v.tx_bytes;
  }
  return c;
}

void KernelFastPath::forget(int ifindex) {
  uint32_t key = uint32_t(ifindex);
  bpf_map_delete_elem(stats_fd_, &key);
}

}  // namespace vpcd::dp
