// Stage "arp-responder"; behaviour and threading in arp_responder.h.
#include "datapath/stages/arp_responder.h"

#include <cstring>

namespace vpcd::dp {
namespace {

// Offsets inside an Ethernet/IPv4 ARP header (RFC 826); parse checked htype/ptype/hlen/plen and the 28 bytes.
constexpr size_t kArpOp = 6;
constexpr size_t kArpSha = 8;
constexpr size_t kArpSpa = 14;
constexpr size_t kArpTha = 18;
constexpr size_t kArpTpa = 24;
constexpr uint8_t kArpOpRequest = 1;
constexpr uint8_t kArpOpReply = 2;

void answer(Packet& p, const MacAddr& mac) noexcept {
  uint8_t* eth = p.data;
  uint8_t* arp = p.data + p.l3_offset;
  std::memcpy(eth, eth + 6, 6);               // back to the requester
  std::memcpy(eth + 6, mac.b.data(), 6);      // from the owner of the address
  arp[kArpOp] = 0;
  arp[kArpOp + 1] = kArpOpReply;
  uint8_t target_ip[4];
  std::memcpy(target_ip, arp + kArpTpa, 4);
  std::memcpy(arp + kArpTha, arp + kArpSha, 6);  // target = the requester
  std::memcpy(arp + kArpTpa, arp + kArpSpa, 4);
  std::memcpy(arp + kArpSha, mac.b.data(), 6);   // sender = the answer
  std::memcpy(arp + kArpSpa, target_ip, 4);
  p.vnet = virtio_net_hdr{};
  p.out_port = p.in_port;
}

// True when p was answered in place.
bool maybe_answer(const ArpAnswerTable& table, Packet& p) noexcept {
  const uint8_t* arp = p.data + p.l3_offset;
  if (arp[kArpOp] != 0 || arp[kArpOp + 1] != kArpOpRequest) return false;
  if (p.ip4_src == p.ip4_dst) return false;  // gratuitous
  const MacAddr* mac = table.find(p.ip4_dst);
  if (!mac) return false;
  if (std::memcmp(arp + kArpSha, mac->b.data(), 6) == 0) return false;  // asking about itself
  answer(p, *mac);
  return true;
}

}  // namespace

void arp_responder(const VpcConfig& vpc, std::span<Packet* const> pkts) noexcept {
  const ArpAnswerTable& table = *vpc.arp;
  for (Packet* p : pkts) {
    if (!(p->flags & kIsArp) || p->dropped()) [[likely]]
      continue;
    maybe_answer(table, *p);
  }
}

NextSet ArpResponderStage::process(WorkerContext&, const DataplaneConfig& cfg, std::span<Packet* const> pkts) noexcept {
  uint16_t last_vpc = kNoVpcIndex;
  const VpcConfig* vpc = nullptr;
  NextSet nexts = 0;
  const auto one = [&](Packet* p) noexcept {
    if (!(p->flags & kIsArp)) [[likely]] {
      p->next = Next::kL2Switch;
      return;
    }
    if (p->vpc != last_vpc) {
      last_vpc = p->vpc;
      vpc = cfg.vpc(last_vpc);
    }
    if (!vpc) [[unlikely]] {
      p->drop_with(DropReason::kNoVpc);
      return;
    }
    if (!maybe_answer(*vpc->arp, *p)) {
      p->next = Next::kL2Switch;
      return;
    }
    const PortConfig* in = cfg.port(p->in_port);  // the answer goes back where the request came from
    p->next = in ? egress_stage(in->out_features) : Next::kOutput;
  };
  for (Packet* p : pkts) {
    one(p);
    nexts |= stage_bit(p->next);
  }
  return nexts;
}

}  // namespace vpcd::dp
