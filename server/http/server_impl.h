// Internal to the HTTPS server (server.cc, session_tls.cc, session_plain.cc; not for other code): the shared server
// state (HttpServer::Impl), the helpers its connection sessions use, and the two session factories. The sessions live
// in two translation units, one per Session<kTls> instantiation (session.h), so the two heaviest template
// instantiations of the server compile side by side. Threading: see server.cc's header.
#pragma once

#include "server/http/server.h"


#include <openssl/ssl.h>
#include <poll.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cmath>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "server/common/log.h"
#include "server/http/static_files.h"
#include "server/http/tls.h"

namespace vpcd::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace detail {

inline constexpr size_t kHeaderLimit = 8 * 1024;
inline constexpr auto kLingerTime = std::chrono::seconds(3);
inline constexpr size_t kLingerBytes = 64u << 20;  // clients such as python-requests send the whole body first
inline constexpr auto kCloseTimeout = std::chrono::seconds(2);
inline constexpr const char* kCsp =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";
// TLS 1.2 suites: ECDHE with AEAD only. TLS 1.3 suites are OpenSSL's defaults (all AEAD).
inline constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

inline std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

inline std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

inline bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

// Token bucket per client address. Buckets that would be full again are pruned when the table grows.
class RateLimiter {
 public:
  RateLimiter(double rate, unsigned burst) : rate_(rate), burst_(burst > 0 ? burst : 1) {}

  // nullopt = allowed; otherwise the whole seconds to wait before a token is available.
  std::optional<unsigned> take(const std::string& client) {
    if (rate_ <= 0) return std::nullopt;
    auto now = Clock::now();
    std::scoped_lock lk(mu_);
    if (buckets_.size() >= kPruneAt) prune(now);
    auto [it, fresh] = buckets_.try_emplace(client, Bucket{static_cast<double>(burst_), now});
    Bucket& b = it->second;
    if (!fresh) {
      double elapsed = std::chrono::duration<double>(now - b.last).count();
      b.tokens = std::min(static_cast<double>(burst_), b.tokens + elapsed * rate_);
      b.last = now;
    }
    if (b.tokens >= 1.0) {
      b.tokens -= 1.0;
      return std::nullopt;
    }
    return static_cast<unsigned>(std::max(1.0, std::ceil((1.0 - b.tokens) / rate_)));
  }

 private:
  struct Bucket {
    double tokens;
    Clock::time_point last;
  };
  static constexpr size_t kPruneAt = 4096;

  void prune(Clock::time_point now) {
    for (auto it = buckets_.begin(); it != buckets_.end();) {
      double elapsed = std::chrono::duration<double>(now - it->second.last).count();
      if (it->second.tokens + elapsed * rate_ >= burst_) {
        it = buckets_.erase(it);
      } else {
        ++it;
      }
    }
  }

  const double rate_;
  const unsigned burst_;
  std::mutex mu_;
  std::unordered_map<std::string, Bucket> buckets_;  // guarded by mu_
};

// Fills req's method, path, query and headers (lower-case names, repeated fields joined with ", ") from a parsed
// request header. A target parse_target() refuses is a 400 response.
template <class Fields>
std::optional<Response> request_from_header(const bhttp::request_header<Fields>& msg, Request& req) {
  req.method = std::string(msg.method_string());
  std::string error;
  if (!parse_target(msg.target(), &req.path, &req.query, &error)) return problem(400, "Bad Request", error);
  for (const auto& f : msg) {
    std::string name = lower(f.name_string());
    auto [it, fresh] = req.headers.try_emplace(std::move(name), std::string(f.value()));
    if (!fresh) {
      it->second += ", ";
      it->second += f.value();
    }
  }
  return std::nullopt;
}

class SessionBase : public std::enable_shared_from_this<SessionBase> {
 public:
  virtual ~SessionBase() = default;
  virtual void drain() = 0;        // any thread: close if idle, else close after the current response
  virtual void force_close() = 0;  // any thread

  const Clock::time_point accepted_at = Clock::now();
  // Set by the session's strand once a request on it authenticated; such a connection is never evicted at the cap.
  std::atomic<bool> proven{false};
  // Set by the acceptor when it picks this connection for eviction (so it is picked once).
  std::atomic<bool> evicting{false};
};

// RFC 9112 section 6: message framing the header announces. nullopt when it is sound.
template <class Fields>
std::optional<Response> framing_error(const bhttp::request_header<Fields>& msg) {
  std::vector<std::string> codings;
  bool te = false;
  for (const auto& f : msg) {
    if (f.name() != bhttp::field::transfer_encoding) continue;
    te = true;
    std::string_view v = f.value();
    while (!v.empty()) {
      auto comma = v.find(',');
      std::string_view c = trim(v.substr(0, comma));
      v = comma == std::string_view::npos ? std::string_view{} : v.substr(comma + 1);
      if (!c.empty()) codings.push_back(lower(c));
    }
  }
  if (!te) return std::nullopt;
  if (msg.version() < 11)
    return problem(400, "Bad Request", "Transfer-Encoding is not allowed in an HTTP/1.0 request (RFC 9112 6.1)");
  if (msg.find(bhttp::field::content_length) != msg.end())
    return problem(400, "Bad Request", "a request may not carry both Transfer-Encoding and Content-Length");
  if (codings.empty() || codings.back() != "chunked")
    return problem(400, "Bad Request", "chunked must be the final transfer coding (RFC 9112 6.3)");
  if (codings.size() == 1) return std::nullopt;
  for (size_t i = 0; i + 1 < codings.size(); ++i) {
    if (codings[i] == "chunked") return problem(400, "Bad Request", "chunked may be applied only once (RFC 9112 7)");
  }
  return problem(501, "Not Implemented",
                 "transfer coding \"" + codings.front().substr(0, 50) + "\" is not supported; only chunked is");
}

}  // namespace detail

struct HttpServer::Impl {
  Impl(ServerOptions o, Router& r, Authenticator a)
      : opt(std::move(o)), router(r), auth(std::move(a)), statics(opt.web_root),
        limiter(opt.rate_per_client, opt.rate_burst) {}
  ~Impl() {
    // Sessions still queued in the io_context die with it; they unregister from `sessions`, so it goes first.
    acceptor.reset();
    accept_retry.reset();
    ioc.reset();
  }

  const ServerOptions opt;
  Router& router;
  const Authenticator auth;
  const StaticFiles statics;
  detail::RateLimiter limiter;

  std::array<std::atomic<uint64_t>, 6> by_class{};  // index = status / 100
  std::atomic<uint64_t> open{0}, accepted{0}, rejected{0}, evicted{0}, rate_limited{0}, timeouts{0};
  std::atomic<bool> draining{false};

  std::mutex sessions_mu;
  std::unordered_map<detail::SessionBase*, std::weak_ptr<detail::SessionBase>> sessions;  // guarded by sessions_mu

  std::mutex clients_mu;
  std::unordered_map<std::string, unsigned> client_conns;  // open connections per client_key(); guarded by clients_mu

  std::unique_ptr<ssl::context> ssl_ctx;  // outlives ioc (sessions' streams refer to it)
  std::unique_ptr<asio::io_context> ioc;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::unique_ptr<tcp::acceptor> acceptor;  // on its own strand
  std::unique_ptr<asio::steady_timer> accept_retry;
  std::vector<std::thread> threads;
  uint16_t port = 0;
  bool started = false, stopped = false;  // control thread only

  void do_accept();
  void on_accept(beast::error_code ec, tcp::socket socket);
  bool evict_one();
  // From the request header alone (req has method, path, query, headers, remote): rate limit, routing,
  // authentication, role, the admin reserve, static files. Returns the final response when the request ends here;
  // otherwise sets *handler and req.params/role/token_id and returns nullopt.
  std::optional<Response> admit(Request& req, bool reserved, const Handler** handler);
  // After the body was read: Content-Type, then the handler. Exceptions become 500.
  Response dispatch(Request& req, const Handler* handler);
  bool client_take(const std::string& key) {
    if (opt.max_connections_per_client == 0) return true;
    std::scoped_lock lk(clients_mu);
    unsigned& n = client_conns[key];
    if (n >= opt.max_connections_per_client) return false;
    ++n;
    return true;
  }
  void client_release(const std::string& key) {
    if (opt.max_connections_per_client == 0) return;
    std::scoped_lock lk(clients_mu);
    auto it = client_conns.find(key);
    if (it != client_conns.end() && --it->second == 0) client_conns.erase(it);
  }
  void add_session(const std::shared_ptr<detail::SessionBase>& s) {
    std::scoped_lock lk(sessions_mu);
    sessions.emplace(s.get(), s);
  }
  void remove_session(detail::SessionBase* s) {
    std::scoped_lock lk(sessions_mu);
    sessions.erase(s);
  }
  std::vector<std::shared_ptr<detail::SessionBase>> live_sessions() {
    std::vector<std::shared_ptr<detail::SessionBase>> out;
    std::scoped_lock lk(sessions_mu);
    for (auto& [p, w] : sessions)
      if (auto s = w.lock()) out.push_back(std::move(s));
    return out;
  }
};

namespace detail {

// A new connection's session, registered with the server and started (TLS handshake first, for the TLS one).
void start_tls_session(HttpServer::Impl& srv, std::string remote, std::string client, bool reserved,
                       tcp::socket socket);
void start_plain_session(HttpServer::Impl& srv, std::string remote, std::string client, bool reserved,
                         tcp::socket socket);

}  // namespace detail
}  // namespace vpcd::http
