// In-memory PortIo for tests and benchmarks; see fake_port.h for the threading contract.
#include "datapath/io/fake_port.h"

#include <cstring>

#include <sys/eventfd.h>
#include <unistd.h>

#include <stdexcept>
#include <utility>

namespace vpcd::dp {

FakePort::FakePort(std::string ifname, unsigned tx_capacity)
    : ifname_(std::move(ifname)), tx_capacity_(tx_capacity), tx_(kMaxWorkers) {
  efd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (efd_ < 0) throw std::runtime_error("FakePort: eventfd failed");
  for (auto& r : tx_) r.frames.reserve(tx_capacity_);
}

FakePort::~FakePort() {
  if (efd_ >= 0) ::close(efd_);
}

void FakePort::inject(std::vector<uint8_t> bytes, std::optional<virtio_net_hdr> vnet) {
  std::scoped_lock lk(mu_);
  rx_.push_back(FakeFrame{std::move(bytes), vnet});
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(efd_, &one, sizeof one);
}

std::vector<FakeFrame> FakePort::drain() {
  std::scoped_lock lk(mu_);
  return std::exchange(sent_, {});
}

std::vector<std::vector<uint8_t>> FakePort::drain_bytes() {
  std::vector<std::vector<uint8_t>> out;
  for (auto& f : drain()) out.push_back(std::move(f.bytes));
  return out;
}

size_t FakePort::rx_pending() const {
  std::scoped_lock lk(mu_);
  return rx_.size();
}

unsigned FakePort::rx_burst(unsigned q, Packet* pkts, unsigned max) noexcept {
  if (q != 0) return 0;
  std::scoped_lock lk(mu_);
  unsigned n = 0;
  while (n < max && !rx_.empty()) {
    rx_held_.push_back(std::move(rx_.front()));
    rx_.pop_front();
    FakeFrame& f = rx_held_.back();
    Packet& p = pkts[n++];
    p = Packet{};
    p.data = f.bytes.data();
    p.len = uint32_t(f.bytes.size());
    p.wire_len = p.len;
    if (f.vnet) {
      p.vnet = *f.vnet;
      p.flags = kHasVnet;
    }
  }
  if (rx_.empty()) {
    uint64_t v;
    [[maybe_unused]] ssize_t r = ::read(efd_, &v, sizeof v);  // drains the eventfd (EAGAIN when already 0)
  }
  return n;
}

void FakePort::rx_release(unsigned q) noexcept {
  if (q == 0) rx_held_.clear();
}

bool FakePort::tx_enqueue(unsigned w, const Packet& p) noexcept {
  if (w >= tx_.size()) return false;
  TxRing& r = tx_[w];
  if (r.used >= tx_capacity_) return false;
  ++r.used;
  if (discard_) return true;
  FakeFrame f;
  if (p.prefix_len) f.bytes.assign(p.prefix, p.prefix + p.prefix_len);
  f.bytes.insert(f.bytes.end(), p.data, p.data + p.len);
  if (p.flags & kHasVnet) f.vnet = p.vnet;
  r.frames.push_back(std::move(f));
  return true;
}

uint8_t* FakePort::tx_slot_acquire(unsigned w, uint32_t max_len) noexcept {
  if (w >= tx_.size()) return nullptr;
  TxRing& r = tx_[w];
  r.big_acquired = false;
  if (r.used >= tx_capacity_) return nullptr;
  if (max_len > kSlotBytes) {
    if (big_slots_ == 0 || r.big_used >= big_slots_ || max_len > kBigSlotBytes) return nullptr;
    if (r.big_slot.size() < kBigSlotBytes) r.big_slot.resize(kBigSlotBytes);
    r.big_acquired = true;
    return r.big_slot.data();
  }
  if (!slots_) return nullptr;
  if (r.slot.size() < kSlotBytes) r.slot.resize(kSlotBytes);
  return r.slot.data();
}

void FakePort::tx_slot_commit(unsigned w, const virtio_net_hdr& vnet, uint32_t len) noexcept {
  TxRing& r = tx_[w];
  const std::vector<uint8_t>& slot = r.big_acquired ? r.big_slot : r.slot;
  if (r.big_acquired) {
    ++r.big_used;
    ++big_slot_commits_;
    r.big_acquired = false;
  }
  ++r.used;
  ++slot_commits_;
  if (discard_) return;
  FakeFrame f;
  f.bytes.assign(slot.data(), slot.data() + len);
  const virtio_net_hdr none{};
  if (std::memcmp(&vnet, &none, sizeof none) != 0) f.vnet = vnet;
  r.frames.push_back(std::move(f));
}

void FakePort::tx_flush(unsigned w) noexcept {
  if (w >= tx_.size()) return;
  TxRing& r = tx_[w];
  r.refused = r.used != 0 && refuse_.load(std::memory_order_relaxed);
  if (r.refused) return;
  flushed_.fetch_add(r.used, std::memory_order_relaxed);
  r.used = 0;
  r.big_used = 0;
  if (discard_ || r.frames.empty()) return;
  std::scoped_lock lk(mu_);
  for (auto& f : r.frames) sent_.push_back(std::move(f));
  r.frames.clear();
}

uint64_t FakePort::tx_discard_pending(unsigned w) noexcept {
  if (w >= tx_.size() || !tx_[w].refused) return 0;
  TxRing& r = tx_[w];
  const uint64_t n = r.used;
  r.used = 0;
  r.big_used = 0;
  r.frames.clear();
  r.refused = false;
  discarded_.fetch_add(n, std::memory_order_relaxed);
  return n;
}

}  // namespace vpcd::dp
