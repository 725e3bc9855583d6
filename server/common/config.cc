// Parsing of vpcd.conf and of the flag values that share its syntax. See config.h.
//
// Threading: pure functions on the caller's Config.
#include "server/common/config.h"

#include <charconv>
#include <fstream>
#include <limits>
#include <sstream>

#include "datapath/pipeline/counters.h"

namespace vpcd {
namespace {

std::string_view trim(std::string_view s) {
  const auto ws = " \t\r\n";
  auto b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  auto e = s.find_last_not_of(ws);
  return s.substr(b, e - b + 1);
}

[[noreturn]] void fail(std::string_view where, std::string_view msg) {
  throw ConfigError(std::string(where) + ": " + std::string(msg));
}

template <class T>
T parse_uint(std::string_view key, std::string_view v, T min, T max, std::string_view where) {
  uint64_t n = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (v.empty() || ec != std::errc() || p != v.data() + v.size() || n < uint64_t(min) || n > uint64_t(max)) {
    fail(where, std::string(key) + ": expected an integer in " + std::to_string(uint64_t(min)) + ".." +
                    std::to_string(uint64_t(max)) + ", got \"" + std::string(v) + "\"");
  }
  return T(n);
}

bool parse_bool(std::string_view key, std::string_view v, std::string_view where) {
  if (v == "on" || v == "true" || v == "yes" || v == "1") return true;
  if (v == "off" || v == "false" || v == "no" || v == "0") return false;
  fail(where, std::string(key) + ": expected on|off|true|false|yes|no, got \"" + std::string(v) + "\"");
}

constexpr size_t kMinRxQueueBytes = 128u << 10;

// Bytes with an optional K/M/G (binary) suffix, at most 1 GiB.
size_t parse_size(std::string_view key, std::string_view v, std::string_view where) {
  uint64_t mult = 1;
  std::string_view digits = v;
  if (!v.empty()) {
    switch (v.back()) {
      case 'k': case 'K': mult = 1ull << 10; break;
      case 'm': case 'M': mult = 1ull << 20; break;
      case 'g': case 'G': mult = 1ull << 30; break;
      default: break;
    }
    if (mult != 1) digits.remove_suffix(1);
  }
  const uint64_t max = (1ull << 30) / mult;  // body limits above 1 GiB make no sense for a JSON API
  return size_t(parse_uint<uint64_t>(key, digits, 1, max, where) * mult);
}

double parse_rate(std::string_view key, std::string_view v, std::string_view where) {
  double d = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), d);
  if (v.empty() || ec != std::errc() || p != v.data() + v.size() || !(d >= 0) || d > 1e9) {
    fail(where, std::string(key) + ": expected a number of requests per second >= 0, got \"" + std::string(v) + "\"");
  }
  return d;
}

std::string non_empty(std::string_view key, std::string_view v, std::string_view where) {
  if (v.empty()) fail(where, std::string(key) + ": empty value");
  return std::string(v);
}

// "a, b c" -> {"a", "b", "c"}: namespace name patterns (no '/', at most 255 bytes each).
std::vector<std::string> parse_patterns(std::string_view key, std::string_view v, std::string_view where) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < v.size()) {
    while (i < v.size() && (v[i] == ',' || v[i] == ' ' || v[i] == '\t')) ++i;
    size_t j = i;
    while (j < v.size() && v[j] != ',' && v[j] != ' ' && v[j] != '\t') ++j;
    if (j > i) {
      std::string_view pat = v.substr(i, j - i);
      if (pat.find('/') != std::string_view::npos || pat.size() > 255 || pat == "." || pat == "..") {
        fail(where, std::string(key) + ": \"" + std::string(pat) + "\" is not a namespace name pattern");
      }
      out.emplace_back(pat);
    }
    i = j;
  }
  return out;
}

// "2", "2,3", "0-3", "0,2-3 5": CPU numbers and inclusive ranges, separated by commas or spaces; none twice. Empty:
// not pinned (the documented default; lets a flag undo the file's setting).
std::vector<unsigned> parse_cpu_list(std::string_view key, std::string_view v, std::string_view where) {
  constexpr unsigned kMaxCpu = 1023;  // CPU_SETSIZE - 1
  std::vector<unsigned> out;
  auto number = [&](std::string_view t) { return parse_uint<unsigned>(key, t, 0, kMaxCpu, where); };
  size_t i = 0;
  while (i < v.size()) {
    while (i < v.size() && (v[i] == ',' || v[i] == ' ' || v[i] == '\t')) ++i;
    size_t j = i;
    while (j < v.size() && v[j] != ',' && v[j] != ' ' && v[j] != '\t') ++j;
    if (j == i) break;
    std::string_view item = v.substr(i, j - i);
    if (item.front() == '-' || item.back() == '-') {
      fail(where, std::string(key) + ": expected CPU numbers or ranges (\"2,3\", \"2-5\"), got \"" +
                      std::string(item) + "\"");
    }
    const size_t dash = item.find('-');
    const unsigned lo = number(item.substr(0, dash));
    const unsigned hi = dash == std::string_view::npos ? lo : number(item.substr(dash + 1));
    if (hi < lo) fail(where, std::string(key) + ": range \"" + std::string(item) + "\" runs backwards");
    for (unsigned c = lo; c <= hi; ++c) {
      for (unsigned seen : out) {
        if (seen == c) fail(where, std::string(key) + ": CPU " + std::to_string(c) + " is listed twice");
      }
      if (out.size() >= dp::kMaxWorkers) {
        fail(where, std::string(key) + ": more than " + std::to_string(dp::kMaxWorkers) +
                        " CPUs (one worker each, at most " + std::to_string(dp::kMaxWorkers) + " workers)");
      }
      out.push_back(c);
    }
    i = j;
  }
  return out;
}

}  // namespace

void config_parse_listen(Config& cfg, std::string_view v, std::string_view where) {
  auto colon = v.rfind(':');
  if (colon == std::string_view::npos) fail(where, "listen: expected HOST:PORT, got \"" + std::string(v) + "\"");
  std::string_view host = v.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    fail(where, "listen: write an IPv6 address as [ADDR]:PORT");
  }
  auto port = parse_uint<uint16_t>("listen port", v.substr(colon + 1), 0, 65535, where);
  if (!host.empty()) cfg.listen_host = std::string(host);
  cfg.listen_port = port;
}

void config_set(Config& cfg, std::string_view key_in, std::string_view v, std::string_view where) {
  std::string key(key_in);
  for (auto& c : key) {
    if (c == '_') c = '-';
  }
  if (key == "state-dir") {
    cfg.state_dir = non_empty(key, v, where);
  } else if (key == "listen") {
    config_parse_listen(cfg, v, where);
  } else if (key == "workers") {
    cfg.workers = parse_uint<unsigned>(key, v, 0, dp::kMaxWorkers, where);  // not silently clamped
  } else if (key == "worker-cpus") {
    cfg.worker_cpus = parse_cpu_list(key, v, where);
  } else if (key == "http-threads") {
    cfg.http_threads = parse_uint<unsigned>(key, v, 1, 64, where);
  } else if (key == "web-root") {
    cfg.web_root = non_empty(key, v, where);
  } else if (key == "migrations") {
    cfg.migrations_dir = non_empty(key, v, where);
  } else if (key == "tls") {
    cfg.tls = parse_bool(key, v, where);
  } else if (key == "tls-cert") {
    cfg.tls_cert = non_empty(key, v, where);
  } else if (key == "tls-key") {
    cfg.tls_key = non_empty(key, v, where);
  } else if (key == "body-limit") {
    cfg.body_limit_bytes = parse_size(key, v, where);
  } else if (key == "rate-limit") {
    cfg.rate_limit = parse_rate(key, v, where);
  } else if (key == "rate-burst") {
    cfg.rate_burst = parse_uint<unsigned>(key, v, 1, 1000000, where);
  } else if (key == "busy-poll") {
    const auto mode = dp::parse_busy_poll(v);
    if (!mode) fail(where, "busy-poll: expected off|on|adaptive, got \"" + std::string(v) + "\"");
    cfg.busy_poll = *mode;
  } else if (key == "busy-poll-us") {
    cfg.busy_poll_us = parse_uint<uint32_t>(key, v, 1, dp::kMaxBusyPollUs, where);
  } else if (key == "rx-ring") {
    if (v != "v2" && v != "v3") fail(where, "rx-ring: expected v2|v3, got \"" + std::string(v) + "\"");
    cfg.rx_ring = std::string(v);
  } else if (key == "guest-rx-frames") {
    cfg.guest_rx_frames = parse_uint<uint32_t>(key, v, 16, 1u << 20, where);
  } else if (key == "guest-tx-frames") {
    cfg.guest_tx_frames = parse_uint<uint32_t>(key, v, 16, 65536, where);
  } else if (key == "uplink-rx-frames") {
    cfg.uplink_rx_frames = parse_uint<uint32_t>(key, v, 16, 1u << 20, where);
  } else if (key == "uplink-tx-frames") {
    cfg.uplink_tx_frames = parse_uint<uint32_t>(key, v, 16, 65536, where);
  } else if (key == "uplink-tx-big-frames") {
    cfg.uplink_tx_big_frames = parse_uint<uint32_t>(key, v, 0, 4096, where);
  } else if (key == "guest-rx-queue-bytes" || key == "uplink-rx-queue-bytes") {
    const size_t b = parse_size(key, v, where);
    if (b < kMinRxQueueBytes) {
      fail(where, std::string(key) + ": expected at least 128K (one queued 64 KiB super-frame), got \"" +
                      std::string(v) + "\"");
    }
    (key == "guest-rx-queue-bytes" ? cfg.guest_rx_queue_bytes : cfg.uplink_rx_queue_bytes) = uint32_t(b);
  } else if (key == "netns-queues") {
    cfg.netns_queues = parse_uint<unsigned>(key, v, 0, 64, where);
  } else if (key == "guest-threaded-napi") {
    cfg.guest_threaded_napi = parse_bool(key, v, where);
  } else if (key == "kernel-fastpath") {
    cfg.kernel_fastpath = parse_bool(key, v, where);
  } else if (key == "ring-pool-nics") {
    cfg.ring_pool_nics = parse_uint<unsigned>(key, v, 0, 64, where);
  } else if (key == "rx-frame-bytes" || key == "tx-frame-bytes") {
    const uint32_t b = parse_uint<uint32_t>(key, v, 256, 1u << 20, where);
    if (b % 16 != 0) fail(where, std::string(key) + ": expected a multiple of 16, got \"" + std::string(v) + "\"");
    (key == "rx-frame-bytes" ? cfg.rx_frame_bytes : cfg.tx_frame_bytes) = b;
  } else if (key == "max-connections") {
    cfg.max_connections = parse_uint<unsigned>(key, v, 1, 1000000, where);
  } else if (key == "max-connections-per-client") {
    cfg.max_connections_per_client = parse_uint<unsigned>(key, v, 0, 1000000, where);
  } else if (key == "admin-reserved-connections") {
    cfg.admin_reserved_connections = parse_uint<unsigned>(key, v, 0, 1000000, where);
  } else if (key == "max-vpcs") {
    cfg.max_vpcs = parse_uint<unsigned>(key, v, 0, 65535, where);
  } else if (key == "max-nics") {
    cfg.max_nics = parse_uint<unsigned>(key, v, 0, 1000000, where);
  } else if (key == "netns-allow") {
    cfg.netns_allow = parse_patterns(key, v, where);
  } else if (key == "vxlan-port") {
    cfg.vxlan_port = parse_uint<uint16_t>(key, v, 1, 65535, where);
  } else if (key == "vxlan-uso") {
    cfg.vxlan_uso = parse_bool(key, v, where);
  } else if (key == "log-level") {
    if (v != "debug" && v != "info" && v != "warn" && v != "error") {
      fail(where, "log-level: expected debug|info|warn|error, got \"" + std::string(v) + "\"");
    }
    cfg.log_level = std::string(v);
  } else if (key == "conntrack-max") {
    cfg.conntrack.max_conns = parse_uint<uint32_t>(key, v, 1, 1u << 26, where);
  } else if (key == "conntrack-max-per-vpc") {
    cfg.conntrack.max_conns_per_vpc = parse_uint<uint32_t>(key, v, 1, 1u << 26, where);
  } else if (key == "conntrack-loose-pickup") {
    cfg.conntrack.loose_pickup = parse_bool(key, v, where);
  } else if (key.starts_with("conntrack-timeout-")) {
    const std::string_view cls = std::string_view(key).substr(18);
    size_t i = 0;
    while (i < dp::kTimeoutClassNames.size() && dp::kTimeoutClassNames[i] != cls) ++i;
    if (i == dp::kTimeoutClassNames.size()) fail(where, "unknown key \"" + std::string(key_in) + "\"");
    cfg.conntrack.timeout_s[i] = parse_uint<uint32_t>(key, v, 1, 30 * 86400, where);
  } else if (key == "icmp-error-rate") {
    cfg.icmp_error_rate = parse_uint<uint32_t>(key, v, 1, 1000000, where);
  } else if (key == "icmp-error-burst") {
    cfg.icmp_error_burst = parse_uint<uint32_t>(key, v, 1, 1000000, where);
  } else {
    fail(where, "unknown key \"" + std::string(key_in) + "\"");
  }
}

void config_parse(Config& cfg, std::string_view text, std::string_view file_name) {
  size_t line_no = 0;
  while (!text.empty()) {
    auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    ++line_no;
    const std::string where = std::string(file_name) + ":" + std::to_string(line_no);
    line = trim(line);
    if (line.empty() || line.front() == '#') continue;
    auto eq = line.find('=');
    if (eq == std::string_view::npos) fail(where, "expected key = value, got \"" + std::string(line) + "\"");
    std::string_view key = trim(line.substr(0, eq));
    std::string_view value = trim(line.substr(eq + 1));
    if (key.empty()) fail(where, "missing key before '='");
    if (!value.empty() && value.front() == '"') {
      auto close = value.find('"', 1);
      if (close == std::string_view::npos) fail(where, "unterminated quoted value");
      auto rest = trim(value.substr(close + 1));
      if (!rest.empty() && rest.front() != '#') fail(where, "unexpected text after the quoted value");
      value = value.substr(1, close - 1);
    } else {
      for (size_t i = 1; i < value.size(); ++i) {
        if (value[i] == '#' && (value[i - 1] == ' ' || value[i - 1] == '\t')) {
          value = trim(value.substr(0, i));
          break;
        }
      }
    }
    config_set(cfg, key, value, where);
  }
}

void config_check(const Config& cfg) {
  if (cfg.admin_reserved_connections >= cfg.max_connections) {
    throw ConfigError("admin-reserved-connections (" + std::to_string(cfg.admin_reserved_connections) +
                      ") must be smaller than max-connections (" + std::to_string(cfg.max_connections) + ")");
  }
  if (!cfg.worker_cpus.empty() && cfg.workers != 0 && cfg.workers != cfg.worker_cpus.size()) {
    throw ConfigError("workers (" + std::to_string(cfg.workers) + ") and worker-cpus (" +
                      std::to_string(cfg.worker_cpus.size()) +
                      " CPUs) disagree: vpcd runs one worker per CPU listed (leave workers unset)");
  }
  if (cfg.busy_poll_us && cfg.busy_poll != dp::BusyPoll::kAdaptive) {
    throw ConfigError("busy-poll-us (" + std::to_string(*cfg.busy_poll_us) +
                      ") applies only to busy-poll = adaptive, but busy-poll is " +
                      std::string(dp::busy_poll_name(cfg.busy_poll)));
  }
}

void config_load_file(Config& cfg, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path + ": cannot read the config file");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw ConfigError(path + ": read error");
  config_parse(cfg, ss.str(), path);
}

}  // namespace vpcd
