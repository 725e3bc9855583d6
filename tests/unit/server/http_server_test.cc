// A real HttpServer on 127.0.0.1 (ephemeral port) driven by a Beast/OpenSSL client: auth, limits, timeouts,
// keep-alive, connection cap, rate limit, graceful stop, handler exceptions, static files, plain HTTP.
#include "server/http/server.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include <arpa/inet.h>
#include <poll.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/http/tls.h"

namespace vpcd::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;
using namespace std::chrono_literals;
using Reply = bhttp::response<bhttp::string_body>;

struct TempDir {
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "vpcd_http_test_XXXXXX").string();
    path = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string path;
};

// A client on its own io_context; every operation is bounded in time by run_for().
template <bool kTls>
class BasicClient {
 public:
  using Stream = std::conditional_t<kTls, beast::ssl_stream<beast::tcp_stream>, beast::tcp_stream>;

  explicit BasicClient(const std::string& ca_file = "") {
    if constexpr (kTls) {
      ctx_.set_verify_mode(ssl::verify_peer);
      ctx_.load_verify_file(ca_file);
    }
  }

  // Connects (and for TLS handshakes, verifying the server's certificate for "localhost").
  bool connect(uint16_t port) {
    if constexpr (kTls) {
      stream_.emplace(ioc_, ctx_);
      SSL_set_tlsext_host_name(stream_->native_handle(), "localhost");
      stream_->set_verify_callback(ssl::host_name_verification("localhost"));
    } else {
      stream_.emplace(ioc_);
    }
    tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), port);
    if (run([&](auto h) { beast::get_lowest_layer(*stream_).async_connect(ep, h); })) return false;
    if constexpr (kTls) {
      if (run([&](auto h) { stream_->async_handshake(ssl::stream_base::client, h); })) return false;
    }
    return true;
  }

  bool write_raw(const std::string& bytes) {
    return !run([&](auto h) { asio::async_write(*stream_, asio::buffer(bytes), h); });
  }

  std::optional<Reply> read_reply(std::chrono::milliseconds t = 5000ms) {
    Reply res;
    if (run([&](auto h) { bhttp::async_read(*stream_, buf_, res, h); }, t)) return std::nullopt;
    return res;
  }

  std::optional<Reply> request(const std::string& method, const std::string& target, const std::string& token = "",
                               const std::string& body = "", const std::string& type = "application/json") {
    bhttp::request<bhttp::string_body> req{bhttp::string_to_verb(method), target, 11};
    req.set(bhttp::field::host, "localhost");
    if (!token.empty()) req.set(bhttp::field::authorization, "Bearer " + token);
    if (!body.empty()) {
      req.set(bhttp::field::content_type, type);
      req.body() = body;
    }
    req.prepare_payload();
    if (run([&](auto h) { bhttp::async_write(*stream_, req, h); })) return std::nullopt;
    return read_reply();
  }

  // True when the server closes the connection (EOF, reset or TLS error) within `t`.
  bool closed_within(std::chrono::milliseconds t) {
    std::array<char, 512> scratch;
    for (;;) {
      auto ec = run([&](auto h) { stream_->async_read_some(asio::buffer(scratch), h); }, t);
      if (ec == beast::error::timeout) return false;
      if (ec) return true;
    }
  }

 private:
  // Starts one async operation and runs the io_context until it completes or `t` passes (then the socket is closed
  // and beast::error::timeout returned).
  template <class Start>
  beast::error_code run(Start&& start, std::chrono::milliseconds t = 5000ms) {
    std::optional<beast::error_code> result;
    start([&](beast::error_code ec, auto&&...) { result = ec; });
    ioc_.restart();
    ioc_.run_for(t);
    if (result) return *result;
    beast::error_code ignored;
    beast::get_lowest_layer(*stream_).socket().close(ignored);
    ioc_.restart();
    ioc_.run_for(1s);
    return beast::error::timeout;
  }

  asio::io_context ioc_;
  ssl::context ctx_{ssl::context::tls_client};
  std::optional<Stream> stream_;
  beast::flat_buffer buf_;
};
using Client = BasicClient<true>;

Response json(int status, std::string body) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(ensure_self_signed(dir_.path, &cert_, &key_), "");
    router_.add("GET", "/v1/health", [](const Request&) { return json(200, R"({"status":"ok"})"); }, Role::kNone);
    router_.add("GET", "/v1/things/{id}", [](const Request& r) {
      return json(200, "id=" + r.params.at(0) + " token=" + r.token_id + " role=" +
                           std::to_string(static_cast<int>(r.role)) + " q=" + (r.query.count("x") ? r.query.at("x") : ""));
    }, Role::kViewer);
    router_.add("POST", "/v1/things", [](const Request& r) { return json(201, r.body); }, Role::kAdmin);
    router_.add("PATCH", "/v1/things/{id}", [](const Request& r) { return json(200, r.body); }, Role::kAdmin);
    router_.add("GET", "/v1/boom", [](const Request&) -> Response { throw std::runtime_error("kaboom"); },
                Role::kViewer);
    router_.add("GET", "/v1/slow", [this](const Request&) {
      slow_started_.store(true);
      std::this_thread::sleep_for(700ms);
      return json(200, R"({"slow":true})");
    }, Role::kNone);
  }

  void TearDown() override {
    if (server_) server_->stop_graceful(0s);
  }

  ServerOptions options() {
    ServerOptions o;
    o.port = 0;
    o.cert_file = cert_;
    o.key_file = key_;
    o.threads = 2;
    o.access_log = false;
    return o;
  }

  void start(ServerOptions o) {
    server_ = std::make_unique<HttpServer>(o, router_, [](std::string_view bearer) {
      std::optional<std::pair<Role, std::string>> who;
      if (bearer == "admin-secret") who.emplace(Role::kAdmin, "adm1");
      if (bearer == "viewer-secret") who.emplace(Role::kViewer, "view1");
      return who;
    });
    server_->start();
    ASSERT_NE(server_->bound_port(), 0);
  }

  std::unique_ptr<Client> connect() {
    auto c = std::make_unique<Client>(cert_);
    EXPECT_TRUE(c->connect(server_->bound_port()));
    return c;
  }

  TempDir dir_;
  std::string cert_, key_;
  Router router_;
  std::unique_ptr<HttpServer> server_;
  std::atomic<bool> slow_started_{false};
};

std::string header(const Reply& r, std::string_view name) { return std::string(r[name]); }

// A plain TCP connection from `source` (any 127.0.0.0/8 address works on loopback) that sends nothing; -1 on failure.
int idle_connection(const char* source, uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in src{};
  src.sin_family = AF_INET;
  ::inet_pton(AF_INET, source, &src.sin_addr);
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(port);
  ::inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0 ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

struct Fds {
  std::vector<int> fds;
  ~Fds() {
    for (int fd : fds) ::close(fd);
  }
};

template <class Pred>
bool wait_until(Pred pred, std::chrono::milliseconds t = 10000ms) {
  auto deadline = std::chrono::steady_clock::now() + t;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

TEST_F(HttpServerTest, UnauthenticatedBodyIsRefusedFromTheHeaderBeforeItIsRead) {
  start(options());  // body limit 1 MiB: the announced body is within it
  struct Case {
    const char* name;
    std::string auth;
    unsigned status;
  } cases[] = {{"no token", "", 401}, {"bad token", "Authorization: Bearer nope\r\n", 401},
               {"viewer writing", "Authorization: Bearer viewer-secret\r\n", 403}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto cl = connect();
    // The body is never sent: the answer must come from the header alone.
    ASSERT_TRUE(cl->write_raw("POST /v1/things HTTP/1.1\r\nHost: x\r\n" + c.auth +
                              "Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n"));
    auto r = cl->read_reply(5000ms);
    ASSERT_TRUE(r) << "no answer before the body";
    EXPECT_EQ(r->result_int(), c.status);
    EXPECT_FALSE(r->keep_alive());
    EXPECT_TRUE(cl->closed_within(5000ms));
  }
  // Also when the announced body is over the limit: 401, not 413 (nothing is disclosed before authentication).
  auto cl = connect();
  ASSERT_TRUE(cl->write_raw("POST /v1/things HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n"));
  auto r = cl->read_reply(5000ms);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 401u);
}

TEST_F(HttpServerTest, FramingErrorsAre400AndClose) {
  start(options());
  const std::string head = "POST /v1/things HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer admin-secret\r\n"
                           "Content-Type: application/json\r\n";
  struct Case {
    const char* name;
    std::string raw;
    unsigned status;
  } cases[] = {
      {"chunked not final", head + "Transfer-Encoding: chunked, identity\r\n\r\n2\r\n{}\r\n0\r\n\r\n", 400},
      {"identity only", head + "Transfer-Encoding: identity\r\n\r\n{}", 400},
      {"TE then CL", head + "Transfer-Encoding: identity\r\nContent-Length: 2\r\n\r\n{}", 400},
      {"CL then TE", head + "Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", 400},
      {"TE then CL chunked", head + "Transfer-Encoding: chunked\r\nContent-Length: 7\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
       400},
      {"two TE fields", head + "Transfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501},
      {"chunked twice", head + "Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400},
      {"unknown coding", head + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501},
      {"TE in HTTP/1.0", "POST /v1/things HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer admin-secret\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
      {"bad chunk size", head + "Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", 400},
      {"negative chunk size", head + "Transfer-Encoding: chunked\r\n\r\n-2\r\n{}\r\n0\r\n\r\n", 400},
      {"chunk size overflow", head + "Transfer-Encoding: chunked\r\n\r\n10000000000000002\r\n{}\r\n0\r\n\r\n", 400},
      {"bad Content-Length", head + "Content-Length: 2x\r\n\r\n{}", 400},
      {"two Content-Lengths", head + "Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}x", 400},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto cl = connect();
    ASSERT_TRUE(cl->write_raw(c.raw));
    auto r = cl->read_reply();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->result_int(), c.status) << r->body();
    EXPECT_FALSE(r->keep_alive());
    EXPECT_TRUE(cl->closed_within(5000ms));
  }
  // Sound chunked framing still works.
  auto cl = connect();
  ASSERT_TRUE(cl->write_raw(head + "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"));
  auto r = cl->read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 201u);
  EXPECT_EQ(r->body(), "{}");
}

// The issue's case: 1100 idle TCP connections from one client (more than the global cap of 1024) must leave
// /v1/health and an admin request answering for everybody else.
TEST_F(HttpServerTest, IdleFloodFromOneClientLeavesHealthAndAdminAnswering) {
  rlimit rl{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &rl), 0);
  if (rl.rlim_cur < 4096) {
    rl.rlim_cur = std::min<rlim_t>(rl.rlim_max, 4096);
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &rl), 0);
  }
  ASSERT_GE(rl.rlim_cur, 2400u) << "the test needs 2 x 1100 descriptors (client and server ends)";
  ServerOptions o = options();  // the defaults: 1024 connections, 128 per client, 32 reserved for admins
  start(o);
  Fds flood;
  for (int i = 0; i < 1100; ++i) {
    int fd = idle_connection("127.0.0.2", server_->bound_port());
    ASSERT_GE(fd, 0) << "connect " << i << ": " << std::strerror(errno);
    flood.fds.push_back(fd);
  }
  ASSERT_TRUE(wait_until([&] {
    auto m = server_->metrics();
    return m.connections_accepted + m.connections_rejected >= 1100;
  }));
  EXPECT_EQ(server_->metrics().connections_open, 128u);

  auto c = connect();
  auto r = c->request("GET", "/v1/health");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 200u);
  auto admin = connect();
  r = admin->request("POST", "/v1/things", "admin-secret", R"({"a":1})");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 201u);
}

// Many clients fill every slot with idle connections: the last slots serve admins only, and at the cap the oldest
// idle connection gives way to a new one.
TEST_F(HttpServerTest, ReservedSlotsServeAdminsAndIdleConnectionsGiveWay) {
  ServerOptions o = options();
  o.max_connections = 8;
  o.max_connections_per_client = 0;
  o.admin_reserved_connections = 2;
  start(o);
  Fds idle;
  for (int i = 0; i < 6; ++i) idle.fds.push_back(idle_connection("127.0.0.3", server_->bound_port()));
  ASSERT_TRUE(wait_until([&] { return server_->metrics().connections_open == 6; }));
  auto reserved = connect();  // the 7th connection takes a reserved slot
  auto r = reserved->request("GET", "/v1/health");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 503u) << r->body();
  EXPECT_TRUE(reserved->closed_within(5000ms));
  ASSERT_TRUE(wait_until([&] { return server_->metrics().connections_open == 6; }));
  auto viewer = connect();
  r = viewer->request("GET", "/v1/things/1", "viewer-secret");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 503u);
  ASSERT_TRUE(wait_until([&] { return server_->metrics().connections_open == 6; }));
  auto admin = connect();
  r = admin->request("POST", "/v1/things", "admin-secret", "{}");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 201u);
  r = admin->request("POST", "/v1/things", "admin-secret", "{}");  // keep-alive on a reserved slot
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 201u);

  // Fill the last slot, then one more: the oldest idle connection is closed to make room for the new one.
  idle.fds.push_back(idle_connection("127.0.0.3", server_->bound_port()));
  ASSERT_TRUE(wait_until([&] { return server_->metrics().connections_open == 8; }));
  auto late_admin = connect();
  r = late_admin->request("GET", "/v1/things/7", "admin-secret");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 200u);
  EXPECT_GE(server_->metrics().connections_evicted, 1u);
  // The evicted one is the oldest idle connection: the server closed it.
  pollfd pfd{idle.fds[0], POLLIN, 0};
  ASSERT_EQ(::poll(&pfd, 1, 5000), 1);
  char byte;
  EXPECT_LE(::recv(idle.fds[0], &byte, 1, MSG_DONTWAIT), 0);
}

TEST_F(HttpServerTest, ControlBytesInTheRequestPathAreEscapedInTheLog) {
  ServerOptions o = options();
  o.access_log = true;
  start(o);
  auto c = connect();
  testing::internal::CaptureStderr();
  auto r = c->request("GET", "/v1/x%1b%5b2J%1b]0;pwned%07%7f%c2%9b%e2%82%ac", "viewer-secret");
  server_->stop_graceful(2s);
  std::string err = testing::internal::GetCapturedStderr();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 404u);
  for (char ch : err) {
    auto u = static_cast<unsigned char>(ch);
    EXPECT_TRUE(u == '\n' || (u >= 0x20 && u != 0x7f && u != 0x9b)) << "raw control byte " << int(u) << " in " << err;
  }
  EXPECT_NE(err.find("GET /v1/x\\x1b[2J\\x1b]0;pwned\\x07\\x7f\\xc2\\x9b\xe2\x82\xac 404"), std::string::npos) << err;
}

TEST_F(HttpServerTest, AuthenticatesAndAuthorizes) {
  start(options());
  auto c = connect();
  auto r = c->request("GET", "/v1/health");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 200u);
  EXPECT_EQ(r->body(), R"({"status":"ok"})");
  EXPECT_EQ(header(*r, "X-Content-Type-Options"), "nosniff");

  r = c->request("GET", "/v1/things/42");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 401u);
  EXPECT_EQ(header(*r, "Content-Type"), "application/problem+json");
  EXPECT_EQ(header(*r, "WWW-Authenticate").rfind("Bearer", 0), 0u);

  r = c->request("GET", "/v1/things/42", "wrong-secret");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 401u);
  EXPECT_NE(header(*r, "WWW-Authenticate").find("invalid_token"), std::string::npos);

  r = c->request("GET", "/v1/things/42?x=a%20b", "viewer-secret");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 200u);
  EXPECT_EQ(r->body(), "id=42 token=view1 role=1 q=a b");

  r = c->request("POST", "/v1/things", "viewer-secret", R"({"a":1})");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 403u);
  EXPECT_FALSE(r->keep_alive());  // refused from the header: its body was never read, so the connection closes

  c = connect();
  r = c->request("POST", "/v1/things", "admin-secret", R"({"a":1})");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 201u);
  EXPECT_EQ(r->body(), R"({"a":1})");

  ASSERT_TRUE(c->write_raw("GET /v1/things/1 HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YTpi\r\n\r\n"));
  r = c->read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 401u);
}

TEST_F(HttpServerTest, NotFoundAndMethodNotAllowed) {
  start(options());
  auto c = connect();
  auto r = c->request("GET", "/v1/nothing", "admin-secret");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 404u);
  EXPECT_EQ(header(*r, "Content-Type"), "application/problem+json");
  EXPECT_NE(r->body().find(R"("status":404)"), std::string::npos);
  r = c->request("DELETE", "/v1/things/1", "admin-secret");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 405u);
  EXPECT_EQ(header(*r, "Allow"), "GET, PATCH");
  r = c->request("GET", "/v1/%2Fx", "admin-secret");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 400u);
}

TEST_F(HttpServerTest, BigContentLengthIs413BeforeTheBody) {
  ServerOptions o = options();
  o.body_limit = 1024;
  start(o);
  auto c = connect();
  ASSERT_TRUE(c->write_raw("POST /v1/things HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer admin-secret\r\n"
                           "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"));
  auto r = c->read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 413u);
  EXPECT_EQ(header(*r, "Content-Type"), "application/problem+json");
  EXPECT_FALSE(r->keep_alive());
  EXPECT_TRUE(c->closed_within(5000ms));

  // A client that sends the whole oversized body before reading (python-requests does) still gets the 413.
  auto eager = connect();
  ASSERT_TRUE(eager->write_raw("POST /v1/things HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer admin-secret\r\n"
                               "Content-Type: application/json\r\nContent-Length: 3000000\r\n\r\n" +
                               std::string(3000000, 'a')));
  r = eager->read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 413u);

  // At the limit is fine.
  auto c2 = connect();
  r = c2->request("POST", "/v1/things", "admin-secret", "\"" + std::string(1022, 'a') + "\"");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 201u);
}

TEST_F(HttpServerTest, ChunkedBodyOverTheLimitIs413) {
  ServerOptions o = options();
  o.body_limit = 1024;
  start(o);
  auto c = connect();
  std::string chunk(800, 'x');
  char size_line[16];
  std::snprintf(size_line, sizeof size_line, "%zx\r\n", chunk.size());
  ASSERT_TRUE(c->write_raw("POST /v1/things HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer admin-secret\r\n"
                           "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" +
                           std::string(size_line) + chunk + "\r\n" + size_line + chunk + "\r\n0\r\n\r\n"));
  auto r = c->read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 413u);
}

TEST_F(HttpServerTest, NonJsonBodyIs415) {
  start(options());
  auto c = connect();
  auto r = c->request("POST", "/v1/things", "admin-secret", "hello", "text/plain");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 415u);
  EXPECT_EQ(header(*r, "Content-Type"), "application/problem+json");
  r = c->request("POST", "/v1/things", "admin-secret", "{}", "application/merge-patch+json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 415u);
  r = c->request("PATCH", "/v1/things/1", "admin-secret", "{}", "application/merge-patch+json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 200u);
  r = c->request("POST", "/v1/things", "admin-secret", "{}", "Application/JSON; charset=utf-8");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 201u);
}

TEST_F(HttpServerTest, ExpectContinueGets100ThenTheResponse) {
  start(options());
  auto c = connect();
  ASSERT_TRUE(c->write_raw("POST /v1/things HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer admin-secret\r\n"
                           "Content-Type: application/json\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"));
  auto r = c->read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 100u);
  ASSERT_TRUE(c->write_raw("{}"));
  r = c->read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 201u);
  EXPECT_EQ(r->body(), "{}");
}

TEST_F(HttpServerTest, KeepAliveServesManyRequestsOnOneConnection) {
  start(options());
  auto c = connect();
  for (int i = 0; i < 5; ++i) {
    auto r = c->request("GET", "/v1/things/" + std::to_string(i), "viewer-secret");
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->result_int(), 200u);
    EXPECT_TRUE(r->keep_alive());
  }
  // Two pipelined requests in one write.
  ASSERT_TRUE(c->write_raw("GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(c->read_reply());
  ASSERT_TRUE(c->read_reply());
  auto m = server_->metrics();
  EXPECT_EQ(m.connections_accepted, 1u);
  EXPECT_EQ(m.requests_2xx, 7u);
}

TEST_F(HttpServerTest, SlowlorisIsClosedAfterHeaderTimeout) {
  ServerOptions o = options();
  o.header_timeout = 1s;
  start(o);
  // The deadline covers the TLS handshake and the header, so time from before the connect.
  auto t0 = std::chrono::steady_clock::now();
  auto c = connect();
  ASSERT_TRUE(c->write_raw("GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: "));
  EXPECT_TRUE(c->closed_within(5000ms));
  auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_LT(waited, 4s);
  EXPECT_GE(waited, 900ms);
  // Beast closes the socket when the timer fires; the counting handler runs just after.
  auto deadline = std::chrono::steady_clock::now() + 2s;
  while (server_->metrics().timeouts == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  EXPECT_EQ(server_->metrics().timeouts, 1u);
}

TEST_F(HttpServerTest, IdleKeepAliveIsClosed) {
  ServerOptions o = options();
  o.idle_timeout = 1s;
  start(o);
  auto c = connect();
  ASSERT_TRUE(c->request("GET", "/v1/health"));
  EXPECT_TRUE(c->closed_within(4000ms));
}

TEST_F(HttpServerTest, OversizedHeaderIs431) {
  start(options());
  auto c = connect();
  ASSERT_TRUE(c->write_raw("GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(10000, 'a') + "\r\n\r\n"));
  auto r = c->read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 431u);
}

TEST_F(HttpServerTest, ConnectionCapRejectsExtraConnections) {
  ServerOptions o = options();
  o.max_connections = 2;
  o.admin_reserved_connections = 0;
  start(o);
  auto a = connect();
  auto b = connect();
  // Authenticated connections are never evicted to make room.
  ASSERT_TRUE(a->request("GET", "/v1/things/1", "viewer-secret"));
  ASSERT_TRUE(b->request("GET", "/v1/things/2", "viewer-secret"));
  Client extra(cert_);
  EXPECT_FALSE(extra.connect(server_->bound_port()));  // accepted, then closed before the handshake
  EXPECT_EQ(server_->metrics().connections_rejected, 1u);
  EXPECT_EQ(server_->metrics().connections_open, 2u);

  a.reset();  // frees a slot once the server sees the close
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (server_->metrics().connections_open > 1 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  auto c = connect();
  auto r = c->request("GET", "/v1/health");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 200u);
}

TEST_F(HttpServerTest, RateLimitGives429WithRetryAfter) {
  ServerOptions o = options();
  o.rate_per_client = 0.1;  // one token per 10 s: a slow (sanitizer, loaded) run cannot refill one in between
  o.rate_burst = 3;
  start(o);
  auto c = connect();
  for (int i = 0; i < 3; ++i) {
    auto r = c->request("GET", "/v1/health");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->result_int(), 200u) << i;
  }
  auto r = c->request("GET", "/v1/health");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 429u);
  EXPECT_EQ(header(*r, "Content-Type"), "application/problem+json");
  int retry = std::stoi(header(*r, "Retry-After"));
  EXPECT_GE(retry, 1);
  EXPECT_LE(retry, 10);
  EXPECT_EQ(server_->metrics().rate_limited, 1u);
}

TEST_F(HttpServerTest, GracefulStopFinishesInFlightRequest) {
  start(options());
  auto idle = connect();
  ASSERT_TRUE(idle->request("GET", "/v1/health"));  // now an idle keep-alive connection

  std::optional<Reply> slow_reply;
  auto busy = connect();
  std::thread client([&] { slow_reply = busy->request("GET", "/v1/slow"); });
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (!slow_started_.load() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(5ms);
  ASSERT_TRUE(slow_started_.load());

  auto t0 = std::chrono::steady_clock::now();
  server_->stop_graceful(10s);
  auto took = std::chrono::steady_clock::now() - t0;
  client.join();
  ASSERT_TRUE(slow_reply);
  EXPECT_EQ(slow_reply->result_int(), 200u);
  EXPECT_EQ(slow_reply->body(), R"({"slow":true})");
  EXPECT_FALSE(slow_reply->keep_alive());
  EXPECT_LT(took, 4s);  // deadline 10s: neither the idle connection nor the TLS close held the drain
  EXPECT_TRUE(idle->closed_within(2000ms));
  EXPECT_EQ(server_->metrics().connections_open, 0u);

  Client late(cert_);
  EXPECT_FALSE(late.connect(server_->bound_port()));
}

TEST_F(HttpServerTest, HandlerExceptionIs500AndServerLives) {
  start(options());
  auto c = connect();
  auto r = c->request("GET", "/v1/boom", "viewer-secret");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 500u);
  EXPECT_EQ(header(*r, "Content-Type"), "application/problem+json");
  EXPECT_EQ(r->body().find("kaboom"), std::string::npos);  // internals stay in the log
  r = c->request("GET", "/v1/health");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 200u);
  EXPECT_EQ(server_->metrics().requests_5xx, 1u);
}

TEST_F(HttpServerTest, ServesStaticFilesAndRefusesTraversal) {
  std::string web = dir_.path + "/web";
  std::filesystem::create_directories(web);
  std::ofstream(web + "/index.html") << "<html>dash</html>";
  std::ofstream(dir_.path + "/outside.txt") << "private";
  ServerOptions o = options();
  o.web_root = web;
  start(o);
  auto c = connect();
  auto r = c->request("GET", "/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 200u);
  EXPECT_EQ(r->body(), "<html>dash</html>");
  EXPECT_EQ(header(*r, "Content-Type"), "text/html; charset=utf-8");
  EXPECT_EQ(header(*r, "Cache-Control"), "no-cache");
  EXPECT_EQ(header(*r, "X-Frame-Options"), "DENY");
  EXPECT_NE(header(*r, "Content-Security-Policy").find("default-src 'self'"), std::string::npos);
  for (const char* target : {"/../outside.txt", "/%2e%2e/outside.txt", "/a/..%2F..%2Foutside.txt"}) {
    ASSERT_TRUE(c->write_raw(std::string("GET ") + target + " HTTP/1.1\r\nHost: x\r\n\r\n"));
    r = c->read_reply();
    ASSERT_TRUE(r) << target;
    EXPECT_NE(r->result_int(), 200u) << target;
    EXPECT_EQ(r->body().find("private"), std::string::npos) << target;
  }
  r = c->request("GET", "/v1/nothing", "viewer-secret");  // API paths never fall through to files
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 404u);
  EXPECT_EQ(header(*r, "Content-Type"), "application/problem+json");
}

TEST_F(HttpServerTest, AccessLogHasOneLinePerRequestWithoutSecrets) {
  ServerOptions o = options();
  o.access_log = true;
  start(o);
  auto c = connect();
  testing::internal::CaptureStderr();
  ASSERT_TRUE(c->request("POST", "/v1/things", "admin-secret", R"({"password":"hunter2"})"));
  ASSERT_TRUE(c->request("GET", "/v1/nothing", "viewer-secret"));
  server_->stop_graceful(2s);  // joins the server threads, so every line is written
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(err.find("admin-secret"), std::string::npos) << err;
  EXPECT_EQ(err.find("viewer-secret"), std::string::npos) << err;
  EXPECT_EQ(err.find("hunter2"), std::string::npos) << err;
  auto post = err.find("access 127.0.0.1 POST /v1/things 201 ");
  ASSERT_NE(post, std::string::npos) << err;
  EXPECT_NE(err.find("access 127.0.0.1 GET /v1/nothing 404 "), std::string::npos) << err;
  // RFC 3339 UTC timestamp at the start of the line.
  auto line_start = err.rfind('\n', post);
  line_start = line_start == std::string::npos ? 0 : line_start + 1;
  std::string ts = err.substr(line_start, 24);
  EXPECT_EQ(ts.size(), 24u);
  EXPECT_EQ(ts[4], '-');
  EXPECT_EQ(ts[10], 'T');
  EXPECT_EQ(ts[23], 'Z');
}

TEST_F(HttpServerTest, PlainHttpWhenTlsIsOff) {
  ServerOptions o = options();
  o.tls = false;
  start(o);
  BasicClient<false> c;
  ASSERT_TRUE(c.connect(server_->bound_port()));
  auto r = c.request("GET", "/v1/health");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 200u);
}

TEST_F(HttpServerTest, StartFailsClearly) {
  ServerOptions o = options();
  o.key_file = dir_.path + "/missing.pem";
  HttpServer s(o, router_, nullptr);
  try {
    s.start();
    FAIL() << "start() accepted a missing key";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.pem"), std::string::npos) << e.what();
  }
  start(options());
  ServerOptions same = options();
  same.port = server_->bound_port();
  HttpServer clash(same, router_, nullptr);
  EXPECT_THROW(clash.start(), std::runtime_error);
}

}  // namespace
}  // namespace vpcd::http
