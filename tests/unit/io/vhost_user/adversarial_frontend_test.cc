// The adversarial front-end (issue 10): over a real unix socket to a VhostUserService in server mode, it sends each
// bad message and each bad descriptor of the list, 10,000 sessions in all. Every session must end in the NIC's error
// state (protocol errors: the connection is closed) or a counted drop (the ring goes on), never a crash; afterwards
// the process's open fds and resident memory are back at their baseline.
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/un.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "datapath/io/vhost_user/vhost_user_service.h"
#include "tests/unit/io/vhost_user/fake_frontend.h"

namespace vpcd::dp::vhost {
namespace {

using testing::FakeFrontend;
using testing::kDefaultFeatures;

size_t open_fds() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

size_t rss_kib() {
  std::ifstream f("/proc/self/status");
  std::string k;
  size_t v = 0;
  while (f >> k) {
    if (k == "VmRSS:") {
      f >> v;
      return v;
    }
  }
  return 0;
}

// Waits (bounded) until the port's state satisfies pred.
template <class Pred>
bool wait_state(VhostUserPort& port, Pred pred) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred(port.status().state)) return true;
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  return false;
}

enum Case : int {
  kUnknownRequest,
  kShortPayload,
  kOversizedHeader,
  kBadVersion,
  kTooManyFds,
  kFdCountMismatch,
  kTooManyRegions,
  kRegionBeyondFile,
  kRegionOverflow,
  kFdNotMemory,
  kBadQueueSize,
  kVringIndex,
  kRingOutsideMemory,
  kFeaturesNotOffered,
  kTruncatedMessage,
  kLastMessageCase,
  // descriptors (after a good start-up)
  kDescNextOutOfRange = kLastMessageCase,
  kDescLoop,
  kDescOutsideMemory,
  kDescWraps,
  kDescNestedIndirect,
  kDescIndirectMisaligned,
  kDescWritableInTx,
  kDescHeadOutOfRange,
  kAvailRunsAhead,
  kCaseCount,
};

struct Adversary {
  VhostUserPort& port;
  std::string sock_path;
  uint64_t drops_seen = 0;

  uint64_t bad_drops() {
    std::array<uint64_t, size_t(DropReason::kCount)> d{};
    port.add_io_drops(d);
    return d[size_t(DropReason::kVhostBadDescriptor)];
  }

  int connect_sock() {
    int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, sock_path.c_str(), sock_path.size());
    if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(s);
      return -1;
    }
    timeval tv{5, 0};
    ::setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return s;
  }

  // One session; returns a failure description or "".
  std::string session(int c) {
    int s = connect_sock();
    if (s < 0) return "connect failed";
    std::string res = run(c, s);
    ::close(s);
    // The service has seen the end of this session (and closed its fds) before the next one connects: waiting, or
    // the error of a closed connection (not a broken ring of a connection still open).
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    for (;;) {
      DeviceStatus st = port.status();
      if (st.state == DeviceState::kWaiting ||
          (st.state == DeviceState::kError && st.detail.rfind("front-end protocol error", 0) == 0))
        break;
      if (std::chrono::steady_clock::now() > deadline) return res.empty() ? "session did not end" : res;
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    return res;
  }

  std::string expect_error(FakeFrontend& fe) {
    if (!fe.wait_closed()) return "connection not closed";
    if (port.status().state != DeviceState::kError) return "state not error";
    return "";
  }

  std::string run(int c, int s) {
    FakeFrontend fe(nullptr, s, 1 << 20);
    if (c < kLastMessageCase) {
      if (!fe.negotiate(kDefaultFeatures)) return "negotiation failed";
      uint64_t v = 0;
      MemTable t{};
      switch (c) {
        case kUnknownRequest: fe.send_raw(77, kMsgVersion, nullptr, 0, {}); break;
        case kShortPayload: fe.send_raw(uint32_t(Req::kSetFeatures), kMsgVersion, &v, 4, {}); break;
        case kOversizedHeader: {
          MsgHeader h{uint32_t(Req::kSetFeatures), kMsgVersion, 0x10000};
          ::send(s, &h, sizeof h, MSG_NOSIGNAL);
          break;
        }
        case kBadVersion: fe.send_raw(uint32_t(Req::kGetFeatures), 0, nullptr, 0, {}); break;
        case kTooManyFds: {
          std::vector<int> fds(10, fe.memfd());
          fe.send_raw(uint32_t(Req::kSetVringCall), kMsgVersion, &v, 8, fds);
          break;
        }
        case kFdCountMismatch: fe.send_raw(uint32_t(Req::kSetOwner), kMsgVersion, nullptr, 0, {fe.memfd()}); break;
        case kTooManyRegions:
          t.nregions = 9;
          fe.send_raw(uint32_t(Req::kSetMemTable), kMsgVersion, &t, sizeof t, {fe.memfd()});
          break;
        case kRegionBeyondFile:
          t.nregions = 1;
          t.regions[0] = MemRegion{FakeFrontend::kGpaBase, 1ull << 30, FakeFrontend::kUvaBase, 0};
          fe.send_raw(uint32_t(Req::kSetMemTable), kMsgVersion, &t, 8 + sizeof(MemRegion), {fe.memfd()});
          break;
        case kRegionOverflow:
          t.nregions = 1;
          t.regions[0] = MemRegion{~0ull - 10, 4096, FakeFrontend::kUvaBase, 0};
          fe.send_raw(uint32_t(Req::kSetMemTable), kMsgVersion, &t, 8 + sizeof(MemRegion), {fe.memfd()});
          break;
        case kFdNotMemory:
          t.nregions = 1;
          t.regions[0] = MemRegion{FakeFrontend::kGpaBase, 4096, FakeFrontend::kUvaBase, 0};
          {
            int efd = ::eventfd(0, EFD_CLOEXEC);
            fe.send_raw(uint32_t(Req::kSetMemTable), kMsgVersion, &t, 8 + sizeof(MemRegion), {efd});
            ::close(efd);
          }
          break;
        case kBadQueueSize: {
          VringState st{0, 100};
          fe.send_raw(uint32_t(Req::kSetVringNum), kMsgVersion, &st, 8, {});
          break;
        }
        case kVringIndex: {
          VringState st{200, 64};
          fe.send_raw(uint32_t(Req::kSetVringNum), kMsgVersion, &st, 8, {});
          break;
        }
        case kRingOutsideMemory: {
          if (!fe.set_mem_table() || !fe.state(Req::kSetVringNum, 0, 256)) return "setup failed";
          VringAddr a{0, 0, FakeFrontend::kUvaBase + (1 << 20) - 16, FakeFrontend::kUvaBase, FakeFrontend::kUvaBase, 0};
          fe.send_raw(uint32_t(Req::kSetVringAddr), kMsgVersion, &a, sizeof a, {});
          break;
        }
        case kFeaturesNotOffered:
          v = feat::kRingPacked;
          fe.send_raw(uint32_t(Req::kSetFeatures), kMsgVersion, &v, 8, {});
          break;
        case kTruncatedMessage: {
          MsgHeader h{uint32_t(Req::kSetVringAddr), kMsgVersion, sizeof(VringAddr)};
          ::send(s, &h, sizeof h, MSG_NOSIGNAL);
          ::send(s, "abc", 3, MSG_NOSIGNAL);
          ::shutdown(s, SHUT_WR);
          if (!fe.wait_closed()) return "connection not closed";
          return port.status().state == DeviceState::kError ? "" : "state not error";
        }
      }
      return expect_error(fe);
    }
    if (!fe.start(kDefaultFeatures, 1, 16)) return "start-up failed";
    if (!wait_state(port, [](DeviceState st) { return st == DeviceState::kUp; })) return "not up";
    const uint64_t b = fe.alloc(256);
    bool counted = true;
    switch (c) {
      case kDescNextOutOfRange: fe.set_desc(1, 0, b, 100, kDescNext, 16); break;
      case kDescLoop:
        fe.set_desc(1, 0, b, 20, kDescNext, 1);
        fe.set_desc(1, 1, b, 20, kDescNext, 0);
        break;
      case kDescOutsideMemory: fe.set_desc(1, 0, FakeFrontend::kGpaBase + (1 << 20) - 8, 100, 0); break;
      case kDescWraps: fe.set_desc(1, 0, ~0ull - 3, 64, 0); break;
      case kDescNestedIndirect: {
        uint64_t t = fe.alloc(32, 16);
        *reinterpret_cast<VringDesc*>(fe.host(t)) = VringDesc{t, 32, kDescIndirect, 0};
        fe.set_desc(1, 0, t, 32, kDescIndirect);
        break;
      }
      case kDescIndirectMisaligned: fe.set_desc(1, 0, fe.alloc(64, 16) + 4, 32, kDescIndirect); break;
      case kDescWritableInTx: fe.set_desc(1, 0, b, 100, kDescWrite); break;
      case kDescHeadOutOfRange: counted = false; break;
      case kAvailRunsAhead: counted = false; break;
    }
    Packet pkts[32];
    const uint64_t before = bad_drops();
    if (c == kAvailRunsAhead) {
      std::atomic_ref<uint16_t>(*fe.avail_idx_ptr(1)).store(100, std::memory_order_release);
    } else {
      fe.make_avail(1, c == kDescHeadOutOfRange ? 16 : 0);
    }
    for (int i = 0; i < 2; ++i) {  // the first burst may carry the RARP
      unsigned n = port.rx_burst(0, pkts, 32);
      if (n) port.rx_release(0);
      for (unsigned k = 0; k < n; ++k)
        if (pkts[k].len != 60) return "a bad descriptor produced a frame";
    }
    if (counted) return bad_drops() == before + 1 ? "" : "drop not counted";
    if (!wait_state(port, [](DeviceState st) { return st == DeviceState::kError; })) return "state not error";
    return "";
  }
};

TEST(VhostUserAdversarial, EveryBadInputEndsInErrorOrACountedDropAndNothingLeaks) {
  char tmpl[] = "/tmp/vhost-adv-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  VhostUserPortConfig pc;
  pc.name = "adversary";
  pc.mac = MacAddr{{0x02, 0, 0, 0, 0, 0x01}};
  std::string err;
  auto port = VhostUserPort::create(pc, &err);
  ASSERT_TRUE(port) << err;
  {
    VhostUserService svc(dir + "/markers");
    VhostUserEndpoint ep;
    ep.path = dir + "/vu.sock";
    ep.server = true;
    ASSERT_TRUE(svc.attach(port.get(), ep, &err)) << err;
    Adversary adv{*port, ep.path};
    for (int i = 0; i < 2 * kCaseCount; ++i) {  // warm-up: first-time allocations are not leaks
      std::string r = adv.session(i % kCaseCount);
      ASSERT_EQ(r, "") << "case " << i % kCaseCount;
    }
    const size_t fds0 = open_fds();
    const size_t rss0 = rss_kib();
    constexpr int kSessions = 10000;
    int failures = 0;
    for (int i = 0; i < kSessions; ++i) {
      std::string r = adv.session(i % kCaseCount);
      if (!r.empty() && ++failures <= 5) ADD_FAILURE() << "session " << i << " case " << i % kCaseCount << ": " << r;
    }
    EXPECT_EQ(failures, 0);
    // The service closes a session's descriptors on its own thread, after the frontend saw the session end: on a
    // loaded box the last one may still be open for a moment, at either count (CI once saw the warm-up's last session
    // still open at fds0: 14 before, 13 after). A leak of even one descriptor per session stays: thousands more.
    size_t fds1 = open_fds();
    for (int i = 0; i < 300 && fds1 > fds0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      fds1 = open_fds();
    }
    EXPECT_LE(fds1, fds0);
    const size_t rss1 = rss_kib();
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define VPCD_TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(VPCD_TEST_ASAN)
    // ASan holds freed memory in its quarantine (256 MiB by default), so RSS says nothing there; its LeakSanitizer
    // checks at exit what this bound checks in the normal build.
    (void)rss1;
    (void)rss0;
#else
    EXPECT_LT(rss1, rss0 + 4096) << "resident memory grew from " << rss0 << " KiB to " << rss1 << " KiB";
#endif
    svc.detach(port.get());
    EXPECT_FALSE(std::filesystem::exists(ep.path));  // server socket removed on detach
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace vpcd::dp::vhost
