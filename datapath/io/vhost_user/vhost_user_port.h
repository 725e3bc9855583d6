// VhostUserPort: a guest NIC served over vhost-user. vpcd is the virtio-net device backend; the front-end (QEMU, DPDK
// virtio-user) shares the guest's memory and the virtqueues, and vpcd moves frames straight between them and the
// pipeline. It is a PortIo like any other, so the workers drive it unchanged:
//   rx_queues() = queue pairs; rx queue q = the guest's TX virtqueue 2q+1 (the device reads it);
//   tx into the guest = its RX virtqueue 2p (the device writes it), p = worker % active queue pairs.
//
// Receive (rx_burst, the guest's TX): each available chain is walked and validated (virtqueue.h), the virtio_net_hdr
// (which may be split across descriptors) and the frame are copied out of guest memory into the queue's arena, and
// the chain is returned to the guest (used, len 0) at once, so no pointer into guest memory outlives the call and a
// guest cannot change a frame while the pipeline reads it. The header becomes Packet::vnet (kHasVnet); a NEEDS_CSUM
// flag or GSO type the guest did not negotiate (CSUM, HOST_TSO4/6, HOST_ECN) is a kBadVnetHeader drop; checksum
// offsets beyond the frame are left to the parser (kBadVnetHeader). A bad chain is a kVhostBadDescriptor drop and is
// returned to the guest; a frame longer than kMaxFrameBytes is kVhostFrameTooLong; a ring the guest broke (avail
// index running ahead, head index out of range) puts the NIC into state error.
// Transmit (tx_enqueue, the guest's RX): Packet::vnet becomes the virtio_net_hdr. A GSO frame the guest cannot take
// (no GUEST_TSO4/6) is segmented in software, a partial checksum it cannot take (no GUEST_CSUM) is completed
// (offload.h); with MRG_RXBUF a frame spans several buffers (num_buffers), without it one chain must hold it.
// Used entries become visible (used->idx, release store: the elements first) and the guest is called in tx_flush.
//
// Notifications: rx_fd(q) is an epoll fd owned by the port that contains the guest's kick eventfd for virtqueue 2q+1
// (replaced on every reconnect) and a port-owned wake eventfd (a burst that left work behind, a RARP to send). While
// the queue has work, kicks are suppressed (EVENT_IDX avail_event, or used->flags NO_NOTIFY); when it drains, they are
// re-enabled and the ring re-checked. Calls honour EVENT_IDX used_event or avail->flags NO_INTERRUPT.
//
// Threading (the lock, not a handoff): every virtqueue has an annotated mutex (Vring::mu).
//   - rx_burst(q) takes vring 2q+1's lock for the call; only q's owner worker calls it.
//   - tx_enqueue / tx_flush take the lock of the RX vring they write, for the call: several workers may transmit into
//     one virtqueue (more workers than queue pairs), and the lock serialises them. A worker holds at most one vring
//     lock at a time and never waits for anything else while holding it.
//   - The vhost-user service thread handles messages; a message whose MsgSpec says needs_quiesce takes every vring
//     lock of the device in index order before its handler runs. Guest memory (mem_), negotiated features and ring
//     addresses change only under all locks, so a worker holding one lock sees a consistent device, and memory is
//     unmapped only when no worker is inside the device (the lock is the quiesce: no pointer into guest memory is
//     kept outside a locked call). Removing the whole port follows PortIo's rule (after every worker acked a snapshot
//     without it).
//   - status() / add_io_drops() may be called from any thread.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "datapath/io/port.h"
#include "datapath/io/unique_fd.h"
#include "datapath/io/vhost_user/memory.h"
#include "datapath/io/vhost_user/message.h"
#include "datapath/io/vhost_user/protocol.h"
#include "datapath/io/vhost_user/thread_annotations.h"
#include "datapath/io/vhost_user/virtqueue.h"
#include "datapath/pipeline/counters.h"
#include "datapath/proto/types.h"

namespace vpcd::dp::vhost {

inline constexpr uint32_t kMaxFrameBytes = 65535 + 14 + 8;  // a 64 KiB GSO frame with two VLAN tags
inline constexpr size_t kRxArenaBytes = 4u << 20;            // per rx queue: frames of one burst

struct VhostUserPortConfig {
  std::string name;          // for logs and ifname()
  unsigned queue_pairs = 1;  // 1..kMaxQueuePairs
  uint32_t mtu = 1500;       // VIRTIO_NET_F_MTU / NET_SET_MTU
  MacAddr mac;               // the NIC's MAC: RARP after (re)connect
  bool announce = true;      // send those RARPs at all (set_announce); false for a NIC with port security on
  unsigned tx_workers = 1;   // workers that may call tx_* (<= kMaxWorkers)
};

enum class DeviceState : uint8_t { kWaiting, kNegotiating, kUp, kError };
struct DeviceStatus {
  DeviceState state = DeviceState::kWaiting;
  std::string detail;
  friend bool operator==(const DeviceStatus&, const DeviceStatus&) = default;
};

class VhostUserPort final : public PortIo {
 public:
  static std::unique_ptr<VhostUserPort> create(const VhostUserPortConfig& cfg, std::string* error);
  ~VhostUserPort() override;
  VhostUserPort(const VhostUserPort&) = delete;
  VhostUserPort& operator=(const VhostUserPort&) = delete;

  // ---- PortIo (workers) ----
  const std::string& ifname() const override { return cfg_.name; }
  unsigned rx_queues() const override { return cfg_.queue_pairs; }
  int rx_fd(unsigned q) const override { return q < rxq_.size() ? rxq_[q].epfd.get() : -1; }
  unsigned rx_burst(unsigned q, Packet* pkts, unsigned max) noexcept override;
  void rx_release(unsigned q) noexcept override;
  bool tx_enqueue(unsigned w, const Packet& p) noexcept override;
  void tx_flush(unsigned w) noexcept override;
  DropReason tx_drop_reason(unsigned w) const noexcept override;
  void add_io_drops(std::array<uint64_t, size_t(DropReason::kCount)>& drops) const noexcept override;

  // ---- control (the vhost-user service thread) ----
  // A front-end connected: fresh negotiation state.
  void on_connect() VPCD_EXCLUDES(ctl_mu_);
  // The connection ended (peer closed, protocol error, detach): rings stopped, memory unmapped, fds closed. With
  // error non-empty the device goes to kError with that reason, else to kWaiting with `waiting_detail`.
  void on_disconnect(const std::string& error, const std::string& waiting_detail) VPCD_EXCLUDES(ctl_mu_);
  // Sets the kWaiting detail while no front-end is connected ("waiting for the front-end to listen on PATH").
  void set_waiting(const std::string& detail) VPCD_EXCLUDES(ctl_mu_);
  // Handles one message (already read by read_message). Fills `reply` (including REPLY_ACK). false: protocol error,
  // *error says why; the caller sends the reply if any, then closes the connection and calls on_disconnect(error).
  bool handle_message(Msg& m, Reply& reply, std::string* error) VPCD_EXCLUDES(ctl_mu_);

  DeviceStatus status() const;
  // Called on the service thread whenever status() changes (set before the port is attached).
  void set_status_listener(std::function<void()> fn) { listener_ = std::move(fn); }
  // Whether the RARP announces (device up, SEND_RARP) are sent into the pipeline. A NIC with port security on has
  // its MAC in every static FIB (nothing learned to move) and port-security drops a RARP as ethertype_not_allowed, so
  // announcing would only count a frame and a drop the guest never sent. Any thread (control thread on update).
  void set_announce(bool on) noexcept { announce_.store(on, std::memory_order_relaxed); }

  // Readable when a worker found a virtqueue broken: the service thread then calls refresh_status().
  int attention_fd() const noexcept { return attention_.get(); }
  void refresh_status() VPCD_EXCLUDES(ctl_mu_);

  // Counters of what the guest did wrong (tests, metrics), any thread.
  uint64_t bad_descriptors() const noexcept;
  uint64_t negotiated_features() const noexcept { return acked_features_.load(std::memory_order_relaxed); }

 private:
  struct alignas(64) RxQueue {
    UniqueFd epfd;   // rx_fd(): kick + wake
    UniqueFd wake;   // port-owned eventfd
    int kick_in_epoll = -1;  // the kick fd currently registered (service thread, under the vring lock)
    std::unique_ptr<uint8_t[]> arena;  // worker only
    size_t arena_used = 0;             // worker only
    bool wake_pending = false;         // worker only: we wrote `wake` and have not drained it
    // Single-writer drop counters (the queue's worker), read by add_io_drops.
    std::atomic<uint64_t> bad_desc{0}, too_long{0}, bad_vnet{0};
  };
  struct alignas(64) TxWorker {
    uint32_t dirty_pairs = 0;  // worker w only: RX vrings with unpublished used entries
    std::atomic<uint8_t> last_drop{uint8_t(DropReason::kTxRingFull)};  // worker w only (relaxed)
    std::atomic<uint64_t> bad_desc{0};  // worker w only
    std::vector<uint8_t> scratch;       // worker w only: segmentation / checksum completion
  };
  struct MsgSpec;
  struct Table;

  explicit VhostUserPort(const VhostUserPortConfig& cfg);
  static const MsgSpec* find_spec(uint32_t request) noexcept;

  // Data path helpers (vring lock held).
  bool enqueue_frame(Vring& vr, const NetHdr& hdr, const uint8_t* data, uint32_t len, unsigned w) VPCD_REQUIRES(vr.mu);
  bool tx_one(unsigned w, const Packet& p) noexcept;
  unsigned emit_rarp(unsigned q, Packet* pkts) noexcept;
  void drain_fd(int fd) noexcept;
  void signal_wake(unsigned q) noexcept;

  // Control helpers (service thread, ctl_mu_ held).
  void lock_all() VPCD_NO_TSA;
  void unlock_all() VPCD_NO_TSA;
  void reset_device_locked() VPCD_NO_TSA;  // all vring locks held
  void update_vring_kick(unsigned idx) VPCD_NO_TSA;  // vring idx lock held
  void retranslate_all() VPCD_NO_TSA;  // all vring locks held
  bool recompute_status() VPCD_REQUIRES(ctl_mu_) VPCD_NO_TSA;  // true when status_ changed (takes every vring lock)
  bool set_status(DeviceStatus s) VPCD_REQUIRES(ctl_mu_);
  void notify_listener();
  unsigned vring_count() const noexcept { return 2 * cfg_.queue_pairs; }

  // Message handlers (ctl_mu_ held; those with needs_quiesce also hold every vring lock). The analysis cannot express
  // "every lock of a runtime-sized array", so handlers are not analysed; handle_message() takes the locks.
  bool h_get_features(Msg&, Reply&, std::string*) VPCD_NO_TSA;
  bool h_set_features(Msg&, Reply&, std::string*) VPCD_NO_TSA;
  bool h_set_owner(Msg&, Reply&, std::string*) VPCD_NO_TSA;
  bool h_reset_owner(Msg&, Reply&, std::string*) VPCD_NO_TSA;
  bool h_set_mem_table(Msg&, Reply&, std::string*) VPCD_NO_TSA;
  bool h_set_vring_num(Msg&, Reply&, std::string*) VPCD_NO_TSA;
  bool h_set_vring_addr(Msg&, Reply&, std::string*) VPCD_NO_TSA;
  bool h_set_vring_base(Msg&, Reply&, std::string*) VPCD_NO_TSA;
  bool h_get_vring_base(Msg&, Reply&, std::string*) VPCD_NO_TSA;
  bool h_set_vring_kick(Msg&, Reply&, std::string*) VPCD_NO_TSA;
  bool h_set_vring_call(Msg&, Reply&, std::string*) VPCD_NO_TSA;
  bool h_set_vring_err(Msg&, Reply&, std::string*) VPCD_NO_TSA;
  bool h_get_protocol_features(Msg&, Reply&, std::string*) VPCD_NO_TSA;
  bool h_set_protocol_features(Msg&, Reply&, std::string*) VPCD_NO_TSA;
  bool h_get_queue_num(Msg&, Reply&, std::string*) VPCD_NO_TSA;
  bool h_set_vring_enable(Msg&, Reply&, std::string*) VPCD_NO_TSA;
  bool h_send_rarp(Msg&, Reply&, std::string*) VPCD_NO_TSA;
  bool h_net_set_mtu(Msg&, Reply&, std::string*) VPCD_NO_TSA;
  bool h_set_status(Msg&, Reply&, std::string*) VPCD_NO_TSA;
  bool h_get_status(Msg&, Reply&, std::string*) VPCD_NO_TSA;
  bool h_reset_device(Msg&, Reply&, std::string*) VPCD_NO_TSA;
  Vring* vring_arg(uint32_t index, std::string* error);

  const VhostUserPortConfig cfg_;
  std::array<Vring, kMaxVrings> vrings_;
  std::vector<RxQueue> rxq_;
  UniqueFd attention_;  // eventfd: workers write when they mark a vring broken
  std::vector<TxWorker> txw_;

  // Device state shared with the workers: written only while every vring lock is held (service thread), read by
  // workers under any one vring lock.
  std::unique_ptr<GuestMemory> mem_;
  uint32_t hdr_len_ = sizeof(NetHdr);   // 12 (VERSION_1 or MRG_RXBUF) or 10
  bool mrg_rxbuf_ = false;
  uint64_t features_ = 0;               // acked virtio features
  // Queue pairs whose RX vring (the guest's) is ready: workers pick p = w % active_pairs_. Written by the service
  // thread after each ring change, read by workers (relaxed; a stale value only picks a vring that then says !ready).
  std::atomic<unsigned> active_pairs_{0};
  std::atomic<uint64_t> acked_features_{0};  // copy of features_ for any thread
  std::atomic<bool> rarp_pending_{false};     // service thread sets, queue 0's worker clears
  std::atomic<bool> announce_{true};          // set_announce (control thread); queue 0's worker reads in emit_rarp
  std::array<uint8_t, 6> rarp_mac_{};         // written by the service thread before setting rarp_pending_ (release)

  // Control state: service thread, under ctl_mu_ (status also read by any thread).
  mutable Mutex ctl_mu_;
  bool connected_ VPCD_GUARDED_BY(ctl_mu_) = false;
  bool owner_set_ VPCD_GUARDED_BY(ctl_mu_) = false;
  bool features_set_ VPCD_GUARDED_BY(ctl_mu_) = false;
  uint64_t protocol_features_ VPCD_GUARDED_BY(ctl_mu_) = 0;
  uint8_t virtio_status_ VPCD_GUARDED_BY(ctl_mu_) = 0;
  bool was_up_ VPCD_GUARDED_BY(ctl_mu_) = false;
  DeviceStatus status_ VPCD_GUARDED_BY(ctl_mu_);
  std::string waiting_detail_ VPCD_GUARDED_BY(ctl_mu_) = "waiting for the front-end";
  std::function<void()> listener_;
};

}  // namespace vpcd::dp::vhost
