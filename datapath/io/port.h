// The contract between the workers and whatever moves frames in and out of the process.
//
// A PortIo is one interface the datapath drives (a tap's kernel side, a veth near end, later an uplink or a vhost-user
// device). It has rx_queues() receive queues (AF_PACKET: one socket per queue, joined in a PACKET_FANOUT group when
// there is more than one) and one transmit ring per worker, so no two threads ever touch the same ring.
//
// Threading: rx_* for queue q are called only by the worker that owns (port, q); tx_* for worker w only by worker w.
// The control thread creates and destroys ports; a port is destroyed only after every worker has acknowledged a
// snapshot that no longer contains it.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "datapath/pipeline/packet.h"
#include "datapath/stats.h"

namespace vpcd::dp {

class PortIo {
 public:
  virtual ~PortIo() = default;

  virtual const std::string& ifname() const = 0;
  virtual unsigned rx_queues() const = 0;
  // A file descriptor that becomes readable (EPOLLIN) when queue q has frames; -1 if the port cannot be polled.
  virtual int rx_fd(unsigned q) const = 0;

  // Fills up to `max` packets from queue q: data/len/wire_len/vnet/flags(kHasVnet) are set, everything else is left
  // for the pipeline (in_port is set by the caller). The bytes stay valid until rx_release(q). A frame the ring
  // truncated is still returned, with len < wire_len (the parser drops it as kTruncated).
  virtual unsigned rx_burst(unsigned q, Packet* pkts, unsigned max) noexcept = 0;
  // Gives back to the kernel every ring block whose packets have all been returned by rx_burst. Call after the batch
  // that used them has been transmitted or dropped.
  virtual void rx_release(unsigned q) noexcept = 0;

  // Frames lost before they reached queue q since the last call (an AF_PACKET RX ring the kernel found full).
  // Called only by the queue's worker, about every 100 ms. A port without a kernel ring loses nothing there.
  virtual uint64_t rx_ring_drops(unsigned /*q*/) noexcept { return 0; }

  // Copies p (vnet header, then p.prefix_len bytes at p.prefix when set, then the frame) into worker w's transmit
  // ring. false: ring full or frame too large (the caller counts the drop).
  virtual bool tx_enqueue(unsigned w, const Packet& p) noexcept = 0;
  // Writing a frame straight into worker w's transmit ring (no copy from a buffer of the caller's): the frame area of
  // the next free slot if it has room for max_len bytes (after the vnet header), else nullptr (ring full, frame too
  // large, or a port without such a ring: the caller builds the frame elsewhere and uses tx_enqueue). A max_len
  // beyond the port's ordinary slots gets a slot of its big-frame ring if it has one (AfPacketPort's big TX ring on
  // uplinks: USO frames up to kAfPacketMaxTxFrame, sent without a copy into the kernel). At most one slot is acquired
  // at a time; tx_slot_commit hands it on (a big one is sent at once, after the frames enqueued before it), and the
  // next tx_enqueue or acquire reuses an uncommitted one.
  virtual uint8_t* tx_slot_acquire(unsigned /*w*/, uint32_t /*max_len*/) noexcept { return nullptr; }
  // Queues the acquired slot with `len` frame bytes written and vnet header `vnet` (as tx_enqueue would).
  virtual void tx_slot_commit(unsigned /*w*/, const virtio_net_hdr& /*vnet*/, uint32_t /*len*/) noexcept {}
  // Hands everything enqueued by worker w to the kernel (one sendto).
  virtual void tx_flush(unsigned w) noexcept = 0;
  // True while frames worker w enqueued are still waiting because the kernel did not take them all at the last
  // tx_flush (send buffer or the peer's backlog full, link down): the worker calls tx_flush again on its next loop
  // turns, and tx_discard_pending once it gives up. Called only by worker w.
  virtual bool tx_pending(unsigned /*w*/) const noexcept { return false; }
  // Gives up the frames tx_pending(w) reported (their ring slots become free for new frames) and returns how many.
  virtual uint64_t tx_discard_pending(unsigned /*w*/) noexcept { return 0; }
  // Why worker w's last tx_enqueue returned false (the caller counts that reason). Called only by worker w.
  virtual DropReason tx_drop_reason(unsigned /*w*/) const noexcept { return DropReason::kTxRingFull; }

  // Drops the port counted itself, before frames reached the pipeline (a vhost-user guest's malformed descriptors),
  // added by reason into `drops`. Any thread (relaxed reads of single-writer counters).
  virtual void add_io_drops(std::array<uint64_t, size_t(DropReason::kCount)>& /*drops*/) const noexcept {}
  // Frames the kernel forwarded for this port without the pipeline (the kernel fast path, kernel_fastpath.h), added
  // into `out`'s rx/tx counters. Any thread.
  virtual void add_offloaded(PortCounters& /*out*/) const noexcept {}
};

}  // namespace vpcd::dp
