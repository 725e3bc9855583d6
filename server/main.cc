// vpcd: the VPC appliance daemon. Parses flags and the config file, takes the state directory's lock, opens the store
// (SQLite, migrated), starts the datapath (dp::Controller) and the reconciler (which rebuilds every NIC from the
// store before the API opens), then serves the REST API and the dashboard over HTTPS until SIGTERM/SIGINT, and shuts
// down in order: drain HTTP, stop the reconciler, stop the datapath (its OS objects stay for the next start to adopt).
// `vpcd token create --state-dir DIR --role admin|viewer` prints a new API token once and stores only its hash;
// `vpcd token list` shows ids, roles and creation times; `vpcd token revoke ID` deletes one (refused at once);
// `vpcd tls init --state-dir DIR` generates the self-signed certificate (the package's postinst runs both).
//
// Threading: the main thread parses, starts everything and then waits for a signal (SIGINT/SIGTERM are blocked in
// every thread and taken with sigwait). The HTTP server runs its own io threads, the reconciler one thread, the
// datapath its workers; they share only the Store (its own mutex) and the Reconciler/Controller thread-safe calls.
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <utility>

#include "datapath/controller.h"
#include "server/api/api.h"
#include "server/common/config.h"
#include "server/common/log.h"
#include "server/common/token.h"
#include "server/http/router.h"
#include "server/http/server.h"
#include "server/http/tls.h"
#include "server/reconcile/capture_stream.h"
#include "server/reconcile/controller_target.h"
#include "server/reconcile/reconciler.h"
#include "server/reconcile/stats_render.h"
#include "server/store/store.h"

namespace vpcd {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr const char* kDefaultConfig = "/etc/vpcd/vpcd.conf";
constexpr const char* kInstalledShare = "/usr/share/vpcd";

struct StartupError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Web root and migrations: from the source tree when this binary is a dev build, from /usr/share/vpcd when it is
// installed under /usr (or when the source tree is gone).
std::string default_share_dir(const std::string& what) {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  const fs::path installed = fs::path(kInstalledShare) / what;
  const fs::path source = fs::path(VPCD_SOURCE_DIR) / what;
  const bool is_installed = !ec && exe.string().rfind("/usr/", 0) == 0;
  if (is_installed || !fs::is_directory(source, ec)) return installed.string();
  return source.string();
}

// A short, stable name for this state directory: distinct datapath instances (interface markers, run dir) for
// distinct state directories, so two vpcd on one machine never touch each other's interfaces.
std::string instance_name(const fs::path& abs_state_dir) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a 64
  for (unsigned char c : abs_state_dir.string()) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return std::string(buf, 10);
}

fs::path prepare_state_dir(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {  // an existing directory keeps its mode (the package sets 0750)
    fs::create_directories(dir, ec);
    if (ec) throw StartupError("state dir " + dir + ": " + ec.message());
    ::chmod(dir.c_str(), 0700);
  }
  fs::path abs = fs::weakly_canonical(fs::absolute(dir), ec);
  if (ec) throw StartupError("state dir " + dir + ": " + ec.message());
  return abs;
}

// flock on STATE/vpcd.lock for the life of the process: two vpcd never share one state directory.
class StateLock {
 public:
  explicit StateLock(const fs::path& state_dir) {
    const std::string path = (state_dir / "vpcd.lock").string();
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0) throw StartupError(path + ": " + std::strerror(errno));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      char pid[32] = {};
      ssize_t n = ::pread(fd_, pid, sizeof pid - 1, 0);
      std::string holder = n > 0 ? std::string(pid, size_t(n)) : std::string("?");
      while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
      ::close(fd_);
      fd_ = -1;
      if (err == EWOULDBLOCK) {
        throw StartupError("state dir " + state_dir.string() + " is in use by another vpcd (pid " + holder + ")");
      }
      throw StartupError(path + ": flock: " + std::strerror(err));
    }
    const std::string me = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, me.data(), me.size(), 0) != ssize_t(me.size())) {
      log::warn(path + ": cannot record the pid");
    }
  }
  ~StateLock() {
    if (fd_ >= 0) ::close(fd_);
  }
  StateLock(const StateLock&) = delete;
  StateLock& operator=(const StateLock&) = delete;

 private:
  int fd_ = -1;
};

// The reconciler's view of the store.
class StoreSource final : public reconcile::DesiredStateSource {
 public:
  explicit StoreSource(store::Store& s) : s_(s) {}
  dp::DesiredState load_desired_state() override { return s_.load_desired_state(); }
  void set_nic_state(const std::string& id, const dp::NicState& st) override {
    s_.set_nic_state(id, st.status, st.detail);
  }
  void set_uplink_state(const std::string& id, const dp::NicState& st) override {
    s_.set_uplink_state(id, st.status, st.detail);
  }

 private:
  store::Store& s_;
};

// Bearer token -> role, verified against the stored salted hash. Every request reads the token's row (through the
// TokenReader's own connection, so it never waits for write transactions): a token revoked while vpcd runs is refused
// from the next request on. No cache: one indexed read costs microseconds.
class TokenAuthenticator {
 public:
  explicit TokenAuthenticator(const std::string& db_path) : reader_(db_path) {}

  std::optional<std::pair<http::Role, std::string>> operator()(std::string_view bearer) {
    auto id = token_id_of(bearer);
    if (!id) return std::nullopt;
    auto rec = reader_.find(*id);
    if (!rec || !verify(bearer, *rec)) return std::nullopt;
    auto role = parse_role(rec->role);
    if (!role) return std::nullopt;
    return std::make_pair(*role, rec->id);
  }

 private:
  store::TokenReader reader_;
};

// STATE/tls/{cert,key}.pem, generated when absent. Returns the two paths.
std::pair<std::string, std::string> ensure_state_tls(const fs::path& state) {
  std::error_code ec;
  const fs::path tls_dir = state / "tls";
  if (!fs::is_directory(tls_dir, ec)) {
    fs::create_directories(tls_dir, ec);
    if (ec) throw StartupError(tls_dir.string() + ": " + ec.message());
    ::chmod(tls_dir.c_str(), 0700);
  }
  std::pair<std::string, std::string> files;
  std::string err = http::ensure_self_signed(tls_dir.string(), &files.first, &files.second);
  if (!err.empty()) throw StartupError(err);
  return files;
}

// Every HTTP connection is a descriptor: raise the soft RLIMIT_NOFILE to the hard limit so the connection cap, not
// EMFILE, is what refuses connections (an acceptor out of descriptors would lock everyone out, admins included).
void raise_fd_limit(unsigned max_connections) {
  struct rlimit rl {};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
    ::getrlimit(RLIMIT_NOFILE, &rl);
  }
  constexpr rlim_t kOtherFds = 256;  // database, rings, netlink, eventfds, taps
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < rlim_t(max_connections) + kOtherFds) {
    log::warn("the open-file limit (" + std::to_string(rl.rlim_cur) + ") is below max-connections + " +
              std::to_string(kOtherFds) + ": raise LimitNOFILE or lower max-connections");
  }
}

constexpr const char* kListenUrlFile = "listen-url";

// STATE/listen-url: "https://HOST:PORT\n", replaced atomically once the listener is bound; removed on a clean stop.
void write_listen_url(const fs::path& state, const std::string& url) {
  const fs::path tmp = state / (std::string(kListenUrlFile) + ".tmp");
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << url << "\n";
    if (!f.flush()) {
      log::warn(tmp.string() + ": cannot write the listen URL");
      return;
    }
  }
  std::error_code ec;
  fs::rename(tmp, state / kListenUrlFile, ec);
  if (ec) log::warn((state / kListenUrlFile).string() + ": " + ec.message());
}

void block_signals(sigset_t* set) {
  sigemptyset(set);
  sigaddset(set, SIGINT);
  sigaddset(set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, set, nullptr);  // inherited by every thread started after this
  ::signal(SIGPIPE, SIG_IGN);
}

void load_config(Config& cfg, const std::string& config_path, bool config_given) {
  if (config_given) {
    config_load_file(cfg, config_path);
  } else if (std::error_code ec; fs::exists(kDefaultConfig, ec)) {
    config_load_file(cfg, kDefaultConfig);
  }
}

int token_create(const Config& cfg, const std::string& role_name, bool if_none) {
  auto role = parse_role(role_name);
  if (!role) throw ConfigError("--role: expected admin or viewer, got \"" + role_name + "\"");
  const fs::path state = prepare_state_dir(cfg.state_dir);
  const std::string migrations = cfg.migrations_dir.empty() ? default_share_dir("migrations") : cfg.migrations_dir;
  store::Store st((state / "vpcd.db").string(), migrations);
  if (if_none) {
    for (const auto& existing : st.list_tokens()) {
      if (existing.role == role_name) {
        log::info("a token with role " + role_name + " already exists in " + state.string() + ": none created");
        return 0;
      }
    }
  }
  NewToken t = make_token(*role);
  st.add_token(store::TokenRecord{t.record.id, t.record.role, t.record.salt_hex, t.record.hash_hex});
  std::cout << t.text << std::endl;
  log::info("created " + std::string(role_name) + " token " + t.record.id + " in " + state.string());
  return 0;
}

store::Store open_store(const Config& cfg) {
  const fs::path state = prepare_state_dir(cfg.state_dir);
  const std::string migrations = cfg.migrations_dir.empty() ? default_share_dir("migrations") : cfg.migrations_dir;
  return store::Store((state / "vpcd.db").string(), migrations);
}

int token_list(const Config& cfg) {
  auto st = open_store(cfg);
  const auto tokens = st.token_infos();
  std::cout << "ID            ROLE    CREATED\n";
  for (const auto& t : tokens) {
    std::string id = t.id, role = t.role;
    id.resize(std::max<size_t>(id.size(), 12), ' ');
    role.resize(std::max<size_t>(role.size(), 6), ' ');
    std::cout << id << "  " << role << "  " << t.created_at << "\n";
  }
  std::cout.flush();
  return 0;
}

// Deletes the token's row. A running vpcd reads tokens afresh on every request, so it refuses the token at once.
int token_revoke(const Config& cfg, const std::string& id) {
  auto st = open_store(cfg);
  if (!st.remove_token(id)) {
    log::error("no token with id \"" + id + "\" in " + cfg.state_dir + " (see vpcd token list)");
    return 1;
  }
  bool admin_left = false;
  for (const auto& t : st.token_infos()) admin_left = admin_left || t.role == "admin";
  log::info("revoked token " + id);
  if (!admin_left) log::warn("no admin token is left; create one with: vpcd token create --role admin");
  return 0;
}

int tls_init(const Config& cfg) {
  const auto [cert, key] = ensure_state_tls(prepare_state_dir(cfg.state_dir));
  std::string err;
  if (!http::check_cert_key(cert, key, &err)) throw StartupError(err);
  std::cout << cert << "\n" << key << std::endl;
  return 0;
}

int run_daemon(const Config& cfg) {
  sigset_t sigs;
  block_signals(&sigs);

  const fs::path state = prepare_state_dir(cfg.state_dir);
  StateLock lock(state);
  const std::string instance = instance_name(state);
  const std::string web_root = cfg.web_root.empty() ? default_share_dir("web") : cfg.web_root;
  const std::string migrations = cfg.migrations_dir.empty() ? default_share_dir("migrations") : cfg.migrations_dir;

  http::ServerOptions so;
  so.host = cfg.listen_host;
  so.port = cfg.listen_port;
  so.tls = cfg.tls;
  so.body_limit = cfg.body_limit_bytes;
  so.threads = cfg.http_threads;
  so.rate_per_client = cfg.rate_limit;
  so.rate_burst = cfg.rate_burst;
  so.max_connections = cfg.max_connections;
  so.max_connections_per_client = cfg.max_connections_per_client;
  so.admin_reserved_connections = cfg.admin_reserved_connections;
  raise_fd_limit(so.max_connections);
  std::error_code ec;
  so.web_root = fs::is_directory(web_root, ec) ? web_root : std::string();
  if (so.web_root.empty()) log::warn("web root " + web_root + " not found: dashboard disabled");
  if (cfg.tls) {
    if (cfg.tls_cert.empty() != cfg.tls_key.empty()) throw StartupError("set both tls-cert and tls-key, or neither");
    if (cfg.tls_cert.empty()) {
      std::tie(so.cert_file, so.key_file) = ensure_state_tls(state);
    } else {
      so.cert_file = cfg.tls_cert;
      so.key_file = cfg.tls_key;
    }
    std::string err;
    if (!http::check_cert_key(so.cert_file, so.key_file, &err)) throw StartupError(err);
  }

  log::info("vpcd " VPCD_VERSION " starting: state " + state.string() + ", instance " + instance);
  store::Store st((state / "vpcd.db").string(), migrations);

  dp::Options dopts;
  dopts.workers = cfg.workers;
  dopts.worker_cpus = cfg.worker_cpus;
  dopts.instance = instance;
  dopts.run_dir = "/run/vpcd/" + instance;
  dopts.poll = {cfg.busy_poll, cfg.busy_poll_us.value_or(dp::kDefaultBusyPollUs)};
  dopts.rx_ring_v3 = cfg.rx_ring == "v3";
  dopts.guest_rings = {cfg.guest_rx_frames, cfg.guest_tx_frames, cfg.guest_rx_queue_bytes};
  dopts.uplink_rings = {cfg.uplink_rx_frames, cfg.uplink_tx_frames, cfg.uplink_rx_queue_bytes,
                        cfg.uplink_tx_big_frames};
  dopts.rx_frame_bytes = cfg.rx_frame_bytes;
  dopts.tx_frame_bytes = cfg.tx_frame_bytes;
  dopts.netns_queues = cfg.netns_queues;
  dopts.ring_pool_nics = cfg.ring_pool_nics;
  dopts.guest_threaded_napi = cfg.guest_threaded_napi;
  dopts.kernel_fastpath = cfg.kernel_fastpath;
  dopts.netns_allow = cfg.netns_allow;
  dopts.conntrack = cfg.conntrack;
  dopts.icmp_error_rate = cfg.icmp_error_rate;
  dopts.icmp_error_burst = cfg.icmp_error_burst;
  dopts.vxlan_port = cfg.vxlan_port;
  dopts.vxlan_uso = cfg.vxlan_uso;
  dp::Controller controller(dopts);
  std::string pinned;
  for (unsigned c : cfg.worker_cpus) pinned += (pinned.empty() ? "" : ",") + std::to_string(c);
  if (!pinned.empty()) pinned = (cfg.worker_cpus.size() == 1 ? " pinned to CPU " : " pinned to CPUs ") + pinned;
  log::info("datapath: " + std::to_string(controller.worker_count()) + " worker(s)" + pinned + ", busy-poll " +
            std::string(dp::busy_poll_name(dopts.poll.mode)) +
            (dopts.poll.mode == dp::BusyPoll::kAdaptive ? " (" + std::to_string(dopts.poll.budget_us) + " us)" : ""));

  StoreSource source(st);
  reconcile::ControllerTarget target(controller);
  reconcile::Reconciler reconciler(source, target);
  // A vhost-user NIC changes state on its own (front-end connects, leaves, misbehaves): reconcile at once so the API
  // shows it. Cleared before the reconciler goes away (the guard is destroyed first).
  controller.set_state_listener([&reconciler] { reconciler.notify(); });
  struct ListenerGuard {
    dp::Controller& c;
    ~ListenerGuard() { c.set_state_listener(nullptr); }
  } listener_guard{controller};
  const auto t0 = Clock::now();
  const bool first_ok = reconciler.start();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  if (first_ok) {
    log::info("datapath restored from the store in " + std::to_string(ms) + " ms");
  } else {
    log::error("first reconcile pass failed; retrying in the background");
  }

  api::ApiContext ctx{
      st,
      [&reconciler] { reconciler.notify(); },
      [&] { return reconcile::stats_json(controller.stats(), reconciler.stats()); },
      [&] { return reconcile::metrics_text(controller.stats(), reconciler.stats()); },
      [&](const std::string& nic_id) { return reconcile::nic_stats_json(controller.stats(), nic_id); },
      VPCD_VERSION,
      [&](const api::CaptureRequest& r) { return reconcile::capture_response(controller, r); },
      api::Limits{cfg.max_vpcs, cfg.max_nics},
  };
  http::Router router;
  api::register_routes(router, ctx);
  TokenAuthenticator auth((state / "vpcd.db").string());
  http::HttpServer server(so, router, [&auth](std::string_view bearer) { return auth(bearer); });
  server.start();
  // The bound port (the config may say port 0: the kernel picks one) is in the log line and in STATE/listen-url, so
  // a script or a test that starts vpcd on 127.0.0.1:0 reads it back instead of guessing a free port.
  const std::string url = std::string(cfg.tls ? "https://" : "http://") + cfg.listen_host + ":" +
                          std::to_string(server.bound_port());
  log::info("listening on " + url);
  write_listen_url(state, url);

  int sig = 0;
  while (sigwait(&sigs, &sig) != 0) {
  }
  log::info(std::string("received ") + strsignal(sig) + ": shutting down");
  fs::remove(state / kListenUrlFile, ec);
  server.stop_graceful(std::chrono::seconds(10));
  reconciler.stop();
  log::info("stopped; datapath objects left in place for the next start");
  return 0;
}

}  // namespace
}  // namespace vpcd

int main(int argc, char** argv) {
  using namespace vpcd;
  CLI::App app{"vpcd: VPC appliance daemon (REST API, reconciler, datapath)"};
  app.set_version_flag("--version", "vpcd " VPCD_VERSION);
  std::string config_path = kDefaultConfig;
  std::map<std::string, std::string> flags;  // flag name -> value, applied over the config file
  auto* config_opt = app.add_option("--config", config_path, "config file (default /etc/vpcd/vpcd.conf if present)");
  const char* kKeys[][2] = {{"state-dir", "state directory (database, TLS, lock); default ./state"},
                            {"listen", "HOST:PORT to serve on; default 127.0.0.1:8443"},
                            {"workers", "datapath worker threads (at most 16); 0 = cores - 1"},
                            {"worker-cpus", "pin worker i to the i-th CPU listed (\"2,3\", \"2-5\"): one worker per CPU"},
                            {"busy-poll", "off|on|adaptive: datapath workers sleep when idle, always spin, or spin "
                                          "for busy-poll-us after the last frame"},
                            {"busy-poll-us", "adaptive busy polling: microseconds a worker keeps polling after the "
                                             "last frame (1..100000; default 50)"},
                            {"rx-ring", "v2|v3: AF_PACKET RX ring layout"},
                            {"netns-queues", "RX queues per netns NIC (fanout over workers); 0 = one per worker"},
                            {"guest-threaded-napi", "on|off: GRO and threaded NAPI on netns NICs' guest ends"},
                            {"kernel-fastpath", "on|off: frames between netns/tap NICs of a VPC forwarded by a BPF "
                                                "program where the pipeline would switch or route them without a "
                                                "firewall"},
                            {"uplink-tx-big-frames", "big TX ring slots per uplink and worker for USO frames "
                                                     "(68 KiB each); default 0: none, USO frames through sendmsg"},
                            {"web-root", "dashboard directory"},
                            {"migrations", "SQL migrations directory"},
                            {"vxlan-port", "UDP port of VXLAN on the underlay uplink; default 4789"},
                            {"vxlan-uso", "on|off: TCP super-frames to tunnels as one UDP GSO frame; default on"},
                            {"log-level", "debug|info|warn|error"}};
  for (auto& k : kKeys) {
    app.add_option_function<std::string>(std::string("--") + k[0], [&flags, key = std::string(k[0])](
                                                                         const std::string& v) { flags[key] = v; },
                                          k[1]);
  }

  auto* token = app.add_subcommand("token", "manage API tokens");
  token->require_subcommand(1);
  auto* create = token->add_subcommand("create", "create a token and print it once");
  std::string role;
  create->add_option("--role", role, "admin|viewer")->required();
  create->add_option_function<std::string>(
      "--state-dir", [&flags](const std::string& v) { flags["state-dir"] = v; }, "state directory");
  create->add_option_function<std::string>(
      "--migrations", [&flags](const std::string& v) { flags["migrations"] = v; }, "SQL migrations directory");
  create->add_option("--config", config_path, "config file");
  bool if_none = false;
  create->add_flag("--if-none", if_none, "only when the state dir has no token of this role (prints nothing then)");

  auto* list = token->add_subcommand("list", "list the tokens (id, role, creation time; never secrets)");
  list->add_option_function<std::string>(
      "--state-dir", [&flags](const std::string& v) { flags["state-dir"] = v; }, "state directory");
  list->add_option_function<std::string>(
      "--migrations", [&flags](const std::string& v) { flags["migrations"] = v; }, "SQL migrations directory");
  list->add_option("--config", config_path, "config file");
  auto* revoke = token->add_subcommand("revoke", "delete a token; a running vpcd refuses it from the next request");
  std::string revoke_id;
  revoke->add_option("ID", revoke_id, "the token's id (the 12 characters after vpcd_)")->required();
  revoke->add_option_function<std::string>(
      "--state-dir", [&flags](const std::string& v) { flags["state-dir"] = v; }, "state directory");
  revoke->add_option_function<std::string>(
      "--migrations", [&flags](const std::string& v) { flags["migrations"] = v; }, "SQL migrations directory");
  revoke->add_option("--config", config_path, "config file");

  auto* tls = app.add_subcommand("tls", "manage the TLS certificate");
  tls->require_subcommand(1);
  auto* tls_init_cmd = tls->add_subcommand("init", "generate the self-signed certificate in STATE/tls when absent");
  tls_init_cmd->add_option_function<std::string>(
      "--state-dir", [&flags](const std::string& v) { flags["state-dir"] = v; }, "state directory");
  tls_init_cmd->add_option("--config", config_path, "config file");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  try {
    Config cfg;
    const bool config_given = config_opt->count() > 0 || create->get_option("--config")->count() > 0 ||
                              list->get_option("--config")->count() > 0 ||
                              revoke->get_option("--config")->count() > 0 ||
                              tls_init_cmd->get_option("--config")->count() > 0;
    load_config(cfg, config_path, config_given);
    for (const auto& [k, v] : flags) config_set(cfg, k, v, "--" + k);
    config_check(cfg);
    log::set_level(log::parse_level(cfg.log_level).value_or(log::Level::kInfo));
    if (*create) return token_create(cfg, role, if_none);
    if (*list) return token_list(cfg);
    if (*revoke) return token_revoke(cfg, revoke_id);
    if (*tls_init_cmd) return tls_init(cfg);
    return run_daemon(cfg);
  } catch (const ConfigError& e) {
    log::error(std::string("config: ") + e.what());
    return 2;
  } catch (const std::exception& e) {
    log::error(e.what());
    return 1;
  }
}
