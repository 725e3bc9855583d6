// ARP on the underlay uplink; behaviour and threading in uplink_arp.h.
#include "datapath/stages/uplink_arp.h"

#include <cstring>

#include "datapath/proto/arp.h"
#include "datapath/proto/ethernet.h"

namespace vpcd::dp {

UplinkArpVerdict uplink_arp(Packet& p, const UnderlayConfig& u, ArpCache& cache, UnderlayNeighbors* shared,
                            uint64_t now_ms, std::vector<uint32_t>* released) noexcept {
  using namespace proto;
  ArpHdr a;
  std::memcpy(&a, p.data + p.l3_offset, sizeof a);  // parse checked the 28 bytes and the format
  const uint16_t op = a.op.to_host();
  const Ipv4Addr me = u.address.addr;
  const bool to_me = a.target_ip() == me && a.sender_ip() != me;
  try {
    cache.learn(a.sender_ip(), a.sha, now_ms, /*create=*/to_me, released);
  } catch (...) {  // allocation failure in the cache: the frame is still answered below
  }
  if (!to_me) return UplinkArpVerdict::kNotForUs;
  if (shared) shared->learn(a.sender_ip(), a.sha, now_ms);
  if (op != kArpOpRequest) return UplinkArpVerdict::kConsumed;
  // Turn the request into the reply, in place.
  EthHdr eth;
  std::memcpy(&eth, p.data, sizeof eth);
  eth.dst = a.sha;
  eth.src = u.mac;
  std::memcpy(p.data, &eth, sizeof eth);
  ArpHdr r = a;
  r.op = be16::from_host(kArpOpReply);
  r.tha = a.sha;
  r.set_target_ip(a.sender_ip());
  r.sha = u.mac;
  r.set_sender_ip(me);
  std::memcpy(p.data + p.l3_offset, &r, sizeof r);
  p.vnet = virtio_net_hdr{};
  p.flags &= uint16_t(~kHasVnet);
  return UplinkArpVerdict::kReply;
}

size_t build_underlay_arp_request(const UnderlayConfig& u, Ipv4Addr target, uint8_t* out) noexcept {
  using namespace proto;
  std::memset(out, 0, kArpRequestFrameLen);
  EthHdr eth;
  eth.dst = kBroadcastMac;
  eth.src = u.mac;
  eth.ethertype = be16::from_host(kEthTypeArp);
  std::memcpy(out, &eth, sizeof eth);
  ArpHdr a{};
  a.htype = be16::from_host(kArpHtypeEthernet);
  a.ptype = be16::from_host(kEthTypeIpv4);
  a.hlen = 6;
  a.plen = 4;
  a.op = be16::from_host(kArpOpRequest);
  a.sha = u.mac;
  a.set_sender_ip(u.address.addr);
  a.set_target_ip(target);
  std::memcpy(out + kEthHdrLen, &a, sizeof a);
  return kArpRequestFrameLen;
}

}  // namespace vpcd::dp
