// ARP on the underlay uplink: vpcd owns the uplink's address (the kernel never sees the interface's frames, see
// datapath/io/uplink_os.h), so it answers ARP requests for it and learns the underlay next hops it resolves into the
// worker's ArpCache. Used by the "uplink-input" stage (received ARP) and "vxlan-encap" (requests it must send).
//
//   - a request for our address: answered in place (the frame becomes the reply, sent back out of the uplink), and its
//     sender learned (RFC 826: the asker is about to talk to us);
//   - a reply to us: learned; queued frames waiting for that address are released (the caller sends them);
//   - anything else (gratuitous ARP, requests for other addresses): refreshes an entry we already have, then not for us.
// The sender of a frame addressed to us is also recorded in `shared` (when not null): the box's other workers sent
// requests too, and only this one got the answer (underlay_neighbors.h).
// Threading: runs on the owning worker with its ArpCache; `shared` is safe from any worker.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "datapath/config/overlay_config.h"
#include "datapath/pipeline/packet.h"
#include "datapath/tables/arp_cache.h"
#include "datapath/tables/underlay_neighbors.h"

namespace vpcd::dp {

enum class UplinkArpVerdict : uint8_t {
  kReply,     // p now holds the reply: send it back out of the uplink
  kConsumed,  // a reply to us, learned
  kNotForUs,  // counted as uplink_not_for_us
};

// p: a parsed ARP frame (kIsArp) received on the underlay uplink. Tokens released by what it learned are appended.
UplinkArpVerdict uplink_arp(Packet& p, const UnderlayConfig& u, ArpCache& cache, UnderlayNeighbors* shared,
                            uint64_t now_ms, std::vector<uint32_t>* released) noexcept;

inline constexpr size_t kArpRequestFrameLen = 60;  // 42 bytes of ARP in Ethernet, padded to the minimum frame

// Writes a broadcast ARP request from the uplink (u.mac, u.address.addr) for target into out (>= 60 bytes).
size_t build_underlay_arp_request(const UnderlayConfig& u, Ipv4Addr target, uint8_t* out) noexcept;

}  // namespace vpcd::dp
