// The HTTP boundary between the transport (server/http: Beast, TLS, limits) and the API handlers (server/api).
// Handlers see a parsed, size-limited, authenticated request and return a response value; they never touch sockets.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vpcd::http {

enum class Role { kNone, kViewer, kAdmin };

struct Request {
  std::string method;                         // "GET", "POST", ...
  std::string path;                           // decoded path without the query, e.g. "/v1/vpcs/UUID"
  std::map<std::string, std::string> query;   // decoded query parameters (last one wins)
  std::map<std::string, std::string> headers; // lower-case names
  std::string body;
  Role role = Role::kNone;                    // set by the server from the bearer token
  std::string token_id;                       // which token authenticated the request (for audit), "" when none
  std::vector<std::string> params;            // path parameters matched by the router ({id})
  std::string remote;                         // peer address, for logs

  std::optional<std::string_view> header(std::string_view lower_name) const {
    auto it = headers.find(std::string(lower_name));
    if (it == headers.end()) return std::nullopt;
    return it->second;
  }
};

// A response body produced over time (packet capture), sent with chunked transfer encoding after the headers. The
// server calls read() from the connection's strand every BodyStream::kPollInterval, never blocking, and writes what
// it got as one chunk. It destroys the stream when the body ended, the client hung up or a write failed: whatever
// produces the body must stop then (the destructor is the hang-up signal).
class BodyStream {
 public:
  enum class State { kMore, kEnd };
  static constexpr auto kPollIntervalMs = 20;
  virtual ~BodyStream() = default;
  // Appends the bytes available now to out (possibly none). kEnd: out holds the last bytes; read() is not called again.
  virtual State read(std::string& out) = 0;
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers (Location, ETag, ...)
  std::shared_ptr<BodyStream> stream;  // non-null: body ignored, the stream is sent chunked (status 200 only)
};

// RFC 9457 problem+json. `field` names the offending JSON field ("" = none).
Response problem(int status, std::string_view title, std::string_view detail, std::string_view field = {});

using Handler = std::function<Response(const Request&)>;

}  // namespace vpcd::http
