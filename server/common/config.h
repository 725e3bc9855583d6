// vpcd's configuration: built-in defaults, a `key = value` file (/etc/vpcd/vpcd.conf), and the command-line flags,
// applied in that order (flags win). The file's keys mirror the flags (`state-dir`, `listen`, ...; `_` is accepted
// for `-`). Unknown keys and bad values are errors naming file:line.
//
// Threading: plain values; parsed once at start-up on the main thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "datapath/pipeline/worker_poll.h"
#include "datapath/tables/conn_table.h"

namespace vpcd {

struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Config {
  std::string state_dir = "./state";
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 8443;
  unsigned workers = 0;        // datapath workers; 0 = cores - 1, at least 1
  // Worker i pinned to CPU worker_cpus[i] ("2,3", "2-5"); one worker per CPU listed. Empty = not pinned.
  std::vector<unsigned> worker_cpus;
  unsigned http_threads = 2;   // Beast io threads
  std::string web_root;        // "" = the built-in default (source tree in a dev build, /usr/share/vpcd/web)
  std::string migrations_dir;  // "" = the built-in default
  bool tls = true;
  std::string tls_cert;  // "" = STATE_DIR/tls/cert.pem (self-signed, generated when absent)
  std::string tls_key;   // "" = STATE_DIR/tls/key.pem
  size_t body_limit_bytes = 1 << 20;
  double rate_limit = 1000;   // requests per second per client address; 0 = off
  unsigned rate_burst = 2000;
  unsigned max_connections = 1024;           // HTTP connections in all
  unsigned max_connections_per_client = 128; // per client address (IPv6: per /64); 0 = no per-client cap
  unsigned admin_reserved_connections = 32;  // of max_connections, kept for admin requests; < max_connections
  unsigned max_vpcs = 4096;  // 0 = unlimited (the datapath's own bound is 65535)
  unsigned max_nics = 128;   // 0 = unlimited; each NIC pins RX ring memory per queue and TX ring memory per worker
  std::string log_level = "info";  // debug | info | warn | error
  // Datapath (see dp::Options): busy polling, ring layout and ring sizes per interface role.
  dp::BusyPoll busy_poll = dp::BusyPoll::kOff;  // off | on | adaptive (datapath/pipeline/worker_poll.h)
  // adaptive: how long (microseconds) a worker keeps polling after the last frame. Unset = dp::kDefaultBusyPollUs;
  // set while busy-poll is not adaptive, config_check refuses it (it would be ignored).
  std::optional<uint32_t> busy_poll_us;
  std::string rx_ring = "v2";  // v2 (a frame per slot, handed over at once) | v3 (blocks, 1 ms retire timer)
  uint32_t guest_rx_frames = 512;
  uint32_t guest_tx_frames = 256;
  uint32_t uplink_rx_frames = 4096;
  uint32_t uplink_tx_frames = 1024;
  uint32_t uplink_tx_big_frames = 0;  // dp::Options::Rings::tx_big_frames (USO frames); 0 = no big TX ring
  uint32_t guest_rx_queue_bytes = 8u << 20;   // dp::Options::Rings::rx_queue_bytes
  uint32_t uplink_rx_queue_bytes = 16u << 20;
  uint32_t rx_frame_bytes = 2048;
  uint32_t tx_frame_bytes = 2048;
  unsigned netns_queues = 1;  // RX queues per netns NIC (fanout over workers); 0 = one per worker
  bool guest_threaded_napi = false;  // GRO + threaded NAPI on netns NICs' guest ends (dp::Options)
  bool kernel_fastpath = true;       // BPF forwarding between netns/tap NICs (dp::Options::kernel_fastpath)
  unsigned ring_pool_nics = 2;  // NICs' worth of AF_PACKET sockets kept ready with rings (dp::Options); 0 = no pool
  uint16_t vxlan_port = 4789;      // UDP port of VXLAN on the underlay uplink (RFC 7348; Linux's old default was 8472)
  bool vxlan_uso = true;           // GSO super-frames to tunnels as UDP segmentation offload frames (dp::Options)
  // Connection tracking (security groups): conntrack-max, conntrack-max-per-vpc, conntrack-loose-pickup and
  // conntrack-timeout-CLASS (seconds; CLASS from kTimeoutClassNames: tcp-syn, tcp-established, ...).
  dp::ConnTableOptions conntrack;
  // ICMP errors the router sends, per worker: rate (per second) and burst.
  uint32_t icmp_error_rate = 100;
  uint32_t icmp_error_burst = 50;
  // Existing network namespaces vpcd did not create that netns NICs may use: fnmatch patterns ("cni-*"), separated by
  // commas or spaces in the file. Empty (the default): a netns NIC may only name a namespace vpcd creates.
  std::vector<std::string> netns_allow;
};

// Sets one key from its text value. `where` ("FILE:LINE" or "--flag") prefixes the error message.
void config_set(Config& cfg, std::string_view key, std::string_view value, std::string_view where);

// Applies every `key = value` line of `text` to `cfg`. Blank lines and lines starting with '#' are skipped; a value
// may be wrapped in double quotes; a '#' after whitespace starts a trailing comment. `file_name` names errors.
void config_parse(Config& cfg, std::string_view text, std::string_view file_name);

// Checks what no single key can: admin-reserved-connections < max-connections; busy-poll-us only with
// busy-poll = adaptive; workers (when set) equal to the number of worker-cpus. Throws ConfigError.
void config_check(const Config& cfg);

// Reads and parses a file; a file that cannot be read is a ConfigError naming it.
void config_load_file(Config& cfg, const std::string& path);

// "HOST:PORT", "[V6]:PORT" or ":PORT" (host unchanged). Throws ConfigError.
void config_parse_listen(Config& cfg, std::string_view value, std::string_view where);

}  // namespace vpcd
