// TapGuest: plays a guest's hypervisor on one queue of a vpcd tap device, for integration tests. It opens the queue as
// QEMU would (tap_open_queue: IFF_VNET_HDR with a 12-byte virtio_net_hdr_mrg_rxbuf in front of every frame), and acts
// as a minimal IPv4 host with one MAC and one address: it answers ARP requests for its address and ICMP echo requests
// to it, resolves other addresses with ARP and pings them. Every frame sent and received is counted, so tests can
// compare exact counts with the datapath's counters.
//
// Threading: one thread at a time per object (a test's main thread); counters() may be read by the same thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "datapath/proto/types.h"

namespace vpcd::dp::test {

class TapGuest {
 public:
  static constexpr size_t kVnetHdrBytes = 12;

  struct Counters {
    uint64_t tx_frames = 0;
    uint64_t rx_frames = 0;
    uint64_t arp_requests_answered = 0;
    uint64_t arp_replies_received = 0;
    uint64_t echo_requests_answered = 0;
    uint64_t echo_replies_received = 0;
    uint64_t other_frames = 0;  // received frames not for us or not understood
  };

  TapGuest(const std::string& tap_ifname, MacAddr mac, Ipv4Addr ip);
  ~TapGuest();
  TapGuest(const TapGuest&) = delete;
  TapGuest& operator=(const TapGuest&) = delete;

  bool ok() const { return fd_ >= 0; }
  const std::string& error() const { return error_; }

  // Writes vnet header (all zero: no offloads) + frame. false on a short write.
  bool send(std::span<const uint8_t> frame);
  // The next frame (without the vnet header) within timeout.
  std::optional<std::vector<uint8_t>> recv(std::chrono::milliseconds timeout);

  // Sends one ARP request for target and waits for the reply; answers other traffic meanwhile.
  std::optional<MacAddr> arp_resolve(Ipv4Addr target, std::chrono::milliseconds timeout);
  // Sends `count` echo requests (one at a time, each waiting up to per_reply) and returns how many got their reply.
  unsigned ping(MacAddr dst_mac, Ipv4Addr dst, unsigned count, std::chrono::milliseconds per_reply);
  // Answers ARP and echo requests until done() returns true or timeout passes. true when done() became true.
  bool serve_until(const std::function<bool()>& done, std::chrono::milliseconds timeout);
  const Counters& counters() const { return counters_; }
  // The guest changes its own MAC and address (as a VM does after the portal changed its NIC); the fd stays.
  void readdress(MacAddr mac, Ipv4Addr ip) {
    mac_ = mac;
    ip_ = ip;
  }
  int fd() const { return fd_; }
  MacAddr mac() const { return mac_; }
  Ipv4Addr ip() const { return ip_; }

 private:
  enum class Seen { kNothing, kArpReply, kEchoReply };
  // Handles one received frame: answers requests for us; reports replies.
  Seen handle(std::vector<uint8_t>& frame, Ipv4Addr* arp_from, MacAddr* arp_mac, uint16_t* echo_id,
              uint16_t* echo_seq);

  int fd_ = -1;
  std::string error_;
  MacAddr mac_;
  Ipv4Addr ip_;
  uint16_t echo_id_ = 0x7a9;
  Counters counters_;
};

}  // namespace vpcd::dp::test
