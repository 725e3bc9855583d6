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

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "datapath/capture/capture_types.h"
#include "datapath/pipeline/worker_poll.h"
#include "datapath/spec.h"
#include "datapath/tables/conn_table.h"
#include "datapath/stats.h"

namespace vpcd::dp {

struct Options {
  unsigned workers = 0;  // 0 = cores - 1, at least 1
  // Worker i runs only on CPU worker_cpus[i] (one worker per CPU listed; `workers` must be 0 or agree). Empty = the
  // kernel's scheduler places the workers. The Controller refuses CPUs this process may not use (check_worker_cpus).
  std::vector<unsigned> worker_cpus;
  // Distinguishes this vpcd's OS objects from another instance's on the same machine (an interface alias marker
  // "vpcd:<instance>:<nic id>" is put on every interface vpcd creates, so a restart can adopt or remove them).
  std::string instance = "default";
  // Directory for run-time markers (namespaces vpcd created). Created when absent.
  std::string run_dir = "/run/vpcd/default";
  // Existing network namespaces (not created by vpcd) a netns NIC may use, as fnmatch patterns ("cni-*"); empty = none.
  // vpcd's own namespace is refused whatever they say. In such a namespace vpcd adds only its interface and address.
  std::vector<std::string> netns_allow;
  // A NIC whose backend failed is retried by apply() only once its backoff has passed (retry_base doubling per failure,
  // at most retry_cap; reset when the NIC's spec changes); state_detail says when. `now` is injectable for tests.
  std::chrono::milliseconds retry_base{1000};
  std::chrono::milliseconds retry_cap{60000};
  std::chrono::steady_clock::time_point (*now)() = &std::chrono::steady_clock::now;
  PollPolicy poll{};  // busy-poll: whether workers sleep in epoll, spin, or spin for a while after frames
  // AF_PACKET ring sizes per port, by the role of the interface (an idle guest NIC should cost little; an uplink
  // carries every VPC's traffic). Slots of rx/tx_frame_bytes hold one MTU-1500 frame; larger frames (GSO
  // super-frames) bypass the rings (recvmsg / sendmsg, see af_packet_port.h). Defaults: vpcd.conf documents them.
  struct Rings {
    uint32_t rx_frames = 512;  // per rx queue
    uint32_t tx_frames = 256;  // per (port, worker)
    // Receive buffer of each RX queue's socket: super-frames queued for recvmsg count against it (not pinned: used
    // only while the worker is behind). A super-frame arriving when it is full is lost (rx_queue_full).
    uint32_t rx_queue_bytes = 8u << 20;
    // Big TX ring slots per (port, worker) for USO frames (68 KiB each, in 512 KiB blocks of 7: 32 pin 2.5 MiB), sent
    // without a copy into the skb; 0 = none (USO frames go through sendmsg). Uplinks only: guest NICs keep 0. Off by
    // default: over a veth underlay the kernel copies the frame anyway (skb_copy_ubufs in veth_xmit), measured no
    // faster (docs/STATUS.md, issue 8, `usoring`); for a NIC uplink, measure first.
    uint32_t tx_big_frames = 0;
    friend bool operator==(const Rings&, const Rings&) = default;
  };
  Rings guest_rings{};                 // tap and netns NICs: 1 MiB RX + 512 KiB TX per worker
  Rings uplink_rings{4096, 1024, 16u << 20, 0};  // uplinks: 8 MiB RX + 2 MiB TX per worker (+ big TX ring if set)
  uint32_t rx_frame_bytes = 2048;
  uint32_t tx_frame_bytes = 2048;
  // TPACKET_V3 block rings instead of per-frame V2 slots (dense, but a lone frame waits up to 1 ms per hop for its
  // block to retire); then rx_blocks of rx_block_bytes per queue.
  bool rx_ring_v3 = false;
  // RX queues of a netns NIC (PACKET_FANOUT over the workers; 0 = one per worker). Each costs guest_rings.rx_frames
  // slots.
  unsigned netns_queues = 1;
  uint32_t rx_block_bytes = 1u << 22;
  uint32_t rx_blocks = 4;
  ConnTableOptions conntrack;  // connection tracking limits and timeouts (security groups)
  uint32_t icmp_error_rate = 100, icmp_error_burst = 50;  // router ICMP errors per worker: per second, burst
  uint16_t vxlan_port = 4789;  // UDP port of VXLAN on the underlay uplink (config vxlan-port)
  bool vxlan_uso = true;       // UnderlayConfig::uso (config vxlan-uso)
  // netns NICs whose AF_PACKET sockets are kept ready with their rings set up (AfPacketRingPool): a new NIC then only
  // binds them instead of waiting for an RCU grace period per ring. Each pins guest_rings of memory; 0 = no pool.
  unsigned ring_pool_nics = 2;
  // GRO and threaded NAPI on each netns NIC's guest end (datapath/io/guest_napi.h): the receiving guest's stack runs
  // on a kernel thread instead of inside the worker's sendmsg of a super-frame.
  bool guest_threaded_napi = false;
  // The kernel fast path (datapath/io/kernel_fastpath.h): frames between two netns or tap NICs of a VPC without
  // firewall stages (policy_builder.h firewalled_vpcs), both with port security on and no capture running, that the
  // pipeline would forward unchanged within a subnet or route between two subnets, are forwarded (routed ones
  // rewritten as the router stage does) by a BPF program from one interface to the other, without the copies through
  // vpcd. When the programs cannot be loaded the datapath runs without it (Stats::fastpath says why).
  bool kernel_fastpath = true;
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
  // A removed netns NIC is out of the datapath on return, but its sockets, veth pair and namespace are removed by a
  // background thread right after (wait_background() waits for that; creating the same names again waits by itself).
  std::map<std::string, NicState> apply(const DesiredState& desired);

  // Removes OS objects carrying this instance's marker that `desired` (the last applied state) does not name: call
  // once after the first apply() at start-up to clean up what a crash left behind.
  void remove_stale_os_objects();

  // Until the OS objects of every NIC removed so far are gone and the ring pool (Options::ring_pool_nics) is full
  // again: background work settled (tests that count descriptors or check removals after apply()).
  void wait_background();

  // Convenience for tests and tools: edit the last applied state and apply it (and wait for the removals).
  NicState add_nic(const NicSpec& nic);
  void remove_nic(const std::string& nic_id);
  void add_vpc(const VpcSpec& vpc);
  void remove_vpc(const std::string& vpc_id);  // also removes its NICs

  std::map<std::string, NicState> nic_states() const;
  // The uplinks the datapath drives (role underlay or both), by uplink id: kError with the reason when the interface
  // could not be opened (missing, not an Ethernet device, ...; apply() tries again each time), kUp when its port is
  // open and the link has carrier, kDown otherwise. host_ifname is the uplink's interface. Read now, like nic_states().
  std::map<std::string, NicState> uplink_states() const;
  // Called (from a datapath thread: the vhost-user service, the link monitor) whenever a NIC's or an uplink's state
  // changed on its own (a vhost-user front-end connected, negotiated, left or misbehaved; a tap's hypervisor attached
  // or left; a guest took its veth end down or up; an uplink's carrier or up/down changed: datapath/io/link_monitor.h),
  // so the control plane can pick it up at once. It must only signal (Reconciler::notify); nullptr clears it.
  void set_state_listener(std::function<void()> fn);
  Stats stats() const;

  // Starts a packet capture of what a NIC's or an uplink's port receives and sends (capture_manager.h; on an uplink
  // the frames as on the wire, VXLAN headers included). Any thread; never waits for an apply(). kNoPort when the
  // object has no datapath port (unknown, not applied yet, its backend failed, or an uplink whose interface is
  // missing).
  using CaptureResult = std::variant<std::shared_ptr<CaptureSession>, CaptureError>;
  enum class CaptureOn { kNic, kUplink };
  CaptureResult start_capture(const std::string& id, const CaptureSpec& spec, CaptureOn on = CaptureOn::kNic);
  unsigned worker_count() const;
  const Options& options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vpcd::dp
