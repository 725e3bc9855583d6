// ArpCache: one worker's IPv4 -> MAC resolutions of underlay next hops (the uplink's gateway or on-link VTEPs), with
// aging, retries and a bounded queue of frames that wait for a resolution.
//
// States of an entry (after Linux's neighbour machine, reduced):
//   kIncomplete  a request was sent; frames to it are queued (at most queue_per_entry per entry and queue_total in
//                all), the request is repeated every retry_ms up to max_probes times, then the entry turns kFailed and
//                its queued frames are handed back as failed (the caller drops and counts them);
//   kReachable   confirmed within reachable_ms: used as is;
//   kStale       older than reachable_ms: still used, and a refresh request goes out (at most every retry_ms); when
//                max_probes refreshes go unanswered the entry is removed (the next frame starts over);
//   kFailed      kept failed_hold_ms so a dead next hop does not cost a broadcast per frame; frames to it are refused.
// Any ARP request or reply from an IP refreshes an entry that exists (RFC 826: merge); only replies, and requests
// targeting our address, create one (learn(create=true)).
// The cache never sends anything itself: resolve() and tick() tell the caller which requests to send and which queued
// frames to release (resolved: send them now) or drop (failed). Queued frames are opaque 32-bit tokens (the index of
// the per-worker PacketPool buffer holding a copy of the frame).
//
// Threading: owned by one worker (a member of its WorkerContext), no synchronisation. Counters are single-writer
// atomics so the REST thread may read them relaxed.
#pragma once

#include <atomic>
#include <cstdint>
#include <unordered_map>
#include <utility>
#include <vector>

#include "datapath/proto/types.h"

namespace vpcd::dp {

struct ArpCacheCounters {
  std::atomic<uint64_t> hits{0};           // resolve() answered from a live entry
  std::atomic<uint64_t> misses{0};         // resolve() found nothing usable (a request goes out)
  std::atomic<uint64_t> requests{0};       // requests the caller was told to send (first ones, retries, refreshes)
  std::atomic<uint64_t> learned{0};        // entries created or updated by an ARP frame
  std::atomic<uint64_t> queued{0};         // frames queued while resolving
  std::atomic<uint64_t> queue_full{0};     // frames refused because the queue bound was reached
  std::atomic<uint64_t> released{0};       // queued frames released on resolution
  std::atomic<uint64_t> failed{0};         // resolutions that gave up (max_probes unanswered)
  std::atomic<uint64_t> failed_frames{0};  // frames dropped because their next hop failed
  std::atomic<uint64_t> table_full{0};     // new entries refused at max_entries
};

class ArpCache {
 public:
  struct Options {
    uint32_t reachable_ms = 30000;
    uint32_t retry_ms = 1000;
    uint8_t max_probes = 3;
    uint32_t failed_hold_ms = 3000;
    uint32_t max_entries = 1024;
    uint32_t queue_per_entry = 64;
    uint32_t queue_total = 256;
  };
  enum class State : uint8_t { kIncomplete, kReachable, kStale, kFailed };
  enum class Result : uint8_t {
    kHit,        // mac filled: send now
    kQueued,     // token kept until the next hop resolves or fails
    kQueueFull,  // token not kept (the caller drops and counts the frame)
    kFailed,     // next hop known not to answer: token not kept
  };

  ArpCache() : ArpCache(Options{}) {}
  explicit ArpCache(const Options& o) : opt_(o) {}
  ArpCache(const ArpCache&) = delete;
  ArpCache& operator=(const ArpCache&) = delete;

  // The MAC for ip at now_ms, or queues token. *send_request is set true when the caller must send an ARP request
  // for ip now (a new resolution, or a stale entry due for refresh); otherwise left unchanged.
  Result resolve(Ipv4Addr ip, uint64_t now_ms, uint32_t token, MacAddr* mac, bool* send_request);
  // Like resolve() for a caller that cannot queue (no buffer): kHit or not, with the same request bookkeeping.
  bool lookup(Ipv4Addr ip, uint64_t now_ms, MacAddr* mac, bool* send_request);

  // An ARP frame showed ip at mac. create=false only refreshes an existing entry. Tokens that waited for ip are
  // appended to *released (send them now with mac).
  void learn(Ipv4Addr ip, const MacAddr& mac, uint64_t now_ms, bool create, std::vector<uint32_t>* released);

  // Retries and aging. Appends the IPs to send a request for to *requests and the tokens of failed resolutions to
  // *failed (the caller frees and counts them). Call about every 10 ms.
  void tick(uint64_t now_ms, std::vector<Ipv4Addr>* requests, std::vector<uint32_t>* failed);

  // The entries that want a confirmation (incomplete, stale or failed), each with the time it was last confirmed (0:
  // never), appended to *out: a worker looks them up in the resolutions other workers learned (underlay_neighbors.h)
  // and learn()s the newer ones.
  void unconfirmed(std::vector<std::pair<Ipv4Addr, uint64_t>>* out) const;

  // Drops every entry and returns every queued token in *dropped (snapshot changed the uplink, or shutdown).
  void clear(std::vector<uint32_t>* dropped);

  size_t size() const noexcept { return entries_.size(); }
  size_t queued_total() const noexcept { return queued_total_; }
  // The entry's state, for tests and stats; false when absent.
  bool state(Ipv4Addr ip, State* s, MacAddr* mac = nullptr) const;
  const ArpCacheCounters& counters() const noexcept { return counters_; }
  const Options& options() const noexcept { return opt_; }

 private:
  struct Entry {
    State state = State::kIncomplete;
    MacAddr mac;
    uint64_t confirmed_ms = 0;     // last time an ARP frame confirmed it
    uint64_t last_request_ms = 0;  // last request we asked the caller to send
    uint64_t failed_ms = 0;
    uint8_t probes = 0;            // requests sent for the current resolution or refresh
    std::vector<uint32_t> queue;   // tokens waiting (kIncomplete only)
  };
  static void inc(std::atomic<uint64_t>& c, uint64_t n = 1) noexcept {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void fail(Entry& e, uint64_t now_ms, std::vector<uint32_t>* failed);

  Options opt_;
  std::unordered_map<uint32_t, Entry> entries_;  // key: Ipv4Addr::v
  size_t queued_total_ = 0;
  ArpCacheCounters counters_;
};

}  // namespace vpcd::dp
