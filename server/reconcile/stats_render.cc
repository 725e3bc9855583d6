// See stats_render.h.
//
// Threading: pure functions.
#include "server/reconcile/stats_render.h"

#include <nlohmann/json.hpp>
#include <type_traits>

#include "datapath/pipeline/stage.h"

namespace vpcd::reconcile {
namespace {

nlohmann::json counters_json(const dp::PortCounters& c) {
  nlohmann::json drops = nlohmann::json::object();
  for (size_t i = 0; i < c.drops.size(); ++i) {
    if (c.drops[i] != 0) drops[std::string(dp::kDropReasonNames[i])] = c.drops[i];
  }
  return {{"rx_packets", c.rx_packets}, {"rx_bytes", c.rx_bytes}, {"tx_packets", c.tx_packets},
          {"tx_bytes", c.tx_bytes},     {"drops", std::move(drops)}};
}

// Label values: escape backslash, double quote and newline (exposition format).
std::string label(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void family(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

void sample(std::string& out, std::string_view name, std::string_view labels, uint64_t v) {
  out.append(name);
  if (!labels.empty()) out.append("{").append(labels).append("}");
  out.append(" ").append(std::to_string(v)).append("\n");
}

}  // namespace

std::string nic_stats_json(const dp::PortCounters& c) { return counters_json(c).dump(); }

std::optional<std::string> nic_stats_json(const dp::Stats& s, const std::string& nic_id) {
  auto it = s.nics.find(nic_id);
  if (it == s.nics.end()) return std::nullopt;
  return nic_stats_json(it->second);
}

// {"active", "started", "frames_captured", "frames_dropped", "frames_filtered", "sessions": [{"id", "object",
// "filter", "frames", "dropped"}]}: dropped = frames a full capture ring refused (forwarding went on).
static nlohmann::json capture_json(const dp::CaptureStats& c) {
  nlohmann::json sessions = nlohmann::json::array();
  for (const auto& i : c.sessions)
    sessions.push_back(
        {{"id", i.id}, {"object", i.object_id}, {"filter", i.filter}, {"frames", i.frames}, {"dropped", i.dropped}});
  return {{"active", c.active},
          {"started", c.started},
          {"frames_captured", c.frames_captured},
          {"frames_dropped", c.frames_dropped},
          {"frames_filtered", c.frames_filtered},
          {"sessions", std::move(sessions)}};
}

std::string stats_json(const dp::Stats& s, const ReconcilerStats& r) {
  nlohmann::json nics = nlohmann::json::object();
  for (const auto& [id, c] : s.nics) nics[id] = counters_json(c);
  nlohmann::json workers = nlohmann::json::array();
  for (const auto& w : s.workers) {
    nlohmann::json stages = nlohmann::json::object();
    for (size_t i = 0; i < w.stage_packets.size() && i < dp::kStageCount; ++i)
      if (w.stage_packets[i]) stages[std::string(dp::stage_name(dp::Next(i)))] = w.stage_packets[i];
    workers.push_back({{"batches", w.batches},
                       {"packets", w.packets},
                       {"wakeups", w.wakeups},
                       {"empty_polls", w.empty_polls},
                       {"spin_starts", w.spin_starts},
                       {"spin_stops", w.spin_stops},
                       {"cpu", w.cpu < 0 ? nlohmann::json(nullptr) : nlohmann::json(w.cpu)},
                       {"snapshot_generation", w.snapshot_generation},
                       {"icmp_rate_limited", w.icmp_rate_limited},
                       {"pool_exhausted", w.pool_exhausted},
                       {"tcp_coalesced_frames", w.tcp_coalesced_frames},
                       {"tcp_coalesced_segments", w.tcp_coalesced_segments},
                       {"vxlan_uso_rx_frames", w.vxlan_uso_rx_frames},
                       {"vxlan_uso_rx_segments", w.vxlan_uso_rx_segments},
                       {"vxlan_uso_tx_superframes", w.vxlan_uso_tx_superframes},
                       {"vxlan_uso_tx_frames", w.vxlan_uso_tx_frames},
                       {"vxlan_uso_tx_segments", w.vxlan_uso_tx_segments},
                       {"vxlan_uso_tx_fallbacks", w.vxlan_uso_tx_fallbacks},
                       {"stage_packets", std::move(stages)}});
  }
  nlohmann::json uplinks = nlohmann::json::object();
  for (const auto& [id, c] : s.uplinks) uplinks[id] = counters_json(c);
  // Per remote VTEP of a VPC, keyed "VPC id/underlay IP" (the tunnel pseudo-port's counters: rx = decapsulated
  // from it, tx = encapsulated to it, drops charged to it).
  nlohmann::json tunnels = nlohmann::json::object();
  for (const auto& [key, c] : s.tunnels) {
    nlohmann::json t = counters_json(c);
    const auto slash = key.rfind('/');
    t["vpc_id"] = key.substr(0, slash);
    t["remote_ip"] = slash == std::string::npos ? "" : key.substr(slash + 1);
    tunnels[key] = std::move(t);
  }
  nlohmann::json j = {
      {"totals", counters_json(s.totals)},
      {"nics", std::move(nics)},
      {"uplinks", std::move(uplinks)},
      {"tunnels", std::move(tunnels)},
      {"workers", std::move(workers)},
      {"snapshot_generation", s.snapshot_generation},
      {"capture", capture_json(s.capture)},
      {"fastpath",
       {{"enabled", s.fastpath.enabled}, {"error", s.fastpath.error}, {"ports", s.fastpath.ports}}},
      {"reconciler",
       {{"passes", r.passes},
        {"failed_passes", r.failed_passes},
        {"notifications", r.notifications},
        {"state_writes", r.state_writes},
        {"last_pass_us", r.last_pass_us},
        {"max_pass_us", r.max_pass_us},
        {"last_notify_to_applied_us", r.last_notify_to_applied_us},
        {"max_notify_to_applied_us", r.max_notify_to_applied_us},
        {"last_error", r.last_error}}},
  };
  return j.dump();
}

std::string metrics_text(const dp::Stats& s, const ReconcilerStats& r) {
  std::string out;
  struct Field {
    const char* name;
    uint64_t dp::PortCounters::*member;
    const char* help;
  };
  static constexpr Field kFields[] = {
      {"rx_packets_total", &dp::PortCounters::rx_packets, "Frames received from the NIC's guest."},
      {"rx_bytes_total", &dp::PortCounters::rx_bytes, "Bytes received from the NIC's guest."},
      {"tx_packets_total", &dp::PortCounters::tx_packets, "Frames sent to the NIC's guest."},
      {"tx_bytes_total", &dp::PortCounters::tx_bytes, "Bytes sent to the NIC's guest."},
  };
  for (const auto& f : kFields) {
    const std::string name = std::string("vpcd_nic_") + f.name;
    family(out, name, "counter", f.help);
    for (const auto& [id, c] : s.nics) sample(out, name, "nic=\"" + label(id) + "\"", c.*f.member);
  }
  family(out, "vpcd_nic_drops_total", "counter", "Frames dropped, by NIC and reason.");
  for (const auto& [id, c] : s.nics) {
    for (size_t i = 0; i < c.drops.size(); ++i) {
      if (c.drops[i] == 0) continue;
      sample(out, "vpcd_nic_drops_total",
             "nic=\"" + label(id) + "\",reason=\"" + std::string(dp::kDropReasonNames[i]) + "\"", c.drops[i]);
    }
  }
  // Uplinks and per-VTEP (tunnel) counters.
  for (const auto& f : kFields) {
    const std::string name = std::string("vpcd_uplink_") + f.name;
    family(out, name, "counter", std::string(f.help).replace(std::string(f.help).find("the NIC's guest"), 15, "the uplink"));
    for (const auto& [id, c] : s.uplinks) sample(out, name, "uplink=\"" + label(id) + "\"", c.*f.member);
  }
  family(out, "vpcd_uplink_drops_total", "counter", "Frames dropped on an uplink, by reason.");
  for (const auto& [id, c] : s.uplinks)
    for (size_t i = 0; i < c.drops.size(); ++i)
      if (c.drops[i] != 0)
        sample(out, "vpcd_uplink_drops_total",
               "uplink=\"" + label(id) + "\",reason=\"" + std::string(dp::kDropReasonNames[i]) + "\"", c.drops[i]);
  for (const auto& f : kFields) {
    const std::string name = std::string("vpcd_vtep_") + f.name;
    family(out, name, "counter", std::string(f.help).replace(std::string(f.help).find("the NIC's guest"), 15, "a remote VTEP of a VPC"));
    for (const auto& [key, c] : s.tunnels) {
      const auto slash = key.rfind('/');
      sample(out, name, "vpc=\"" + label(key.substr(0, slash)) + "\",vtep=\"" +
                            label(slash == std::string::npos ? "" : key.substr(slash + 1)) + "\"", c.*f.member);
    }
  }
  family(out, "vpcd_vtep_drops_total", "counter", "Frames dropped on their way to or from a remote VTEP, by reason.");
  for (const auto& [key, c] : s.tunnels) {
    const auto slash = key.rfind('/');
    for (size_t i = 0; i < c.drops.size(); ++i)
      if (c.drops[i] != 0)
        sample(out, "vpcd_vtep_drops_total",
               "vpc=\"" + label(key.substr(0, slash)) + "\",vtep=\"" +
                   label(slash == std::string::npos ? "" : key.substr(slash + 1)) + "\",reason=\"" +
                   std::string(dp::kDropReasonNames[i]) + "\"", c.drops[i]);
  }
  for (const auto& f : kFields) {
    const std::string name = std::string("vpcd_") + f.name;
    family(out, name, "counter", std::string(f.help) + " All ports, including removed ones.");
    sample(out, name, "", s.totals.*f.member);
  }
  family(out, "vpcd_drops_total", "counter", "Frames dropped on all ports, by reason.");
  for (size_t i = 0; i < s.totals.drops.size(); ++i) {
    sample(out, "vpcd_drops_total", "reason=\"" + std::string(dp::kDropReasonNames[i]) + "\"", s.totals.drops[i]);
  }
  // One counter family per datapath worker field, a sample per worker.
  using W = std::decay_t<decltype(s.workers[0])>;
  const auto per_worker = [&](const std::string& name, const std::string& help, auto member) {
    family(out, name, "counter", help);
    for (size_t i = 0; i < s.workers.size(); ++i)
      sample(out, name, "worker=\"" + std::to_string(i) + "\"", s.workers[i].*member);
  };
  per_worker("vpcd_worker_packets_total",
             "Frames processed by each datapath worker.",
             &W::packets);
  per_worker("vpcd_worker_batches_total",
             "Batches processed by each datapath worker.",
             &W::batches);
  per_worker("vpcd_worker_wakeups_total",
             "Times each datapath worker woke from its poll.",
             &W::wakeups);
  per_worker("vpcd_worker_empty_polls_total",
             "Loop turns in which each datapath worker polled without sleeping (busy-poll on, or adaptive after "
             "frames) and received no frame.",
             &W::empty_polls);
  per_worker("vpcd_worker_spin_starts_total",
             "Times each datapath worker went from sleeping in epoll to polling without sleeping after it received "
             "frames (busy-poll = adaptive).",
             &W::spin_starts);
  per_worker("vpcd_worker_spin_stops_total",
             "Times each datapath worker went back to sleeping in epoll once busy-poll-us passed without a frame "
             "(busy-poll = adaptive).",
             &W::spin_stops);
  per_worker("vpcd_worker_icmp_rate_limited_total",
             "ICMP errors the router of each datapath worker did not send: over that worker's rate limit "
             "(icmp-error-rate, icmp-error-burst).",
             &W::icmp_rate_limited);
  per_worker("vpcd_worker_pool_exhausted_total",
             "Frames a stage of each datapath worker could not generate or keep: that worker's packet pool was empty.",
             &W::pool_exhausted);
  per_worker("vpcd_worker_tcp_coalesced_frames_total",
             "GSO super-frames the tcp-coalesce stage of each datapath worker built for guests (software GRO).",
             &W::tcp_coalesced_frames);
  per_worker("vpcd_worker_tcp_coalesced_segments_total",
             "TCP segments the tcp-coalesce stage of each datapath worker joined into super-frames.",
             &W::tcp_coalesced_segments);
  per_worker("vpcd_worker_vxlan_uso_rx_frames_total",
             "UDP GSO super-frames the uplink-input stage of each datapath worker received and split into VXLAN datagrams.",
             &W::vxlan_uso_rx_frames);
  per_worker("vpcd_worker_vxlan_uso_rx_segments_total",
             "VXLAN datagrams the uplink-input stage of each datapath worker took out of UDP GSO super-frames.",
             &W::vxlan_uso_rx_segments);
  per_worker("vpcd_worker_vxlan_uso_tx_superframes_total",
             "Guest GSO super-frames each datapath worker sent to tunnels as UDP segmentation offload frames (vxlan-uso).",
             &W::vxlan_uso_tx_superframes);
  per_worker("vpcd_worker_vxlan_uso_tx_frames_total",
             "UDP segmentation offload frames each datapath worker handed to the underlay uplink.",
             &W::vxlan_uso_tx_frames);
  per_worker("vpcd_worker_vxlan_uso_tx_segments_total",
             "VXLAN datagrams in the UDP segmentation offload frames each datapath worker sent.",
             &W::vxlan_uso_tx_segments);
  per_worker("vpcd_worker_vxlan_uso_tx_fallbacks_total",
             "Guest GSO super-frames each datapath worker sent to tunnels one frame per segment although vxlan-uso is on "
             "(they did not fit its limits).",
             &W::vxlan_uso_tx_fallbacks);
  family(out, "vpcd_stage_packets_total", "counter", "Packets each pipeline stage of each datapath worker processed.");
  for (size_t i = 0; i < s.workers.size(); ++i) {
    const auto& st = s.workers[i].stage_packets;
    for (size_t k = 0; k < st.size() && k < dp::kStageCount; ++k)
      sample(out, "vpcd_stage_packets_total",
             "worker=\"" + std::to_string(i) + "\",stage=\"" + std::string(dp::stage_name(dp::Next(k))) + "\"", st[k]);
  }
  family(out, "vpcd_capture_sessions", "gauge", "Packet capture sessions running.");
  sample(out, "vpcd_capture_sessions", "", s.capture.active);
  family(out, "vpcd_capture_frames_total", "counter", "Frames written to packet capture files.");
  sample(out, "vpcd_capture_frames_total", "", s.capture.frames_captured);
  family(out, "vpcd_capture_dropped_total", "counter",
         "Frames a packet capture could not keep (its ring was full); forwarding is not affected.");
  sample(out, "vpcd_capture_dropped_total", "", s.capture.frames_dropped);
  family(out, "vpcd_snapshot_generation", "gauge", "Generation of the datapath's published config snapshot.");
  sample(out, "vpcd_snapshot_generation", "", s.snapshot_generation);
  family(out, "vpcd_reconcile_passes_total", "counter", "Completed reconciler passes.");
  sample(out, "vpcd_reconcile_passes_total", "", r.passes);
  family(out, "vpcd_reconcile_failed_passes_total", "counter", "Reconciler passes that failed and were retried.");
  sample(out, "vpcd_reconcile_failed_passes_total", "", r.failed_passes);
  family(out, "vpcd_reconcile_last_pass_microseconds", "gauge", "Duration of the last reconciler pass.");
  sample(out, "vpcd_reconcile_last_pass_microseconds", "", r.last_pass_us);
  family(out, "vpcd_reconcile_max_notify_to_applied_microseconds", "gauge",
         "Longest time from a committed API write to the datapath applying it.");
  sample(out, "vpcd_reconcile_max_notify_to_applied_microseconds", "", r.max_notify_to_applied_us);
  return out;
}

}  // namespace vpcd::reconcile
