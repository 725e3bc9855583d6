// The HTTPS (or plain HTTP) REST server on Boost.Beast. One io_context run by `threads` threads; each connection
// runs its own state machine on its own strand: TLS handshake, then HTTP/1.1 keep-alive requests, each request read
// with a header limit (8 KiB), a body limit (413 before the body is read when Content-Length is too big, and for
// chunked bodies once they pass it) and timeouts (handshake and header: header_timeout; body: body_timeout; waiting
// for the next keep-alive request: idle_timeout). RFC 9112 framing is checked on the header (Transfer-Encoding other
// than a final `chunked`, Transfer-Encoding with Content-Length, TE in HTTP/1.0, bad chunk sizes: 400 and close).
// Admission runs on the header alone, before any body byte is read: rate limit (429), routing (404/405),
// authentication (401/403), the admin reserve (503); a refused request with a body is answered at once and the
// connection closed. Then the body, Content-Type (415), the handler (exceptions become 500), the response with
// security headers, and one access-log line. Paths outside /v1 and /metrics are served from web_root when it is set.
//
// Connections: at most max_connections, at most max_connections_per_client per client address; the last
// admin_reserved_connections slots serve admin requests only, and at the cap the oldest connection that never sent a
// complete request header is closed to make room, so idle connections cannot lock an operator out.
//
// Threading: construct, start() and stop_graceful() from one control thread (never from a handler). Handlers and the
// Authenticator run on the server's threads, possibly concurrently. metrics() and bound_port() from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "server/http/router.h"
#include "server/http/types.h"

namespace vpcd::http {

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8443;  // 0 = ephemeral (tests); see bound_port()
  bool tls = true;
  std::string cert_file, key_file;  // PEM; required when tls
  size_t body_limit = 1 << 20;
  std::chrono::seconds header_timeout{10}, body_timeout{30}, idle_timeout{60};
  unsigned max_connections = 1024;
  // Connections one client address may hold at once (0 = no per-client cap); more are closed at accept.
  unsigned max_connections_per_client = 128;
  // Of max_connections, the last admin_reserved_connections admit only admin requests (others: 503). When every slot
  // is taken, the oldest connection that has not yet sent a complete request is closed to make room.
  unsigned admin_reserved_connections = 32;
  unsigned threads = 2;
  std::string web_root;         // "" = no static files
  double rate_per_client = 0;   // requests/s per client address, 0 = off
  unsigned rate_burst = 200;
  bool access_log = true;       // one line per request to stderr
};

// Maps a bearer token to (role, token id); nullopt = unknown token. Runs on server threads.
using Authenticator = std::function<std::optional<std::pair<Role, std::string>>(std::string_view bearer)>;

class HttpServer {
 public:
  struct Metrics {
    uint64_t requests_1xx = 0, requests_2xx = 0, requests_3xx = 0, requests_4xx = 0, requests_5xx = 0;
    uint64_t connections_open = 0;
    uint64_t connections_accepted = 0;
    uint64_t connections_rejected = 0;  // over max_connections or the per-client cap: accepted then closed at once
    uint64_t connections_evicted = 0;   // idle connections without a request closed to make room at the cap
    uint64_t rate_limited = 0;          // 429 responses
    uint64_t timeouts = 0;              // connections closed by a handshake/header/body/idle timeout
  };

  HttpServer(ServerOptions options, Router& router, Authenticator auth);
  ~HttpServer();  // stops (without waiting for in-flight requests) if still running
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Loads TLS material, binds, listens and starts the threads. Throws std::runtime_error with a clear message
  // (bad certificate/key, address in use, ...).
  void start();

  // Stops accepting, closes idle keep-alive connections, lets in-flight requests finish (their responses carry
  // Connection: close), and after `deadline` closes whatever is left. Joins the threads. Idempotent.
  void stop_graceful(std::chrono::seconds deadline);

  uint16_t bound_port() const;
  Metrics metrics() const;

  // Parses up to `max_requests` pipelined HTTP/1.1 requests from `raw` and answers each as a connection would
  // (framing checks, admission from the header, body limit, Content-Type, handler) with no socket and no start();
  // stops at the first answer after which a connection would close, and at an incomplete request. For the fuzz
  // target (fuzz/fuzz_http_api.cc) and tests. Thread-safe like a handler.
  std::vector<Response> answer(std::string_view raw, size_t max_requests = 8);

  struct Impl;  // defined in server_impl.h (public only so the connection sessions, session.h, can name it)

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace vpcd::http
