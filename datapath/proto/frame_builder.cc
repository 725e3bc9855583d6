// FrameBuilder implementation. See frame_builder.h. Threading: value type.
#include "datapath/proto/frame_builder.h"

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "datapath/proto/arp.h"
#include "datapath/proto/checksum.h"
#include "datapath/proto/ipv4.h"
#include "datapath/proto/l4.h"

namespace vpcd::proto {
namespace {

template <class Hdr>
void append(std::vector<uint8_t>& out, const Hdr& h) {
  static_assert(std::is_trivially_copyable_v<Hdr>);
  const size_t at = out.size();
  out.resize(at + sizeof(Hdr));
  std::memcpy(out.data() + at, &h, sizeof(Hdr));
}

template <class Hdr>
void store_at(std::vector<uint8_t>& out, size_t at, const Hdr& h) {
  std::memcpy(out.data() + at, &h, sizeof(Hdr));
}

}  // namespace

FrameBuilder& FrameBuilder::eth(MacAddr src, MacAddr dst) {
  eth_src_ = src;
  eth_dst_ = dst;
  return *this;
}

FrameBuilder& FrameBuilder::vlan(uint16_t tci, uint16_t tpid) {
  vlans_.emplace_back(tpid, tci);
  return *this;
}

FrameBuilder& FrameBuilder::ethertype(uint16_t type) {
  l3_ = L3::kNone;
  raw_ethertype_ = type;
  return *this;
}

FrameBuilder& FrameBuilder::arp(uint16_t op, MacAddr sha, Ipv4Addr spa, MacAddr tha, Ipv4Addr tpa) {
  l3_ = L3::kArp;
  arp_op_ = op;
  arp_sha_ = sha;
  arp_spa_ = spa;
  arp_tha_ = tha;
  arp_tpa_ = tpa;
  return *this;
}

FrameBuilder& FrameBuilder::ipv4(Ipv4Addr src, Ipv4Addr dst, const Ipv4Opts& opts) {
  l3_ = L3::kIpv4;
  ip4_src_ = src;
  ip4_dst_ = dst;
  ip4_opts_ = opts;
  return *this;
}

FrameBuilder& FrameBuilder::ipv6(const Ipv6Addr& src, const Ipv6Addr& dst, uint8_t hop_limit, uint8_t next_hdr) {
  l3_ = L3::kIpv6;
  ip6_src_ = src;
  ip6_dst_ = dst;
  ip6_hop_limit_ = hop_limit;
  ip6_next_hdr_ = next_hdr;
  return *this;
}

FrameBuilder& FrameBuilder::ipv6_ext(uint8_t type, size_t len_bytes) {
  len_bytes = std::clamp<size_t>((len_bytes + 7) / 8 * 8, 8, 2048);  // (hdr_ext_len + 1) * 8
  ip6_exts_.push_back({type, len_bytes, 0, 0});
  return *this;
}

FrameBuilder& FrameBuilder::ipv6_frag(uint16_t offset_units, bool more, uint32_t id) {
  ip6_exts_.push_back({kIpProtoFragment, kIpv6FragHdrLen, uint16_t(offset_units << 3 | (more ? kIpv6FragMore : 0)),
                       id});
  return *this;
}

FrameBuilder& FrameBuilder::udp(uint16_t src_port, uint16_t dst_port) {
  l4_ = L4::kUdp;
  src_port_ = src_port;
  dst_port_ = dst_port;
  return *this;
}

FrameBuilder& FrameBuilder::tcp(uint16_t src_port, uint16_t dst_port, const TcpOpts& opts) {
  l4_ = L4::kTcp;
  src_port_ = src_port;
  dst_port_ = dst_port;
  tcp_opts_ = opts;
  return *this;
}

FrameBuilder& FrameBuilder::icmp(uint8_t type, uint8_t code, uint32_t rest_of_header) {
  l4_ = L4::kIcmp;
  echo_ = Echo::kNone;
  icmp_type_ = type;
  icmp_code_ = code;
  icmp_rest_ = rest_of_header;
  return *this;
}

FrameBuilder& FrameBuilder::icmp_echo(bool request, uint16_t id, uint16_t seq) {
  icmp(0, 0, uint32_t(id) << 16 | seq);
  echo_ = request ? Echo::kRequest : Echo::kReply;  // the type is picked in build(), once L3 is known
  return *this;
}

FrameBuilder& FrameBuilder::payload(std::span<const uint8_t> bytes) {
  payload_.assign(bytes.begin(), bytes.end());
  return *this;
}

FrameBuilder& FrameBuilder::payload_size(size_t n_bytes) {
  payload_.resize(n_bytes);
  for (size_t i = 0; i < n_bytes; ++i) payload_[i] = uint8_t(i);
  return *this;
}

FrameBuilder& FrameBuilder::pad_to(size_t min_len_bytes) {
  pad_to_ = min_len_bytes;
  return *this;
}

// The L4 header (checksum zero) followed by the payload; l4_len_bytes is the header + payload size.
std::vector<uint8_t> FrameBuilder::build_l4(size_t l4_len_bytes) const {
  std::vector<uint8_t> out;
  out.reserve(l4_len_bytes);
  switch (l4_) {
    case L4::kUdp: {
      UdpHdr u{be16::from_host(src_port_), be16::from_host(dst_port_), be16::from_host(uint16_t(l4_len_bytes)), {}};
      append(out, u);
      break;
    }
    case L4::kTcp: {
      TcpHdr t{};
      t.src_port = be16::from_host(src_port_);
      t.dst_port = be16::from_host(dst_port_);
      t.seq = be32::from_host(tcp_opts_.seq);
      t.ack = be32::from_host(tcp_opts_.ack);
      t.doff_rsvd = uint8_t((kTcpMinHdrLen / 4) << 4);
      t.flags = tcp_opts_.flags;
      t.window = be16::from_host(tcp_opts_.window);
      append(out, t);
      break;
    }
    case L4::kIcmp: {
      const bool v6 = l3_ == L3::kIpv6;
      uint8_t type = icmp_type_;
      if (echo_ == Echo::kRequest) type = v6 ? kIcmpv6EchoRequest : kIcmpEchoRequest;
      if (echo_ == Echo::kReply) type = v6 ? kIcmpv6EchoReply : kIcmpEchoReply;
      IcmpEchoHdr h{type, icmp_code_, {}, be16::from_host(uint16_t(icmp_rest_ >> 16)),
                    be16::from_host(uint16_t(icmp_rest_))};
      append(out, h);
      break;
    }
    case L4::kNone:
      break;
  }
  out.insert(out.end(), payload_.begin(), payload_.end());
  return out;
}

std::vector<uint8_t> FrameBuilder::build() const {
  std::vector<uint8_t> out;
  out.reserve(128 + payload_.size());

  uint16_t l3_type = raw_ethertype_;
  if (l3_ == L3::kArp) l3_type = kEthTypeArp;
  if (l3_ == L3::kIpv4) l3_type = kEthTypeIpv4;
  if (l3_ == L3::kIpv6) l3_type = kEthTypeIpv6;
  const uint16_t first_type = vlans_.empty() ? l3_type : vlans_.front().first;
  append(out, EthHdr{eth_dst_, eth_src_, be16::from_host(first_type)});
  for (size_t i = 0; i < vlans_.size(); ++i) {
    const uint16_t next = i + 1 < vlans_.size() ? vlans_[i + 1].first : l3_type;
    append(out, VlanHdr{be16::from_host(vlans_[i].second), be16::from_host(next)});
  }

  size_t l4_len = payload_.size();
  if (l4_ == L4::kUdp) l4_len += kUdpHdrLen;
  if (l4_ == L4::kTcp) l4_len += kTcpMinHdrLen;
  if (l4_ == L4::kIcmp) l4_len += kIcmpEchoLen;
  std::vector<uint8_t> l4 = build_l4(l4_len);

  uint8_t proto = 0;
  if (l4_ == L4::kUdp) proto = kIpProtoUdp;
  if (l4_ == L4::kTcp) proto = kIpProtoTcp;
  if (l4_ == L4::kIcmp) proto = l3_ == L3::kIpv6 ? kIpProtoIcmpv6 : kIpProtoIcmp;

  // Offset of the checksum field inside l4, if any.
  size_t csum_at = 0;
  bool has_csum = l4_ != L4::kNone;
  if (l4_ == L4::kUdp) csum_at = 6;
  if (l4_ == L4::kTcp) csum_at = 16;
  if (l4_ == L4::kIcmp) csum_at = 2;

  switch (l3_) {
    case L3::kNone:
      break;
    case L3::kArp: {
      ArpHdr a{};
      a.htype = be16::from_host(kArpHtypeEthernet);
      a.ptype = be16::from_host(kEthTypeIpv4);
      a.hlen = 6;
      a.plen = 4;
      a.op = be16::from_host(arp_op_);
      a.sha = arp_sha_;
      a.tha = arp_tha_;
      a.set_sender_ip(arp_spa_);
      a.set_target_ip(arp_tpa_);
      append(out, a);
      break;
    }
    case L3::kIpv4: {
      std::vector<uint8_t> options = ip4_opts_.options;
      options.resize(std::min<size_t>((options.size() + 3) / 4 * 4, kIpv4MaxHdrLen - kIpv4MinHdrLen), 0);
      const size_t hdr_len = kIpv4MinHdrLen + options.size();
      Ipv4Hdr h{};
      h.ver_ihl = uint8_t(0x40 | hdr_len / 4);
      h.tos = ip4_opts_.tos;
      h.tot_len = be16::from_host(uint16_t(hdr_len + l4.size()));
      h.id = be16::from_host(ip4_opts_.id);
      h.frag_off = be16::from_host(ip4_opts_.frag_off);
      h.ttl = ip4_opts_.ttl;
      h.proto = l4_ == L4::kNone ? ip4_opts_.proto : proto;
      h.src = ip4_src_.to_be();
      h.dst = ip4_dst_.to_be();
      h.csum = internet_checksum(options, ones_sum({reinterpret_cast<const uint8_t*>(&h), sizeof(h)}));
      if (has_csum) {
        be16 c = l4_ == L4::kIcmp ? internet_checksum(l4)
                 : l4_ == L4::kUdp ? udp_checksum_ipv4(ip4_src_, ip4_dst_, l4)
                                   : l4_checksum_ipv4(ip4_src_, ip4_dst_, proto, l4);
        store_at(l4, csum_at, c);
      }
      append(out, h);
      out.insert(out.end(), options.begin(), options.end());
      break;
    }
    case L3::kIpv6: {
      size_t ext_len = 0;
      for (const Ext& e : ip6_exts_) ext_len += e.len_bytes;
      Ipv6Hdr h{};
      h.ver_tc_flow = be32::from_host(6u << 28);
      h.payload_len = be16::from_host(uint16_t(ext_len + l4.size()));
      h.hop_limit = ip6_hop_limit_;
      h.src = ip6_src_;
      h.dst = ip6_dst_;
      const uint8_t upper = l4_ == L4::kNone ? ip6_next_hdr_ : proto;
      h.next_hdr = ip6_exts_.empty() ? upper : ip6_exts_.front().type;
      append(out, h);
      for (size_t i = 0; i < ip6_exts_.size(); ++i) {
        const Ext& e = ip6_exts_[i];
        const uint8_t next = i + 1 < ip6_exts_.size() ? ip6_exts_[i + 1].type : upper;
        if (e.type == kIpProtoFragment) {
          append(out, Ipv6FragHdr{next, 0, be16::from_host(e.frag_off_flags), be32::from_host(e.frag_id)});
          continue;
        }
        const size_t at = out.size();
        out.resize(at + e.len_bytes, 0);
        out[at] = next;
        out[at + 1] = uint8_t(e.len_bytes / 8 - 1);
        if (e.len_bytes - 2 >= 2) {  // one PadN option covering the rest (RFC 8200 section 4.2)
          out[at + 2] = 1;
          out[at + 3] = uint8_t(e.len_bytes - 4);
        }
      }
      if (has_csum) {
        be16 c = l4_ == L4::kUdp ? udp_checksum_ipv6(ip6_src_, ip6_dst_, l4)
                                 : l4_checksum_ipv6(ip6_src_, ip6_dst_, proto, l4);
        store_at(l4, csum_at, c);
      }
      break;
    }
  }
  out.insert(out.end(), l4.begin(), l4.end());
  if (out.size() < pad_to_) out.resize(pad_to_, 0);
  return out;
}

}  // namespace vpcd::proto
