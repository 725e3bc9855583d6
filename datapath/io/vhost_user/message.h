// vhost-user message framing: reading one front-end message (header, payload, SCM_RIGHTS fds) from the unix socket,
// the generic checks every message passes before its handler runs, and writing replies.
//
// Checks (DPDK read_vhost_message / validate_msg_fds, CVE-2020-10726 class): the header's version bits must be 1 and
// the reply bit clear; size <= kMaxPayload (else the connection is unusable: the stream cannot be resynchronised);
// the payload size must match what the request's MsgSpec allows; the fd count must match its FdRule. Fds beyond
// kMaxFds are discarded by the kernel (MSG_CTRUNC: a protocol error); every fd a message carries that its handler does
// not take is closed when the Msg goes away (UniqueFd), so a hostile front-end cannot make vpcd leak descriptors.
//
// Threading: functions over one socket; called by the vhost-user service thread only.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

#include "datapath/io/unique_fd.h"
#include "datapath/io/vhost_user/protocol.h"

namespace vpcd::dp::vhost {

struct Msg {
  MsgHeader hdr{};
  alignas(8) uint8_t payload[kMaxPayload]{};
  UniqueFd fds[kMaxFds];
  unsigned nfds = 0;

  template <class T>
  T as() const noexcept {
    static_assert(sizeof(T) <= kMaxPayload);
    T t;
    std::memcpy(&t, payload, sizeof t);
    return t;
  }
  uint64_t u64() const noexcept { return as<uint64_t>(); }
  Req req() const noexcept { return Req(hdr.request); }
};

struct Reply {
  bool send = false;
  uint32_t size = 0;
  alignas(8) uint8_t payload[kMaxPayload]{};
  void set_u64(uint64_t v) noexcept {
    send = true;
    size = 8;
    std::memcpy(payload, &v, 8);
  }
  template <class T>
  void set(const T& v) noexcept {
    static_assert(sizeof(T) <= kMaxPayload);
    send = true;
    size = sizeof(T);
    std::memcpy(payload, &v, sizeof(T));
  }
};

// How many fds a request carries.
enum class FdRule : uint8_t {
  kNone,           // no fd
  kVringFd,        // one fd unless the u64 payload has kVringNoFd set (then none)
  kOne,            // exactly one
  kPerRegion,      // one per memory region (SET_MEM_TABLE)
};

enum class ReadStatus : uint8_t { kOk, kClosed, kError };

// Reads one message from `sock` (blocking; the caller sets SO_RCVTIMEO). kClosed: orderly EOF before a header;
// kError: *error says why (short read, bad version, oversized payload, truncated ancillary data).
ReadStatus read_message(int sock, Msg& m, std::string* error);

// Checks the payload size and fd count of m against a request's rules. false with *error when they do not match.
bool validate_message(const Msg& m, FdRule fds, uint32_t min_size, uint32_t max_size, std::string* error);

// Sends `r` as the reply to `req` (same request id, version 1, reply flag). false when the socket failed.
bool send_reply(int sock, const Msg& req, const Reply& r);

}  // namespace vpcd::dp::vhost
