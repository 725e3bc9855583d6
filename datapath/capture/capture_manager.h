// CaptureManager: packet capture sessions on datapath ports (API.md "Packet capture").
//
// start() compiles the filter (libpcap), allocates one CaptureRing per worker, and hooks the session into the port's
// PortCaptureList (capture_tap.h), which the workers then feed. A capture thread ("vpcd-capture", asleep while no
// session runs) drains every session's rings every few milliseconds, runs the compiled BPF filter on each frame and
// writes the matches with libpcap into the session's pcap byte stream, which the HTTP layer collects with
// CaptureSession::read() without ever blocking. When the client lets go of the CaptureSession (hang-up), or the
// session reached its frame count or duration, or the port went away, the capture thread unhooks the session.
//
// Memory reclamation: the snapshot ack protocol (publisher.h), not a separate epoch. After the capture thread stores a
// port's new list (release, under mu_) it reads G = next_generation() (under the publisher's mutex, so every publish
// of generation >= G happens after the store). A worker that acked >= G has finished every batch that could have
// loaded the old pointer, so the old list and the session's rings are freed (on the capture thread) once every
// worker acked >= G. When no publish reaches G on its own (the usual case), the thread asks for a no-op republish of
// the current snapshot through Quiesce::poke, which the Controller implements with a try-lock (an apply() in
// progress publishes anyway). Before freeing the rings the thread drains what the workers left in them.
//
// Back-pressure and budget: a session whose pcap bytes are not collected (slow client) stops being drained above
// kHighWaterBytes, and no session writes more than kOutputBytesPerSecond (token bucket, kOutputBurstBytes): on a box
// whose cores all forward, the CPU a capture takes (copies, TLS, the client) comes out of forwarding, so it is
// bounded. Either way its rings fill and the workers count every frame they cannot put in as dropped. Nothing on a
// worker waits.
//
// Threading: start(), stats() from any thread; CaptureSession::read()/stop() from any thread (one reader). mu_
// guards sessions_, ports_ and retired_ and every store into PortRuntime::capture; the capture thread does the
// draining outside mu_ (each session's rings and PcapStream are touched by the capture thread only).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "datapath/capture/capture_tap.h"
#include "datapath/capture/capture_types.h"

namespace vpcd::dp {

class CaptureManager {
 public:
  struct Quiesce {
    std::function<uint64_t()> next_generation;  // publisher.next_generation()
    std::function<uint64_t()> min_acked;        // lowest generation every worker acked
    std::function<void()> poke;                 // ask for a publish (may do nothing; called again later)
  };
  static constexpr size_t kHighWaterBytes = 8u << 20;
  static constexpr double kOutputBytesPerSecond = 8u << 20;  // per session
  static constexpr double kOutputBurstBytes = 2u << 20;
  static constexpr size_t kDefaultRingBytes = 2u << 20;
  static constexpr auto kDrainInterval = std::chrono::milliseconds(2);

  CaptureManager(unsigned workers, Quiesce q, std::function<void(const std::string&)> log = {},
                 size_t ring_bytes = kDefaultRingBytes);
  // Stops the thread and frees everything. Call only once the workers no longer run (or never saw the ports).
  ~CaptureManager();
  CaptureManager(const CaptureManager&) = delete;
  CaptureManager& operator=(const CaptureManager&) = delete;

  using StartResult = std::variant<std::shared_ptr<CaptureSession>, CaptureError>;
  // port: the port's runtime (weak: a port that goes away ends the capture). object_id: for stats and the log.
  StartResult start(const std::shared_ptr<PortRuntime>& port, const std::string& object_id, const CaptureSpec& spec);

  CaptureStats stats() const;

  // Called whenever a session was hooked into or unhooked from a port (any thread: the caller of start(), or the
  // capture thread, with this manager's lock held: it must not call back into the manager). Set before the first
  // start().
  void set_hooks_listener(std::function<void()> fn);

  struct Session;  // defined in capture_manager.cc

 private:
  struct PortHook;
  struct Retired;

  void run() noexcept;
  void end_locked(const std::shared_ptr<Session>& s, const char* reason);
  void drain(Session& s, bool all);
  void finish(Session& s);
  void publish_list_locked(PortHook& h, PortRuntime& rt);

  const unsigned workers_;
  const Quiesce q_;
  const std::function<void(const std::string&)> log_;
  const size_t ring_bytes_;

  mutable std::mutex mu_;
  std::function<void()> hooks_listener_;  // guarded by mu_
  std::condition_variable cv_;
  bool stop_ = false;                                   // guarded by mu_
  std::vector<std::shared_ptr<Session>> sessions_;       // guarded by mu_: hooked, being drained
  std::map<const PortRuntime*, std::unique_ptr<PortHook>> ports_;  // guarded by mu_: ports with a list published
  std::vector<std::unique_ptr<Retired>> retired_;        // guarded by mu_: waiting for the workers' acks
  uint64_t next_id_ = 1;                                 // guarded by mu_
  uint64_t active_ = 0;                                  // guarded by mu_: started, not yet finished
  uint64_t started_ = 0;                                 // guarded by mu_
  std::atomic<uint64_t> captured_total_{0}, dropped_total_{0}, filtered_total_{0};  // ended sessions' counts
  std::thread thread_;
};

}  // namespace vpcd::dp
