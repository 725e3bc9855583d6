// Stage "firewall-ingress"; behaviour and threading in firewall.h (the shared check is in firewall_egress.cc).
#include "datapath/stages/firewall.h"

namespace vpcd::dp {

NextSet FirewallIngressStage::process(WorkerContext& ctx, const DataplaneConfig& cfg,
                                   std::span<Packet* const> pkts) noexcept {
  const uint32_t now_s = ctx.clock_s();
  for (Packet* p : pkts) {
    const PortConfig* out = cfg.port(p->out_port);
    if (!out) [[unlikely]] {
      p->drop_with(DropReason::kPortDown);
      continue;
    }
    const DropReason r = firewall_check(cfg, *p, false, p->out_port, now_s);
    if (r != DropReason::kCount) {
      p->acct_port = p->out_port;  // an ingress denial is the receiving NIC's
      p->drop_with(r);
      continue;
    }
    p->next = next_stage(out->out_features & ~kAlwaysOnStages, Next::kFirewallIngress);
  }
  return kNextsUnknown;
}

}  // namespace vpcd::dp
