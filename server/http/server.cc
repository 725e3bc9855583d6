// HTTPS server on Boost.Beast; see server.h for the request pipeline. A handler may return a streamed body
// (Response::stream): see send_stream() in session.h. Each connection is a Session (session.h, instantiated in
// session_tls.cc and session_plain.cc) on its own strand (all of a session's members are touched only from its
// strand, except SessionBase's atomics). Shared server state lives in HttpServer::Impl (server_impl.h): counters are
// relaxed atomics; the session registry, the per-client connection counts and the rate limiter each have their own
// mutex (never held together, never held while calling out).
#include "server/http/server.h"

#include "server/http/server_impl.h"

namespace vpcd::http {
using namespace detail;
namespace {

// What the per-client connection cap counts: the address for IPv4, the /64 for IPv6 (one host has a whole /64).
std::string client_key(const asio::ip::address& a) {
  if (a.is_v6() && !a.to_v6().is_v4_mapped()) {
    auto b = a.to_v6().to_bytes();
    std::fill(b.begin() + 8, b.end(), 0);
    return asio::ip::address_v6(b).to_string() + "/64";
  }
  if (a.is_v6()) return asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6()).to_string();
  return a.to_string();
}

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


std::optional<Response> HttpServer::Impl::admit(Request& req, bool reserved, const Handler** handler) {
  try {
    if (auto wait = limiter.take(req.remote)) {
      rate_limited.fetch_add(1, std::memory_order_relaxed);
      Response r = problem(429, "Too Many Requests", "request rate limit exceeded for " + req.remote);
      r.headers.emplace_back("Retry-After", std::to_string(*wait));
      return r;
    }
    Router::Match m;
    const bool is_static = !opt.web_root.empty() && req.method == "GET" && !is_api_path(req.path);
    if (!is_static) {
      m = router.match(req.method, req.path);
      if (m.kind == Router::Match::Kind::kNotFound) return problem(404, "Not Found", "no resource at " + req.path);
      if (m.kind == Router::Match::Kind::kMethodNotAllowed) {
        Response r = problem(405, "Method Not Allowed", req.method + " is not allowed on " + req.path);
        r.headers.emplace_back("Allow", m.allow);
        return r;
      }
    }
    // On a reserved connection every request must carry an admin token (even those that need none).
    if (m.min_role != Role::kNone || reserved) {
      std::optional<Response> refusal;
      auto authz = req.header("authorization");
      std::string_view v = authz ? trim(*authz) : std::string_view{};
      if (!authz) {
        refusal = unauthorized("a bearer token is required (Authorization: Bearer TOKEN)", false);
      } else if (v.size() < 7 || !beast::iequals(v.substr(0, 7), "bearer ")) {
        refusal = unauthorized("the Authorization header must use the Bearer scheme", false);
      } else if (auto who = auth ? auth(trim(v.substr(7))) : std::nullopt) {
        req.role = who->first;
        req.token_id = who->second;
      } else {
        refusal = unauthorized("the bearer token is not valid", true);
      }
      if (reserved && req.role != Role::kAdmin) {
        Response r = problem(503, "Service Unavailable",
                             "every connection slot is taken; the last " +
                                 std::to_string(opt.admin_reserved_connections) +
                                 " are reserved for admin requests");
        r.headers.emplace_back("Retry-After", "1");
        return r;
      }
      if (refusal) return refusal;
      if (static_cast<int>(req.role) < static_cast<int>(m.min_role))
        return problem(403, "Forbidden", "this token's role may not " + req.method + " " + req.path);
    }
    if (is_static) return statics.serve(req.path);
    req.params = std::move(m.params);
    *handler = m.handler;
    return std::nullopt;
  } catch (const std::exception& e) {
    log::error("admission of " + req.method + " " + req.path + " threw: " + e.what());
  } catch (...) {
    log::error("admission of " + req.method + " " + req.path + " threw a non-std exception");
  }
  return problem(500, "Internal Server Error", "the server failed to handle this request; see its log");
}

Response HttpServer::Impl::dispatch(Request& req, const Handler* handler) {
  try {
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
    return (*handler)(req);
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
  beast::error_code ignored;
  auto ep = socket.remote_endpoint(ignored);
  std::string remote = ignored ? std::string("?") : ep.address().to_string();
  std::string client = ignored ? remote : client_key(ep.address());
  auto reject = [&] {
    rejected.fetch_add(1, std::memory_order_relaxed);
    beast::error_code ig;
    socket.close(ig);
    do_accept();
  };
  const uint64_t now_open = open.load(std::memory_order_relaxed);
  if (now_open >= opt.max_connections && !evict_one()) return reject();
  if (!client_take(client)) return reject();
  const bool reserved = opt.admin_reserved_connections > 0 &&
                        opt.admin_reserved_connections < opt.max_connections &&
                        now_open + opt.admin_reserved_connections >= opt.max_connections;
  accepted.fetch_add(1, std::memory_order_relaxed);
  socket.set_option(tcp::no_delay(true), ignored);
  if (opt.tls) {
    detail::start_tls_session(*this, std::move(remote), std::move(client), reserved, std::move(socket));
  } else {
    detail::start_plain_session(*this, std::move(remote), std::move(client), reserved, std::move(socket));
  }
  do_accept();
}

// At the connection cap: closes the oldest connection on which no request has authenticated yet (idle or slow
// clients, floods), so a new connection, possibly an operator's, gets its slot. False when there is none.
bool HttpServer::Impl::evict_one() {
  std::shared_ptr<SessionBase> victim;
  for (auto& s : live_sessions()) {
    if (s->proven.load(std::memory_order_relaxed) || s->evicting.load(std::memory_order_relaxed)) continue;
    if (!victim || s->accepted_at < victim->accepted_at) victim = s;
  }
  if (!victim || victim->evicting.exchange(true)) return false;
  evicted.fetch_add(1, std::memory_order_relaxed);
  victim->force_close();
  return true;
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

std::vector<Response> HttpServer::answer(std::string_view raw, size_t max_requests) {
  Impl& s = *impl_;
  std::vector<Response> out;
  while (!raw.empty() && out.size() < max_requests) {
    bhttp::request_parser<bhttp::string_body> p;
    p.eager(true);
    p.header_limit(kHeaderLimit);
    p.body_limit(std::numeric_limits<std::uint64_t>::max());
    beast::error_code ec;
    bool admitted = false;
    const Handler* handler = nullptr;
    Request req;
    req.remote = "fuzz";
    while (!ec && !p.is_done()) {
      if (raw.empty()) {
        ec = bhttp::error::partial_message;
        break;
      }
      size_t n = p.put(asio::buffer(raw.data(), raw.size()), ec);
      if (ec == bhttp::error::need_more) ec = {};
      raw.remove_prefix(n);
      if (!ec && p.is_header_done() && !admitted) {  // what a connection does after async_read_header
        admitted = true;
        if (auto bad = framing_error(p.get())) {
          out.push_back(std::move(*bad));
          return out;  // the connection would close
        }
        if (auto bad = request_from_header(p.get(), req)) {
          out.push_back(std::move(*bad));
          return out;
        }
        if (auto early = s.admit(req, false, &handler)) {
          out.push_back(std::move(*early));
          if (!p.is_done()) return out;  // answered before the body; the connection would close
          break;
        }
        p.body_limit(s.opt.body_limit);
        if (auto cl = p.content_length(); cl && *cl > s.opt.body_limit) {
          out.push_back(problem(413, "Content Too Large", "the request body is too large"));
          return out;
        }
      }
      if (n == 0 && !ec && !p.is_done()) ec = bhttp::error::partial_message;
    }
    if (ec) {
      if (ec != bhttp::error::partial_message) out.push_back(problem(400, "Bad Request", ec.message()));
      return out;
    }
    if (!handler) continue;  // answered at admission
    req.body = p.release().body();
    out.push_back(s.dispatch(req, handler));
  }
  return out;
}

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
  m.connections_evicted = s.evicted.load(std::memory_order_relaxed);
  m.rate_limited = s.rate_limited.load(std::memory_order_relaxed);
  m.timeouts = s.timeouts.load(std::memory_order_relaxed);
  return m;
}

}  // namespace vpcd::http
