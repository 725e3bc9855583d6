// Unit tests for vpcd.conf parsing (server/common/config).
#include "server/common/config.h"

#include "datapath/controller.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <utility>

#include <unistd.h>

namespace vpcd {
namespace {

// The message of the ConfigError that one vpcd.conf line gets; a test failure (and "") when the line is accepted.
std::string refusal_of(const std::string& line) {
  Config bad;
  try {
    config_parse(bad, line, "vpcd.conf");
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "accepted: " << line;
  return "";
}

TEST(Config, DefaultsAreTheDevRun) {
  Config c;
  EXPECT_EQ(c.state_dir, "./state");
  EXPECT_EQ(c.listen_host, "127.0.0.1");
  EXPECT_EQ(c.listen_port, 8443);
  EXPECT_TRUE(c.tls);
  // Abuse limits are on by default: a per-client rate limit, a per-client connection cap below the global cap, and
  // slots reserved for admins; bounded NICs and VPCs.
  EXPECT_GT(c.rate_limit, 0);
  EXPECT_GT(c.max_connections_per_client, 0u);
  EXPECT_LT(c.max_connections_per_client + c.admin_reserved_connections, c.max_connections);
  EXPECT_GT(c.admin_reserved_connections, 0u);
  EXPECT_GT(c.max_nics, 0u);
  EXPECT_GT(c.max_vpcs, 0u);
  EXPECT_NO_THROW(config_check(c));
}

TEST(Config, ConnectionAndObjectLimits) {
  Config c;
  config_parse(c,
               "max-connections = 300\n"
               "max_connections_per_client = 0\n"
               "admin-reserved-connections = 10\n"
               "max-vpcs = 12\n"
               "max-nics = 0\n",
               "vpcd.conf");
  EXPECT_EQ(c.max_connections, 300u);
  EXPECT_EQ(c.max_connections_per_client, 0u);
  EXPECT_EQ(c.admin_reserved_connections, 10u);
  EXPECT_EQ(c.max_vpcs, 12u);
  EXPECT_EQ(c.max_nics, 0u);
  EXPECT_NO_THROW(config_check(c));
  config_parse(c, "admin-reserved-connections = 300\n", "vpcd.conf");
  EXPECT_THROW(config_check(c), ConfigError);
  EXPECT_THROW(config_parse(c, "max-connections = 0\n", "vpcd.conf"), ConfigError);
  EXPECT_THROW(config_parse(c, "max-vpcs = 70000\n", "vpcd.conf"), ConfigError);
  EXPECT_THROW(config_parse(c, "max-nics = -1\n", "vpcd.conf"), ConfigError);
}

TEST(Config, ParsesEveryKey) {
  Config c;
  config_parse(c,
               "# a comment\n"
               "\n"
               "state-dir = /var/lib/vpcd\n"
               "  listen=0.0.0.0:9443   # trailing comment\n"
               "workers = 3\n"
               "http_threads = 4\n"
               "web-root = \"/usr/share/vpcd/web dir\"\n"
               "migrations = /usr/share/vpcd/migrations\n"
               "tls = off\n"
               "tls-cert = /etc/vpcd/cert.pem\r\n"
               "tls-key = /etc/vpcd/key.pem\n"
               "body-limit = 2M\n"
               "rate-limit = 12.5\n"
               "rate-burst = 50\n"
               "vxlan_port = 8472\n"
               "log-level = debug\n"
               "busy-poll = adaptive\n"
               "busy_poll_us = 200\n"
               "rx-ring = v3\n"
               "guest-rx-frames = 128\n"
               "guest_tx_frames = 64\n"
               "uplink-rx-frames = 8192\n"
               "uplink-tx-frames = 2048\n"
               "uplink-tx-big-frames = 32\n"
               "guest-rx-queue-bytes = 2M\n"
               "uplink_rx_queue_bytes = 131072\n"
               "rx-frame-bytes = 4096\n"
               "tx-frame-bytes = 65792\n"
               "netns-queues = 0\n"
               "ring-pool-nics = 0\n"
               "guest-threaded-napi = on\n"
               "kernel-fastpath = off\n"
               "netns_allow = cni-*, ctr-?? ,podman\n",
               "vpcd.conf");
  EXPECT_EQ(c.busy_poll, dp::BusyPoll::kAdaptive);
  EXPECT_EQ(c.busy_poll_us.value_or(0), 200u);
  EXPECT_NO_THROW(config_check(c));
  EXPECT_EQ(c.rx_ring, "v3");
  EXPECT_EQ(c.guest_rx_frames, 128u);
  EXPECT_EQ(c.guest_tx_frames, 64u);
  EXPECT_EQ(c.uplink_rx_frames, 8192u);
  EXPECT_EQ(c.uplink_tx_frames, 2048u);
  EXPECT_EQ(c.uplink_tx_big_frames, 32u);
  EXPECT_EQ(c.guest_rx_queue_bytes, 2u << 20);
  EXPECT_EQ(c.uplink_rx_queue_bytes, 131072u);
  EXPECT_EQ(c.rx_frame_bytes, 4096u);
  EXPECT_EQ(c.tx_frame_bytes, 65792u);
  EXPECT_EQ(c.netns_queues, 0u);
  EXPECT_EQ(c.ring_pool_nics, 0u);
  EXPECT_TRUE(c.guest_threaded_napi);
  EXPECT_FALSE(c.kernel_fastpath);
  EXPECT_NE(Config{}.ring_pool_nics, 0u);
  EXPECT_EQ(c.state_dir, "/var/lib/vpcd");
  EXPECT_EQ(c.listen_host, "0.0.0.0");
  EXPECT_EQ(c.listen_port, 9443);
  EXPECT_EQ(c.workers, 3u);
  EXPECT_EQ(c.http_threads, 4u);
  EXPECT_EQ(c.web_root, "/usr/share/vpcd/web dir");
  EXPECT_EQ(c.migrations_dir, "/usr/share/vpcd/migrations");
  EXPECT_FALSE(c.tls);
  EXPECT_EQ(c.tls_cert, "/etc/vpcd/cert.pem");
  EXPECT_EQ(c.tls_key, "/etc/vpcd/key.pem");
  EXPECT_EQ(c.body_limit_bytes, 2u << 20);
  EXPECT_DOUBLE_EQ(c.rate_limit, 12.5);
  EXPECT_EQ(c.rate_burst, 50u);
  EXPECT_EQ(c.vxlan_port, 8472);
  EXPECT_EQ(c.log_level, "debug");
  EXPECT_EQ(c.netns_allow, (std::vector<std::string>{"cni-*", "ctr-??", "podman"}));
}

TEST(Config, NetnsAllowIsEmptyByDefaultAndRejectsPaths) {
  Config c;
  EXPECT_TRUE(c.netns_allow.empty());
  config_parse(c, "netns-allow = a*\nnetns-allow =\n", "f.conf");
  EXPECT_TRUE(c.netns_allow.empty()) << "an empty value clears the list";
  try {
    config_parse(c, "netns-allow = ok, ../run/x\n", "f.conf");
    ADD_FAILURE() << "a path was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("f.conf:1: netns-allow"), std::string::npos) << e.what();
  }
}

TEST(Config, ConntrackKeys) {
  Config c;
  EXPECT_EQ(c.conntrack.max_conns, 262144u);
  config_parse(c,
               "conntrack-max = 1000\n"
               "conntrack_max_per_vpc = 10\n"
               "conntrack-loose-pickup = off\n"
               "conntrack-timeout-tcp-established = 3600\n"
               "conntrack-timeout-udp = 7\n"
               "conntrack-timeout-fragment = 2\n"
               "icmp-error-rate = 5\n"
               "icmp-error-burst = 3\n",
               "vpcd.conf");
  EXPECT_EQ(c.conntrack.max_conns, 1000u);
  EXPECT_EQ(c.conntrack.max_conns_per_vpc, 10u);
  EXPECT_FALSE(c.conntrack.loose_pickup);
  EXPECT_EQ(c.conntrack.timeout_s[size_t(dp::TimeoutClass::kTcpEstablished)], 3600u);
  EXPECT_EQ(c.conntrack.timeout_s[size_t(dp::TimeoutClass::kUdp)], 7u);
  EXPECT_EQ(c.conntrack.timeout_s[size_t(dp::TimeoutClass::kFragment)], 2u);
  EXPECT_EQ(c.icmp_error_rate, 5u);
  EXPECT_EQ(c.icmp_error_burst, 3u);
  EXPECT_THROW(config_parse(c, "conntrack-timeout-sctp = 5\n", "f"), ConfigError);
  EXPECT_THROW(config_parse(c, "conntrack-timeout-udp = 0\n", "f"), ConfigError);
  EXPECT_THROW(config_parse(c, "conntrack-max = many\n", "f"), ConfigError);
}

TEST(Config, ListenForms) {
  Config c;
  config_parse_listen(c, "[::1]:8000", "--listen");
  EXPECT_EQ(c.listen_host, "::1");
  EXPECT_EQ(c.listen_port, 8000);
  config_parse_listen(c, ":0", "--listen");
  EXPECT_EQ(c.listen_host, "::1");
  EXPECT_EQ(c.listen_port, 0);
}

struct BadCase {
  const char* name;
  const char* text;
  const char* expected;  // substring of the error
};

TEST(Config, ErrorsNameFileAndLine) {
  const BadCase kCases[] = {
      {"unknown key", "workers = 1\nbogus = 2\n", "f.conf:2: unknown key \"bogus\""},
      {"no equals", "\n\nstate-dir /x\n", "f.conf:3: expected key = value"},
      {"missing key", "= 3\n", "f.conf:1: missing key"},
      {"workers not a number", "workers = two\n", "f.conf:1: workers: expected an integer"},
      {"workers negative", "workers = -1\n", "f.conf:1: workers"},
      {"workers too big", "workers = 1000\n", "f.conf:1: workers"},
      {"workers beyond the datapath's", "workers = 17\n", "f.conf:1: workers: expected an integer in 0..16"},
      {"port too big", "listen = 127.0.0.1:70000\n", "f.conf:1: listen port"},
      {"listen without port", "listen = localhost\n", "f.conf:1: listen: expected HOST:PORT"},
      {"ipv6 without brackets", "listen = ::1:80\n", "f.conf:1: listen: write an IPv6"},
      {"bad bool", "tls = maybe\n", "f.conf:1: tls: expected on|off"},
      {"bad size", "body-limit = 3X\n", "f.conf:1: body-limit"},
      {"zero size", "body-limit = 0\n", "f.conf:1: body-limit"},
      {"bad rate", "rate-limit = -5\n", "f.conf:1: rate-limit"},
      {"bad level", "log-level = loud\n", "f.conf:1: log-level"},
      {"empty path", "state-dir =\n", "f.conf:1: state-dir: empty value"},
      {"unterminated quote", "web-root = \"/x\n", "f.conf:1: unterminated"},
      {"junk after quote", "web-root = \"/x\" y\n", "f.conf:1: unexpected text"},
  };
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.name);
    Config cfg;
    try {
      config_parse(cfg, c.text, "f.conf");
      ADD_FAILURE() << "no error";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(c.expected), std::string::npos) << e.what();
    }
  }
}

TEST(Config, LaterLinesWinAndFlagsOverride) {
  Config c;
  config_parse(c, "workers = 2\nworkers = 5\n", "f.conf");
  EXPECT_EQ(c.workers, 5u);
  config_set(c, "workers", "1", "--workers");
  EXPECT_EQ(c.workers, 1u);
}

TEST(Config, LoadFile) {
  const std::string path = ::testing::TempDir() + "vpcd_config_test_" + std::to_string(::getpid()) + ".conf";
  {
    std::ofstream out(path);
    out << "state-dir = /tmp/s\nlisten = 127.0.0.1:1234\n";
  }
  Config c;
  config_load_file(c, path);
  EXPECT_EQ(c.state_dir, "/tmp/s");
  EXPECT_EQ(c.listen_port, 1234);
  std::remove(path.c_str());
  EXPECT_THROW(config_load_file(c, path), ConfigError);
}

// The example shipped as /etc/vpcd/vpcd.conf parses, and (everything commented out) leaves the built-in defaults;
// uncommenting every key still parses.
TEST(Config, ShippedExampleParses) {
  const std::string path = std::string(VPCD_SOURCE_DIR) + "/packaging/vpcd.conf";
  Config c;
  config_load_file(c, path);
  EXPECT_EQ(c.state_dir, Config{}.state_dir);
  EXPECT_EQ(c.listen_port, Config{}.listen_port);
  std::ifstream in(path);
  std::string text, line;
  while (std::getline(in, line)) {
    if (line.size() > 1 && line[0] == '#' && line[1] != ' ') line = line.substr(1);
    text += line + "\n";
  }
  Config all;
  config_parse(all, text, path);
  EXPECT_EQ(all.state_dir, "/var/lib/vpcd");
  EXPECT_EQ(all.tls_cert, "/etc/vpcd/cert.pem");
  EXPECT_EQ(all.body_limit_bytes, 1u << 20);
  // The documented datapath defaults are the built-in ones.
  EXPECT_EQ(all.busy_poll, Config{}.busy_poll);
  EXPECT_EQ(Config{}.busy_poll, dp::Options{}.poll.mode);
  EXPECT_EQ(all.busy_poll_us.value_or(dp::kDefaultBusyPollUs), dp::Options{}.poll.budget_us);
  EXPECT_EQ(all.rx_ring, Config{}.rx_ring);
  EXPECT_EQ(all.guest_rx_frames, Config{}.guest_rx_frames);
  EXPECT_EQ(all.guest_tx_frames, Config{}.guest_tx_frames);
  EXPECT_EQ(all.uplink_rx_frames, Config{}.uplink_rx_frames);
  EXPECT_EQ(all.uplink_tx_frames, Config{}.uplink_tx_frames);
  EXPECT_EQ(all.guest_rx_queue_bytes, Config{}.guest_rx_queue_bytes);
  EXPECT_EQ(all.uplink_rx_queue_bytes, Config{}.uplink_rx_queue_bytes);
  EXPECT_EQ(Config{}.guest_rx_queue_bytes, dp::Options{}.guest_rings.rx_queue_bytes);
  EXPECT_EQ(Config{}.uplink_rx_queue_bytes, dp::Options{}.uplink_rings.rx_queue_bytes);
  EXPECT_EQ(all.uplink_tx_big_frames, Config{}.uplink_tx_big_frames);
  EXPECT_EQ(Config{}.uplink_tx_big_frames, dp::Options{}.uplink_rings.tx_big_frames);
  EXPECT_EQ(dp::Options{}.guest_rings.tx_big_frames, 0u);  // guest NICs pin no big TX ring
  EXPECT_EQ(all.rx_frame_bytes, Config{}.rx_frame_bytes);
  EXPECT_EQ(all.tx_frame_bytes, Config{}.tx_frame_bytes);
  EXPECT_EQ(all.netns_queues, Config{}.netns_queues);
  EXPECT_EQ(all.ring_pool_nics, Config{}.ring_pool_nics);
  EXPECT_EQ(Config{}.ring_pool_nics, dp::Options{}.ring_pool_nics);
  EXPECT_EQ(all.guest_threaded_napi, Config{}.guest_threaded_napi);
  EXPECT_EQ(Config{}.guest_threaded_napi, dp::Options{}.guest_threaded_napi);
  EXPECT_EQ(all.kernel_fastpath, Config{}.kernel_fastpath);
  EXPECT_EQ(Config{}.kernel_fastpath, dp::Options{}.kernel_fastpath);
  EXPECT_EQ(all.conntrack.timeout_s, Config{}.conntrack.timeout_s);
  EXPECT_EQ(all.conntrack.max_conns, Config{}.conntrack.max_conns);
  EXPECT_EQ(all.netns_allow, (std::vector<std::string>{"cni-*", "docker-*"}));
  EXPECT_TRUE(all.worker_cpus.empty());  // documented default: workers not pinned
  EXPECT_TRUE(dp::Options{}.worker_cpus.empty());
}

// worker-cpus: CPU numbers and ranges, one worker per CPU; bad lists and a disagreeing `workers` are refused with
// the place, the key and what is wrong.
TEST(Config, WorkerCpus) {
  const std::pair<const char*, std::vector<unsigned>> kGood[] = {
      {"1", {1}}, {"2,3", {2, 3}}, {"0-3", {0, 1, 2, 3}}, {"0,2-3 5", {0, 2, 3, 5}}, {" 7 , 4 ", {7, 4}},
      {"3-3", {3}}, {"", {}}, {"1023", {1023}}};
  for (const auto& [text, cpus] : kGood) {
    Config c;
    config_set(c, "worker-cpus", text, "--worker-cpus");
    EXPECT_EQ(c.worker_cpus, cpus) << text;
    EXPECT_NO_THROW(config_check(c)) << text;
  }
  const std::pair<const char*, const char*> kBad[] = {
      {"worker-cpus = 1,1", "CPU 1 is listed twice"},  {"worker-cpus = 0-2,2", "CPU 2 is listed twice"},
      {"worker-cpus = 3-1", "runs backwards"},         {"worker-cpus = a", "expected an integer"},
      {"worker-cpus = 1-", "expected CPU numbers"},    {"worker-cpus = -1", "expected CPU numbers"},
      {"worker-cpus = 1024", "0..1023"},               {"worker-cpus = 0-16", "more than 16 CPUs"},
      {"worker-cpus = 1;2", "expected an integer"},    {"worker-cpus = 1--2", "expected an integer"}};
  for (const auto& [line, why] : kBad) {
    const std::string msg = refusal_of(line);
    EXPECT_EQ(msg.rfind("vpcd.conf:1: worker-cpus", 0), 0u) << line << ": " << msg;
    EXPECT_NE(msg.find(why), std::string::npos) << line << ": " << msg;
  }
  Config agree;
  config_parse(agree, "workers = 2\nworker-cpus = 4,5\n", "vpcd.conf");
  EXPECT_NO_THROW(config_check(agree));
  Config disagree;
  config_parse(disagree, "workers = 3\nworker-cpus = 4,5\n", "vpcd.conf");
  try {
    config_check(disagree);
    ADD_FAILURE() << "accepted workers 3 with 2 worker-cpus";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("workers (3) and worker-cpus (2 CPUs) disagree"), std::string::npos)
        << e.what();
  }
  config_set(disagree, "worker-cpus", "", "--worker-cpus");  // a flag undoes the file's pinning
  EXPECT_NO_THROW(config_check(disagree));
}

// busy-poll: off | on | adaptive (and the booleans it always took); busy-poll-us: the adaptive budget, 1..100000
// microseconds, refused (config_check) when busy-poll is not adaptive, since nothing would use it.
TEST(Config, BusyPollModesAndBudget) {
  const std::pair<const char*, dp::BusyPoll> kModes[] = {
      {"off", dp::BusyPoll::kOff},       {"on", dp::BusyPoll::kOn},   {"adaptive", dp::BusyPoll::kAdaptive},
      {"yes", dp::BusyPoll::kOn},        {"false", dp::BusyPoll::kOff}, {"1", dp::BusyPoll::kOn}};
  for (const auto& [text, mode] : kModes) {
    Config c;
    config_set(c, "busy-poll", text, "--busy-poll");
    EXPECT_EQ(c.busy_poll, mode) << text;
    EXPECT_EQ(dp::parse_busy_poll(dp::busy_poll_name(mode)), mode);
    EXPECT_FALSE(c.busy_poll_us.has_value());
    EXPECT_NO_THROW(config_check(c));
  }
  EXPECT_EQ(Config{}.busy_poll, dp::BusyPoll::kOff);

  Config c;
  config_parse(c, "busy-poll = adaptive\nbusy-poll-us = 1\n", "vpcd.conf");
  EXPECT_EQ(c.busy_poll_us.value_or(0), 1u);
  config_set(c, "busy-poll-us", "100000", "--busy-poll-us");
  EXPECT_EQ(c.busy_poll_us.value_or(0), 100000u);
  EXPECT_NO_THROW(config_check(c));

  // Bad values: the message names where, the key and what it expects.
  for (const char* line : {"busy-poll = adaptve", "busy-poll = ", "busy-poll = ON", "busy-poll-us = 0",
                           "busy-poll-us = 100001", "busy-poll-us = -5", "busy-poll-us = 50us", "busy-poll-us = 1e3"}) {
    const std::string msg = refusal_of(line);
    EXPECT_EQ(msg.rfind("vpcd.conf:1: busy-poll", 0), 0u) << msg;
    EXPECT_NE(msg.find(std::string(line).find("-us") != std::string::npos ? "1..100000" : "off|on|adaptive"),
              std::string::npos)
        << msg;
  }

  // A budget with busy-poll off or on would be ignored: refused, whichever came first (file or flag).
  for (const char* mode : {"off", "on"}) {
    Config ignored;
    config_parse(ignored, "busy-poll-us = 20\n", "vpcd.conf");
    config_set(ignored, "busy-poll", mode, "--busy-poll");
    try {
      config_check(ignored);
      ADD_FAILURE() << "accepted busy-poll-us with busy-poll = " << mode;
    } catch (const ConfigError& e) {
      EXPECT_EQ(std::string(e.what()),
                std::string("busy-poll-us (20) applies only to busy-poll = adaptive, but busy-poll is ") + mode);
    }
  }
}

TEST(Config, BadDatapathValuesAreRefused) {
  for (const char* line : {"rx-ring = v4", "busy-poll = maybe", "guest-rx-frames = 0", "rx-frame-bytes = 2050",
                           "tx-frame-bytes = 100", "netns-queues = 65", "ring-pool-nics = 65",
                           "ring-pool-nics = -1", "guest-threaded-napi = maybe", "kernel-fastpath = yes please", "guest-rx-queue-bytes = 64K",
                           "uplink-rx-queue-bytes = 2G", "guest-rx-queue-bytes = 8X",
                           "uplink-tx-big-frames = 4097"}) {
    Config c;
    EXPECT_THROW(config_parse(c, line, "vpcd.conf"), ConfigError) << line;
  }
}

}  // namespace
}  // namespace vpcd
