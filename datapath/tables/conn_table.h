// ConnTable: the connection-tracking table shared by every worker, split into independently locked shards.
//
// Who owns a connection (issue 9): the two directions of a flow arrive on two NICs, usually served by two workers.
// We chose SHARDED TABLES over per-worker ownership with handoff, because:
//   - a frame cannot move to another worker without a copy: it lives in the receiving worker's TPACKET_V3 RX block
//     (returned to the kernel after the batch) and may be a 64 KiB GSO super-frame; a handoff would copy every frame
//     of a flow whose other direction is owned elsewhere (half of all frames with two workers) and add a queue hop to
//     the latency, on a datapath whose TCP throughput is already bounded by one copy per frame (docs/STATUS.md);
//   - VPP can hand off because its buffers are global and handoff passes an index; ours are not.
// The cost of sharding is one uncontended spinlock per packet (an atomic exchange on a line the shard owns). Shards are
// picked by the symmetric flow hash, there are many more shards than workers, and a lock is held only for the hash
// probe and the state update (no allocation, no system call), so two workers meet on a lock only when they touch the
// same shard at the same instant. There is no global lock: the only shared write per NEW flow is the global and per-VPC
// entry counters (one relaxed atomic add each); established packets touch only their shard.
// bench/bm_conntrack.cc measures lookups per core, new flows per core and two threads on the same flows.
//
// Keys: (VPC slot, VPC gen, protocol, kind, address and port of side A, of side B), normalised so that A <= B; the
// entry remembers which side opened it. So both directions find the same entry with ONE lookup, and a VPC slot reused
// by another tenant (new gen) never matches an old entry. kind separates flows from IPv4 fragment records.
//
// Memory: a Conn is 64 bytes (static_assert), plus 8 bytes of wheel links and 16 bytes of index per entry (8-byte
// index slots, load <= 1/2): 88 bytes per connection. Entry storage is allocated up front and touched on first use.
//
// Expiry: every shard keeps a timing wheel of kWheelSlots one-second slots (doubly linked lists through the entries).
// A packet only stores `last_seen` (and the timeout class when the state changes); the wheel slot an entry sits in is
// its deadline when it was (re)scheduled. expire() (called from the workers' ticks with a budget) walks only the slots
// whose second has passed: an entry whose real deadline (last_seen + timeout of its class) has passed is removed, any
// other is moved to the slot of its real deadline. Nothing scans the table. Deadlines beyond the wheel's horizon are
// parked at the horizon and rescheduled when reached.
//
// Limits: a global limit and a per-VPC limit. A new flow over either is refused (insert() says why; the caller drops
// the packet and counts table_full); existing entries are unaffected. A shard that is full (possible only when the
// hash distributes far from evenly) refuses the same way.
//
// Threading: every public method may be called from any worker at any time. A Locked handle holds its shard's lock
// until it is destroyed: keep it for one packet only. expire() takes each shard's lock in turn. Lock order: one shard
// lock at a time, never two. The counters are relaxed atomics (readers may see them a little stale).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "datapath/proto/types.h"

namespace vpcd::dp {

// Timeout classes: each entry sits in one; ConnTableOptions::timeout_s gives the idle timeout of each.
enum class TimeoutClass : uint8_t {
  kTcpSyn,          // SYN seen, handshake not complete
  kTcpEstablished,
  kTcpClosing,      // a FIN seen
  kTcpTimeWait,     // both FINs acknowledged
  kTcpClosed,       // reset
  kUdp,             // one direction seen
  kUdpReplied,      // both directions seen
  kIcmp,            // echo request / reply
  kFragment,        // an IPv4 fragment record (first-fragment tracking)
  kCount
};
inline constexpr std::array<std::string_view, size_t(TimeoutClass::kCount)> kTimeoutClassNames = {
    "tcp-syn", "tcp-established", "tcp-closing", "tcp-time-wait", "tcp-closed",
    "udp",     "udp-stream",      "icmp",        "fragment"};

struct ConnTableOptions {
  uint32_t max_conns = 262144;     // global limit (entries, fragment records included)
  uint32_t max_conns_per_vpc = 65536;
  uint32_t max_vpcs = 4096;        // VPC slots with a per-VPC counter; entries of higher slots count globally only
  unsigned shards = 64;            // rounded up to a power of two
  bool loose_pickup = true;        // TCP: accept a mid-stream connection (no SYN seen) after a restart
  // Idle timeouts in seconds, by TimeoutClass.
  std::array<uint32_t, size_t(TimeoutClass::kCount)> timeout_s = {30, 86400, 60, 30, 10, 30, 120, 30, 5};
};

// A normalised connection key (see the header comment). 20 bytes, no padding.
struct ConnKey {
  uint32_t vpc_gen = 0;
  uint16_t vpc = 0;
  uint8_t proto = 0;
  uint8_t kind = 0;  // kKindFlow or kKindFragment
  uint32_t ip_a = 0, ip_b = 0;
  uint16_t port_a = 0, port_b = 0;

  static constexpr uint8_t kKindFlow = 0;
  static constexpr uint8_t kKindFragment = 1;
  friend bool operator==(const ConnKey&, const ConnKey&) = default;
};
static_assert(sizeof(ConnKey) == 20);

// A flow as one packet sees it (source -> destination), before normalisation.
struct FlowTuple {
  uint16_t vpc = 0;
  uint32_t vpc_gen = 0;
  uint8_t proto = 0;
  uint8_t kind = ConnKey::kKindFlow;
  Ipv4Addr src, dst;
  uint16_t sport = 0, dport = 0;

  FlowTuple reversed() const noexcept {
    FlowTuple r = *this;
    r.src = dst;
    r.dst = src;
    r.sport = dport;
    r.dport = sport;
    return r;
  }
};

// The key of a tuple, and whether the tuple's source is side A of the key.
struct NormalizedKey {
  ConnKey key;
  bool src_is_a = true;
};
NormalizedKey normalize(const FlowTuple& t) noexcept;

// Symmetric by construction (a hash of the normalised key). Never 0.
uint32_t conn_hash(const ConnKey& k) noexcept;

// The tracking state of one TCP direction (RFC 9293 sequence space, after Rooij's window tracking). Its window scale
// and flags are in Conn::wscale / Conn::pflags (kept apart so that a Conn packs into 64 bytes).
struct TcpPeer {
  uint32_t end = 0;     // highest sequence number this side has sent + 1 (SYN and FIN count one)
  uint32_t maxend = 0;  // highest sequence number this side may send: the other side's highest ack + window
  uint32_t maxwin = 0;  // largest window this side has advertised (scaled), at least 1 once seen
};

enum TcpPeerFlags : uint8_t {
  kPeerSeen = 1 << 0,      // this side has sent a segment
  kPeerSyn = 1 << 1,       // this side sent a SYN
  kPeerWscale = 1 << 2,    // its SYN carried a window-scale option
  kPeerFin = 1 << 3,       // this side sent a FIN
  kPeerFinAcked = 1 << 4,  // the other side acknowledged that FIN
  kPeerLiberal = 1 << 5,   // picked up mid-stream: scale unknown, windows assumed scaled by 14
};

// One tracked connection: one cache line. Written only under its shard's lock. The timing-wheel links live in a
// parallel array of the shard (only expiry touches them).
struct Conn {
  ConnKey key;                // 20
  uint32_t last_seen = 0;     // monotonic second of the last packet
  uint32_t rules_gen = 0;     // security-policy generation the verdict was computed for (see conntrack.h)
  uint16_t orig_in_port = 0xffff;   // datapath port the opening packet came from (local sender NIC), or 0xffff
  uint16_t orig_out_port = 0xffff;  // datapath port the opening packet went to (local receiver NIC), or 0xffff
  uint8_t state = 0;          // protocol state (conntrack.h ConnState)
  uint8_t tclass = 0;         // TimeoutClass
  uint8_t flags = 0;          // ConnFlags (conntrack.h)
  uint8_t orig_is_a = 1;      // the opening packet's source is side A of the key
  TcpPeer peer[2];            // [0] = side that opened (original direction), [1] = the other
  uint8_t wscale[2] = {0, 0};  // window scale each side announced in its SYN (0..14)
  uint8_t pflags[2] = {0, 0};  // TcpPeerFlags of each side
};
static_assert(sizeof(Conn) == 64, "keep a connection within one cache line");

enum class InsertResult : uint8_t { kOk, kGlobalFull, kVpcFull, kShardFull };

class ConnTable {
  struct Shard;

 public:
  static constexpr uint32_t kWheelSlots = 4096;  // one second each: a horizon of 68 minutes
  static constexpr uint32_t kNil = 0xffffffff;

  explicit ConnTable(const ConnTableOptions& opts);
  ~ConnTable();
  ConnTable(const ConnTable&) = delete;
  ConnTable& operator=(const ConnTable&) = delete;

  // A shard held locked for one key: find or create its entry. Movable, not copyable.
  class Locked {
   public:
    Locked(Locked&& o) noexcept : t_(o.t_), s_(o.s_), key_(o.key_), hash_(o.hash_), conn_(o.conn_) { o.s_ = nullptr; }
    Locked& operator=(Locked&&) = delete;
    ~Locked();
    Conn* conn() const noexcept { return conn_; }  // the entry for the key, or nullptr
    // Creates the entry (conn() must be null): zeroed state, key/hash/last_seen set, timeout class tclass.
    InsertResult insert(uint32_t now_s, TimeoutClass tclass) noexcept;
    // Removes the entry now (conn() must be set); conn() becomes null.
    void erase() noexcept;
    // Call after changing conn()->tclass to a class with a shorter timeout, so the wheel sees the earlier deadline.
    void reschedule() noexcept;
    // Unlocks the shard early; conn() becomes null and nothing else may be called but the destructor.
    void release() noexcept;

   private:
    friend class ConnTable;
    Locked(ConnTable* t, Shard* s, const ConnKey& k, uint32_t h, Conn* c) noexcept
        : t_(t), s_(s), key_(k), hash_(h), conn_(c) {}
    ConnTable* t_;
    Shard* s_;
    ConnKey key_;
    uint32_t hash_;
    Conn* conn_;
  };

  // Locks the key's shard and looks the key up.
  Locked lookup(const ConnKey& key) noexcept { return lookup(key, conn_hash(key)); }
  Locked lookup(const ConnKey& key, uint32_t hash) noexcept;

  // Expires entries of shards first, first + step, ... whose deadline passed by now_s, visiting at most budget
  // entries in all; returns how many were removed. Workers call it from their tick with (worker, n_workers).
  size_t expire(uint32_t now_s, size_t budget, unsigned first = 0, unsigned step = 1) noexcept;

  uint32_t timeout_s(TimeoutClass c) const noexcept { return opts_.timeout_s[size_t(c)]; }
  const ConnTableOptions& options() const noexcept { return opts_; }
  size_t size() const noexcept { return size_t(count_.load(std::memory_order_relaxed)); }
  size_t vpc_size(uint16_t vpc, uint32_t gen) const noexcept;
  size_t capacity_per_shard() const noexcept { return shard_cap_; }
  unsigned shard_count() const noexcept { return unsigned(shards_.size()); }
  // Bytes per connection of storage (entry + index slots), for the benchmark's report.
  static constexpr size_t kBytesPerConn = sizeof(Conn) + 8 + 2 * 8;  // entry, wheel links, index slots

 private:
  friend class Locked;
  Shard& shard_of(uint32_t hash) noexcept { return *shards_[hash >> shard_shift_]; }
  bool take_vpc_slot(const ConnKey& k) noexcept;
  void release_vpc_slot(const ConnKey& k) noexcept;

  ConnTableOptions opts_;
  size_t shard_cap_ = 0;
  unsigned shard_shift_ = 32;
  std::vector<std::unique_ptr<Shard>> shards_;
  alignas(64) std::atomic<int64_t> count_{0};                   // entries in all shards; any worker adds/subtracts
  std::unique_ptr<std::atomic<uint64_t>[]> vpc_counts_;         // [vpc slot]: gen << 32 | count; CAS by any worker
};

}  // namespace vpcd::dp
