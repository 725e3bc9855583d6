// A split virtqueue (virtio 1.x section 2.7) as the device sees it: the descriptor walker that turns a chain the
// driver (guest) wrote into segments of vpcd pointers, and the ring operations (avail entries in, used entries out,
// notification suppression both ways).
//
// Everything the driver controls is validated before use and read exactly once:
//   - avail->idx may run at most `size` entries ahead of what the device consumed (else the ring is broken);
//   - a head index, and every `next`, must be < size (or < the indirect table's entry count);
//   - a chain visits at most `size` descriptors (an indirect table: at most its entry count), which also ends loops;
//   - an indirect descriptor must be the only descriptor of its chain (no NEXT), 16-byte aligned, a non-zero multiple
//     of 16 bytes long, at most kMaxIndirectDescs entries, inside one memory region, and may not nest;
//   - every buffer [addr, addr + len) must lie in guest memory (GuestMemory checks the whole range, overflow-checked);
//     a buffer that continues in the next region becomes several segments;
//   - direction: a chain the device reads (the guest's TX) has no WRITE descriptor, one it writes (RX) only WRITE ones;
//   - at most kMaxChainSegs segments and kMaxChainBytes bytes.
// Each descriptor is loaded once into a local (one atomic load per field), so its length cannot change between the
// check and the copy (DPDK CVE-2020-10722/10723 class).
//
// Threading: Vring's fields are guarded by Vring::mu (annotated). Who takes it is described in device.h: the worker
// that owns the queue (its RX side) or any worker transmitting into it (its TX side) for the length of one call, and
// the vhost-user service thread for every message that touches rings or memory. walk_chain() is a pure function.
#pragma once

#include <cstdint>
#include <string>

#include "datapath/io/unique_fd.h"
#include "datapath/io/vhost_user/memory.h"
#include "datapath/io/vhost_user/protocol.h"
#include "datapath/io/vhost_user/thread_annotations.h"

namespace vpcd::dp::vhost {

inline constexpr unsigned kMaxChainSegs = 64;
inline constexpr unsigned kMaxIndirectDescs = 1024;
inline constexpr uint64_t kMaxChainBytes = 1u << 20;

struct Seg {
  uint8_t* p;
  uint32_t len;
};

struct Chain {
  uint16_t head = 0;
  unsigned nseg = 0;
  uint32_t bytes = 0;
  unsigned ndesc = 0;  // descriptors visited
  Seg seg[kMaxChainSegs];
};

enum class ChainError : uint8_t {
  kOk,
  kHeadOutOfRange,
  kNextOutOfRange,
  kTooLong,          // more descriptors than the table has: a loop or an over-long chain
  kBadAddress,       // a buffer outside guest memory
  kBadIndirect,      // misplaced, misaligned, empty, oversized, unmapped or nested indirect table
  kWrongDirection,   // WRITE descriptor in a device-readable chain, or the reverse
  kTooManySegments,
  kTooManyBytes,
};
const char* chain_error_name(ChainError e) noexcept;

// Walks the chain starting at `head` in the descriptor table `desc` (qsize entries, in vpcd memory). device_writes:
// the chain is an RX buffer. indirect_ok: VIRTIO_F_RING_INDIRECT_DESC was negotiated.
ChainError walk_chain(const GuestMemory& mem, const VringDesc* desc, uint32_t qsize, uint16_t head, bool device_writes,
                      bool indirect_ok, Chain& out) noexcept;

// Scatters `len` bytes from src into the chain's segments starting at byte `off`. false when the chain is shorter.
bool chain_write(const Chain& c, uint32_t off, const void* src, uint32_t len) noexcept;

// Gathers `len` bytes from the chain's segments starting at byte `off` into dst. false when the chain is shorter.
bool chain_read(const Chain& c, uint32_t off, void* dst, uint32_t len) noexcept;

struct Vring {
  Mutex mu;

  // Configuration: written by the service thread (under mu), read by workers (under mu).
  uint32_t size VPCD_GUARDED_BY(mu) = 0;  // 0 = SET_VRING_NUM not received
  VringAddr addr VPCD_GUARDED_BY(mu){};
  bool addr_set VPCD_GUARDED_BY(mu) = false;
  VringDesc* desc VPCD_GUARDED_BY(mu) = nullptr;  // translated; null until addresses and memory are known
  uint8_t* avail VPCD_GUARDED_BY(mu) = nullptr;   // flags, idx, ring[size], used_event
  uint8_t* used VPCD_GUARDED_BY(mu) = nullptr;    // flags, idx, elem[size], avail_event
  bool started VPCD_GUARDED_BY(mu) = false;       // SET_VRING_KICK received (GET_VRING_BASE stops it)
  bool enabled VPCD_GUARDED_BY(mu) = false;       // SET_VRING_ENABLE (or started, without protocol features)
  bool broken VPCD_GUARDED_BY(mu) = false;        // the driver violated the ring protocol: no more processing
  bool event_idx VPCD_GUARDED_BY(mu) = false;     // VIRTIO_F_RING_EVENT_IDX negotiated
  bool indirect VPCD_GUARDED_BY(mu) = false;      // VIRTIO_F_RING_INDIRECT_DESC negotiated
  UniqueFd kick VPCD_GUARDED_BY(mu);              // driver -> device notifications (O_NONBLOCK set)
  UniqueFd call VPCD_GUARDED_BY(mu);              // device -> driver notifications
  bool kick_polled VPCD_GUARDED_BY(mu) = false;   // SET_VRING_KICK with the no-fd bit: poll the ring
  std::string broken_reason VPCD_GUARDED_BY(mu);

  // Ring progress: written by the lock holder.
  uint16_t last_avail VPCD_GUARDED_BY(mu) = 0;  // next avail entry the device consumes
  uint16_t last_used VPCD_GUARDED_BY(mu) = 0;   // next used entry the device writes (may run ahead of used->idx)
  uint16_t signalled_used VPCD_GUARDED_BY(mu) = 0;  // used->idx at the last call (event idx)
  bool signalled_valid VPCD_GUARDED_BY(mu) = false;

  bool ready() const VPCD_REQUIRES(mu) { return desc && started && enabled && !broken; }
  uint16_t mask() const VPCD_REQUIRES(mu) { return uint16_t(size - 1); }

  // Entries the driver made available and the device has not consumed; marks the ring broken (and returns 0) when
  // avail->idx ran more than `size` ahead.
  uint16_t avail_pending() VPCD_REQUIRES(mu);
  // The head index of the i-th pending entry (read once).
  uint16_t avail_head(uint16_t i) VPCD_REQUIRES(mu);
  // Writes a used element at last_used and advances it (not yet visible: publish_used()).
  void put_used(uint16_t id, uint32_t len) VPCD_REQUIRES(mu);
  // used->idx = last_used (release: the elements are visible first). Then calls the driver when it asked for it
  // (EVENT_IDX used_event, or no NO_INTERRUPT flag). Returns true when it wrote the call eventfd.
  bool publish_used_and_call() VPCD_REQUIRES(mu);
  // Kick suppression: ask for a kick on the next avail entry (idle), or for none (busy).
  void enable_kicks() VPCD_REQUIRES(mu);
  void disable_kicks() VPCD_REQUIRES(mu);
  // used->idx as the driver sees it (resume after a back-end restart).
  uint16_t read_used_idx() const VPCD_REQUIRES(mu);
  // Translates the ring areas with `mem` (desc/avail/used null when impossible); *error says why.
  bool translate(const GuestMemory* mem, std::string* error) VPCD_REQUIRES(mu);
  void mark_broken(std::string reason) VPCD_REQUIRES(mu);
  // Back to the state before SET_VRING_NUM (device reset, disconnect). Closes the fds.
  void reset() VPCD_REQUIRES(mu);
};

}  // namespace vpcd::dp::vhost
