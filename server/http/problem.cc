// RFC 9457 problem details (application/problem+json) for every error response. Threading: pure, any thread.
#include <nlohmann/json.hpp>

#include "server/http/types.h"

namespace vpcd::http {

Response problem(int status, std::string_view title, std::string_view detail, std::string_view field) {
  nlohmann::json j;
  j["type"] = "about:blank";
  j["title"] = std::string(title);
  j["status"] = status;
  if (!detail.empty()) j["detail"] = std::string(detail);
  if (!field.empty()) j["field"] = std::string(field);
  Response r;
  r.status = status;
  r.content_type = "application/problem+json";
  // Replace invalid UTF-8 (a detail may quote client input) rather than throw.
  r.body = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return r;
}

}  // namespace vpcd::http
