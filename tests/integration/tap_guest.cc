// TapGuest: see tap_guest.h.
#include "tests/integration/tap_guest.h"

#include <poll.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "datapath/io/tap_device.h"
#include "datapath/pipeline/packet.h"
#include "datapath/proto/arp.h"
#include "datapath/proto/frame_builder.h"
#include "datapath/proto/l4.h"
#include "datapath/stages/parse.h"

namespace vpcd::dp::test {

namespace {
using Clock = std::chrono::steady_clock;

std::chrono::milliseconds left_until(Clock::time_point deadline) {
  auto d = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return d.count() > 0 ? d : std::chrono::milliseconds(0);
}

uint16_t read_be16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }
}  // namespace

TapGuest::TapGuest(const std::string& tap_ifname, MacAddr mac, Ipv4Addr ip) : mac_(mac), ip_(ip) {
  fd_ = tap_open_queue(tap_ifname);
  if (fd_ < 0) error_ = "tap_open_queue(" + tap_ifname + "): " + std::strerror(errno);
}

TapGuest::~TapGuest() {
  if (fd_ >= 0) ::close(fd_);
}

bool TapGuest::send(std::span<const uint8_t> frame) {
  uint8_t hdr[kVnetHdrBytes] = {};
  iovec iov[2] = {{hdr, sizeof hdr}, {const_cast<uint8_t*>(frame.data()), frame.size()}};
  ssize_t n = ::writev(fd_, iov, 2);
  if (n != ssize_t(sizeof hdr + frame.size())) return false;
  ++counters_.tx_frames;
  return true;
}

std::optional<std::vector<uint8_t>> TapGuest::recv(std::chrono::milliseconds timeout) {
  pollfd p{fd_, POLLIN, 0};
  int r = ::poll(&p, 1, int(timeout.count()));
  if (r <= 0) return std::nullopt;
  std::vector<uint8_t> buf(kVnetHdrBytes + 65536);
  ssize_t n = ::read(fd_, buf.data(), buf.size());
  if (n < ssize_t(kVnetHdrBytes)) return std::nullopt;
  ++counters_.rx_frames;
  buf.erase(buf.begin(), buf.begin() + kVnetHdrBytes);
  buf.resize(size_t(n) - kVnetHdrBytes);
  return buf;
}

TapGuest::Seen TapGuest::handle(std::vector<uint8_t>& frame, Ipv4Addr* arp_from, MacAddr* arp_mac,
                                uint16_t* echo_id, uint16_t* echo_seq) {
  Packet p = proto::make_packet(frame);
  parse(p);
  if (p.dropped()) {
    ++counters_.other_frames;
    return Seen::kNothing;
  }
  MacAddr dst = MacAddr::from_bytes(p.dst_mac());
  MacAddr src = MacAddr::from_bytes(p.src_mac());
  if (dst != mac_ && !dst.is_broadcast()) {
    ++counters_.other_frames;
    return Seen::kNothing;
  }
  if (p.flags & kIsArp) {
    const uint8_t* a = p.data + p.l3_offset;
    uint16_t op = read_be16(a + 6);
    if (op == proto::kArpOpRequest && p.ip4_dst == ip_) {
      MacAddr sha = MacAddr::from_bytes(a + 8);
      auto reply = proto::FrameBuilder().eth(mac_, sha).arp(proto::kArpOpReply, mac_, ip_, sha, p.ip4_src).build();
      if (send(reply)) ++counters_.arp_requests_answered;
      return Seen::kNothing;
    }
    if (op == proto::kArpOpReply && p.ip4_dst == ip_) {
      ++counters_.arp_replies_received;
      *arp_from = p.ip4_src;
      *arp_mac = MacAddr::from_bytes(a + 8);
      return Seen::kArpReply;
    }
    ++counters_.other_frames;
    return Seen::kNothing;
  }
  if ((p.flags & kIsIcmp) && (p.flags & kIsIpv4) && p.ip4_dst == ip_ && p.l4_offset != 0) {
    const uint8_t* icmp = p.data + p.l4_offset;
    uint8_t type = icmp[0];
    uint16_t id = read_be16(icmp + 4), seq = read_be16(icmp + 6);
    if (type == proto::kIcmpEchoRequest) {
      size_t payload_off = p.l4_offset + proto::kIcmpEchoLen;
      size_t payload_end = p.l4_offset + p.l4_len;
      std::span<const uint8_t> payload(p.data + payload_off, payload_end > payload_off ? payload_end - payload_off : 0);
      auto reply = proto::FrameBuilder().eth(mac_, src).ipv4(ip_, p.ip4_src).icmp_echo(false, id, seq)
                       .payload(payload).build();
      if (send(reply)) ++counters_.echo_requests_answered;
      return Seen::kNothing;
    }
    if (type == proto::kIcmpEchoReply) {
      ++counters_.echo_replies_received;
      *echo_id = id;
      *echo_seq = seq;
      return Seen::kEchoReply;
    }
  }
  ++counters_.other_frames;
  return Seen::kNothing;
}

std::optional<MacAddr> TapGuest::arp_resolve(Ipv4Addr target, std::chrono::milliseconds timeout) {
  auto req = proto::FrameBuilder().eth(mac_, kBroadcastMac)
                 .arp(proto::kArpOpRequest, mac_, ip_, MacAddr{}, target).build();
  if (!send(req)) return std::nullopt;
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    auto f = recv(left_until(deadline));
    if (!f) continue;
    Ipv4Addr from;
    MacAddr m;
    uint16_t id = 0, seq = 0;
    if (handle(*f, &from, &m, &id, &seq) == Seen::kArpReply && from == target) return m;
  }
  return std::nullopt;
}

unsigned TapGuest::ping(MacAddr dst_mac, Ipv4Addr dst, unsigned count, std::chrono::milliseconds per_reply) {
  unsigned replies = 0;
  for (unsigned s = 1; s <= count; ++s) {
    auto req = proto::FrameBuilder().eth(mac_, dst_mac).ipv4(ip_, dst).icmp_echo(true, echo_id_, uint16_t(s))
                   .payload_size(56).build();
    if (!send(req)) continue;
    auto deadline = Clock::now() + per_reply;
    while (Clock::now() < deadline) {
      auto f = recv(left_until(deadline));
      if (!f) continue;
      Ipv4Addr from;
      MacAddr m;
      uint16_t id = 0, seq = 0;
      if (handle(*f, &from, &m, &id, &seq) == Seen::kEchoReply && id == echo_id_ && seq == s) {
        ++replies;
        break;
      }
    }
  }
  return replies;
}

bool TapGuest::serve_until(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (done()) return true;
    auto f = recv(std::min(left_until(deadline), std::chrono::milliseconds(20)));
    if (!f) continue;
    Ipv4Addr from;
    MacAddr m;
    uint16_t id = 0, seq = 0;
    handle(*f, &from, &m, &id, &seq);
  }
  return done();
}

}  // namespace vpcd::dp::test
