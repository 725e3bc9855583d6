// Connection tracking and the stateful security-group verdict for one IPv4 packet, used by the firewall-egress stage
// (packets a NIC sends: the guest's egress) and the firewall-ingress stage (packets sent to a NIC).
//
// What is tracked:
// - TCP: a state machine (SYN -> SYN+ACK -> ACK = established; FIN each way, acknowledged = time-wait; RST = closed)
//   with window checks after Rooij ("Real stateful TCP packet filtering in IP Filter"): a segment must start within
//   the window the receiver opened (seq <= maxend), must not end before the sender's highest sequence minus the
//   receiver's largest window, and its ACK must lie within the receiver's sent data and one window behind it.
//   GSO: a super-frame (virtio_net_hdr gso_size > 0) is many segments; the checks apply to its first segment's end and
//   its LAST segment's start (seq + total payload - last segment's length), i.e. exactly what each segment on the wire
//   would have to pass, and the state advances by the total payload. Window scale options are read from SYNs.
//   Loose pickup (ConnTableOptions::loose_pickup): a non-SYN segment with ACK and no entry (a connection that was open
//   before a restart) creates an established entry whose window scale is unknown and taken as the maximum (14), so
//   its windows are checked loosely until it ends. Without loose pickup, and for any segment that fails a check, the
//   verdict is kInvalid (dropped, counted ct_invalid).
// - UDP: one direction seen (udp timeout), both seen (udp-stream timeout).
// - ICMP echo: a request opens an entry keyed by its identifier; replies match it. Other informational ICMP types are
//   classified per packet and not tracked.
// - ICMP errors (destination unreachable, time exceeded, parameter problem, source quench): RELATED. The quoted IPv4
//   header and first 8 bytes of the offending packet name a tracked flow; the error passes when that flow exists, its
//   verdict is allowed, and the error travels towards the quoted packet's source. Otherwise kInvalid.
// - IPv4 fragments: first-fragment tracking, no reassembly. The first fragment carries the L4 header, is tracked and
//   classified like any packet, and on an allowed verdict leaves a fragment record (vpc, src, dst, proto, IP id) with
//   the fragment timeout. Later fragments pass when their record exists and its verdict is allowed, else they are
//   kNoFirstFragment. Fragments that arrive before their first fragment are therefore dropped (the sender
//   retransmits the datagram); reassembly would cost a buffer per datagram and is not needed by guests that use PMTU
//   discovery (TCP) or small datagrams.
//
// Verdicts: an entry records, for the flow's ORIGINAL direction, whether the original sender's egress rules and the
// original receiver's ingress rules allow it (each checked by its own stage when the NIC is local). A packet in the
// original direction passes a stage when that stage's check allows it; a reply passes when every check made allows
// the flow. The entry remembers the SecurityPolicies::gen it was classified with; on a mismatch both checks are made
// again (using the ports the entry recorded), so a rule change applies to established flows at their next packet.
// An opening packet denied by the first stage that sees it creates no entry (so a NIC cannot fill the table with
// flows its own egress rules deny); one denied by the receiver's ingress leaves an entry recording the denial.
//
// Threading: pure logic over the shared ConnTable (locked per shard inside) and an immutable SecurityPolicies.
#pragma once

#include <cstdint>

#include "datapath/pipeline/packet.h"
#include "datapath/tables/conn_table.h"
#include "datapath/tables/security_groups.h"

namespace vpcd::dp {

enum class ConnState : uint8_t { kNone, kTcpSynSent, kTcpSynRecv, kTcpEstablished, kTcpClosing, kTcpTimeWait,
                                 kTcpClosed, kUdp, kUdpReplied, kIcmp, kFragment };

enum ConnFlags : uint8_t {
  kEgressChecked = 1 << 0,   // the original sender's egress rules were checked (sender local)
  kEgressAllowed = 1 << 1,
  kIngressChecked = 1 << 2,  // the original receiver's ingress rules were checked (receiver local)
  kIngressAllowed = 1 << 3,
  kLoosePickup = 1 << 4,     // created mid-stream
};

enum class CtVerdict : uint8_t {
  kAllowed,
  kDenied,            // no rule allows it (drop: denied_by_rule)
  kInvalid,           // fails the state machine or a window check, or an ICMP error about no allowed flow
  kTableFull,         // a new flow over the global or per-VPC limit
  kNoFirstFragment,   // a non-first fragment without a record of its first fragment
};

enum class CtDir : uint8_t { kEgress, kIngress };  // which stage asks: egress = from port, ingress = to port

// What the stage passes in.
struct CtRequest {
  CtDir dir = CtDir::kEgress;
  uint16_t port = 0xffff;          // the stage's NIC port (in_port for egress, out_port for ingress)
  uint16_t vpc = 0;
  uint32_t vpc_gen = 0;
  uint32_t now_s = 0;
  bool track = true;               // run the state machine (false when an earlier stage already did for this packet)
};

// Per-call observations for the caller's counters.
struct CtStats {
  uint32_t created = 0;
  uint32_t reclassified = 0;
};

// The verdict for packet p (parsed; kIsIpv4 set). Non-IPv4 packets are not handled here.
CtVerdict conntrack(ConnTable& table, const SecurityPolicies& pol, const CtRequest& req, const Packet& p,
                    CtStats* stats = nullptr) noexcept;

// The TCP fields conntrack reads, exposed for tests: seq/ack/flags/window, payload bytes, window scale option (-1 when
// absent), GSO segment size (0 = not a super-frame). False when the header cannot be read.
struct TcpSegment {
  uint32_t seq = 0, ack = 0;
  uint8_t flags = 0;
  uint16_t window = 0;
  uint32_t payload = 0;
  int wscale = -1;
  uint32_t gso_size = 0;
};
bool read_tcp_segment(const Packet& p, TcpSegment& out) noexcept;

}  // namespace vpcd::dp
