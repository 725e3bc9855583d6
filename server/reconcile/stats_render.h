// Renders the datapath's counters (dp::Stats) and the reconciler's for the REST API: GET /v1/stats (JSON),
// GET /v1/nics/ID/stats (JSON) and GET /metrics (Prometheus text exposition format 0.0.4).
//
// Threading: pure functions of their arguments.
#pragma once

#include <optional>
#include <string>

#include "datapath/controller.h"
#include "server/reconcile/reconciler.h"

namespace vpcd::reconcile {

// {"rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "drops": {"REASON": N, ...}} (only non-zero drop reasons).
std::string nic_stats_json(const dp::PortCounters& c);
// nullopt when the datapath has no port for this NIC (not applied yet, or removed).
std::optional<std::string> nic_stats_json(const dp::Stats& s, const std::string& nic_id);
// {"totals": {...}, "nics": {"ID": {...}}, "workers": [...], "snapshot_generation", "reconciler": {...}}
std::string stats_json(const dp::Stats& s, const ReconcilerStats& r);
// vpcd_nic_rx_packets_total{nic="ID"} ... , vpcd_nic_drops_total{nic="ID",reason="R"}, vpcd_worker_*, vpcd_reconcile_*.
std::string metrics_text(const dp::Stats& s, const ReconcilerStats& r);

}  // namespace vpcd::reconcile
