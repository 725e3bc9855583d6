// One connection of the HTTPS server: the Session<kTls> state machine (see server.cc's header for the request
// pipeline and threading). Included only by session_tls.cc and session_plain.cc, each instantiating one of the two.
#pragma once

#include "server/http/server_impl.h"

namespace vpcd::http::detail {

template <bool kTls>
class Session final : public SessionBase {
 public:
  using Stream = std::conditional_t<kTls, beast::ssl_stream<beast::tcp_stream>, beast::tcp_stream>;

  // `client` is the key the per-client cap counted (released on destruction); `reserved`: this connection took one
  // of the slots reserved for admins.
  template <class... Args>
  Session(HttpServer::Impl& srv, std::string remote, std::string client, bool reserved, Args&&... args)
      : srv_(srv), stream_(std::forward<Args>(args)...), remote_(std::move(remote)), client_(std::move(client)),
        reserved_(reserved) {
    srv_.open.fetch_add(1, std::memory_order_relaxed);
  }
  ~Session() override {
    srv_.remove_session(this);
    srv_.client_release(client_);
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
    // No body limit while the header is read (Beast would refuse a big Content-Length before the request is
    // authenticated); on_header() sets it once the request is admitted. Not boost::none: Beast 1.74 compares the
    // Content-Length with the optional, and any length is "greater" than an empty one.
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
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
    version_ = msg.version() ? msg.version() : 11;
    keep_alive_ = msg.keep_alive();
    log_method_ = std::string(msg.method_string());
    if (auto bad = framing_error(msg)) return reply_and_close(std::move(*bad));

    // Admission from the header alone: nothing of the body has been read yet.
    req_ = Request{};
    req_.remote = remote_;
    handler_ = nullptr;
    if (auto bad = request_from_header(msg, req_)) {
      log_path_ = std::string(msg.target().substr(0, 200));
      return refuse(std::move(*bad));
    }
    log_path_ = req_.path;
    std::optional<Response> early = srv_.admit(req_, reserved_, &handler_);
    if (req_.role != Role::kNone) proven.store(true, std::memory_order_relaxed);
    if (early) return refuse(std::move(*early));

    parser_->body_limit(srv_.opt.body_limit);
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

  // Answers a request that admission refused. Without a body the connection may stay open; with one, the body is
  // never read: the answer goes out at once and the connection closes.
  void refuse(Response r) {
    if (parser_->is_done()) {
      parser_.reset();
      send(std::move(r), keep_alive_ && !reserved_, false);
      return;
    }
    // An unauthenticated client gets at most body_limit bytes drained after the answer (enough for a client that
    // writes its whole body before reading, such as python-requests); an authenticated one the usual amount.
    linger_limit_ = req_.role == Role::kNone ? srv_.opt.body_limit : kLingerBytes;
    reply_and_close(std::move(r));
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
    req_.body = std::move(msg.body());
    Response res = srv_.dispatch(req_, handler_);
    send(std::move(res), keep_alive_, false);  // admitted: on a reserved slot that means an admin
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

  // The status line, its count, and the headers every response carries: Server, Content-Type (with_content_type),
  // the handler's own, then the security headers.
  template <class Body>
  void start_response(bhttp::response<Body>& res, const Response& r, bool with_content_type) {
    res.version(version_);
    res.result(static_cast<unsigned>(r.status));
    status_ = r.status;
    // Counted when queued (not after the write) so a client that has read the response sees it counted.
    if (int cls = r.status / 100; cls >= 1 && cls <= 5)
      srv_.by_class[static_cast<size_t>(cls)].fetch_add(1, std::memory_order_relaxed);
    res.set(bhttp::field::server, "vpcd");
    if (with_content_type) res.set(bhttp::field::content_type, r.content_type);
    for (const auto& [name, value] : r.headers) res.insert(name, value);
    res.set("X-Content-Type-Options", "nosniff");
    res.set("X-Frame-Options", "DENY");
    res.set("Content-Security-Policy", kCsp);
    res.set("Referrer-Policy", "no-referrer");
  }

  void send(Response r, bool keep_alive, bool linger) {
    if (r.stream) return send_stream(std::move(r));
    keep_alive = keep_alive && !draining_ && !srv_.draining.load(std::memory_order_relaxed);
    res_.emplace();
    auto& res = *res_;
    const bool no_body = r.status < 200 || r.status == 204 || r.status == 304;
    start_response(res, r, !no_body);
    if (!no_body) res.body() = std::move(r.body);
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
    start_response(res, r, true);
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
      if (ec || self->lingered_ > self->linger_limit_) return self->close_now();
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
  const std::string client_;
  const bool reserved_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::optional<bhttp::response<bhttp::string_body>> res_;
  std::shared_ptr<BodyStream> body_stream_;  // a streamed response's producer; reset = the producer stops
  std::optional<bhttp::response<bhttp::empty_body>> stream_res_;
  std::optional<bhttp::response_serializer<bhttp::empty_body>> stream_sr_;
  std::optional<asio::steady_timer> stream_timer_;
  std::string chunk_;
  size_t streamed_ = 0;
  Request req_;                       // the request being handled, from its header on
  const Handler* handler_ = nullptr;  // its route's handler once admitted
  bool keep_alive_ = true;
  State state_ = State::kHandshake;
  bool first_request_ = true;
  bool draining_ = false;
  unsigned version_ = 11;
  int status_ = 0;
  Clock::time_point started_ = Clock::now();
  std::string log_method_, log_path_;
  std::array<char, 4096> linger_buf_{};
  size_t lingered_ = 0;
  size_t linger_limit_ = kLingerBytes;
};

}  // namespace vpcd::http::detail
