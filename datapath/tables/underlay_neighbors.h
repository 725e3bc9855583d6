// UnderlayNeighbors: the underlay ARP resolutions the workers of one box share.
//
// Each worker resolves underlay next hops in its own ArpCache (arp_cache.h: the fast path reads it without any
// synchronisation), and each worker that sends towards a next hop asks for it. But an ARP reply reaches only the
// worker that owns the uplink RX queue it arrives on, so with several workers the others would never see the answer
// to their own request: their frames would wait, then fail as underlay_arp_failed. So the worker that receives an ARP
// frame addressed to us (a reply, or a request for our address) records the sender here, and every worker adopts from
// here, about every 10 ms (overlay_tick, uplink_input.h), the resolutions its own cache still waits for or refreshes.
//
// Held by the snapshots' overlay config (OverlayConfig::neighbors); the snapshot builder keeps one table while the
// underlay (uplink port and address) stays the same and starts a new one when it changes.
//
// Threading: any worker; a mutex inside, taken only on ARP frames addressed to us and on the ticks of a worker whose
// cache waits for something or after version() moved. Bounded: kCapacity entries, the oldest replaced when full.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>

#include "datapath/proto/types.h"

namespace vpcd::dp {

class UnderlayNeighbors {
 public:
  static constexpr size_t kCapacity = 1024;

  // ip is at mac, confirmed by an ARP frame at now_ms (ignored: multicast or zero MAC, IP 0).
  void learn(Ipv4Addr ip, const MacAddr& mac, uint64_t now_ms) noexcept;
  // The last resolution of ip and when it was confirmed; false when none.
  bool lookup(Ipv4Addr ip, MacAddr* mac, uint64_t* confirmed_ms) const noexcept;
  // Grows with every learn(): a worker whose cache waits for nothing looks again only after it moved.
  uint64_t version() const noexcept { return version_.load(std::memory_order_acquire); }

 private:
  struct Entry {
    uint32_t ip = 0;  // 0: free
    MacAddr mac;
    uint64_t confirmed_ms = 0;
  };
  mutable std::mutex mu_;
  std::array<Entry, kCapacity> entries_{};
  std::atomic<uint64_t> version_{0};
};

}  // namespace vpcd::dp
