// AfPacketPort: a PortIo over AF_PACKET packet_mmap rings, for every interface the datapath drives from the kernel
// side (veth host ends, taps, uplinks).
//
// RX: one socket per queue, each with a TPACKET_V3 ring (rx_blocks blocks of rx_block_bytes, 1 ms block retire
// timeout), PACKET_VNET_HDR (GSO super-frames and partial checksums arrive with their virtio_net_hdr),
// PACKET_IGNORE_OUTGOING, bound to the ifindex; with several queues all join one PACKET_FANOUT_HASH group whose id the
// kernel picks (PACKET_FANOUT_FLAG_UNIQUEID). rx_burst walks blocks with a cursor, so a batch may end in the middle of
// a block; rx_release hands back only blocks whose every frame has been returned (VPP af_packet's rx pending state).
//
// TX: one socket per worker with a frame ring (TPACKET_V3 header layout; the kernel's transmit path is the same for
// V2 and V3, see af_packet_port.cc), PACKET_VNET_HDR and PACKET_QDISC_BYPASS; every frame slot holds a 64 KiB GSO
// super-frame plus its virtio_net_hdr. tx_enqueue copies into the next free slot, tx_flush issues one
// sendto(MSG_DONTWAIT) (and remembers to call again when the kernel stopped early on a full send buffer).
//
// Ring status words are shared with the kernel: read with acquire, written with release (std::atomic_ref).
//
// Details the callers see: the receive path strips an 802.1Q tag into metadata before packet sockets get the frame;
// rx_burst writes it back in place (the frame is then 4 bytes longer, csum_start adjusted). tx_enqueue refuses frames
// larger than kAfPacketMaxTxFrame and frames the RX ring truncated (len < wire_len). The kernel drops a frame when
// every RX block is retired and not yet released (1 ms timeout each: a reader stalled for rx_blocks ms loses frames;
// see rx_kernel_drops). Memory: rx_blocks * rx_block_bytes per queue (16 MiB by default) plus about 9 MiB of TX ring
// per worker at tx_frames = 128, all pinned kernel pages.
//
// Threading: as PortIo (port.h): queue q's rx_* only from its owning worker, worker w's tx_* only from worker w;
// open/destroy from the control thread. tx_errors() may be read from any thread (relaxed atomic); rx_kernel_drops(q)
// only from queue q's owner.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "datapath/io/port.h"
#include "datapath/io/unique_fd.h"

namespace vpcd::dp {

struct AfPacketOptions {
  unsigned rx_queues = 1;
  unsigned tx_workers = 1;
  uint32_t rx_block_bytes = 1u << 22;  // a multiple of the page size, holds a 64 KiB frame
  uint32_t rx_blocks = 4;
  uint32_t tx_frames = 128;  // per worker
};

// Largest frame (Ethernet header included, vnet header excluded) a TX slot accepts.
inline constexpr uint32_t kAfPacketMaxTxFrame = 65536 + 64;

class AfPacketPort final : public PortIo {
 public:
  static std::unique_ptr<AfPacketPort> open(const std::string& ifname, const AfPacketOptions& o, std::string* error);
  ~AfPacketPort() override;
  AfPacketPort(const AfPacketPort&) = delete;
  AfPacketPort& operator=(const AfPacketPort&) = delete;

  const std::string& ifname() const override { return ifname_; }
  unsigned rx_queues() const override { return unsigned(rx_.size()); }
  int rx_fd(unsigned q) const override;
  unsigned rx_burst(unsigned q, Packet* pkts, unsigned max) noexcept override;
  void rx_release(unsigned q) noexcept override;
  bool tx_enqueue(unsigned w, const Packet& p) noexcept override;
  void tx_flush(unsigned w) noexcept override;

  unsigned tx_workers() const { return unsigned(tx_.size()); }
  int ifindex() const { return ifindex_; }
  // Frames the kernel dropped on queue q because its ring was full (PACKET_STATISTICS tp_drops, accumulated here since
  // reading resets the kernel's counter).
  uint64_t rx_kernel_drops(unsigned q) noexcept;
  uint64_t rx_ring_drops(unsigned q) noexcept override;  // rx_kernel_drops' growth since the last call
  // Failed sendto calls on worker w's ring (the kernel skips frames it rejects: PACKET_LOSS).
  uint64_t tx_errors(unsigned w) const noexcept;

 private:
  struct Ring {
    uint8_t* base = nullptr;
    size_t bytes = 0;
  };
  struct RxQueue {
    UniqueFd fd;
    Ring ring;
    uint32_t block_bytes = 0;
    uint32_t blocks = 0;
    // Reader cursor (owned by the queue's worker).
    uint32_t head = 0;        // oldest block not yet given back to the kernel
    uint32_t done = 0;        // blocks from head on that were fully returned by rx_burst, awaiting rx_release
    bool in_block = false;    // the block at (head + done) is being walked
    uint32_t pkts_left = 0;   // frames not yet returned in that block
    uint32_t next_offset = 0; // offset of the next frame in that block
    uint64_t kernel_drops = 0;
    uint64_t kernel_drops_reported = 0;  // part of kernel_drops already returned by rx_ring_drops
  };
  struct TxQueue {
    UniqueFd fd;
    Ring ring;
    uint32_t frame_bytes = 0;
    uint32_t frames_per_block = 0;
    uint32_t frames = 0;
    uint32_t next = 0;     // next slot to fill
    uint32_t pending = 0;  // slots marked SEND_REQUEST since the last flush
    std::atomic<uint64_t> errors{0};
  };

  AfPacketPort() = default;
  bool open_rx(RxQueue& q, const AfPacketOptions& o, int fanout_id, int* fanout_out, std::string* err);
  bool open_tx(TxQueue& t, const AfPacketOptions& o, std::string* err);
  static uint8_t* tx_slot(const TxQueue& t, uint32_t i) noexcept;

  std::string ifname_;
  int ifindex_ = 0;
  std::vector<std::unique_ptr<RxQueue>> rx_;
  std::vector<std::unique_ptr<TxQueue>> tx_;
};

}  // namespace vpcd::dp
