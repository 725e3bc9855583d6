// CaptureRing: a bounded single-producer / single-consumer byte ring of captured frames (one per worker and capture
// session). The worker (producer) copies at most a session's copy length of each frame into it and never waits: a
// record that does not fit is refused (the caller counts it as dropped). The capture thread (consumer) pops records,
// filters them and writes them to the session's pcap stream.
//
// Layout: records are 8-byte aligned {RecordHdr, bytes}; a record never wraps. When the space left before the end of
// the buffer is too small for the next record, the producer skips it (writing a skip marker when a header fits there)
// and starts again at offset 0; the consumer skips the same way.
//
// Threading: push() only from the owning worker; pop()/empty() only from the consumer. head_ is written by the
// producer (release) and read by the consumer (acquire), tail_ the other way round, so a record's bytes are visible to
// the consumer before its head advance, and the producer reuses space only after the consumer has finished with it.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>

namespace vpcd::dp {

class CaptureRing {
 public:
  struct RecordHdr {
    uint64_t ts_ns;     // CLOCK_REALTIME of the frame (kernel timestamp when the ring gave one)
    uint32_t wire_len;  // the frame's full length
    uint32_t cap_len;   // bytes that follow; kSkip marks the rest of the buffer as unused
  };
  static_assert(sizeof(RecordHdr) == 16);
  static constexpr uint32_t kSkip = UINT32_MAX;

  // capacity_bytes is rounded up to a power of two, at least 4 KiB.
  explicit CaptureRing(size_t capacity_bytes) {
    size_t c = 4096;
    while (c < capacity_bytes) c <<= 1;
    cap_ = c;
    buf_ = std::make_unique<uint8_t[]>(cap_);
  }
  CaptureRing(const CaptureRing&) = delete;
  CaptureRing& operator=(const CaptureRing&) = delete;

  size_t capacity() const noexcept { return cap_; }

  // Producer. false when the record does not fit (nothing written).
  bool push(uint64_t ts_ns, uint32_t wire_len, const uint8_t* data, uint32_t cap_len) noexcept {
    return push2(ts_ns, wire_len, nullptr, 0, data, cap_len);
  }
  // The same for a record made of two pieces (outer headers an output port writes in front of a frame, then the
  // frame): cap_len = outer_len + data_len.
  bool push2(uint64_t ts_ns, uint32_t wire_len, const uint8_t* outer, uint32_t outer_len, const uint8_t* data,
             uint32_t data_len) noexcept {
    const uint32_t cap_len = outer_len + data_len;
    const size_t need = align8(sizeof(RecordHdr) + cap_len);
    if (need > cap_ / 2) [[unlikely]] return false;
    const uint64_t head = head_.load(std::memory_order_relaxed);
    const uint64_t tail = tail_.load(std::memory_order_acquire);
    const size_t pos = size_t(head & (cap_ - 1));
    const size_t to_end = cap_ - pos;
    const size_t skip = to_end < need ? to_end : 0;
    if (head + skip + need - tail > cap_) return false;
    if (skip) {
      if (skip >= sizeof(RecordHdr)) {
        RecordHdr m{0, 0, kSkip};
        std::memcpy(buf_.get() + pos, &m, sizeof m);
      }
    }
    uint8_t* at = buf_.get() + ((head + skip) & (cap_ - 1));
    RecordHdr h{ts_ns, wire_len, cap_len};
    std::memcpy(at, &h, sizeof h);
    if (outer_len) std::memcpy(at + sizeof h, outer, outer_len);
    std::memcpy(at + sizeof h + outer_len, data, data_len);
    head_.store(head + skip + need, std::memory_order_release);
    return true;
  }

  // Consumer: calls fn(const RecordHdr&, const uint8_t* bytes) for up to max records; returns how many it handed out.
  template <class Fn>
  size_t pop(size_t max, Fn&& fn) {
    uint64_t tail = tail_.load(std::memory_order_relaxed);
    const uint64_t head = head_.load(std::memory_order_acquire);
    size_t n = 0;
    while (tail != head && n < max) {
      const size_t pos = size_t(tail & (cap_ - 1));
      const size_t to_end = cap_ - pos;
      if (to_end < sizeof(RecordHdr)) {
        tail += to_end;
        continue;
      }
      RecordHdr h;
      std::memcpy(&h, buf_.get() + pos, sizeof h);
      if (h.cap_len == kSkip) {
        tail += to_end;
        continue;
      }
      fn(h, buf_.get() + pos + sizeof h);
      tail += align8(sizeof h + h.cap_len);
      ++n;
    }
    tail_.store(tail, std::memory_order_release);
    return n;
  }

  bool empty() const noexcept {
    return head_.load(std::memory_order_acquire) == tail_.load(std::memory_order_relaxed);
  }

 private:
  static size_t align8(size_t n) noexcept { return (n + 7) & ~size_t(7); }

  size_t cap_ = 0;
  std::unique_ptr<uint8_t[]> buf_;
  alignas(64) std::atomic<uint64_t> head_{0};  // bytes ever produced; written by the producer only
  alignas(64) std::atomic<uint64_t> tail_{0};  // bytes ever consumed; written by the consumer only
};

}  // namespace vpcd::dp
