// The stages of the per-packet pipeline and the order the runner (pipeline.cc) runs them in: a DAG, as VPP's next
// arcs (STYLE.md section 2). Every Packet carries `next`, the stage it goes to; a stage sets a LATER stage (or kDrop)
// for each packet it processes, and the runner hands each stage exactly the packets whose next is its id.
//
//   parse -> [uplink-input] -> [port-security] -> [firewall-egress] -> arp-responder -> l2-switch -> [router]
//         -> [nat] -> [firewall-ingress] -> [vxlan-encap] -> [tcp-coalesce] -> output
//
// Stages in brackets are features: they run only for ports whose feature bitmap enables them (PortConfig::features
// for stages a packet meets as it enters from that port, PortConfig::out_features for stages it meets on its way to
// that port), like VPP's l2input feature bitmap. arp-responder, l2-switch and output are always on. A stage whose
// code is not in this build has no entry in the runner's table; nothing may send a packet to it (the runner drops
// such a packet as kNoStage).
//
// Threading: constants only.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace vpcd::dp {

#define VPCD_FOREACH_STAGE(X)                \
  X(kParse, "parse")                         \
  X(kUplinkInput, "uplink-input")            \
  X(kPortSecurity, "port-security")          \
  X(kFirewallEgress, "firewall-egress")      \
  X(kArpResponder, "arp-responder")          \
  X(kL2Switch, "l2-switch")                  \
  X(kRouter, "router")                       \
  X(kNat, "nat")                             \
  X(kFirewallIngress, "firewall-ingress")    \
  X(kVxlanEncap, "vxlan-encap")              \
  X(kTcpCoalesce, "tcp-coalesce")            \
  X(kOutput, "output")                       \
  X(kDrop, "drop")

enum class Next : uint8_t {
#define VPCD_X(sym, str) sym,
  VPCD_FOREACH_STAGE(VPCD_X)
#undef VPCD_X
      kCount
};

inline constexpr size_t kStageCount = size_t(Next::kCount);
inline constexpr std::array<std::string_view, kStageCount> kStageNames = {
#define VPCD_X(sym, str) str,
    VPCD_FOREACH_STAGE(VPCD_X)
#undef VPCD_X
};
static_assert(kStageNames.size() == kStageCount);
static_assert(kStageCount <= 32, "stage bitmaps are uint32_t");

constexpr std::string_view stage_name(Next n) noexcept { return kStageNames[size_t(n)]; }
constexpr uint32_t stage_bit(Next n) noexcept { return uint32_t(1) << unsigned(n); }

// What a stage's process() returns: the set of stages (stage_bit of each packet's `next`) it sent its packets to, so
// the runner can hand a queue whose packets all go to one stage over without reading every packet again.
// kNextsUnknown: the stage did not keep track; the runner reads every packet's `next`. A stage that returns a set
// must include every packet it was given (a packet the stage keeps, next = kCount, included); the sanitizer builds
// (VPCD_STAGE_CHECKS) check every claim.
using NextSet = uint32_t;
inline constexpr NextSet kNextsUnknown = 0;

// Stages every packet of a VPC may meet whatever its ports' bitmaps say.
inline constexpr uint32_t kAlwaysOnStages =
    stage_bit(Next::kArpResponder) | stage_bit(Next::kL2Switch) | stage_bit(Next::kOutput);

// The first stage after `after` enabled in `features` (or always on). kOutput when nothing else is.
constexpr Next next_stage(uint32_t features, Next after) noexcept {
  const uint32_t later = ~((stage_bit(after) << 1) - 1);  // bits of stages after `after`
  const uint32_t m = (features | kAlwaysOnStages) & later & ((stage_bit(Next::kOutput) << 1) - 1);
  return m ? Next(std::countr_zero(m)) : Next::kOutput;
}

// The first egress-side stage for a packet decided to go to a port with out_features (from the router onwards).
constexpr Next egress_stage(uint32_t out_features) noexcept {
  return next_stage(out_features & ~kAlwaysOnStages, Next::kRouter);
}

static_assert(next_stage(0, Next::kParse) == Next::kArpResponder);
static_assert(next_stage(stage_bit(Next::kPortSecurity), Next::kParse) == Next::kPortSecurity);
static_assert(next_stage(stage_bit(Next::kPortSecurity), Next::kPortSecurity) == Next::kArpResponder);
static_assert(next_stage(0, Next::kL2Switch) == Next::kOutput);
static_assert(egress_stage(0) == Next::kOutput);
static_assert(egress_stage(stage_bit(Next::kVxlanEncap)) == Next::kVxlanEncap);

}  // namespace vpcd::dp
