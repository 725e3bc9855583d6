// A vhost-user front-end (the hypervisor's side) for tests: guest memory in a memfd, split virtqueues laid out in it,
// and the messages QEMU / virtio-user send, either straight into VhostUserPort::handle_message ("direct") or over a
// unix socket to a VhostUserService ("socket", every message with NEED_REPLY so each one is a synchronisation point).
// The guest side of the rings (descriptors, avail entries, reading used entries) is written here as a driver would.
//
// Threading: one test thread.
#pragma once

#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "datapath/io/vhost_user/message.h"
#include "datapath/io/vhost_user/protocol.h"
#include "datapath/io/vhost_user/vhost_user_port.h"

namespace vpcd::dp::vhost::testing {

class FakeFrontend {
 public:
  static constexpr uint64_t kGpaBase = 0x100000;
  static constexpr uint64_t kUvaBase = 0x7f1200000000ull;

  // direct: port != nullptr; socket: sock >= 0 (not owned).
  FakeFrontend(VhostUserPort* port, int sock, size_t mem_bytes = 8u << 20) : port_(port), sock_(sock), size_(mem_bytes) {
    memfd_ = ::memfd_create("vhost-test-guest", MFD_CLOEXEC);
    if (memfd_ < 0 || ::ftruncate(memfd_, off_t(size_)) < 0) throw std::runtime_error("memfd");
    void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED, memfd_, 0);
    if (p == MAP_FAILED) throw std::runtime_error("mmap");
    mem_ = static_cast<uint8_t*>(p);
    next_ = 4096;
  }
  ~FakeFrontend() {
    ::munmap(mem_, size_);
    ::close(memfd_);
    for (int fd : kicks_) if (fd >= 0) ::close(fd);
    for (int fd : calls_) if (fd >= 0) ::close(fd);
  }
  FakeFrontend(const FakeFrontend&) = delete;
  FakeFrontend& operator=(const FakeFrontend&) = delete;

  // ---- raw messages ----
  // Sends one request. Returns the handler's verdict (direct) or whether the back-end acknowledged it (socket: a
  // closed connection or a non-zero REPLY_ACK is false). `reply` gets the reply payload, if any.
  bool request(Req req, const void* payload, uint32_t size, const std::vector<int>& fds = {},
               std::vector<uint8_t>* reply = nullptr, uint32_t flags = kMsgVersion) {
    if (port_) {
      Msg m;
      m.hdr.request = uint32_t(req);
      m.hdr.flags = flags;
      m.hdr.size = size;
      if (payload) std::memcpy(m.payload, payload, std::min<size_t>(size, sizeof m.payload));
      for (int fd : fds) m.fds[m.nfds++].reset(::dup(fd));
      Reply r;
      bool ok = port_->handle_message(m, r, &last_error);
      if (reply && r.send) reply->assign(r.payload, r.payload + r.size);
      return ok;
    }
    bool has_reply = req == Req::kGetFeatures || req == Req::kGetProtocolFeatures || req == Req::kGetQueueNum ||
                     req == Req::kGetVringBase || req == Req::kGetStatus;
    if (!has_reply && acked_reply_ack_) flags |= kMsgFlagNeedReply;
    if (!send_raw(uint32_t(req), flags, payload, size, fds)) return false;
    if (!has_reply && !(flags & kMsgFlagNeedReply)) return true;
    MsgHeader h{};
    if (!recv_all(&h, sizeof h)) return false;
    std::vector<uint8_t> body(h.size);
    if (h.size && !recv_all(body.data(), h.size)) return false;
    if (reply) *reply = body;
    if (!has_reply) {
      uint64_t v = 1;
      if (body.size() == 8) std::memcpy(&v, body.data(), 8);
      return v == 0;
    }
    return true;
  }
  bool send_raw(uint32_t req, uint32_t flags, const void* payload, uint32_t size, const std::vector<int>& fds) {
    std::vector<uint8_t> buf(sizeof(MsgHeader) + size);
    MsgHeader h{req, flags, size};
    std::memcpy(buf.data(), &h, sizeof h);
    if (size) std::memcpy(buf.data() + sizeof h, payload, size);
    iovec iov{buf.data(), buf.size()};
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    std::vector<char> cbuf(CMSG_SPACE(sizeof(int) * std::max<size_t>(fds.size(), 1)));
    if (!fds.empty()) {
      mh.msg_control = cbuf.data();
      mh.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
      cmsghdr* c = CMSG_FIRSTHDR(&mh);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
      std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    return ::sendmsg(sock_, &mh, MSG_NOSIGNAL) == ssize_t(buf.size());
  }
  bool recv_all(void* p, size_t n) {
    auto* b = static_cast<uint8_t*>(p);
    while (n) {
      ssize_t r = ::recv(sock_, b, n, 0);
      if (r <= 0) return false;
      b += r;
      n -= size_t(r);
    }
    return true;
  }
  // True once the back-end closed the connection (socket mode).
  bool wait_closed() {
    char c;
    ssize_t r = ::recv(sock_, &c, 1, 0);
    return r == 0 || (r < 0 && errno == ECONNRESET);  // reset: it closed with our bytes unread
  }
  bool u64(Req req, uint64_t v, const std::vector<int>& fds = {}) { return request(req, &v, 8, fds); }
  bool state(Req req, uint32_t index, uint32_t num) {
    VringState s{index, num};
    return request(req, &s, sizeof s);
  }
  uint64_t get_u64(Req req) {
    std::vector<uint8_t> r;
    uint64_t v = 0;
    if (request(req, nullptr, 0, {}, &r) && r.size() == 8) std::memcpy(&v, r.data(), 8);
    return v;
  }

  // ---- a typical start-up ----
  bool negotiate(uint64_t features, uint64_t protocol = pfeat::kMq | pfeat::kReplyAck | pfeat::kRarp) {
    if (!request(Req::kSetOwner, nullptr, 0)) return false;
    offered = get_u64(Req::kGetFeatures);
    if (!u64(Req::kSetFeatures, features & offered)) return false;
    get_u64(Req::kGetProtocolFeatures);
    if (!u64(Req::kSetProtocolFeatures, protocol)) return false;
    acked_reply_ack_ = protocol & pfeat::kReplyAck;
    return true;
  }
  bool set_mem_table() {
    MemTable t{};
    t.nregions = 1;
    t.regions[0] = MemRegion{kGpaBase, size_, kUvaBase, 0};
    return request(Req::kSetMemTable, &t, 8 + sizeof(MemRegion), {memfd_});
  }
  struct Ring {
    uint32_t size = 0;
    uint64_t desc_gpa = 0, avail_gpa = 0, used_gpa = 0;
    uint16_t avail_idx = 0;  // driver's next avail index
    uint16_t used_seen = 0;  // used entries consumed
    uint16_t next_desc = 0;
  };
  bool setup_vring(unsigned idx, uint32_t qsize, bool enable = true, uint32_t base = 0) {
    if (rings.size() <= idx) rings.resize(idx + 1);
    Ring& r = rings[idx];
    r.size = qsize;
    r.desc_gpa = alloc(desc_area_bytes(qsize), 16);
    r.avail_gpa = alloc(avail_area_bytes(qsize), 2);
    r.used_gpa = alloc(used_area_bytes(qsize), 4);
    r.avail_idx = r.used_seen = uint16_t(base);
    if (!state(Req::kSetVringNum, idx, qsize)) return false;
    if (!state(Req::kSetVringBase, idx, base)) return false;
    VringAddr a{idx, 0, uva(r.desc_gpa), uva(r.used_gpa), uva(r.avail_gpa), 0};
    if (!request(Req::kSetVringAddr, &a, sizeof a)) return false;
    if (kicks_.size() <= idx) kicks_.resize(idx + 1, -1), calls_.resize(idx + 1, -1);
    if (calls_[idx] < 0) calls_[idx] = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!u64(Req::kSetVringCall, idx, {calls_[idx]})) return false;
    if (kicks_[idx] < 0) kicks_[idx] = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!u64(Req::kSetVringKick, idx, {kicks_[idx]})) return false;
    if (enable && !state(Req::kSetVringEnable, idx, 1)) return false;
    return true;
  }
  bool start(uint64_t features, unsigned pairs = 1, uint32_t qsize = 256) {
    if (!negotiate(features) || !set_mem_table()) return false;
    for (unsigned i = 0; i < 2 * pairs; ++i)
      if (!setup_vring(i, qsize)) return false;
    return true;
  }

  // ---- guest memory ----
  uint64_t alloc(uint64_t bytes, uint64_t align = 64) {
    next_ = (next_ + align - 1) & ~(align - 1);
    uint64_t off = next_;
    next_ += bytes;
    if (next_ > size_) throw std::runtime_error("guest memory exhausted");
    return kGpaBase + off;
  }
  uint8_t* host(uint64_t gpa) { return mem_ + (gpa - kGpaBase); }
  uint64_t uva(uint64_t gpa) const { return gpa - kGpaBase + kUvaBase; }
  VringDesc* desc(unsigned ring, uint16_t i) { return reinterpret_cast<VringDesc*>(host(rings[ring].desc_gpa)) + i; }
  uint16_t* avail_ring(unsigned ring) { return reinterpret_cast<uint16_t*>(host(rings[ring].avail_gpa) + 4); }
  uint16_t* avail_idx_ptr(unsigned ring) { return reinterpret_cast<uint16_t*>(host(rings[ring].avail_gpa) + 2); }
  uint16_t* avail_flags(unsigned ring) { return reinterpret_cast<uint16_t*>(host(rings[ring].avail_gpa)); }
  uint16_t used_idx(unsigned ring) {
    return std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(host(rings[ring].used_gpa) + 2))
        .load(std::memory_order_acquire);
  }
  VringUsedElem used_elem(unsigned ring, uint16_t i) {
    return reinterpret_cast<VringUsedElem*>(host(rings[ring].used_gpa) + 4)[i & (rings[ring].size - 1)];
  }
  // Publishes head as the next avail entry.
  void make_avail(unsigned ring, uint16_t head) {
    Ring& r = rings[ring];
    avail_ring(ring)[r.avail_idx & (r.size - 1)] = head;
    ++r.avail_idx;
    std::atomic_ref<uint16_t>(*avail_idx_ptr(ring)).store(r.avail_idx, std::memory_order_release);
  }
  // Writes descriptor i.
  void set_desc(unsigned ring, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next = 0) {
    *desc(ring, i) = VringDesc{addr, len, flags, next};
  }
  // Guest TX: one frame with its header in `pieces` descriptors (the header split at `split` bytes when pieces > 1).
  uint16_t send_frame(const std::vector<uint8_t>& frame, const NetHdr& hdr = {}, unsigned hdr_len = 12,
                      unsigned split = 0) {
    Ring& r = rings[1];
    std::vector<uint8_t> all(hdr_len + frame.size());
    std::memcpy(all.data(), &hdr, hdr_len);
    std::memcpy(all.data() + hdr_len, frame.data(), frame.size());
    uint64_t buf = alloc(all.size());
    std::memcpy(host(buf), all.data(), all.size());
    uint16_t head = uint16_t(r.next_desc++ % r.size);
    if (split == 0 || split >= all.size()) {
      set_desc(1, head, buf, uint32_t(all.size()), 0);
    } else {
      uint16_t second = uint16_t(r.next_desc++ % r.size);
      set_desc(1, head, buf, split, kDescNext, second);
      set_desc(1, second, buf + split, uint32_t(all.size() - split), 0);
    }
    make_avail(1, head);
    return head;
  }
  // Guest RX: n buffers of `len` bytes each (one descriptor each, device-writable).
  std::vector<uint64_t> post_rx(unsigned n, uint32_t len, unsigned ring = 0) {
    Ring& r = rings[ring];
    std::vector<uint64_t> bufs;
    for (unsigned i = 0; i < n; ++i) {
      uint64_t b = alloc(len);
      uint16_t d = uint16_t(r.next_desc++ % r.size);
      set_desc(ring, d, b, len, kDescWrite);
      make_avail(ring, d);
      bufs.push_back(b);
    }
    return bufs;
  }
  int kick_fd(unsigned i) const { return kicks_[i]; }
  int memfd() const { return memfd_; }
  size_t mem_size() const { return size_; }

  std::vector<Ring> rings;
  uint64_t offered = 0;
  std::string last_error;

 private:
  VhostUserPort* port_;
  int sock_;
  size_t size_;
  int memfd_ = -1;
  uint8_t* mem_ = nullptr;
  uint64_t next_ = 0;
  bool acked_reply_ack_ = false;
  std::vector<int> kicks_, calls_;
};

inline constexpr uint64_t kDefaultFeatures = feat::kVersion1 | feat::kProtocolFeatures | feat::kNetMrgRxbuf |
                                             feat::kRingEventIdx | feat::kRingIndirectDesc | feat::kNetCsum |
                                             feat::kNetGuestCsum | feat::kNetHostTso4 | feat::kNetGuestTso4;

// A 64-byte UDP-ish Ethernet frame from `src` (MAC bytes 02:00:00:00:00:xx).
inline std::vector<uint8_t> test_frame(uint8_t src, size_t len = 64) {
  std::vector<uint8_t> f(len, 0);
  std::memset(f.data(), 0xff, 6);
  f[6] = 0x02, f[11] = src;
  f[12] = 0x88, f[13] = 0xb5;  // local experimental EtherType
  for (size_t i = 14; i < len; ++i) f[i] = uint8_t(i);
  return f;
}

}  // namespace vpcd::dp::vhost::testing
