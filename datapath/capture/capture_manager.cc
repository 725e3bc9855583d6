// Capture sessions, the capture thread and reclamation; see capture_manager.h.
#include "datapath/capture/capture_manager.h"

#include <pthread.h>

#include <algorithm>
#include <cstdio>

#include "datapath/capture/pcap_stream.h"

namespace vpcd::dp {

namespace {
constexpr uint32_t kFilterBytes = 256;      // copied at least, so a filter sees the headers even with a tiny snaplen
constexpr size_t kPopPerRound = 4096;       // records per ring per drain round (bounds one round's latency)
constexpr size_t kPopPerStep = 32;          // records popped between two budget checks
}  // namespace

struct CaptureManager::Session {
  Session(uint32_t snaplen, PcapFilter f) : filter(std::move(f)), stream(snaplen) {}

  uint64_t id = 0;
  std::string object_id;
  CaptureSpec spec;
  std::weak_ptr<PortRuntime> port;
  const PortRuntime* port_key = nullptr;
  std::chrono::steady_clock::time_point deadline;
  std::unique_ptr<CaptureTap> tap;  // rings freed by finish(); counters stay readable

  // Capture thread only (drain/finish), except under the rules below.
  PcapFilter filter;
  PcapStream stream;
  std::string staging;
  const char* end_reason = "";  // set under the manager's mu_ by end_locked
  double budget = 0;            // output bytes it may still write (token bucket); capture thread only
  std::chrono::steady_clock::time_point budget_at;

  std::atomic<uint64_t> frames{0};    // written to the file; written by the capture thread
  std::atomic<uint64_t> filtered{0};  // not matching the filter; written by the capture thread
  std::atomic<bool> stop_requested{false};  // set by the handle (any thread)

  std::mutex out_mu;
  std::string out;     // guarded by out_mu: pcap bytes not yet read
  bool ended = false;  // guarded by out_mu: no more bytes will be appended
  std::atomic<size_t> out_bytes{0};  // size of out, for the high-water check without the lock

  uint64_t dropped() const noexcept {
    uint64_t n = 0;
    for (unsigned w = 0; w < tap->workers; ++w) n += tap->counters[w].dropped.load(std::memory_order_relaxed);
    return n;
  }
};

struct CaptureManager::PortHook {
  std::weak_ptr<PortRuntime> port;
  std::vector<CaptureTap*> taps;
  std::unique_ptr<PortCaptureList> list;  // what port->capture points to (null when taps is empty)
};

struct CaptureManager::Retired {
  uint64_t gen = 0;                          // free once every worker acked >= gen
  std::unique_ptr<PortCaptureList> list;     // an unhooked list (may be null)
  std::shared_ptr<Session> session;          // an unhooked session: drained and finished then (may be null)
};

namespace {

class Handle final : public CaptureSession {
 public:
  explicit Handle(std::shared_ptr<CaptureManager::Session> s) : s_(std::move(s)) {}
  ~Handle() override { stop(); }

  ReadState read(std::string& out) override;
  void stop() override;
  uint64_t frames() const override;
  uint64_t dropped() const override;

 private:
  std::shared_ptr<CaptureManager::Session> s_;
};

}  // namespace

CaptureSession::ReadState Handle::read(std::string& out) {
  std::scoped_lock lk(s_->out_mu);
  if (out.empty())
    out.swap(s_->out);
  else
    out.append(s_->out);
  s_->out.clear();
  s_->out_bytes.store(0, std::memory_order_relaxed);
  return s_->ended ? ReadState::kEnd : ReadState::kMore;
}

void Handle::stop() { s_->stop_requested.store(true, std::memory_order_relaxed); }
uint64_t Handle::frames() const { return s_->frames.load(std::memory_order_relaxed); }
uint64_t Handle::dropped() const { return s_->dropped(); }

CaptureManager::CaptureManager(unsigned workers, Quiesce q, std::function<void(const std::string&)> log,
                               size_t ring_bytes)
    : workers_(std::min(workers, kMaxWorkers)), q_(std::move(q)), log_(std::move(log)), ring_bytes_(ring_bytes) {
  thread_ = std::thread([this] { run(); });
}

CaptureManager::~CaptureManager() {
  {
    std::scoped_lock lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  // The workers are stopped (contract): unhook and free everything now.
  std::scoped_lock lk(mu_);
  for (auto& [key, h] : ports_)
    if (auto rt = h->port.lock()) rt->capture.store(nullptr, std::memory_order_release);
  ports_.clear();
  for (auto& s : sessions_) {
    std::scoped_lock ol(s->out_mu);
    s->ended = true;
  }
  for (auto& r : retired_)
    if (r->session) {
      std::scoped_lock ol(r->session->out_mu);
      r->session->ended = true;
    }
  sessions_.clear();
  retired_.clear();
}

void CaptureManager::set_hooks_listener(std::function<void()> fn) {
  std::scoped_lock lk(mu_);
  hooks_listener_ = std::move(fn);
}

CaptureManager::StartResult CaptureManager::start(const std::shared_ptr<PortRuntime>& port,
                                                  const std::string& object_id, const CaptureSpec& spec) {
  if (spec.max_frames == 0 || spec.max_frames > kCaptureMaxFrames)
    return CaptureError{CaptureError::Kind::kBadSpec, "count must be 1.." + std::to_string(kCaptureMaxFrames)};
  if (spec.duration.count() <= 0 || spec.duration > kCaptureMaxDuration)
    return CaptureError{CaptureError::Kind::kBadSpec, "seconds must be 1..3600"};
  if (spec.snaplen == 0 || spec.snaplen > kPcapMaxSnaplen)
    return CaptureError{CaptureError::Kind::kBadSpec, "snaplen must be 1.." + std::to_string(kPcapMaxSnaplen)};
  std::string err;
  auto filter = PcapFilter::compile(spec.filter, spec.snaplen, &err);
  if (!filter) return CaptureError{CaptureError::Kind::kBadFilter, err};
  if (!port) return CaptureError{CaptureError::Kind::kNoPort, "the port has no datapath port"};

  auto s = std::make_shared<Session>(spec.snaplen, std::move(*filter));
  s->object_id = object_id;
  s->spec = spec;
  s->port = port;
  s->port_key = port.get();
  s->deadline = std::chrono::steady_clock::now() + spec.duration;
  s->budget = kOutputBurstBytes;
  s->budget_at = std::chrono::steady_clock::now();
  s->tap = std::make_unique<CaptureTap>();
  s->tap->copy_bytes = std::max(spec.snaplen, kFilterBytes);
  s->tap->workers = workers_;
  for (unsigned w = 0; w < workers_; ++w) s->tap->rings[w] = std::make_unique<CaptureRing>(ring_bytes_);
  s->stream.take(s->out);  // the file header: the client gets it at once
  s->out_bytes.store(s->out.size(), std::memory_order_relaxed);

  {
    std::scoped_lock lk(mu_);
    if (active_ >= kMaxCaptureSessions)
      return CaptureError{CaptureError::Kind::kTooMany,
                          std::to_string(kMaxCaptureSessions) + " captures are already running; try again later"};
    s->id = next_id_++;
    auto& h = ports_[port.get()];
    if (h && h->port.lock() != port) {
      // A freed port's hook whose address a new port reuses: retire the stale list (nothing can reach it).
      auto r = std::make_unique<Retired>();
      r->gen = q_.next_generation();
      r->list = std::move(h->list);
      retired_.push_back(std::move(r));
      h.reset();
    }
    if (!h) {
      h = std::make_unique<PortHook>();
      h->port = port;
    }
    h->taps.push_back(s->tap.get());
    publish_list_locked(*h, *port);
    sessions_.push_back(s);
    ++active_;
    ++started_;
    if (hooks_listener_) hooks_listener_();
  }
  cv_.notify_all();
  return std::shared_ptr<CaptureSession>(std::make_shared<Handle>(s));
}

// Builds and publishes a new list for the hook's port; the old one waits for the workers' acks.
void CaptureManager::publish_list_locked(PortHook& h, PortRuntime& rt) {
  std::unique_ptr<PortCaptureList> next;
  if (!h.taps.empty()) {
    next = std::make_unique<PortCaptureList>();
    next->n = unsigned(h.taps.size());
    std::copy(h.taps.begin(), h.taps.end(), next->taps.begin());
  }
  rt.capture.store(next.get(), std::memory_order_release);
  if (h.list) {
    auto r = std::make_unique<Retired>();
    r->gen = q_.next_generation();
    r->list = std::move(h.list);
    retired_.push_back(std::move(r));
  }
  h.list = std::move(next);
}

void CaptureManager::end_locked(const std::shared_ptr<Session>& s, const char* reason) {
  s->end_reason = reason;
  std::erase(sessions_, s);
  auto it = ports_.find(s->port_key);
  if (it != ports_.end()) {
    PortHook& h = *it->second;
    std::erase(h.taps, s->tap.get());
    if (auto rt = h.port.lock()) {
      publish_list_locked(h, *rt);
    } else if (h.list) {  // the port is gone: no worker can reach its list any more
      auto r = std::make_unique<Retired>();
      r->gen = q_.next_generation();
      r->list = std::move(h.list);
      retired_.push_back(std::move(r));
    }
    if (h.taps.empty()) ports_.erase(it);
    if (hooks_listener_) hooks_listener_();
  }
  auto r = std::make_unique<Retired>();
  r->gen = q_.next_generation();  // after the store above: see the header
  r->session = s;
  retired_.push_back(std::move(r));
}

// Moves frames from the session's rings through the filter into its pcap stream. `all`: empty the rings (after the
// session was unhooked and the workers let go); otherwise stop at the high-water mark of unread output.
void CaptureManager::drain(Session& s, bool all) {
  if (!all && s.out_bytes.load(std::memory_order_relaxed) >= kHighWaterBytes) return;
  const auto now = std::chrono::steady_clock::now();
  s.budget = std::min(kOutputBurstBytes,
                      s.budget + std::chrono::duration<double>(now - s.budget_at).count() * kOutputBytesPerSecond);
  s.budget_at = now;
  if (!all && s.budget <= 0) return;
  const uint64_t max = s.spec.max_frames;
  uint64_t frames = s.frames.load(std::memory_order_relaxed);
  uint64_t filtered = 0;
  for (unsigned w = 0; w < s.tap->workers; ++w) {
    CaptureRing* ring = s.tap->rings[w].get();
    if (!ring) continue;
    for (size_t round = 0;;) {
      const size_t n = ring->pop(kPopPerStep, [&](const CaptureRing::RecordHdr& h, const uint8_t* data) {
        if (frames >= max) return;  // past the count: consumed and not written
        if (!s.filter.matches(data, h.cap_len, h.wire_len)) {
          ++filtered;
          return;
        }
        s.stream.add(h.ts_ns, data, h.cap_len, h.wire_len);
        s.budget -= 16.0 + std::min(h.cap_len, s.spec.snaplen);
        ++frames;
      });
      round += n;
      if (n < kPopPerStep) break;
      if (!all && (round >= kPopPerRound || s.budget <= 0)) break;
    }
  }
  s.frames.store(frames, std::memory_order_relaxed);
  if (filtered) s.filtered.store(s.filtered.load(std::memory_order_relaxed) + filtered, std::memory_order_relaxed);
  if (s.stream.pending_bytes() || frames) {
    s.stream.take(s.staging);
    if (!s.staging.empty()) {
      std::scoped_lock lk(s.out_mu);
      s.out.append(s.staging);
      s.out_bytes.store(s.out.size(), std::memory_order_relaxed);
    }
    s.staging.clear();
  }
}

// After the workers let go of the session: last drain, free the rings, count, log, and let the reader see the end.
void CaptureManager::finish(Session& s) {
  drain(s, true);
  for (auto& r : s.tap->rings) r.reset();
  const uint64_t frames = s.frames.load(std::memory_order_relaxed);
  const uint64_t dropped = s.dropped();
  const uint64_t filtered = s.filtered.load(std::memory_order_relaxed);
  captured_total_.fetch_add(frames, std::memory_order_relaxed);
  dropped_total_.fetch_add(dropped, std::memory_order_relaxed);
  filtered_total_.fetch_add(filtered, std::memory_order_relaxed);
  {
    std::scoped_lock lk(s.out_mu);
    s.ended = true;
  }
  if (log_) {
    log_("capture " + std::to_string(s.id) + " on " + s.object_id + " ended (" + s.end_reason + "): " +
         std::to_string(frames) + " frames captured, " + std::to_string(dropped) +
         " dropped (capture ring full), " + std::to_string(filtered) + " not matching the filter");
  }
}

void CaptureManager::run() noexcept {
  pthread_setname_np(pthread_self(), "vpcd-capture");
  std::unique_lock lk(mu_);
  while (!stop_) {
    if (sessions_.empty() && retired_.empty()) {
      cv_.wait(lk);
      continue;
    }
    const auto now = std::chrono::steady_clock::now();
    std::vector<std::shared_ptr<Session>> live;
    for (auto s : std::vector<std::shared_ptr<Session>>(sessions_)) {
      if (s->stop_requested.load(std::memory_order_relaxed))
        end_locked(s, "stopped by the client");
      else if (now >= s->deadline)
        end_locked(s, "duration reached");
      else if (s->frames.load(std::memory_order_relaxed) >= s->spec.max_frames)
        end_locked(s, "count reached");
      else if (s->port.expired())
        end_locked(s, "port removed");
      else
        live.push_back(std::move(s));
    }
    lk.unlock();
    for (auto& s : live) drain(*s, false);
    lk.lock();

    std::vector<std::unique_ptr<Retired>> ready;
    bool waiting = false;
    uint64_t want = 0;
    const uint64_t acked = q_.min_acked();
    for (auto it = retired_.begin(); it != retired_.end();) {
      if (acked >= (*it)->gen) {
        ready.push_back(std::move(*it));
        it = retired_.erase(it);
      } else {
        waiting = true;
        want = std::max(want, (*it)->gen);
        ++it;
      }
    }
    lk.unlock();
    for (auto& r : ready)
      if (r->session) finish(*r->session);
    // A generation >= want must be published before the workers can ack it; ask for one unless it exists already.
    if (waiting && q_.next_generation() <= want) q_.poke();
    lk.lock();
    for (auto& r : ready)
      if (r->session) --active_;
    ready.clear();
    cv_.wait_for(lk, kDrainInterval);
  }
}

CaptureStats CaptureManager::stats() const {
  CaptureStats st;
  std::scoped_lock lk(mu_);
  st.active = active_;
  st.started = started_;
  st.frames_captured = captured_total_.load(std::memory_order_relaxed);
  st.frames_dropped = dropped_total_.load(std::memory_order_relaxed);
  st.frames_filtered = filtered_total_.load(std::memory_order_relaxed);
  auto add = [&](const Session& s) {
    CaptureInfo i;
    i.id = s.id;
    i.object_id = s.object_id;
    i.filter = s.spec.filter;
    i.frames = s.frames.load(std::memory_order_relaxed);
    i.dropped = s.dropped();
    st.frames_captured += i.frames;
    st.frames_dropped += i.dropped;
    st.frames_filtered += s.filtered.load(std::memory_order_relaxed);
    st.sessions.push_back(std::move(i));
  };
  for (const auto& s : sessions_) add(*s);
  for (const auto& r : retired_)
    if (r->session) add(*r->session);
  return st;
}

}  // namespace vpcd::dp
