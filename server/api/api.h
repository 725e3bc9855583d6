// The REST resources of API.md (/v1/...): what the transport's Router serves. The app wires an ApiContext and calls
// register_routes(router, ctx) once at start-up; ctx must outlive the router.
//
// Threading: handlers may run on any number of transport threads at once; each takes the store's session mutex for
// its transaction. on_change() runs on the calling transport thread after every committed write.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "server/http/types.h"
#include "server/store/store.h"

namespace vpcd::api {

using store::Store;

// A validated capture request (GET /v1/nics/ID/capture, /v1/uplinks/ID/capture) for an object that exists.
struct CaptureRequest {
  std::string kind;  // "nics" | "uplinks"
  std::string id;
  std::string filter;
  uint64_t count = 1000;
  uint32_t seconds = 10;
  uint32_t snaplen = 262144;
};

struct ApiContext {
  Store& store;
  std::function<void()> on_change;                  // after every committed write: wakes the reconciler
  std::function<std::string()> stats_json;          // GET /v1/stats body
  std::function<std::string()> metrics_text;        // GET /metrics body (Prometheus text format)
  std::function<std::optional<std::string>(const std::string& nic_id)> nic_stats_json;  // nullopt: no counters yet
  std::string version;
  // Starts a capture: the streamed pcap response (Response::stream), or a problem (400 filter, 409, 429, 501).
  std::function<http::Response(const CaptureRequest&)> start_capture;
};

// What the OpenAPI document (openapi.cc) says about a route. Resource routes name their kind and operation and get
// everything from the KindSpec; other routes give a summary and the schema of their 200 body. A route without a doc
// still appears in the document (its path, method and role), with a generic 200.
struct RouteDoc {
  std::string operation_id;  // "getHealth"; resource routes: derived ("listVpcs")
  std::string summary;
  std::string kind;          // resource routes: the KindSpec's URL segment
  std::string op;            // resource routes: list | get | create | put | patch | delete
  nlohmann::json response_schema;  // other routes: JSON Schema of the 200 body (null: not described)
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> query;  // other routes: query parameters (name, description)
};

struct RouteDef {
  std::string method;   // "GET", "POST", ...
  std::string pattern;  // "/v1/vpcs/{id}"
  http::Handler handler;
  http::Role min_role;  // kNone: no token needed (health)
  RouteDoc doc = {};
};

// GET /v1/nics/{id}/capture and /v1/uplinks/{id}/capture (capture.cc).
void add_capture_routes(std::vector<RouteDef>& out, ApiContext& ctx);

// The OpenAPI 3.1 description of `routes` (GET /v1/openapi.json), from the routes' docs and the kind tables.
nlohmann::json openapi_document(const std::vector<RouteDef>& routes, const std::string& version);

// GET /v1/whoami's "capabilities": every datapath capability by name, true when carried (datapath/capabilities.h).
nlohmann::json capabilities_json();

// Every route of the API, in registration order.
std::vector<RouteDef> api_routes(ApiContext& ctx);

// Registers api_routes(ctx) on the transport's router: any type with add(method, pattern, Handler, Role).
template <class Router>
void register_routes(Router& router, ApiContext& ctx) {
  for (auto& r : api_routes(ctx)) router.add(r.method, r.pattern, std::move(r.handler), r.min_role);
}

}  // namespace vpcd::api
