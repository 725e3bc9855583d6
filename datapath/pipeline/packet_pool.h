// PacketPool: a worker's own buffers for frames a stage generates (ARP requests, ICMP errors, ARP answers for the
// uplink) or must keep past rx_release (frames waiting for ARP resolution). Fixed size, allocated once when the worker
// is created, so the fast path never calls the allocator; an empty pool is a counted failure, never a wait.
//
// Each buffer has kHeadroom bytes before Packet::data, so a stage may prepend outer headers in place, and room for
// kMaxFrame bytes of frame. Larger frames (GSO super-frames) cannot be cloned: clone() returns nullptr and the
// caller counts the drop.
//
// Threading: one worker only (no locks, no atomics). Packets and buffers handed out stay valid until free().
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "datapath/pipeline/packet.h"

namespace vpcd::dp {

class PacketPool {
 public:
  static constexpr uint32_t kBufBytes = 3072;
  static constexpr uint32_t kHeadroom = 128;                     // room for outer headers (VXLAN: 50 bytes)
  static constexpr uint32_t kMaxFrame = kBufBytes - kHeadroom;   // a 1500-byte-MTU frame with room to spare
  static constexpr unsigned kDefaultBuffers = 512;

  explicit PacketPool(unsigned buffers = kDefaultBuffers);
  PacketPool(const PacketPool&) = delete;
  PacketPool& operator=(const PacketPool&) = delete;

  // A Packet whose data points at an empty buffer (len 0, capacity kMaxFrame), metadata reset, buf set; nullptr
  // when every buffer is in use.
  Packet* alloc() noexcept;
  // A copy of p (frame bytes and metadata) in a pool buffer; nullptr when the pool is empty or p.len > kMaxFrame.
  Packet* clone(const Packet& p) noexcept;
  // Returns p's buffer (p must come from alloc/clone of this pool).
  void free(Packet* p) noexcept;

  unsigned available() const noexcept { return unsigned(free_.size()); }
  unsigned capacity() const noexcept { return buffers_; }

 private:
  unsigned buffers_;
  std::unique_ptr<uint8_t[]> mem_;    // buffers_ * kBufBytes
  std::unique_ptr<Packet[]> pkts_;    // [buffer]
  std::vector<uint16_t> free_;        // indexes of free buffers (a stack)
};

}  // namespace vpcd::dp
