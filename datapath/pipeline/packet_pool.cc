// PacketPool; see packet_pool.h.
#include "datapath/pipeline/packet_pool.h"

#include <cstring>

namespace vpcd::dp {

static_assert(PacketPool::kDefaultBuffers < kNoBuf);

PacketPool::PacketPool(unsigned buffers)
    : buffers_(buffers < kNoBuf ? buffers : kNoBuf - 1),
      mem_(new uint8_t[size_t(buffers_) * kBufBytes]),
      pkts_(new Packet[buffers_]) {
  free_.reserve(buffers_);
  for (unsigned i = buffers_; i-- > 0;) free_.push_back(uint16_t(i));
}

Packet* PacketPool::alloc() noexcept {
  if (free_.empty()) [[unlikely]] return nullptr;
  const uint16_t i = free_.back();
  free_.pop_back();
  Packet& p = pkts_[i];
  p = Packet{};
  p.data = mem_.get() + size_t(i) * kBufBytes + kHeadroom;
  p.buf = i;
  return &p;
}

Packet* PacketPool::clone(const Packet& src) noexcept {
  if (src.len > kMaxFrame) [[unlikely]] return nullptr;
  Packet* p = alloc();
  if (!p) [[unlikely]] return nullptr;
  uint8_t* data = p->data;
  const uint16_t buf = p->buf;
  *p = src;
  p->data = data;
  p->buf = buf;
  p->prefix = nullptr;
  p->prefix_len = 0;
  std::memcpy(data, src.data, src.len);
  return p;
}

void PacketPool::free(Packet* p) noexcept {
  if (!p || p->buf >= buffers_ || &pkts_[p->buf] != p) [[unlikely]] return;
  free_.push_back(p->buf);
  p->buf = kNoBuf;
}

}  // namespace vpcd::dp
