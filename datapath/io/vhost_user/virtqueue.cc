// Split virtqueue walker and ring operations; see virtqueue.h.
#include "datapath/io/vhost_user/virtqueue.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <cstring>

namespace vpcd::dp::vhost {

namespace {

template <class T>
T load_once(const T* p) noexcept {
  return __atomic_load_n(p, __ATOMIC_RELAXED);
}

// One descriptor, each field loaded exactly once.
VringDesc read_desc(const VringDesc* d) noexcept {
  VringDesc out;
  out.addr = load_once(&d->addr);
  out.len = load_once(&d->len);
  out.flags = load_once(&d->flags);
  out.next = load_once(&d->next);
  return out;
}

// Appends [addr, addr + len) as one or more segments.
ChainError add_buffer(const GuestMemory& mem, uint64_t addr, uint32_t len, Chain& out) noexcept {
  if (len == 0) return ChainError::kOk;
  if (uint64_t(out.bytes) + len > kMaxChainBytes) return ChainError::kTooManyBytes;
  uint64_t left = len;
  while (left > 0) {
    uint64_t piece = 0;
    uint8_t* p = mem.translate_gpa_piece(addr, left, &piece);
    if (!p) return ChainError::kBadAddress;
    if (out.nseg == kMaxChainSegs) return ChainError::kTooManySegments;
    out.seg[out.nseg++] = Seg{p, uint32_t(piece)};
    left -= piece;
    addr += piece;  // no wrap: translate_gpa_piece returned piece bytes inside a region
  }
  out.bytes += len;
  return ChainError::kOk;
}

ChainError walk_table(const GuestMemory& mem, const VringDesc* table, uint32_t n, uint16_t first, bool device_writes,
                      bool allow_indirect, bool indirect_ok, Chain& out) noexcept {
  uint32_t idx = first;
  for (uint32_t visited = 0;; ++visited) {
    if (visited >= n) return ChainError::kTooLong;
    const VringDesc d = read_desc(&table[idx]);
    ++out.ndesc;
    if (d.flags & kDescIndirect) {
      // Only as the sole descriptor of a top-level chain (virtio 2.7.5.3.1).
      if (!allow_indirect || !indirect_ok || visited != 0 || (d.flags & kDescNext)) return ChainError::kBadIndirect;
      if (d.len == 0 || d.len % sizeof(VringDesc) != 0 || d.len / sizeof(VringDesc) > kMaxIndirectDescs ||
          d.addr % alignof(VringDesc) != 0)
        return ChainError::kBadIndirect;
      const auto* ind = reinterpret_cast<const VringDesc*>(mem.translate_gpa(d.addr, d.len));
      if (!ind) return ChainError::kBadIndirect;
      return walk_table(mem, ind, d.len / uint32_t(sizeof(VringDesc)), 0, device_writes, false, indirect_ok, out);
    }
    if (bool(d.flags & kDescWrite) != device_writes) return ChainError::kWrongDirection;
    if (ChainError e = add_buffer(mem, d.addr, d.len, out); e != ChainError::kOk) return e;
    if (!(d.flags & kDescNext)) return ChainError::kOk;
    if (d.next >= n) return ChainError::kNextOutOfRange;
    idx = d.next;
  }
}

}  // namespace

const char* chain_error_name(ChainError e) noexcept {
  switch (e) {
    case ChainError::kOk: return "ok";
    case ChainError::kHeadOutOfRange: return "head index out of range";
    case ChainError::kNextOutOfRange: return "next index out of range";
    case ChainError::kTooLong: return "descriptor loop or over-long chain";
    case ChainError::kBadAddress: return "buffer outside guest memory";
    case ChainError::kBadIndirect: return "bad indirect table";
    case ChainError::kWrongDirection: return "descriptor direction";
    case ChainError::kTooManySegments: return "too many segments";
    case ChainError::kTooManyBytes: return "chain too long in bytes";
  }
  return "?";
}

ChainError walk_chain(const GuestMemory& mem, const VringDesc* desc, uint32_t qsize, uint16_t head, bool device_writes,
                      bool indirect_ok, Chain& out) noexcept {
  out.head = head;
  out.nseg = 0;
  out.bytes = 0;
  out.ndesc = 0;
  if (head >= qsize) return ChainError::kHeadOutOfRange;
  return walk_table(mem, desc, qsize, head, device_writes, true, indirect_ok, out);
}

bool chain_read(const Chain& c, uint32_t off, void* dst, uint32_t len) noexcept {
  auto* out = static_cast<uint8_t*>(dst);
  for (unsigned i = 0; i < c.nseg && len > 0; ++i) {
    const Seg& s = c.seg[i];
    if (off >= s.len) {
      off -= s.len;
      continue;
    }
    uint32_t n = std::min(len, s.len - off);
    std::memcpy(out, s.p + off, n);
    out += n;
    len -= n;
    off = 0;
  }
  return len == 0;
}

bool chain_write(const Chain& c, uint32_t off, const void* src, uint32_t len) noexcept {
  const auto* in = static_cast<const uint8_t*>(src);
  for (unsigned i = 0; i < c.nseg && len > 0; ++i) {
    const Seg& s = c.seg[i];
    if (off >= s.len) {
      off -= s.len;
      continue;
    }
    uint32_t n = std::min(len, s.len - off);
    std::memcpy(s.p + off, in, n);
    in += n;
    len -= n;
    off = 0;
  }
  return len == 0;
}

uint16_t Vring::avail_pending() {
  uint16_t idx = std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(avail + 2)).load(std::memory_order_acquire);
  uint16_t n = uint16_t(idx - last_avail);
  if (n > size) {
    mark_broken("avail index " + std::to_string(idx) + " is " + std::to_string(n) + " entries ahead of " +
                std::to_string(last_avail) + " (queue size " + std::to_string(size) + ")");
    return 0;
  }
  return n;
}

uint16_t Vring::avail_head(uint16_t i) {
  const auto* ring = reinterpret_cast<const uint16_t*>(avail + 4);
  return load_once(&ring[uint16_t(last_avail + i) & mask()]);
}

void Vring::put_used(uint16_t id, uint32_t len) {
  auto* ring = reinterpret_cast<VringUsedElem*>(used + 4);
  VringUsedElem* e = &ring[last_used & mask()];
  __atomic_store_n(&e->id, uint32_t(id), __ATOMIC_RELAXED);
  __atomic_store_n(&e->len, len, __ATOMIC_RELAXED);
  ++last_used;
}

bool Vring::publish_used_and_call() {
  auto* idx = reinterpret_cast<uint16_t*>(used + 2);
  uint16_t old = std::atomic_ref<uint16_t>(*idx).load(std::memory_order_relaxed);
  if (old == last_used) return false;
  std::atomic_ref<uint16_t>(*idx).store(last_used, std::memory_order_release);
  // The driver reads used->idx, then writes its interrupt suppression; we wrote used->idx, now read that: a full
  // barrier between the two (virtio 2.7.10).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (!call.valid()) return false;
  bool need;
  if (event_idx) {
    uint16_t used_event = load_once(reinterpret_cast<const uint16_t*>(avail + 4 + 2 * size));
    uint16_t since = signalled_valid ? signalled_used : old;
    need = vring_need_event(used_event, last_used, since);
  } else {
    need = !(load_once(reinterpret_cast<const uint16_t*>(avail)) & kAvailFlagNoInterrupt);
  }
  signalled_used = last_used;
  signalled_valid = true;
  if (!need) return false;
  uint64_t one = 1;
  return ::write(call.get(), &one, sizeof one) == sizeof one;
}

void Vring::enable_kicks() {
  if (event_idx) {
    auto* avail_event = reinterpret_cast<uint16_t*>(used + 4 + 8 * size);
    std::atomic_ref<uint16_t>(*avail_event).store(last_avail, std::memory_order_relaxed);
  } else {
    std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(used)).store(0, std::memory_order_relaxed);
  }
  std::atomic_thread_fence(std::memory_order_seq_cst);  // then re-read avail->idx (caller)
}

void Vring::disable_kicks() {
  if (!event_idx)
    std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(used)).store(kUsedFlagNoNotify, std::memory_order_relaxed);
  // With EVENT_IDX, avail_event simply stays behind: the driver kicks only when it crosses it.
}

uint16_t Vring::read_used_idx() const {
  return std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(used + 2)).load(std::memory_order_acquire);
}

bool Vring::translate(const GuestMemory* mem, std::string* error) {
  desc = nullptr;
  avail = used = nullptr;
  if (!mem || !addr_set || size == 0) return true;  // not yet: not an error
  if (addr.desc_user_addr % 16 || addr.avail_user_addr % 2 || addr.used_user_addr % 4) {
    *error = "misaligned ring address";
    return false;
  }
  auto* d = mem->translate_uva(addr.desc_user_addr, desc_area_bytes(size));
  auto* a = mem->translate_uva(addr.avail_user_addr, avail_area_bytes(size));
  auto* u = mem->translate_uva(addr.used_user_addr, used_area_bytes(size));
  if (!d || !a || !u) {
    *error = std::string("ring ") + (!d ? "descriptor table" : !a ? "avail ring" : "used ring") +
             " outside the front-end's memory";
    return false;
  }
  desc = reinterpret_cast<VringDesc*>(d);
  avail = a;
  used = u;
  return true;
}

void Vring::mark_broken(std::string reason) {
  broken = true;
  broken_reason = std::move(reason);
}

void Vring::reset() {
  size = 0;
  addr = {};
  addr_set = false;
  desc = nullptr;
  avail = used = nullptr;
  started = enabled = broken = event_idx = indirect = kick_polled = false;
  kick.reset();
  call.reset();
  broken_reason.clear();
  last_avail = last_used = signalled_used = 0;
  signalled_valid = false;
}

}  // namespace vpcd::dp::vhost
