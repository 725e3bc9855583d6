// NIC backend `netns`: a veth pair whose far end lives in a named network namespace, configured with the NIC's MAC,
// first IPv4 address, MTU and default route via the subnet gateway (datapath/io/netns_nic.*); the near end ("vn" +
// 12 hex digits of a hash of the NIC id) is driven through an AfPacketPort.
// Threading: control thread (nic_device.h).
#include <algorithm>
#include <cstdio>

#include "datapath/control/nic_device.h"
#include "datapath/controller.h"
#include "datapath/io/af_packet_port.h"
#include "datapath/io/netns_nic.h"

namespace vpcd::dp {
namespace {

// FNV-1a, 64 bits: a stable name for a NIC id.
uint64_t fnv1a(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

const VpcSpec* find_vpc(const DesiredState& d, const std::string& id) {
  for (const auto& v : d.vpcs)
    if (v.id == id) return &v;
  return nullptr;
}

bool same_params(const NetnsNicParams& a, const NetnsNicParams& b) {
  return a.host_ifname == b.host_ifname && a.netns == b.netns && a.ifname == b.ifname && a.mac == b.mac &&
         a.addr == b.addr && a.gateway == b.gateway && a.mtu == b.mtu && a.alias == b.alias;
}

class NetnsNic final : public NicDevice {
 public:
  NetnsNic(const NicSpec& nic, NetnsBackend b) : b_(std::move(b)), host_(netns_host_ifname(nic.id)) {}

  const std::string& host_ifname() const override { return host_; }

  std::unique_ptr<PortIo> up(const NicSpec& nic, const DeviceContext& ctx, std::string* err) override {
    auto p = params(nic, ctx, err);
    if (!p) return nullptr;
    std::string e;
    // Recorded before the attempt: remove() deletes only what carries this NIC's alias / the namespace marker, so
    // whatever a failed attempt made of ours goes with the NIC, and whatever is someone else's stays.
    ensured_ = *p;
    if (!netns_nic_ensure(*p, &e)) {
      *err = "namespace " + p->netns + ": " + e;
      return nullptr;
    }
    ensured_ = *p;
    activated_ = false;  // a far end netns_nic_ensure created stays down until activate()
    // Several fanout queues spread one guest's flows over the workers (PACKET_FANOUT_HASH: a flow stays on one).
    const unsigned queues = std::clamp<unsigned>(ctx.opts.netns_queues == 0 ? ctx.workers : ctx.opts.netns_queues, 1,
                                                 ctx.workers);
    auto port = AfPacketPort::open(host_, af_packet_options(ctx, queues), &e, ctx.ring_pool);
    if (!port) {
      *err = "af_packet on " + host_ + ": " + e;
      return nullptr;
    }
    fastpath_ifindex_ = attach_fastpath(*port, ctx);
    return port;
  }

  // Every worker polls the port now: let the guest send (link up, default route). A failure leaves the guest's link
  // down (no carrier: the NIC shows down with the reason in the log) rather than losing its first frames.
  void activate() override {
    if (!ensured_) return;
    std::string e;
    if (netns_nic_set_up(*ensured_, &e)) {
      activated_ = true;
    } else {
      std::fprintf(stderr, "vpcd: namespace %s: bringing %s up: %s\n", ensured_->netns.c_str(),
                   ensured_->ifname.c_str(), e.c_str());
    }
  }

  // Only another namespace or interface name needs a new veth pair; MAC, address, gateway and MTU are set on the
  // existing one (update()), so the guest keeps its interface (same ifindex) and vpcd its port.
  bool needs_recreate(const NicSpec& want, const DeviceContext& ctx) const override {
    const auto* b = std::get_if<NetnsBackend>(&want.backend);
    if (!b || *b != b_ || !ensured_) return true;
    std::string err;
    return !params(want, ctx, &err);
  }

  bool update(const NicSpec& want, const DeviceContext& ctx, std::string* err) override {
    auto p = params(want, ctx, err);
    if (!p) return false;
    if (ensured_ && same_params(*p, *ensured_)) return true;
    std::string e;
    if (!netns_nic_ensure(*p, &e)) {  // idempotent: reconfigures the existing pair in place
      *err = "namespace " + p->netns + ": " + e;
      return false;
    }
    ensured_ = *p;
    // A MAC change takes the far end down; the port is live already, so bring it straight back up.
    if (activated_ && !netns_nic_set_up(*p, &e)) {
      *err = "namespace " + p->netns + ": " + e;
      return false;
    }
    return true;
  }

  void remove() override {
    if (ensured_) netns_nic_remove(*ensured_);
    ensured_.reset();
  }

  std::vector<std::string> os_keys() const override { return {"if:" + host_, "netns:" + b_.netns}; }
  bool remove_off_thread() const override { return true; }
  int fastpath_ifindex() const override { return fastpath_ifindex_; }

 private:
  // What the guest side must look like under ctx.desired (nullopt with *err when the spec cannot work).
  std::optional<NetnsNicParams> params(const NicSpec& n, const DeviceContext& ctx, std::string* err) const {
    const VpcSpec* vpc = find_vpc(ctx.desired, n.vpc_id);
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
    p.host_ifname = host_;
    p.netns = b_.netns;
    p.ifname = b_.ifname;
    p.mac = n.mac;
    p.addr = Ipv4Prefix{n.ips.front(), subnet->cidr.len};
    p.gateway = subnet->gateway;
    p.mtu = vpc->mtu;
    p.alias = ctx.alias;
    p.run_dir = ctx.opts.run_dir;
    p.foreign_netns_allowed = ctx.opts.netns_allow;
    p.threaded_napi = ctx.opts.guest_threaded_napi;
    return p;
  }

  NetnsBackend b_;
  std::string host_;
  std::optional<NetnsNicParams> ensured_;  // what up() made (for removal and in-place checks)
  bool activated_ = false;                 // activate() brought the guest side up
  int fastpath_ifindex_ = 0;               // the host end carries the kernel fast path's program
};

}  // namespace

std::string netns_host_ifname(const std::string& nic_id) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "vn%012llx", static_cast<unsigned long long>(fnv1a(nic_id) & 0xffffffffffffull));
  return buf;
}

std::unique_ptr<NicDevice> make_netns_device(const NicSpec& nic, const NetnsBackend& b) {
  return std::make_unique<NetnsNic>(nic, b);
}

}  // namespace vpcd::dp
