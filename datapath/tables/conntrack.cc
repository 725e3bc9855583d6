// Connection tracking: TCP state machine and window checks, UDP/ICMP, related ICMP errors, first-fragment tracking,
// stateful verdicts. See conntrack.h.
#include "datapath/tables/conntrack.h"

#include <algorithm>
#include <cstring>

#include "datapath/proto/cursor.h"
#include "datapath/proto/ipv4.h"
#include "datapath/proto/l4.h"

namespace vpcd::dp {
namespace {

using namespace proto;

constexpr bool before(uint32_t a, uint32_t b) noexcept { return int32_t(a - b) < 0; }
constexpr bool after(uint32_t a, uint32_t b) noexcept { return int32_t(a - b) > 0; }
constexpr uint32_t kAckSlack = 66000;  // lower bound on how far behind an ACK may lag (a 64 KiB super-frame)
constexpr uint16_t kNoPort = 0xffff;

bool is_icmp_error(uint8_t type) noexcept {
  return type == kIcmpDestUnreachable || type == kIcmpTimeExceeded || type == 12 /* parameter problem */ ||
         type == 4 /* source quench */;
}

TimeoutClass class_of(ConnState s) noexcept {
  switch (s) {
    case ConnState::kTcpSynSent:
    case ConnState::kTcpSynRecv: return TimeoutClass::kTcpSyn;
    case ConnState::kTcpEstablished: return TimeoutClass::kTcpEstablished;
    case ConnState::kTcpClosing: return TimeoutClass::kTcpClosing;
    case ConnState::kTcpTimeWait: return TimeoutClass::kTcpTimeWait;
    case ConnState::kTcpClosed: return TimeoutClass::kTcpClosed;
    case ConnState::kUdpReplied: return TimeoutClass::kUdpReplied;
    case ConnState::kIcmp: return TimeoutClass::kIcmp;
    case ConnState::kFragment: return TimeoutClass::kFragment;
    default: return TimeoutClass::kUdp;
  }
}

// The TCP state machine for one segment from side d (0 = opener). False: invalid (no state changed).
bool tcp_track(Conn& c, int d, const TcpSegment& s) noexcept {
  TcpPeer& snd = c.peer[d];
  TcpPeer& rcv = c.peer[1 - d];
  uint8_t& sf = c.pflags[d];
  uint8_t& rf = c.pflags[1 - d];
  const bool syn = s.flags & kTcpSyn, ack = s.flags & kTcpAck, rst = s.flags & kTcpRst, fin = s.flags & kTcpFin;
  if ((syn && (rst || fin)) || (fin && rst)) return false;
  const uint32_t end = s.seq + s.payload + (syn ? 1 : 0) + (fin ? 1 : 0);
  const auto state = ConnState(c.state);

  if (syn) {
    const uint8_t ws = uint8_t(std::min(s.wscale < 0 ? 0 : s.wscale, 14));
    if (!ack) {  // SYN: from the opener, before the responder answered (retransmissions included)
      if (d != 0 || (state != ConnState::kNone && state != ConnState::kTcpSynSent)) return false;
      snd = TcpPeer{end, end, std::max<uint32_t>(s.window, 1)};
      sf = uint8_t(kPeerSeen | kPeerSyn | (s.wscale >= 0 ? kPeerWscale : 0));
      c.wscale[d] = ws;
      c.state = uint8_t(ConnState::kTcpSynSent);
      return true;
    }
    // SYN+ACK: from the responder, acknowledging exactly the opener's SYN.
    if (d != 1 || !(rf & kPeerSyn) || s.ack != rcv.end ||
        (state != ConnState::kTcpSynSent && state != ConnState::kTcpSynRecv))
      return false;
    snd.end = end;
    snd.maxwin = std::max<uint32_t>(s.window, 1);  // windows in SYNs are never scaled
    sf = uint8_t(kPeerSeen | kPeerSyn | (s.wscale >= 0 ? kPeerWscale : 0));
    c.wscale[d] = ws;
    if (!((sf & kPeerWscale) && (rf & kPeerWscale))) c.wscale[0] = c.wscale[1] = 0;  // RFC 7323: both or neither
    if (after(s.ack + s.window, rcv.maxend)) rcv.maxend = s.ack + s.window;
    snd.maxend = snd.end + rcv.maxwin;
    c.state = uint8_t(ConnState::kTcpSynRecv);
    return true;
  }

  if (!ack && !rst) return false;  // after the SYN every segment carries an ACK
  const uint32_t win = uint32_t(s.window) << c.wscale[d];

  if (!(sf & kPeerSeen)) {
    // The first segment from this side without a SYN: a picked-up connection, or a RST answering a SYN.
    if (state == ConnState::kTcpSynSent) {
      if (!(rst && ack && s.ack == rcv.end)) return false;
      c.state = uint8_t(ConnState::kTcpClosed);
      return true;
    }
    snd = TcpPeer{end, end, std::max<uint32_t>(win, 1)};
    sf |= kPeerSeen;
  } else if (rf & kPeerSeen) {
    // Window checks. A GSO super-frame is checked as its first segment's end and its last segment's start.
    uint32_t first_end = end, last_start = s.seq;
    if (s.gso_size != 0 && s.payload > s.gso_size) {
      const uint32_t last_len = s.payload % s.gso_size ? s.payload % s.gso_size : s.gso_size;
      first_end = s.seq + s.gso_size;
      last_start = s.seq + s.payload - last_len;
    }
    if (after(last_start, snd.maxend)) return false;                // beyond the window the receiver opened
    if (before(first_end, snd.end - rcv.maxwin)) return false;      // older than a window
    if (ack) {
      if (after(s.ack, rcv.end)) return false;                      // acknowledges data never sent
      if (before(s.ack, rcv.end - std::max(snd.maxwin, kAckSlack))) return false;  // far too old
    }
  }

  // Update.
  if (win > snd.maxwin) snd.maxwin = win;
  if (after(end, snd.end)) snd.end = end;
  if (after(snd.end, snd.maxend)) snd.maxend = snd.end;
  if (ack) {
    if (!(rf & kPeerSeen)) {  // the other side has not spoken yet: it has sent at least up to our ACK
      rcv.end = s.ack;
      rcv.maxend = s.ack;
    }
    // Sequence-number order, not numeric (std::max kept a pre-wrap end once ack + win wrapped past 2^32).
    if (after(s.ack + win, rcv.maxend)) rcv.maxend = s.ack + win;
    if ((rf & kPeerFin) && !before(s.ack, rcv.end)) rf |= kPeerFinAcked;
  }
  if (fin) sf |= kPeerFin;
  if (rst) {
    c.state = uint8_t(ConnState::kTcpClosed);
    return true;
  }
  if (state == ConnState::kTcpSynRecv && d == 0 && ack && s.ack == rcv.end) c.state = uint8_t(ConnState::kTcpEstablished);
  if ((c.pflags[0] & kPeerFinAcked) && (c.pflags[1] & kPeerFinAcked)) {
    c.state = uint8_t(ConnState::kTcpTimeWait);
  } else if ((c.pflags[0] | c.pflags[1]) & kPeerFin) {
    if (c.state == uint8_t(ConnState::kTcpEstablished) || c.state == uint8_t(ConnState::kTcpSynRecv))
      c.state = uint8_t(ConnState::kTcpClosing);
  }
  return true;
}

// The policy checks of the original direction `orig` (src -> dst) for a local sender port and a local receiver port.
bool egress_allows(const SecurityPolicies& pol, uint16_t port, const FlowTuple& orig) noexcept {
  const NicPolicy* np = pol.port(port);
  return !np || np->egress.allows(orig.proto, orig.dst, orig.proto == kIpProtoIcmp ? 0 : orig.dport);
}
bool ingress_allows(const SecurityPolicies& pol, uint16_t port, const FlowTuple& orig) noexcept {
  const NicPolicy* np = pol.port(port);
  return !np || np->ingress.allows(orig.proto, orig.src, orig.proto == kIpProtoIcmp ? 0 : orig.dport);
}

// Runs the checks the entry can run (its recorded ports) for the current generation.
void classify(Conn& c, const SecurityPolicies& pol) noexcept {
  FlowTuple orig;
  orig.proto = c.key.proto;
  const bool a = c.orig_is_a;
  orig.src = Ipv4Addr{a ? c.key.ip_a : c.key.ip_b};
  orig.dst = Ipv4Addr{a ? c.key.ip_b : c.key.ip_a};
  orig.sport = a ? c.key.port_a : c.key.port_b;
  orig.dport = a ? c.key.port_b : c.key.port_a;
  uint8_t f = c.flags & kLoosePickup;
  if (c.orig_in_port != kNoPort)
    f |= kEgressChecked | (egress_allows(pol, c.orig_in_port, orig) ? kEgressAllowed : 0);
  if (c.orig_out_port != kNoPort)
    f |= kIngressChecked | (ingress_allows(pol, c.orig_out_port, orig) ? kIngressAllowed : 0);
  c.flags = f;
  c.rules_gen = pol.gen;
}

bool flow_allowed(const Conn& c) noexcept {
  return (!(c.flags & kEgressChecked) || (c.flags & kEgressAllowed)) &&
         (!(c.flags & kIngressChecked) || (c.flags & kIngressAllowed));
}

// The verdict of a packet of an existing entry at this stage, after bringing the entry's classification up to date.
CtVerdict entry_verdict(Conn& c, bool is_orig, const SecurityPolicies& pol, const CtRequest& req,
                        CtStats* stats) noexcept {
  if (c.rules_gen != pol.gen) {
    classify(c, pol);
    if (stats) ++stats->reclassified;
  }
  if (is_orig) {
    if (req.dir == CtDir::kEgress) {
      if (c.orig_in_port != req.port) {
        c.orig_in_port = req.port;
        classify(c, pol);
      }
      return (c.flags & kEgressAllowed) ? CtVerdict::kAllowed : CtVerdict::kDenied;
    }
    if (c.orig_out_port != req.port) {
      c.orig_out_port = req.port;
      classify(c, pol);
    }
    return (c.flags & kIngressAllowed) ? CtVerdict::kAllowed : CtVerdict::kDenied;
  }
  // A reply: only between the flow's own ports, and only when the flow is allowed.
  const uint16_t expect = req.dir == CtDir::kEgress ? c.orig_out_port : c.orig_in_port;
  if (expect != kNoPort && expect != req.port) return CtVerdict::kInvalid;
  return flow_allowed(c) ? CtVerdict::kAllowed : CtVerdict::kDenied;
}

uint16_t ip_id(const Packet& p) noexcept {
  Cursor cur(p.data + p.l3_offset, p.len - p.l3_offset);
  Ipv4Hdr h{};
  return cur.try_read(h) ? h.id.to_host() : 0;
}

// A fragment record for the datagram of p: (vpc, src, dst, proto, IP id).
FlowTuple fragment_tuple(const CtRequest& req, const Packet& p) noexcept {
  FlowTuple t;
  t.vpc = req.vpc;
  t.vpc_gen = req.vpc_gen;
  t.proto = p.ip_proto;
  t.kind = ConnKey::kKindFragment;
  t.src = p.ip4_src;
  t.dst = p.ip4_dst;
  t.sport = ip_id(p);
  t.dport = 0;
  return t;
}

uint8_t stage_bit(const CtRequest& req) noexcept {
  return req.dir == CtDir::kEgress ? kEgressAllowed : kIngressAllowed;
}

// Leaves (or refreshes) the record that lets the later fragments of p's datagram pass this stage.
void record_first_fragment(ConnTable& table, const CtRequest& req, const Packet& p) noexcept {
  const NormalizedKey nk = normalize(fragment_tuple(req, p));
  auto lk = table.lookup(nk.key);
  if (!lk.conn() && lk.insert(req.now_s, TimeoutClass::kFragment) != InsertResult::kOk) return;
  Conn& c = *lk.conn();
  c.state = uint8_t(ConnState::kFragment);
  c.last_seen = req.now_s;
  c.flags |= stage_bit(req);
}

// An ICMP error: the flow it is about must exist and be allowed, and the error must travel to the quoted source.
CtVerdict related(ConnTable& table, const CtRequest& req, const Packet& p) noexcept {
  Cursor cur(p.data + p.l4_offset, p.len - p.l4_offset);
  IcmpEchoHdr icmp{};  // type, code, csum, 4 unused bytes
  Ipv4Hdr in{};
  if (!cur.try_read(icmp) || !cur.try_read(in) || in.version() != 4 || in.hdr_len_bytes() < kIpv4MinHdrLen)
    return CtVerdict::kInvalid;
  if (!cur.try_skip(in.hdr_len_bytes() - kIpv4MinHdrLen)) return CtVerdict::kInvalid;
  uint8_t l4[8] = {};
  if (!cur.try_read(l4)) return CtVerdict::kInvalid;
  FlowTuple t;
  t.vpc = req.vpc;
  t.vpc_gen = req.vpc_gen;
  t.proto = in.proto;
  t.src = Ipv4Addr::from_be(in.src);
  t.dst = Ipv4Addr::from_be(in.dst);
  if (t.src != p.ip4_dst) return CtVerdict::kInvalid;  // an error goes back to the quoted packet's sender
  if (in.proto == kIpProtoTcp || in.proto == kIpProtoUdp) {
    t.sport = uint16_t(l4[0] << 8 | l4[1]);
    t.dport = uint16_t(l4[2] << 8 | l4[3]);
  } else if (in.proto == kIpProtoIcmp) {
    if (l4[0] != kIcmpEchoRequest && l4[0] != kIcmpEchoReply) return CtVerdict::kInvalid;
    t.sport = t.dport = uint16_t(l4[4] << 8 | l4[5]);
  }
  if (in.is_fragment() && in.frag_offset_units() != 0) return CtVerdict::kInvalid;
  const NormalizedKey nk = normalize(t);
  auto lk = table.lookup(nk.key);
  if (!lk.conn()) return CtVerdict::kInvalid;
  return flow_allowed(*lk.conn()) ? CtVerdict::kAllowed : CtVerdict::kInvalid;
}

}  // namespace

bool read_tcp_segment(const Packet& p, TcpSegment& out) noexcept {
  if (p.l4_offset == 0 || p.l4_offset >= p.len) return false;
  Cursor cur(p.data + p.l4_offset, p.len - p.l4_offset);
  TcpHdr h{};
  if (!cur.try_read(h)) return false;
  const size_t hl = h.hdr_len_bytes();
  if (hl < kTcpMinHdrLen || hl > p.l4_len) return false;
  out.seq = h.seq.to_host();
  out.ack = h.ack.to_host();
  out.flags = h.flags;
  out.window = h.window.to_host();
  out.payload = uint32_t(p.l4_len - hl);
  out.wscale = -1;
  out.gso_size = (p.flags & kHasVnet) && p.vnet.gso_type != VIRTIO_NET_HDR_GSO_NONE ? p.vnet.gso_size : 0;
  if (h.flags & kTcpSyn) {
    // Options: kind 0 end, 1 nop, others kind/len/data; window scale is kind 3, len 3.
    size_t n = std::min<size_t>(hl - kTcpMinHdrLen, p.len - p.l4_offset - kTcpMinHdrLen);
    const uint8_t* o = p.data + p.l4_offset + kTcpMinHdrLen;
    for (size_t i = 0; i < n;) {
      if (o[i] == 0) break;
      if (o[i] == 1) {
        ++i;
        continue;
      }
      if (i + 1 >= n || o[i + 1] < 2 || i + o[i + 1] > n) break;
      if (o[i] == 3 && o[i + 1] == 3) out.wscale = o[i + 2];
      i += o[i + 1];
    }
  }
  return true;
}

CtVerdict conntrack(ConnTable& table, const SecurityPolicies& pol, const CtRequest& req, const Packet& p,
                    CtStats* stats) noexcept {
  const bool fragment = p.flags & kIsFragment;
  if (fragment && p.l4_offset == 0) {  // a later fragment: its first fragment must have passed this stage
    const NormalizedKey nk = normalize(fragment_tuple(req, p));
    auto lk = table.lookup(nk.key);
    if (!lk.conn() || !(lk.conn()->flags & stage_bit(req))) return CtVerdict::kNoFirstFragment;
    return CtVerdict::kAllowed;
  }

  FlowTuple t;
  t.vpc = req.vpc;
  t.vpc_gen = req.vpc_gen;
  t.proto = p.ip_proto;
  t.src = p.ip4_src;
  t.dst = p.ip4_dst;
  TcpSegment seg;
  bool opens = true;  // may this packet open a new entry?
  ConnState initial = ConnState::kUdp;
  if (p.ip_proto == kIpProtoTcp) {
    if (!read_tcp_segment(p, seg)) return CtVerdict::kInvalid;
    t.sport = p.src_port;
    t.dport = p.dst_port;
    const bool syn_only = (seg.flags & (kTcpSyn | kTcpAck | kTcpRst | kTcpFin)) == kTcpSyn;
    const bool pickup = table.options().loose_pickup && (seg.flags & kTcpAck) && !(seg.flags & (kTcpSyn | kTcpRst));
    opens = syn_only || pickup;
    initial = syn_only ? ConnState::kNone : ConnState::kTcpEstablished;
  } else if (p.ip_proto == kIpProtoUdp) {
    t.sport = p.src_port;
    t.dport = p.dst_port;
  } else if (p.ip_proto == kIpProtoIcmp) {
    const uint8_t type = uint8_t(p.dst_port >> 8);
    if (is_icmp_error(type)) return related(table, req, p);
    if (type != kIcmpEchoRequest && type != kIcmpEchoReply) {  // informational, untracked: rules per packet
      const NicPolicy* np = pol.port(req.port);
      if (!np) return CtVerdict::kAllowed;
      const bool ok = req.dir == CtDir::kEgress ? np->egress.allows(kIpProtoIcmp, p.ip4_dst, 0)
                                                : np->ingress.allows(kIpProtoIcmp, p.ip4_src, 0);
      return ok ? CtVerdict::kAllowed : CtVerdict::kDenied;
    }
    t.sport = t.dport = p.src_port;  // the echo identifier
    opens = type == kIcmpEchoRequest;
    initial = ConnState::kIcmp;
  }

  const NormalizedKey nk = normalize(t);
  auto lk = table.lookup(nk.key);
  Conn* c = lk.conn();
  // A SYN reusing the ports of a finished connection starts a new one.
  if (c && p.ip_proto == kIpProtoTcp && req.track && (seg.flags & (kTcpSyn | kTcpAck)) == kTcpSyn &&
      (c->state == uint8_t(ConnState::kTcpTimeWait) || c->state == uint8_t(ConnState::kTcpClosed))) {
    lk.erase();
    c = nullptr;
  }

  CtVerdict v;
  if (!c) {
    if (!opens) return CtVerdict::kInvalid;
    // Classify before inserting: a denied flow leaves nothing behind.
    const bool ok = req.dir == CtDir::kEgress ? egress_allows(pol, req.port, t) : ingress_allows(pol, req.port, t);
    if (!ok) return CtVerdict::kDenied;
    switch (lk.insert(req.now_s, class_of(initial == ConnState::kNone ? ConnState::kTcpSynSent : initial))) {
      case InsertResult::kOk: break;
      default: return CtVerdict::kTableFull;
    }
    c = lk.conn();
    c->orig_is_a = nk.src_is_a;
    c->state = uint8_t(initial);
    if (req.dir == CtDir::kEgress) {
      c->orig_in_port = req.port;
      c->flags = kEgressChecked | kEgressAllowed;
    } else {
      c->orig_out_port = req.port;
      c->flags = kIngressChecked | kIngressAllowed;
    }
    c->rules_gen = pol.gen;
    if (stats) ++stats->created;
    if (p.ip_proto == kIpProtoTcp && initial == ConnState::kTcpEstablished) {
      c->flags |= kLoosePickup;
      c->wscale[0] = c->wscale[1] = 14;
      c->pflags[0] = c->pflags[1] = kPeerLiberal;
    }
    v = CtVerdict::kAllowed;
  } else {
    v = entry_verdict(*c, nk.src_is_a == bool(c->orig_is_a), pol, req, stats);
    if (v != CtVerdict::kAllowed) return v;
  }

  if (req.track) {
    const int d = nk.src_is_a == bool(c->orig_is_a) ? 0 : 1;
    const auto old_class = TimeoutClass(c->tclass);
    if (p.ip_proto == kIpProtoTcp) {
      if (!tcp_track(*c, d, seg)) {
        if (c->state == uint8_t(ConnState::kNone)) lk.erase();  // a new entry whose first segment was bad
        return CtVerdict::kInvalid;
      }
    } else if (p.ip_proto == kIpProtoIcmp) {
      const uint8_t type = uint8_t(p.dst_port >> 8);
      if ((d == 0) != (type == kIcmpEchoRequest)) return CtVerdict::kInvalid;  // requests one way, replies the other
    } else if (d == 1 && c->state == uint8_t(ConnState::kUdp)) {
      c->state = uint8_t(ConnState::kUdpReplied);
    }
    c->last_seen = req.now_s;
    const TimeoutClass nc = class_of(ConnState(c->state));
    if (nc != old_class) {
      c->tclass = uint8_t(nc);
      if (table.timeout_s(nc) < table.timeout_s(old_class)) lk.reschedule();
    }
  }
  if (fragment) {
    lk.release();  // one shard lock at a time
    record_first_fragment(table, req, p);
  }
  return v;
}

}  // namespace vpcd::dp
