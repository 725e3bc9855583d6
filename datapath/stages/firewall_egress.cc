// Stage "firewall-egress" and the check both firewall stages share; behaviour and threading in firewall.h.
#include "datapath/stages/firewall.h"

#include "datapath/tables/conntrack.h"

namespace vpcd::dp {

DropReason firewall_check(const DataplaneConfig& cfg, Packet& p, bool egress, uint16_t port, uint32_t now_s) noexcept {
  if (!cfg.security || !cfg.conns) return DropReason::kCount;
  if (!(p.flags & kIsIpv4)) {
    const NicPolicy* np = cfg.security->port(port);
    return (p.flags & kIsIpv6) && np && !np->is_default ? DropReason::kDeniedByRule : DropReason::kCount;
  }
  const VpcConfig* vpc = cfg.vpc(p.vpc);
  if (!vpc) return DropReason::kNoVpc;
  CtRequest r;
  r.dir = egress ? CtDir::kEgress : CtDir::kIngress;
  r.port = port;
  r.vpc = p.vpc;
  r.vpc_gen = vpc->gen;
  r.now_s = now_s;
  r.track = !(p.flags & kCtTracked);
  const CtVerdict v = conntrack(*cfg.conns, *cfg.security, r, p);
  switch (v) {
    case CtVerdict::kAllowed:
      p.flags |= kCtTracked;
      return DropReason::kCount;
    case CtVerdict::kDenied: return DropReason::kDeniedByRule;
    case CtVerdict::kInvalid: return DropReason::kCtInvalid;
    case CtVerdict::kTableFull: return DropReason::kCtTableFull;
    case CtVerdict::kNoFirstFragment: return DropReason::kFragmentNoFirst;
  }
  return DropReason::kCtInvalid;
}

NextSet FirewallEgressStage::process(WorkerContext& ctx, const DataplaneConfig& cfg,
                                  std::span<Packet* const> pkts) noexcept {
  const uint32_t now_s = ctx.clock_s();
  for (Packet* p : pkts) {
    const PortConfig* in = cfg.port(p->in_port);
    if (!in) [[unlikely]] {
      p->drop_with(DropReason::kPortDown);
      continue;
    }
    const DropReason r = firewall_check(cfg, *p, true, p->in_port, now_s);
    if (r != DropReason::kCount) {
      p->drop_with(r);
      continue;
    }
    p->next = NextFor(in->features, Next::kFirewallEgress)(*p);
  }
  return kNextsUnknown;
}

}  // namespace vpcd::dp
