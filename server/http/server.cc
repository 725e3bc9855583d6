// HTTPS server on Boost.Beast; see server.h for the request pipeline. A handler may return a streamed body
// (Response::stream): see send_stream() below. Each connection is a Session on its own strand
// (all of a session's members are touched only from its strand). Shared server state lives in HttpServer::Impl:
// counters are relaxed atomics; the session registry and the rate limiter each have their own mutex (never held
// together, never held while calling out).
#include "server/http/server.h"

#include <openssl/ssl.h>
#include <poll.h>

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
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr size_t kHeaderLimit = 8 * 1024;
constexpr auto kLingerTime = std::chrono::seconds(3);
constexpr size_t kLingerBytes = 64u << 20;  // clients such as python-requests send the whole body first
constexpr auto kCloseTimeout = std::chrono::seconds(2);
constexpr const char* kCsp =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";
// TLS 1.2 suites: ECDHE with AEAD only. TLS 1.3 suites are OpenSSL's defaults (all AEAD).
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

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

class SessionBase : public std::enable_shared_from_this<SessionBase> {
 public:
  virtual ~SessionBase() = default;
  virtual void drain() = 0;        // any thread: close if idle, else close after the current response
  virtual void force_close() = 0;  // any thread
};

}  // namespace

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
  RateLimiter limiter;

  std::array<std::atomic<uint64_t>, 6> by_class{};  // index = status / 100
  std::atomic<uint64_t> open{0}, accepted{0}, rejected{0}, rate_limited{0}, timeouts{0};
  std::atomic<bool> draining{false};

  std::mutex sessions_mu;
  std::unordered_map<SessionBase*, std::weak_ptr<SessionBase>> sessions;  // guarded by sessions_mu

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
  Response process(Request& req);
  void add_session(const std::shared_ptr<SessionBase>& s) {
    std::scoped_lock lk(sessions_mu);
    sessions.emplace(s.get(), s);
  }
  void remove_session(SessionBase* s) {
    std::scoped_lock lk(sessions_mu);
    sessions.erase(s);
  }
  std::vector<std::shared_ptr<SessionBase>> live_sessions() {
    std::vector<std::shared_ptr<SessionBase>> out;
    std::scoped_lock lk(sessions_mu);
    for (auto& [p, w] : sessions)
      if (auto s = w.lock()) out.push_back(std::move(s));
    return out;
  }
};

namespace {

template <bool kTls>
class Session final : public SessionBase {
 public:
  using Stream = std::conditional_t<kTls, beast::ssl_stream<beast::tcp_stream>, beast::tcp_stream>;

  template <class... Args>
  Session(HttpServer::Impl& srv, std::string remote, Args&&... args)
      : srv_(srv), stream_(std::forward<Args>(args)...), remote_(std::move(remote)) {
    srv_.open.fetch_add(1, std::memory_order_relaxed);
  }
  ~Session() override {
    srv_.remove_session(this);
    srv_.open.fetch_sub(1, std::memory_order_relaxed);
  }

  void run() {
    asio::dispatch(stream_.get_executor(), [self = self()] { self->begin(); });
  }

  void drain() override {
    asio::post(stream_.get_executor(), [self = self()] {
      self->draining_ = true;
      if (self->state_ == State::kIdle || self->state_ == State::kHandshake) self->close_now();
    });
  }

  void force_close() override {
    asio::post(stream_.get_executor(), [self = self()] { self->close_now(); });
  }

 private:
  enum class State { kHandshake, kIdle, kReading, kBusy, kClosing };

  std::shared_ptr<Session> self() { return std::static_pointer_cast<Session>(shared_from_this()); }
  beast::tcp_stream& tcp() { return beast::get_lowest_layer(stream_); }

  void begin() {
    if constexpr (kTls) {
      state_ = State::kHandshake;
      tcp().expires_after(srv_.opt.header_timeout);
      stream_.async_handshake(ssl::stream_base::server, [self = self()](beast::error_code ec) {
        if (ec) {
          if (ec == beast::error::timeout) self->srv_.timeouts.fetch_add(1, std::memory_order_relaxed);
          return self->close_now();
        }
        self->wait_request();
      });
    } else {
      tcp().expires_after(srv_.opt.header_timeout);
      wait_request();
    }
  }

  // Waits for the first byte of the next request (idle keep-alive), then reads its header.
  void wait_request() {
    if (draining_ || srv_.draining.load(std::memory_order_relaxed)) return close_now();
    parser_.emplace();
    parser_->header_limit(kHeaderLimit);
    parser_->body_limit(srv_.opt.body_limit);
    if (buffer_.size() > 0) return read_header();  // pipelined request already buffered
    state_ = State::kIdle;
    // The first request's deadline was set before the handshake: handshake + header within header_timeout.
    if (!first_request_) tcp().expires_after(srv_.opt.idle_timeout);
    stream_.async_read_some(buffer_.prepare(4096), [self = self()](beast::error_code ec, size_t n) {
      self->buffer_.commit(n);
      if (ec) {
        if (ec == beast::error::timeout) self->srv_.timeouts.fetch_add(1, std::memory_order_relaxed);
        return self->close_now();
      }
      self->read_header();
    });
  }

  void read_header() {
    state_ = State::kReading;
    started_ = Clock::now();  // access-log duration: first byte of the request to the last byte of the response
    if (!first_request_) tcp().expires_after(srv_.opt.header_timeout);
    bhttp::async_read_header(stream_, buffer_, *parser_,
                             [self = self()](beast::error_code ec, size_t) { self->on_header(ec); });
  }

  // Handles a read error; true when the caller should stop.
  bool read_failed(beast::error_code ec) {
    if (!ec) return false;
    if (ec == beast::error::timeout) {
      srv_.timeouts.fetch_add(1, std::memory_order_relaxed);
      close_now();
    } else if (ec == bhttp::error::body_limit) {
      reply_and_close(problem(413, "Content Too Large",
                              "the request body exceeds " + std::to_string(srv_.opt.body_limit) + " bytes"));
    } else if (ec == bhttp::error::header_limit) {
      reply_and_close(problem(431, "Request Header Fields Too Large",
                              "request headers exceed " + std::to_string(kHeaderLimit) + " bytes"));
    } else if (ec.category() == bhttp::make_error_code(bhttp::error::bad_target).category() &&
               ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message) {
      reply_and_close(problem(400, "Bad Request", "malformed HTTP request: " + ec.message()));
    } else {
      close_now();  // peer went away (EOF, reset, TLS truncation)
    }
    return true;
  }

  void on_header(beast::error_code ec) {
    if (read_failed(ec)) return;
    first_request_ = false;
    auto& msg = parser_->get();
    if (auto cl = parser_->content_length(); cl && *cl > srv_.opt.body_limit) {
      read_failed(bhttp::error::body_limit);
      return;
    }
    if (parser_->is_done()) return handle();
    if (beast::iequals(msg[bhttp::field::expect], "100-continue")) {
      auto cont = std::make_shared<bhttp::response<bhttp::empty_body>>(bhttp::status::continue_, msg.version());
      tcp().expires_after(srv_.opt.body_timeout);
      bhttp::async_write(stream_, *cont, [self = self(), cont](beast::error_code wec, size_t) {
        if (wec) return self->close_now();
        self->read_body();
      });
      return;
    }
    read_body();
  }

  void read_body() {
    tcp().expires_after(srv_.opt.body_timeout);
    bhttp::async_read(stream_, buffer_, *parser_, [self = self()](beast::error_code ec, size_t) {
      if (self->read_failed(ec)) return;
      self->handle();
    });
  }

  void handle() {
    state_ = State::kBusy;
    auto msg = parser_->release();
    parser_.reset();
    Request req;
    req.method = std::string(msg.method_string());
    req.remote = remote_;
    version_ = msg.version();
    bool keep_alive = msg.keep_alive();
    std::string error;
    Response res;
    if (!parse_target(msg.target(), &req.path, &req.query, &error)) {
      log_path_ = std::string(msg.target().substr(0, 200));
      res = problem(400, "Bad Request", error);
    } else {
      log_path_ = req.path;
      for (const auto& f : msg) {
        std::string name = lower(f.name_string());
        auto [it, fresh] = req.headers.try_emplace(std::move(name), std::string(f.value()));
        if (!fresh) {
          it->second += ", ";
          it->second += f.value();
        }
      }
      req.body = std::move(msg.body());
      res = srv_.process(req);
    }
    log_method_ = req.method;
    send(std::move(res), keep_alive, false);
  }

  void reply_and_close(Response r) {
    if (parser_) {
      const auto& msg = parser_->get();
      log_method_ = std::string(msg.method_string());
      log_path_ = std::string(msg.target().substr(0, msg.target().find('?')).substr(0, 200));
      version_ = msg.version() ? msg.version() : 11;
    }
    send(std::move(r), false, true);
  }

  void send(Response r, bool keep_alive, bool linger) {
    if (r.stream) return send_stream(std::move(r));
    keep_alive = keep_alive && !draining_ && !srv_.draining.load(std::memory_order_relaxed);
    res_.emplace();
    auto& res = *res_;
    res.version(version_);
    res.result(static_cast<unsigned>(r.status));
    status_ = r.status;
    // Counted when queued (not after the write) so a client that has read the response sees it counted.
    if (int cls = r.status / 100; cls >= 1 && cls <= 5)
      srv_.by_class[static_cast<size_t>(cls)].fetch_add(1, std::memory_order_relaxed);
    res.set(bhttp::field::server, "vpcd");
    bool no_body = r.status < 200 || r.status == 204 || r.status == 304;
    if (!no_body) {
      res.set(bhttp::field::content_type, r.content_type);
      res.body() = std::move(r.body);
    }
    for (auto& [name, value] : r.headers) res.insert(name, value);
    res.set("X-Content-Type-Options", "nosniff");
    res.set("X-Frame-Options", "DENY");
    res.set("Content-Security-Policy", kCsp);
    res.set("Referrer-Policy", "no-referrer");
    res.keep_alive(keep_alive);
    res.prepare_payload();
    state_ = State::kBusy;
    tcp().expires_after(srv_.opt.body_timeout);
    bhttp::async_write(stream_, res, [self = self(), keep_alive, linger](beast::error_code ec, size_t bytes) {
      self->on_write(ec, bytes, keep_alive, linger);
    });
  }

  void on_write(beast::error_code ec, size_t bytes, bool keep_alive, bool linger) {
    if (srv_.opt.access_log) {  // never the Authorization header, the query or the body
      auto us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started_).count();
      char dur[32];
      std::snprintf(dur, sizeof dur, "%.3fms", static_cast<double>(us) / 1000.0);
      log::info("access " + remote_ + " " + log_method_ + " " + log_path_ + " " + std::to_string(status_) + " " +
                dur + " " + std::to_string(bytes) + "B" + (ec ? " write-error" : ""));
    }
    res_.reset();
    if (ec) return close_now();
    if (!keep_alive) return linger ? linger_close() : graceful_close();
    wait_request();
  }

  // ---- Streamed (chunked) responses: the header, then one chunk per poll that found bytes, then the last chunk and
  // a close. Nothing blocks: a timer on the strand polls the BodyStream and the socket's hang-up state (POLLRDHUP,
  // which sees the client's FIN also through TLS); the write deadline is body_timeout per chunk. ----

  void send_stream(Response r) {
    body_stream_ = std::move(r.stream);
    stream_res_.emplace();
    auto& res = *stream_res_;
    res.version(version_);
    res.result(static_cast<unsigned>(r.status));
    status_ = r.status;
    if (int cls = r.status / 100; cls >= 1 && cls <= 5)
      srv_.by_class[static_cast<size_t>(cls)].fetch_add(1, std::memory_order_relaxed);
    res.set(bhttp::field::server, "vpcd");
    res.set(bhttp::field::content_type, r.content_type);
    for (auto& [name, value] : r.headers) res.insert(name, value);
    res.set("X-Content-Type-Options", "nosniff");
    res.set("X-Frame-Options", "DENY");
    res.set("Content-Security-Policy", kCsp);
    res.set("Referrer-Policy", "no-referrer");
    res.set(bhttp::field::cache_control, "no-store");
    res.keep_alive(false);
    res.chunked(true);
    stream_sr_.emplace(res);
    state_ = State::kBusy;
    stream_timer_.emplace(stream_.get_executor());
    tcp().expires_after(srv_.opt.body_timeout);
    bhttp::async_write_header(stream_, *stream_sr_, [self = self()](beast::error_code ec, size_t n) {
      self->streamed_ += n;
      if (ec) return self->end_stream(ec);
      self->stream_tick();
    });
  }

  bool peer_hung_up() {
    pollfd p{};
    p.fd = tcp().socket().native_handle();
    p.events = POLLRDHUP;
    return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
  }

  void stream_tick() {
    if (state_ == State::kClosing) return end_stream(asio::error::operation_aborted);  // force_close()
    tcp().expires_never();
    if (peer_hung_up()) return end_stream(asio::error::eof);
    bool last = draining_ || srv_.draining.load(std::memory_order_relaxed);
    chunk_.clear();
    if (!last) last = body_stream_->read(chunk_) == BodyStream::State::kEnd;
    if (last) body_stream_.reset();  // ends the producer before the last bytes are even written
    if (chunk_.empty()) {
      if (last) return write_last_chunk();
      stream_timer_->expires_after(std::chrono::milliseconds(BodyStream::kPollIntervalMs));
      stream_timer_->async_wait([self = self()](beast::error_code ec) {
        if (ec) return self->end_stream(ec);
        self->stream_tick();
      });
      return;
    }
    tcp().expires_after(srv_.opt.body_timeout);
    asio::async_write(stream_, bhttp::make_chunk(asio::buffer(chunk_)),
                      [self = self(), last](beast::error_code ec, size_t n) {
                        self->streamed_ += n;
                        if (ec) return self->end_stream(ec);
                        if (last) return self->write_last_chunk();
                        self->stream_tick();
                      });
  }

  void write_last_chunk() {
    tcp().expires_after(srv_.opt.body_timeout);
    asio::async_write(stream_, bhttp::make_chunk_last(), [self = self()](beast::error_code ec, size_t n) {
      self->streamed_ += n;
      self->end_stream(ec);
    });
  }

  // The stream is over (ec: why, if it did not end normally): release the producer, log, close the connection.
  void end_stream(beast::error_code ec) {
    body_stream_.reset();
    stream_timer_.reset();
    stream_sr_.reset();
    stream_res_.reset();
    if (srv_.opt.access_log) {
      auto us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started_).count();
      char dur[32];
      std::snprintf(dur, sizeof dur, "%.3fms", static_cast<double>(us) / 1000.0);
      log::info("access " + remote_ + " " + log_method_ + " " + log_path_ + " " + std::to_string(status_) + " " +
                dur + " " + std::to_string(streamed_) + "B streamed" + (ec ? " (" + ec.message() + ")" : ""));
    }
    if (ec) return close_now();
    graceful_close();
  }

  // After an error response sent without reading the request's body: stop sending, then read and discard what the
  // client still sends for a short while, so our response is not destroyed by a TCP reset.
  void linger_close() {
    state_ = State::kClosing;
    beast::error_code ec;
    tcp().socket().shutdown(tcp::socket::shutdown_send, ec);
    tcp().expires_after(kLingerTime);
    linger_read();
  }

  void linger_read() {
    tcp().async_read_some(asio::buffer(linger_buf_), [self = self()](beast::error_code ec, size_t n) {
      self->lingered_ += n;
      if (ec || self->lingered_ > kLingerBytes) return self->close_now();
      self->linger_read();
    });
  }

  void graceful_close() {
    state_ = State::kClosing;
    if constexpr (kTls) {
      // Send our close_notify but do not wait for the peer's (RFC 8446 6.1 allows it): most HTTP clients never
      // answer, and waiting would hold the connection slot and a graceful drain for kCloseTimeout.
      SSL_set_shutdown(stream_.native_handle(), SSL_RECEIVED_SHUTDOWN);
      tcp().expires_after(kCloseTimeout);
      stream_.async_shutdown([self = self()](beast::error_code) { self->close_now(); });
    } else {
      close_now();
    }
  }

  void close_now() {
    state_ = State::kClosing;
    beast::error_code ec;
    tcp().socket().shutdown(tcp::socket::shutdown_both, ec);
    tcp().close();
  }

  HttpServer::Impl& srv_;
  Stream stream_;
  std::string remote_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::optional<bhttp::response<bhttp::string_body>> res_;
  std::shared_ptr<BodyStream> body_stream_;  // a streamed response's producer; reset = the producer stops
  std::optional<bhttp::response<bhttp::empty_body>> stream_res_;
  std::optional<bhttp::response_serializer<bhttp::empty_body>> stream_sr_;
  std::optional<asio::steady_timer> stream_timer_;
  std::string chunk_;
  size_t streamed_ = 0;
  State state_ = State::kHandshake;
  bool first_request_ = true;
  bool draining_ = false;
  unsigned version_ = 11;
  int status_ = 0;
  Clock::time_point started_ = Clock::now();
  std::string log_method_, log_path_;
  std::array<char, 4096> linger_buf_{};
  size_t lingered_ = 0;
};

bool is_api_path(std::string_view p) {
  return p == "/v1" || starts_with(p, "/v1/") || p == "/metrics" || starts_with(p, "/metrics/");
}

Response unauthorized(std::string_view detail, bool invalid_token) {
  Response r = problem(401, "Unauthorized", detail);
  r.headers.emplace_back("WWW-Authenticate",
                         invalid_token ? "Bearer realm=\"vpcd\", error=\"invalid_token\"" : "Bearer realm=\"vpcd\"");
  return r;
}

}  // namespace

Response HttpServer::Impl::process(Request& req) {
  try {
    if (auto wait = limiter.take(req.remote)) {
      rate_limited.fetch_add(1, std::memory_order_relaxed);
      Response r = problem(429, "Too Many Requests", "request rate limit exceeded for " + req.remote);
      r.headers.emplace_back("Retry-After", std::to_string(*wait));
      return r;
    }
    if (!opt.web_root.empty() && req.method == "GET" && !is_api_path(req.path)) return statics.serve(req.path);

    Router::Match m = router.match(req.method, req.path);
    if (m.kind == Router::Match::Kind::kNotFound) return problem(404, "Not Found", "no resource at " + req.path);
    if (m.kind == Router::Match::Kind::kMethodNotAllowed) {
      Response r = problem(405, "Method Not Allowed", req.method + " is not allowed on " + req.path);
      r.headers.emplace_back("Allow", m.allow);
      return r;
    }
    if (m.min_role != Role::kNone) {
      auto authz = req.header("authorization");
      if (!authz) return unauthorized("a bearer token is required (Authorization: Bearer TOKEN)", false);
      std::string_view v = trim(*authz);
      if (v.size() < 7 || !beast::iequals(v.substr(0, 7), "bearer ")) {
        return unauthorized("the Authorization header must use the Bearer scheme", false);
      }
      std::string_view bearer = trim(v.substr(7));
      auto who = auth ? auth(bearer) : std::nullopt;
      if (!who) return unauthorized("the bearer token is not valid", true);
      req.role = who->first;
      req.token_id = who->second;
      if (static_cast<int>(req.role) < static_cast<int>(m.min_role))
        return problem(403, "Forbidden", "this token's role may not " + req.method + " " + req.path);
    }
    if (!req.body.empty()) {
      std::string_view ct = req.header("content-type").value_or("");
      std::string type = lower(trim(ct.substr(0, ct.find(';'))));
      bool ok = type == "application/json" || (req.method == "PATCH" && type == "application/merge-patch+json");
      if (!ok) {
        return problem(415, "Unsupported Media Type",
                       req.method == "PATCH" ? "the body must be application/json or application/merge-patch+json"
                                             : "the body must be application/json");
      }
    }
    req.params = std::move(m.params);
    return (*m.handler)(req);
  } catch (const std::exception& e) {
    log::error("handler for " + req.method + " " + req.path + " threw: " + e.what());
  } catch (...) {
    log::error("handler for " + req.method + " " + req.path + " threw a non-std exception");
  }
  return problem(500, "Internal Server Error", "the server failed to handle this request; see its log");
}

void HttpServer::Impl::do_accept() {
  acceptor->async_accept(asio::make_strand(*ioc),
                         [this](beast::error_code ec, tcp::socket s) { on_accept(ec, std::move(s)); });
}

void HttpServer::Impl::on_accept(beast::error_code ec, tcp::socket socket) {
  if (ec == asio::error::operation_aborted || draining.load() || !acceptor->is_open()) return;
  if (ec) {
    // EMFILE and friends: back off briefly rather than spin.
    log::warn("accept failed: " + ec.message());
    accept_retry->expires_after(std::chrono::milliseconds(100));
    accept_retry->async_wait([this](beast::error_code tec) {
      if (!tec && !draining.load()) do_accept();
    });
    return;
  }
  if (open.load(std::memory_order_relaxed) >= opt.max_connections) {
    rejected.fetch_add(1, std::memory_order_relaxed);
    beast::error_code ignored;
    socket.close(ignored);
    return do_accept();
  }
  accepted.fetch_add(1, std::memory_order_relaxed);
  beast::error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);
  auto ep = socket.remote_endpoint(ignored);
  std::string remote = ignored ? std::string("?") : ep.address().to_string();
  if (opt.tls) {
    auto s = std::make_shared<Session<true>>(*this, std::move(remote), std::move(socket), *ssl_ctx);
    add_session(s);
    s->run();
  } else {
    auto s = std::make_shared<Session<false>>(*this, std::move(remote), std::move(socket));
    add_session(s);
    s->run();
  }
  do_accept();
}

HttpServer::HttpServer(ServerOptions options, Router& router, Authenticator auth)
    : impl_(std::make_unique<Impl>(std::move(options), router, std::move(auth))) {}

HttpServer::~HttpServer() {
  if (impl_->started && !impl_->stopped) stop_graceful(std::chrono::seconds(0));
}

void HttpServer::start() {
  Impl& s = *impl_;
  if (s.started) throw std::runtime_error("HttpServer::start called twice");
  const ServerOptions& o = s.opt;
  if (o.threads == 0) throw std::runtime_error("the HTTP server needs at least one thread");
  if (o.tls) {
    if (o.cert_file.empty() || o.key_file.empty())
      throw std::runtime_error("TLS is enabled but no certificate and key file are configured");
    std::string error;
    if (!check_cert_key(o.cert_file, o.key_file, &error)) throw std::runtime_error(error);
    try {
      s.ssl_ctx = std::make_unique<ssl::context>(ssl::context::tls_server);
      s.ssl_ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                             ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use |
                             ssl::context::no_compression);
      SSL_CTX* native = s.ssl_ctx->native_handle();
      if (SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION) != 1 ||
          SSL_CTX_set_cipher_list(native, kTls12Ciphers) != 1)
        throw std::runtime_error("cannot configure TLS protocol versions or ciphers");
      SSL_CTX_set_options(native, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION);
      s.ssl_ctx->use_certificate_chain_file(o.cert_file);
      s.ssl_ctx->use_private_key_file(o.key_file, ssl::context::pem);
    } catch (const boost::system::system_error& e) {
      throw std::runtime_error("cannot load TLS certificate " + o.cert_file + " / key " + o.key_file + ": " +
                               e.what());
    }
  }
  s.ioc = std::make_unique<asio::io_context>(static_cast<int>(o.threads));
  beast::error_code ec;
  tcp::endpoint ep;
  auto addr = asio::ip::make_address(o.host, ec);
  if (!ec) {
    ep = tcp::endpoint(addr, o.port);
  } else {
    tcp::resolver resolver(*s.ioc);
    auto results = resolver.resolve(o.host, std::to_string(o.port), ec);
    if (ec || results.empty())
      throw std::runtime_error("cannot resolve listen address " + o.host + ": " + ec.message());
    ep = results.begin()->endpoint();
  }
  std::string where = o.host + ":" + std::to_string(o.port);
  s.acceptor = std::make_unique<tcp::acceptor>(asio::make_strand(*s.ioc));
  s.acceptor->open(ep.protocol(), ec);
  if (!ec) s.acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) s.acceptor->bind(ep, ec);
  if (!ec) s.acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    throw std::runtime_error("cannot listen on " + where + ": " + ec.message());
  s.port = s.acceptor->local_endpoint().port();
  s.accept_retry = std::make_unique<asio::steady_timer>(s.acceptor->get_executor());
  s.work.emplace(s.ioc->get_executor());
  s.started = true;
  s.do_accept();
  for (unsigned i = 0; i < o.threads; ++i) {
    s.threads.emplace_back([&s] {
      for (;;) {
        try {
          s.ioc->run();
          return;
        } catch (const std::exception& e) {
          log::error(std::string("HTTP server thread caught: ") + e.what());
        }
      }
    });
  }
  log::info(std::string("listening on ") + (o.tls ? "https://" : "http://") + o.host + ":" + std::to_string(s.port));
}

void HttpServer::stop_graceful(std::chrono::seconds deadline) {
  Impl& s = *impl_;
  if (!s.started || s.stopped) return;
  s.stopped = true;
  s.draining.store(true);
  asio::post(s.acceptor->get_executor(), [&s] {
    beast::error_code ec;
    s.acceptor->close(ec);
    s.accept_retry->cancel();
  });
  for (auto& session : s.live_sessions()) session->drain();
  auto until = Clock::now() + deadline;
  while (s.open.load() > 0 && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (s.open.load() > 0) {
    log::warn("closing " + std::to_string(s.open.load()) + " HTTP connection(s) still open at the drain deadline");
    for (auto& session : s.live_sessions()) session->force_close();
    auto hard = Clock::now() + std::chrono::seconds(1);
    while (s.open.load() > 0 && Clock::now() < hard) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  s.work.reset();
  s.ioc->stop();
  for (auto& t : s.threads) t.join();
  s.threads.clear();
}

uint16_t HttpServer::bound_port() const { return impl_->port; }

HttpServer::Metrics HttpServer::metrics() const {
  const Impl& s = *impl_;
  Metrics m;
  m.requests_1xx = s.by_class[1].load(std::memory_order_relaxed);
  m.requests_2xx = s.by_class[2].load(std::memory_order_relaxed);
  m.requests_3xx = s.by_class[3].load(std::memory_order_relaxed);
  m.requests_4xx = s.by_class[4].load(std::memory_order_relaxed);
  m.requests_5xx = s.by_class[5].load(std::memory_order_relaxed);
  m.connections_open = s.open.load(std::memory_order_relaxed);
  m.connections_accepted = s.accepted.load(std::memory_order_relaxed);
  m.connections_rejected = s.rejected.load(std::memory_order_relaxed);
  m.rate_limited = s.rate_limited.load(std::memory_order_relaxed);
  m.timeouts = s.timeouts.load(std::memory_order_relaxed);
  return m;
}

}  // namespace vpcd::http
