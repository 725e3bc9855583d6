// The one interface between the control plane and the datapath: a desired-state value in, NIC states, counters and
// events out. The control plane (server/reconcile) and the tests drive only this.
//
// Threading: Controller's methods are called from one control thread at a time (they serialise on an internal mutex
// anyway). apply() creates or removes OS objects (tap devices, veth pairs, namespaces, AF_PACKET sockets), builds a new
// immutable DataplaneConfig and publishes it to the workers; it returns once the workers have acknowledged the new
// generation, so a NIC reported `up` forwards on return. stats() may be called from any thread at any time; it reads the
// workers' single-writer counters with relaxed loads and never stops them.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "datapath/pipeline/drop_reason.h"
#include "datapath/proto/types.h"

namespace vpcd::dp {

struct SubnetSpec {
  std::string id;  // UUID text
  Ipv4Prefix cidr;
  Ipv4Addr gateway;  // answered (ARP) by the VPC's router
  friend bool operator==(const SubnetSpec&, const SubnetSpec&) = default;
};

struct VpcSpec {
  std::string id;  // UUID text
  uint32_t vni = 0;
  uint32_t mtu = 1450;  // guest MTU
  std::vector<SubnetSpec> subnets;
  friend bool operator==(const VpcSpec&, const VpcSpec&) = default;
};

// A persistent multiqueue tap the guest's hypervisor opens by name; vpcd drives its kernel side.
struct TapBackend {
  std::string ifname;  // <= 15 bytes
  uint16_t queues = 1;
  std::optional<uid_t> owner;  // TUNSETOWNER
  std::optional<gid_t> group;  // TUNSETGROUP
  friend bool operator==(const TapBackend&, const TapBackend&) = default;
};

// A veth pair: the far end moved into a named network namespace (created when absent) and configured with the NIC's
// MAC, first IPv4 address, MTU and default route via the subnet gateway; the near end is driven by the datapath.
struct NetnsBackend {
  std::string netns;            // name under /run/netns
  std::string ifname = "eth0";  // name inside the namespace
  friend bool operator==(const NetnsBackend&, const NetnsBackend&) = default;
};

// A vhost-user socket: vpcd is the virtio-net device backend for a QEMU / DPDK virtio-user front-end
// (datapath/io/vhost_user/). Client mode (default): the hypervisor listens on `socket` and vpcd connects and
// reconnects; server mode: vpcd creates the socket with owner/group.
struct VhostUserBackend {
  std::string socket;  // absolute path
  bool server = false;
  uint16_t queues = 1;  // queue pairs
  std::optional<uid_t> owner;
  std::optional<gid_t> group;
  friend bool operator==(const VhostUserBackend&, const VhostUserBackend&) = default;
};

using Backend = std::variant<TapBackend, NetnsBackend, VhostUserBackend>;

struct NicSpec {
  std::string id;  // UUID text
  std::string vpc_id;
  std::string subnet_id;
  MacAddr mac;
  std::vector<Ipv4Addr> ips;
  bool port_security = true;
  Backend backend;
  friend bool operator==(const NicSpec&, const NicSpec&) = default;
};

struct DesiredState {
  std::vector<VpcSpec> vpcs;
  std::vector<NicSpec> nics;
};

enum class NicStatus : uint8_t { kUp, kDown, kError };
constexpr std::string_view nic_status_name(NicStatus s) {
  return s == NicStatus::kUp ? "up" : s == NicStatus::kDown ? "down" : "error";
}

struct NicState {
  NicStatus status = NicStatus::kDown;
  std::string detail;  // human-readable: why down or error ("namespace ns1: permission denied", "no carrier")
  std::string host_ifname;  // the interface the datapath drives (tap name, or the veth near end)
  friend bool operator==(const NicState&, const NicState&) = default;
};

struct PortCounters {
  uint64_t rx_packets = 0, rx_bytes = 0, tx_packets = 0, tx_bytes = 0;
  std::array<uint64_t, size_t(DropReason::kCount)> drops{};
  uint64_t total_drops() const {
    uint64_t n = 0;
    for (auto d : drops) n += d;
    return n;
  }
};

struct WorkerCounters {
  uint64_t batches = 0, packets = 0, wakeups = 0, snapshot_generation = 0;
};

struct Stats {
  std::map<std::string, PortCounters> nics;  // by NIC id
  std::vector<WorkerCounters> workers;
  PortCounters totals;                       // all ports, including removed ones' history
  uint64_t snapshot_generation = 0;
};

struct Options {
  unsigned workers = 0;  // 0 = cores - 1, at least 1
  // Distinguishes this vpcd's OS objects from another instance's on the same machine (an interface alias marker
  // "vpcd:<instance>:<nic id>" is put on every interface vpcd creates, so a restart can adopt or remove them).
  std::string instance = "default";
  // Directory for run-time markers (namespaces vpcd created). Created when absent.
  std::string run_dir = "/run/vpcd/default";
  bool busy_poll = false;  // workers spin instead of sleeping in epoll
  uint32_t rx_block_bytes = 1u << 22;  // TPACKET_V3 block size (holds 64 KiB GSO frames)
  uint32_t rx_blocks = 4;
  uint32_t tx_frames = 128;  // per (port, worker) TX ring
};

class Controller {
 public:
  explicit Controller(Options opts);
  ~Controller();  // stops workers; leaves OS objects in place (a restart adopts them)
  Controller(const Controller&) = delete;
  Controller& operator=(const Controller&) = delete;

  // Makes the datapath match `desired`: diffs against the last applied state, creates/updates/removes OS objects and
  // ports, publishes one new snapshot and waits for every worker to acknowledge it. NICs whose backend failed are kept
  // in the result with kError and the reason; everything else still applies. Never throws for bad OS state.
  std::map<std::string, NicState> apply(const DesiredState& desired);

  // Removes OS objects carrying this instance's marker that `desired` (the last applied state) does not name: call
  // once after the first apply() at start-up to clean up what a crash left behind.
  void remove_stale_os_objects();

  // Convenience for tests and tools: edit the last applied state and apply it.
  NicState add_nic(const NicSpec& nic);
  void remove_nic(const std::string& nic_id);
  void add_vpc(const VpcSpec& vpc);
  void remove_vpc(const std::string& vpc_id);  // also removes its NICs

  std::map<std::string, NicState> nic_states() const;
  // Called (from a datapath thread, e.g. the vhost-user service) whenever a NIC's state changed on its own (a
  // front-end connected, negotiated, left or misbehaved), so the control plane can pick it up at once. It must only
  // signal (Reconciler::notify); nullptr clears it. Set it before the first apply().
  void set_state_listener(std::function<void()> fn);
  Stats stats() const;
  unsigned worker_count() const;
  const Options& options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vpcd::dp
