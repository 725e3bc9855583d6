// VhostUserPort's control side: the message table, the handlers, device reset and the NIC state. See
// vhost_user_port.h for the threading contract (service thread; needs_quiesce = every vring lock held).
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <cstdio>
#include <string_view>

#include "datapath/io/vhost_user/vhost_user_port.h"

namespace vpcd::dp::vhost {

struct VhostUserPort::MsgSpec {
  Req id;
  std::string_view name;
  bool (VhostUserPort::*handler)(Msg&, Reply&, std::string*);
  FdRule fds;           // file descriptors the request must carry
  uint32_t min_size;    // payload bytes
  uint32_t max_size;
  bool needs_quiesce;   // touches rings, features or memory: every vring lock is taken around the handler
  bool has_reply;       // the request has its own reply (REPLY_ACK does not add one)
};

// The one table of every request this backend accepts (DESIGN.md / STYLE.md section 5). Anything else is a protocol
// error: the NIC goes to state error with the request id, the connection is closed.
struct VhostUserPort::Table {
  using P = VhostUserPort;
  static constexpr uint32_t kU64 = 8, kState = sizeof(VringState), kAddr = sizeof(VringAddr);
  static constexpr std::array<MsgSpec, 21> kSpecs{{
      {Req::kGetFeatures, "GET_FEATURES", &P::h_get_features, FdRule::kNone, 0, kU64, false, true},
      {Req::kSetFeatures, "SET_FEATURES", &P::h_set_features, FdRule::kNone, kU64, kU64, true, false},
      {Req::kSetOwner, "SET_OWNER", &P::h_set_owner, FdRule::kNone, 0, kU64, false, false},
      {Req::kResetOwner, "RESET_OWNER", &P::h_reset_owner, FdRule::kNone, 0, kU64, true, false},
      {Req::kSetMemTable, "SET_MEM_TABLE", &P::h_set_mem_table, FdRule::kPerRegion, 8 + sizeof(MemRegion),
       sizeof(MemTable), true, false},
      {Req::kSetVringNum, "SET_VRING_NUM", &P::h_set_vring_num, FdRule::kNone, kState, kState, true, false},
      {Req::kSetVringAddr, "SET_VRING_ADDR", &P::h_set_vring_addr, FdRule::kNone, kAddr, kAddr, true, false},
      {Req::kSetVringBase, "SET_VRING_BASE", &P::h_set_vring_base, FdRule::kNone, kState, kState, true, false},
      {Req::kGetVringBase, "GET_VRING_BASE", &P::h_get_vring_base, FdRule::kNone, kState, kState, true, true},
      {Req::kSetVringKick, "SET_VRING_KICK", &P::h_set_vring_kick, FdRule::kVringFd, kU64, kU64, true, false},
      {Req::kSetVringCall, "SET_VRING_CALL", &P::h_set_vring_call, FdRule::kVringFd, kU64, kU64, true, false},
      {Req::kSetVringErr, "SET_VRING_ERR", &P::h_set_vring_err, FdRule::kVringFd, kU64, kU64, false, false},
      {Req::kGetProtocolFeatures, "GET_PROTOCOL_FEATURES", &P::h_get_protocol_features, FdRule::kNone, 0, kU64,
       false, true},
      {Req::kSetProtocolFeatures, "SET_PROTOCOL_FEATURES", &P::h_set_protocol_features, FdRule::kNone, kU64, kU64,
       false, false},
      {Req::kGetQueueNum, "GET_QUEUE_NUM", &P::h_get_queue_num, FdRule::kNone, 0, kU64, false, true},
      {Req::kSetVringEnable, "SET_VRING_ENABLE", &P::h_set_vring_enable, FdRule::kNone, kState, kState, true, false},
      {Req::kSendRarp, "SEND_RARP", &P::h_send_rarp, FdRule::kNone, kU64, kU64, false, false},
      {Req::kNetSetMtu, "NET_SET_MTU", &P::h_net_set_mtu, FdRule::kNone, kU64, kU64, false, false},
      {Req::kSetStatus, "SET_STATUS", &P::h_set_status, FdRule::kNone, kU64, kU64, true, false},
      {Req::kGetStatus, "GET_STATUS", &P::h_get_status, FdRule::kNone, 0, kU64, false, true},
      {Req::kResetDevice, "RESET_DEVICE", &P::h_reset_device, FdRule::kNone, 0, kU64, true, false},
  }};
};

const VhostUserPort::MsgSpec* VhostUserPort::find_spec(uint32_t request) noexcept {
  for (const auto& s : Table::kSpecs)
    if (uint32_t(s.id) == request) return &s;
  return nullptr;
}

bool VhostUserPort::handle_message(Msg& m, Reply& reply, std::string* error) {
  bool ok;
  bool changed;
  {
    MutexLock lk(ctl_mu_);
    reply = Reply{};
    const MsgSpec* spec = find_spec(m.hdr.request);
    if (!spec) {
      *error = "unsupported vhost-user request " + std::to_string(m.hdr.request);
      ok = false;
    } else if (std::string bad; !validate_message(m, spec->fds, spec->min_size, spec->max_size, &bad)) {
      *error = std::string(spec->name) + ": " + bad;
      ok = false;
    } else {
      std::string why;
      if (spec->needs_quiesce) {
        lock_all();
        ok = (this->*spec->handler)(m, reply, &why);
        unlock_all();
      } else {
        ok = (this->*spec->handler)(m, reply, &why);
      }
      if (!ok) *error = std::string(spec->name) + ": " + why;
      if ((protocol_features_ & pfeat::kReplyAck) && (m.hdr.flags & kMsgFlagNeedReply) && !spec->has_reply)
        reply.set_u64(ok ? 0 : 1);
    }
    changed = ok && recompute_status();
  }
  if (changed) notify_listener();
  return ok;
}

// ---- helpers ----

void VhostUserPort::lock_all() {
  for (unsigned i = 0; i < vring_count(); ++i) vrings_[i].mu.lock();
}

void VhostUserPort::unlock_all() {
  for (unsigned i = vring_count(); i-- > 0;) vrings_[i].mu.unlock();
}

Vring* VhostUserPort::vring_arg(uint32_t index, std::string* error) {
  if (index >= vring_count()) {
    *error = "virtqueue index " + std::to_string(index) + " out of range (device has " +
             std::to_string(vring_count()) + ")";
    return nullptr;
  }
  return &vrings_[index];
}

// Puts vring idx's current kick fd into (or takes the old one out of) its rx queue's epoll set. Odd vrings only (the
// guest's TX queues); the guest's RX queues are never waited on.
void VhostUserPort::update_vring_kick(unsigned idx) {
  if (idx % 2 == 0) return;
  RxQueue& q = rxq_[idx / 2];
  Vring& vr = vrings_[idx];
  int want = vr.started && vr.kick.valid() ? vr.kick.get() : -1;
  if (q.kick_in_epoll == want) return;
  if (q.kick_in_epoll >= 0) ::epoll_ctl(q.epfd.get(), EPOLL_CTL_DEL, q.kick_in_epoll, nullptr);
  q.kick_in_epoll = -1;
  if (want >= 0) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = want;
    if (::epoll_ctl(q.epfd.get(), EPOLL_CTL_ADD, want, &ev) == 0) q.kick_in_epoll = want;
  }
}

void VhostUserPort::retranslate_all() {
  for (unsigned i = 0; i < vring_count(); ++i) {
    Vring& vr = vrings_[i];
    std::string why;
    if (!vr.translate(mem_.get(), &why)) vr.mark_broken(why);
  }
}

void VhostUserPort::reset_device_locked() {
  for (unsigned i = 0; i < vring_count(); ++i) {
    vrings_[i].reset();
    update_vring_kick(i);
  }
  active_pairs_.store(0, std::memory_order_relaxed);
}

bool VhostUserPort::set_status(DeviceStatus s) {
  if (s == status_) return false;
  status_ = std::move(s);
  return true;
}

bool VhostUserPort::recompute_status() {
  if (!connected_) return false;
  DeviceStatus s;
  unsigned active = 0;
  bool counting = true;
  lock_all();
  for (unsigned i = 0; i < vring_count(); ++i) {
    Vring& vr = vrings_[i];
    if (vr.broken && s.state != DeviceState::kError) {
      s.state = DeviceState::kError;
      s.detail = "virtqueue " + std::to_string(i) + ": " + vr.broken_reason;
    }
  }
  for (unsigned p = 0; p < cfg_.queue_pairs; ++p) {
    bool ready = vrings_[2 * p].ready() && vrings_[2 * p + 1].ready();
    if (counting && ready) ++active;
    else counting = false;
  }
  unlock_all();
  active_pairs_.store(active, std::memory_order_relaxed);
  if (s.state != DeviceState::kError) {
    if (active > 0) {
      s.state = DeviceState::kUp;
      s.detail = active == cfg_.queue_pairs ? ""
                                            : std::to_string(active) + " of " + std::to_string(cfg_.queue_pairs) +
                                                  " queue pairs active";
    } else {
      s.state = DeviceState::kNegotiating;
      s.detail = "front-end connected; virtqueues not ready";
    }
  }
  if (s.state == DeviceState::kUp && !was_up_) {
    // Announce the guest's MAC (RARP, like QEMU's self-announce) so learned tables elsewhere move to this port.
    rarp_mac_ = cfg_.mac.b;
    rarp_pending_.store(true, std::memory_order_release);
    signal_wake(0);
  }
  was_up_ = s.state == DeviceState::kUp;
  return set_status(std::move(s));
}

void VhostUserPort::notify_listener() {
  if (listener_) listener_();
}

DeviceStatus VhostUserPort::status() const {
  MutexLock lk(ctl_mu_);
  return status_;
}

void VhostUserPort::refresh_status() {
  uint64_t v;
  while (::read(attention_.get(), &v, sizeof v) > 0) {
  }
  bool changed;
  {
    MutexLock lk(ctl_mu_);
    changed = recompute_status();
  }
  if (changed) notify_listener();
}

void VhostUserPort::on_connect() {
  {
    MutexLock lk(ctl_mu_);
    lock_all();
    reset_device_locked();
    mem_.reset();
    features_ = 0;
    hdr_len_ = sizeof(NetHdr);
    mrg_rxbuf_ = false;
    unlock_all();
    acked_features_.store(0, std::memory_order_relaxed);
    owner_set_ = features_set_ = false;
    protocol_features_ = 0;
    virtio_status_ = 0;
    was_up_ = false;
    connected_ = true;
    status_ = DeviceStatus{DeviceState::kNegotiating, "front-end connected; negotiating"};
  }
  notify_listener();
}

void VhostUserPort::on_disconnect(const std::string& error, const std::string& waiting_detail) {
  bool changed;
  {
    MutexLock lk(ctl_mu_);
    lock_all();
    reset_device_locked();
    mem_.reset();  // unmapped with every vring lock held: no worker is inside the device
    unlock_all();
    was_up_ = false;
    connected_ = false;
    if (!waiting_detail.empty()) waiting_detail_ = waiting_detail;
    changed = set_status(error.empty() ? DeviceStatus{DeviceState::kWaiting, waiting_detail_}
                                       : DeviceStatus{DeviceState::kError, error});
  }
  if (changed) notify_listener();
}

void VhostUserPort::set_waiting(const std::string& detail) {
  bool changed = false;
  {
    MutexLock lk(ctl_mu_);
    waiting_detail_ = detail;
    if (status_.state == DeviceState::kWaiting) changed = set_status(DeviceStatus{DeviceState::kWaiting, detail});
  }
  if (changed) notify_listener();
}

// ---- handlers ----

bool VhostUserPort::h_get_features(Msg&, Reply& r, std::string*) {
  uint64_t f = kOfferedFeatures | (cfg_.queue_pairs > 1 ? kOfferedMqFeatures : 0);
  r.set_u64(f);
  return true;
}

bool VhostUserPort::h_set_features(Msg& m, Reply&, std::string* error) {
  uint64_t f = m.u64();
  uint64_t offered = kOfferedFeatures | (cfg_.queue_pairs > 1 ? kOfferedMqFeatures : 0);
  if (f & ~offered) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "features 0x%llx were not offered", static_cast<unsigned long long>(f & ~offered));
    *error = buf;
    return false;
  }
  features_ = f;
  mrg_rxbuf_ = f & feat::kNetMrgRxbuf;
  hdr_len_ = (f & (feat::kVersion1 | feat::kNetMrgRxbuf)) ? sizeof(NetHdr) : sizeof(NetHdr) - 2;
  for (unsigned i = 0; i < vring_count(); ++i) {
    vrings_[i].event_idx = f & feat::kRingEventIdx;
    vrings_[i].indirect = f & feat::kRingIndirectDesc;
  }
  acked_features_.store(f, std::memory_order_relaxed);
  features_set_ = true;
  return true;
}

bool VhostUserPort::h_set_owner(Msg&, Reply&, std::string*) {
  owner_set_ = true;
  return true;
}

bool VhostUserPort::h_reset_owner(Msg&, Reply&, std::string*) {
  reset_device_locked();
  features_set_ = false;
  return true;
}

bool VhostUserPort::h_set_mem_table(Msg& m, Reply&, std::string* error) {
  MemTable t = m.as<MemTable>();
  auto mem = GuestMemory::map(t, std::span<UniqueFd>(m.fds, m.nfds), error);
  if (!mem) return false;
  mem_ = std::move(mem);  // the old table is unmapped here, with every vring lock held
  retranslate_all();
  for (unsigned i = 0; i < vring_count(); ++i)
    if (vrings_[i].broken) {
      *error = "virtqueue " + std::to_string(i) + ": " + vrings_[i].broken_reason;
      return false;
    }
  return true;
}

bool VhostUserPort::h_set_vring_num(Msg& m, Reply&, std::string* error) {
  VringState s = m.as<VringState>();
  Vring* vr = vring_arg(s.index, error);
  if (!vr) return false;
  if (s.num == 0 || s.num > kMaxQueueSize || (s.num & (s.num - 1)) != 0) {
    *error = "queue size " + std::to_string(s.num) + " (a power of 2 up to 32768)";
    return false;
  }
  vr->size = s.num;
  return vr->translate(mem_.get(), error);
}

bool VhostUserPort::h_set_vring_addr(Msg& m, Reply&, std::string* error) {
  VringAddr a = m.as<VringAddr>();
  Vring* vr = vring_arg(a.index, error);
  if (!vr) return false;
  vr->addr = a;
  vr->addr_set = true;
  if (!vr->translate(mem_.get(), error)) return false;
  if (vr->used) {
    // Resume where the driver's used ring says, after a back-end restart (the base it sent may be 0 or stale):
    // everything before used->idx was completed; what follows is available again.
    uint16_t u = vr->read_used_idx();
    if (u != vr->last_used) {
      vr->last_used = u;
      vr->last_avail = u;
    }
  }
  return true;
}

bool VhostUserPort::h_set_vring_base(Msg& m, Reply&, std::string* error) {
  VringState s = m.as<VringState>();
  Vring* vr = vring_arg(s.index, error);
  if (!vr) return false;
  if (s.num > 0xffff) {
    *error = "base " + std::to_string(s.num) + " out of range for a split ring";
    return false;
  }
  vr->last_avail = vr->last_used = uint16_t(s.num);
  vr->signalled_valid = false;
  return true;
}

bool VhostUserPort::h_get_vring_base(Msg& m, Reply& r, std::string* error) {
  VringState s = m.as<VringState>();
  Vring* vr = vring_arg(s.index, error);
  if (!vr) return false;
  if (vr->used && !vr->broken) vr->publish_used_and_call();
  r.set(VringState{s.index, vr->last_avail});
  vr->started = false;  // stopped until the next SET_VRING_KICK
  vr->kick.reset();
  update_vring_kick(s.index);
  return true;
}

bool VhostUserPort::h_set_vring_kick(Msg& m, Reply&, std::string* error) {
  uint64_t v = m.u64();
  if (v & ~(kVringIndexMask | kVringNoFd)) {
    *error = "reserved bits set";
    return false;
  }
  unsigned idx = unsigned(v & kVringIndexMask);
  Vring* vr = vring_arg(idx, error);
  if (!vr) return false;
  if (v & kVringNoFd) {
    vr->kick.reset();
    vr->kick_polled = true;
  } else {
    vr->kick = std::move(m.fds[0]);
    vr->kick_polled = false;
    int fl = ::fcntl(vr->kick.get(), F_GETFL);
    if (fl < 0 || ::fcntl(vr->kick.get(), F_SETFL, fl | O_NONBLOCK) < 0) {
      *error = "kick fd is unusable";
      return false;
    }
  }
  vr->started = true;
  if (!(features_ & feat::kProtocolFeatures)) vr->enabled = true;  // no SET_VRING_ENABLE without protocol features
  // The device never waits for receive buffers (a frame finding none is a vhost_no_rx_buffers drop), so the guest's
  // RX rings ask for no kicks: each would cost the driver a notification (a VM exit under QEMU, an eventfd write in
  // virtio-user) per refill, for nothing. Without EVENT_IDX: used->flags NO_NOTIFY; with it, avail_event is never
  // advanced, so the driver crosses it once per 65536 buffers.
  if (idx % 2 == 0 && vr->used) vr->disable_kicks();
  update_vring_kick(idx);
  if (idx % 2 == 1) signal_wake(idx / 2);  // look at the ring now: the driver may have queued before kicking us
  return true;
}

bool VhostUserPort::h_set_vring_call(Msg& m, Reply&, std::string* error) {
  uint64_t v = m.u64();
  if (v & ~(kVringIndexMask | kVringNoFd)) {
    *error = "reserved bits set";
    return false;
  }
  Vring* vr = vring_arg(unsigned(v & kVringIndexMask), error);
  if (!vr) return false;
  if (v & kVringNoFd)
    vr->call.reset();
  else
    vr->call = std::move(m.fds[0]);
  vr->signalled_valid = false;
  return true;
}

bool VhostUserPort::h_set_vring_err(Msg& m, Reply&, std::string* error) {
  // Errors are reported through the NIC state, not an eventfd: the fd (if any) is closed with the message.
  return vring_arg(unsigned(m.u64() & kVringIndexMask), error) != nullptr;
}

bool VhostUserPort::h_get_protocol_features(Msg&, Reply& r, std::string*) {
  r.set_u64(kOfferedProtocolFeatures);
  return true;
}

bool VhostUserPort::h_set_protocol_features(Msg& m, Reply&, std::string* error) {
  uint64_t f = m.u64();
  if (f & ~kOfferedProtocolFeatures) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "protocol features 0x%llx were not offered",
                  static_cast<unsigned long long>(f & ~kOfferedProtocolFeatures));
    *error = buf;
    return false;
  }
  protocol_features_ = f;
  return true;
}

bool VhostUserPort::h_get_queue_num(Msg&, Reply& r, std::string*) {
  r.set_u64(cfg_.queue_pairs);
  return true;
}

bool VhostUserPort::h_set_vring_enable(Msg& m, Reply&, std::string* error) {
  VringState s = m.as<VringState>();
  Vring* vr = vring_arg(s.index, error);
  if (!vr) return false;
  if (s.num > 1) {
    *error = "enable value " + std::to_string(s.num);
    return false;
  }
  vr->enabled = s.num == 1;
  if (vr->enabled && s.index % 2 == 1) signal_wake(s.index / 2);
  return true;
}

bool VhostUserPort::h_send_rarp(Msg& m, Reply&, std::string*) {
  std::memcpy(rarp_mac_.data(), m.payload, 6);
  rarp_pending_.store(true, std::memory_order_release);
  signal_wake(0);
  return true;
}

bool VhostUserPort::h_net_set_mtu(Msg& m, Reply&, std::string* error) {
  uint64_t mtu = m.u64();
  if (mtu < 68 || mtu > 65535) {
    *error = "MTU " + std::to_string(mtu);
    return false;
  }
  return true;  // the VPC's MTU governs what vpcd forwards; the guest's own MTU is its business
}

bool VhostUserPort::h_set_status(Msg& m, Reply&, std::string* error) {
  uint64_t st = m.u64();
  if (st > 0xff) {
    *error = "status " + std::to_string(st);
    return false;
  }
  virtio_status_ = uint8_t(st);
  if (st == 0) {
    // Device reset (virtio 2.1, 3.1.1): every ring back to its initial state. Memory and call fds stay: front-ends
    // re-send rings but not always the memory table before the next start.
    for (unsigned i = 0; i < vring_count(); ++i) {
      Vring& vr = vrings_[i];
      UniqueFd call = std::move(vr.call);
      vr.reset();
      vr.call = std::move(call);
      vr.event_idx = features_ & feat::kRingEventIdx;
      vr.indirect = features_ & feat::kRingIndirectDesc;
      update_vring_kick(i);
    }
  }
  return true;
}

bool VhostUserPort::h_get_status(Msg&, Reply& r, std::string*) {
  r.set_u64(virtio_status_);
  return true;
}

bool VhostUserPort::h_reset_device(Msg&, Reply&, std::string*) {
  reset_device_locked();
  features_ = 0;
  acked_features_.store(0, std::memory_order_relaxed);
  features_set_ = false;
  virtio_status_ = 0;
  return true;
}

}  // namespace vpcd::dp::vhost
