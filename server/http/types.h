// The HTTP boundary between the transport (server/http: Beast, TLS, limits) and the API handlers (server/api).
// Handlers see a parsed, size-limited, authenticated request and return a response value; they never touch sockets.
#pragma once

#include <functional>
#include <map>
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

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers (Location, ETag, ...)
};

// RFC 9457 problem+json. `field` names the offending JSON field ("" = none).
Response problem(int status, std::string_view title, std::string_view detail, std::string_view field = {});

using Handler = std::function<Response(const Request&)>;

}  // namespace vpcd::http
