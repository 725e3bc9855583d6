// KernelFastPath: frames between two netns or tap NICs of one VPC subnet that vpcd's pipeline would forward unchanged,
// and frames between two such NICs of one VPC that its router would forward (MACs and TTL rewritten), go from the
// sender's host interface to the receiver inside the kernel (a tc ingress BPF program calling bpf_redirect_peer into a
// veth's guest end, or bpf_redirect out of a tap), instead of being copied into an AF_PACKET ring, switched by a worker
// and copied out again. The BPF side, what it takes and why: datapath/bpf/fastpath.bpf.c. Which NICs it may carry is
// the control plane's decision (Controller, `kernel-fastpath` in vpcd.conf): set_ports() lists them; a frame passes
// only between two listed NICs (of one subnet, or routed within one VPC).
//
// Life: load() once per Controller; attach() on each netns NIC's host end and tap when its device comes up (replacing the
// program a previous vpcd left there), and the socket filter (socket_filter_fd) on the NIC's AF_PACKET RX sockets so
// vpcd does not forward a frame the kernel forwards; set_ports() after every published snapshot and whenever a
// capture starts or ends; the destructor empties the maps, so the programs left on the interfaces forward nothing
// once vpcd has stopped (a restarted vpcd attaches its own).
//
// Counters: what the program forwarded, per host end (rx on the sending NIC, tx on the receiving one), summed over
// CPUs by counters(); the NIC's port adds them to its own (AfPacketPort::add_offloaded).
//
// Threading: every method may be called from any thread; set_ports() calls are serialised by an internal mutex.
// The kernel's map operations are atomic per entry; set_ports() orders its updates so that a frame never takes the
// fast path to or from a NIC that is not fully listed (see the .cc).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "datapath/proto/types.h"
#include "datapath/stats.h"

struct bpf_object;

namespace vpcd::dp {

class KernelFastPath {
 public:
  // Loads the programs and creates the maps. nullptr with *err when the kernel refuses (no BPF, no permission).
  static std::unique_ptr<KernelFastPath> load(std::string* err);
  ~KernelFastPath();
  KernelFastPath(const KernelFastPath&) = delete;
  KernelFastPath& operator=(const KernelFastPath&) = delete;

  // The socket filter for the RX sockets of an attached NIC (AfPacketOptions::rx_filter_fd). Owned here.
  int socket_filter_fd() const { return sock_fd_; }
  // The tc program, for tests that run it on crafted frames (BPF_PROG_TEST_RUN). Owned here.
  int tc_program_fd() const { return tc_fd_; }

  // Puts the tc ingress program on `ifindex` (a clsact qdisc is added when absent; a program at the fast path's
  // handle and priority, e.g. one a previous vpcd left, is replaced) and zeroes the interface's counters.
  bool attach(int ifindex, std::string* err);
  // Removes the fast path's tc program from `ifindex` if one is there (a vpcd running with the fast path off adopts
  // an interface a previous vpcd attached). Nothing else on the interface is touched.
  static void detach(int ifindex);

  struct Port {
    int ifindex = 0;  // host end
    MacAddr mac;      // the NIC's MAC (the only source it may send from; frames to it are looked up by it)
    uint32_t group = 0;  // frames to a port's MAC pass only between ports of one group (a VPC subnet)
    uint32_t vpc = 0;    // frames to the router's MAC are routed only between ports of one VPC (its VNI)
    MacAddr router_mac;  // its VPC's router (router_mac.h): frames to it are routed by their destination address
    std::vector<Ipv4Addr> ips;  // the sources it may send from, and the destinations routed to it
    bool to_peer = true;  // frames for it: into the veth peer's ingress (netns NIC); false: out of it (tap)
    uint32_t mtu = 1500;  // its VPC's MTU (a frame for it that is larger and not GSO is left to the pipeline)
    friend bool operator==(const Port&, const Port&) = default;
  };
  // Makes the maps list exactly `ports` (ifindex, (group, mac) and (vpc, address) unique: a port that repeats one is
  // left out). false with *err
  // when the kernel refused an update (what was done stays; the next call tries again).
  bool set_ports(const std::vector<Port>& ports, std::string* err);
  size_t port_count() const;

  // What the program forwarded from (rx) and to (tx) this host end since attach(); zero when not attached.
  PortCounters counters(int ifindex) const;
  // Frees the interface's counters (its port is closing).
  void forget(int ifindex);

 private:
  KernelFastPath() = default;
  bool load_object(std::string* err);

  bpf_object* obj_ = nullptr;
  int tc_fd_ = -1, sock_fd_ = -1;
  int ports_fd_ = -1, macs_fd_ = -1, srcs_fd_ = -1, hosts_fd_ = -1, stats_fd_ = -1;
  int ncpus_ = 1;

  mutable std::mutex mu_;
  std::map<int, Port> listed_;  // what the maps hold, by ifindex
};

}  // namespace vpcd::dp
