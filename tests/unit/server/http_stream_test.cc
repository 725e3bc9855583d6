// Streamed (chunked) responses of HttpServer (Response::stream, used by packet capture): the body arrives as it is
// produced and ends with the last chunk; a client that hangs up makes the server destroy the stream (the producer's
// stop signal) without waiting for the body to end; a graceful stop ends a stream early. Plain HTTP on 127.0.0.1.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "server/http/server.h"

namespace vpcd::http {
namespace {

using namespace std::chrono_literals;

// Produces "piece N\n" once per read() until `pieces` were handed out, then ends; or forever when pieces < 0.
class Pieces final : public BodyStream {
 public:
  Pieces(int pieces, std::atomic<int>* alive) : left_(pieces), alive_(alive) { alive_->fetch_add(1); }
  ~Pieces() override { alive_->fetch_sub(1); }
  State read(std::string& out) override {
    if (left_ == 0) return State::kEnd;
    out += "piece " + std::to_string(n_++) + "\n";
    if (left_ > 0) --left_;
    return left_ == 0 ? State::kEnd : State::kMore;
  }

 private:
  int left_;
  int n_ = 0;
  std::atomic<int>* alive_;
};

struct Fixture {
  std::atomic<int> alive{0};
  Router router;
  std::unique_ptr<HttpServer> server;

  Fixture() {
    router.add("GET", "/v1/stream/{n}", [this](const Request& req) {
      Response r;
      r.content_type = "text/plain";
      r.stream = std::make_shared<Pieces>(std::stoi(req.params[0]), &alive);
      return r;
    }, Role::kNone);
    ServerOptions o;
    o.host = "127.0.0.1";
    o.port = 0;
    o.tls = false;
    o.threads = 1;
    o.access_log = false;
    server = std::make_unique<HttpServer>(o, router, nullptr);
    server->start();
  }
  ~Fixture() { server->stop_graceful(1s); }

  int connect_and_get(const std::string& path) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(server->bound_port());
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n";
    EXPECT_EQ(::write(fd, req.data(), req.size()), ssize_t(req.size()));
    return fd;
  }
};

// Reads until EOF or the deadline.
std::string read_all(int fd, std::chrono::milliseconds limit) {
  std::string out;
  auto until = std::chrono::steady_clock::now() + limit;
  char buf[4096];
  while (std::chrono::steady_clock::now() < until) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, size_t(n));
  }
  return out;
}

bool wait_zero(std::atomic<int>& n, std::chrono::milliseconds limit) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (n.load() != 0 && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(5ms);
  return n.load() == 0;
}

TEST(HttpStream, ChunksThenTheLastChunk) {
  Fixture f;
  int fd = f.connect_and_get("/v1/stream/3");
  std::string r = read_all(fd, 5s);
  ::close(fd);
  EXPECT_NE(r.find("HTTP/1.1 200"), std::string::npos) << r;
  EXPECT_NE(r.find("Transfer-Encoding: chunked"), std::string::npos) << r;
  EXPECT_NE(r.find("Connection: close"), std::string::npos) << r;
  const size_t body = r.find("\r\n\r\n");
  ASSERT_NE(body, std::string::npos);
  // One chunk per read() with bytes ("piece N\n" = 8 bytes), then the zero-length last chunk.
  EXPECT_EQ(r.substr(body + 4), "8\r\npiece 0\n\r\n8\r\npiece 1\n\r\n8\r\npiece 2\n\r\n0\r\n\r\n");
  EXPECT_TRUE(wait_zero(f.alive, 2s));
}

TEST(HttpStream, HangUpDestroysTheStream) {
  Fixture f;
  int fd = f.connect_and_get("/v1/stream/-1");
  std::string head = read_all(fd, 300ms);  // some pieces arrive, the stream goes on
  EXPECT_NE(head.find("piece 1"), std::string::npos) << head;
  EXPECT_EQ(f.alive.load(), 1);
  ::close(fd);
  EXPECT_TRUE(wait_zero(f.alive, 2s));
}

TEST(HttpStream, GracefulStopEndsAStream) {
  Fixture f;
  int fd = f.connect_and_get("/v1/stream/-1");
  read_all(fd, 100ms);
  std::thread reader([&] { read_all(fd, 3s); });
  f.server->stop_graceful(2s);
  reader.join();
  ::close(fd);
  EXPECT_EQ(f.alive.load(), 0);
}

}  // namespace
}  // namespace vpcd::http
