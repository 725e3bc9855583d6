// GET /v1/nics/{id}/capture and GET /v1/uplinks/{id}/capture (API.md "Packet capture"): query validation, the
// object's existence, then ApiContext::start_capture, which answers with the streamed pcap or a problem.
//
// Threading: handlers run on transport threads; the store read is one read transaction; start_capture never blocks.
#include <charconv>

#include "server/api/api.h"
#include "server/api/kinds.h"

namespace vpcd::api {
namespace {

using http::Request;
using http::Response;
using http::Role;

constexpr size_t kMaxFilterBytes = 4096;

uint64_t query_uint(const Request& req, const std::string& name, uint64_t def, uint64_t min, uint64_t max) {
  auto it = req.query.find(name);
  if (it == req.query.end()) return def;
  const std::string& v = it->second;
  uint64_t out = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (v.empty() || ec != std::errc() || p != v.data() + v.size() || out < min || out > max)
    bad_request(name, name + " must be an integer from " + std::to_string(min) + " to " + std::to_string(max));
  return out;
}

Response capture(ApiContext& ctx, const Request& req, const std::string& kind, const std::string& singular) {
  try {
    for (const auto& [key, val] : req.query)
      if (key != "filter" && key != "count" && key != "seconds" && key != "snaplen")
        bad_request(key, "unknown query parameter \"" + key.substr(0, 100) +
                             "\" (allowed: filter, count, seconds, snaplen)");
    CaptureRequest c;
    c.kind = kind;
    c.id = req.params.empty() ? std::string() : req.params[0];
    auto f = req.query.find("filter");
    if (f != req.query.end()) {
      if (f->second.size() > kMaxFilterBytes)
        bad_request("filter", "filter is longer than " + std::to_string(kMaxFilterBytes) + " bytes");
      c.filter = f->second;
    }
    c.count = query_uint(req, "count", 1000, 1, 1000000);
    c.seconds = uint32_t(query_uint(req, "seconds", 10, 1, 3600));
    c.snaplen = uint32_t(query_uint(req, "snaplen", 262144, 1, 262144));
    if (!is_uuid(c.id)) not_found("no such object: ids are lower-case UUIDs");
    {
      auto session = ctx.store.session();
      store::Transaction tx(session.db(), false);
      store::Query q(session.db(), "SELECT 1 FROM " + kind + " WHERE id = ?", c.id);
      if (!q.next()) not_found(singular + " " + c.id + " does not exist");
    }
    if (!ctx.start_capture) return http::problem(501, "Not Implemented", "this server has no datapath to capture from");
    return ctx.start_capture(c);
  } catch (const ApiError& e) {
    return http::problem(e.status, e.title, e.what(), e.field);
  }
}

RouteDoc capture_doc(const std::string& id, const std::string& what) {
  RouteDoc d;
  d.operation_id = id;
  d.summary = "Packet capture of what " + what +
              " receives and sends: a pcap file streamed (chunked) until count frames, seconds, or the client hangs up";
  d.response_schema = {{"type", "string"}, {"contentMediaType", "application/vnd.tcpdump.pcap"}};
  d.content_type = "application/vnd.tcpdump.pcap";
  d.query = {{"filter", "tcpdump filter expression (400 when it does not compile)"},
             {"count", "frames to capture, 1..1000000 (default 1000)"},
             {"seconds", "duration, 1..3600 (default 10)"},
             {"snaplen", "bytes kept per frame, 1..262144 (default 262144)"}};
  return d;
}

}  // namespace

void add_capture_routes(std::vector<RouteDef>& out, ApiContext& ctx) {
  out.push_back({"GET", "/v1/nics/{id}/capture", [&ctx](const Request& req) { return capture(ctx, req, "nics", "NIC"); },
                 Role::kAdmin, capture_doc("captureNic", "the NIC")});
  out.push_back({"GET", "/v1/uplinks/{id}/capture",
                 [&ctx](const Request& req) { return capture(ctx, req, "uplinks", "uplink"); }, Role::kAdmin,
                 capture_doc("captureUplink", "the uplink")});
}

}  // namespace vpcd::api
