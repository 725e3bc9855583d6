// libFuzzer target: the HTTP request path from raw bytes through framing checks, admission (routing, bearer
// authentication, roles), the body limit, Content-Type and the API handlers' JSON validation to the SQLite store,
// in process with no socket (HttpServer::answer). The input is up to 8 pipelined HTTP/1.1 requests, so a run can
// build state (PUT with fixed ids) and then act on it. Every input starts from a fresh in-memory store, so a finding
// reproduces from its input alone. Tokens: "Bearer admin" and "Bearer viewer".
// Invariants checked: no crash or sanitizer report, no 500 (API.md: a 500 is a bug), every answer a known status,
// every error answer problem+json.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <memory>
#include <string_view>

#include "server/api/api.h"
#include "server/http/router.h"
#include "server/http/server.h"
#include "server/store/store.h"

namespace {

using namespace vpcd;

std::optional<std::pair<http::Role, std::string>> fake_auth(std::string_view bearer) {
  if (bearer == "admin") return std::make_pair(http::Role::kAdmin, std::string("admin0000001"));
  if (bearer == "viewer") return std::make_pair(http::Role::kViewer, std::string("viewer000001"));
  return std::nullopt;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 64 * 1024) return 0;
  store::Store st(":memory:", VPCD_SOURCE_DIR "/migrations");
  api::ApiContext ctx{st,
                      [] {},
                      [] { return std::string("{}"); },
                      [] { return std::string(); },
                      [](const std::string&) -> std::optional<std::string> { return std::nullopt; },
                      "fuzz",
                      nullptr,
                      api::Limits{64, 64}};
  http::Router router;
  api::register_routes(router, ctx);
  http::ServerOptions o;
  o.tls = false;
  o.body_limit = 16 * 1024;
  o.access_log = false;
  http::HttpServer server(o, router, fake_auth);
  for (const auto& r : server.answer(std::string_view(reinterpret_cast<const char*>(data), size))) {
    if (r.status == 500 || r.status < 200 || r.status > 599) {
      std::fprintf(stderr, "status %d: %s\n", r.status, r.body.c_str());
      std::abort();
    }
    if (r.status >= 400 && r.content_type != "application/problem+json") {
      std::fprintf(stderr, "status %d with content type %s\n", r.status, r.content_type.c_str());
      std::abort();
    }
  }
  return 0;
}
