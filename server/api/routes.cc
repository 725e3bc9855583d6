// The route table of the API: the generic resource routes for every kind, health, stats, metrics, NIC stats and the
// audit log. Each write runs in one IMMEDIATE transaction together with its audit row; on_change() runs after commit.
#include <cctype>
#include <cstdio>
#include <memory>

#include "server/api/api.h"
#include "server/api/kinds.h"

namespace vpcd::api {

namespace {

using http::Request;
using http::Response;
using http::Role;
using store::DbError;
using store::Transaction;

constexpr int64_t kMaxEvents = 10000;

Response json_response(int status, const json& body) {
  Response r;
  r.status = status;
  r.body = body.dump();
  return r;
}

Response object_response(int status, const json& obj) {
  Response r = json_response(status, obj);
  r.headers.emplace_back("ETag", "\"" + std::to_string(obj["revision"].get<int64_t>()) + "\"");
  return r;
}

Response error_response(const ApiError& e) {
  Response r = http::problem(e.status, e.title, e.what(), e.field);
  if (!e.capability.empty()) {  // 501: name the missing capability as a problem member of its own
    json body = json::parse(r.body);
    body["capability"] = e.capability;
    r.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  }
  return r;
}

// The media type of the body, lower-case, without parameters.
std::string media_type(const Request& req) {
  auto ct = req.header("content-type");
  if (!ct) return {};
  std::string t(ct->substr(0, ct->find(';')));
  while (!t.empty() && t.back() == ' ') t.pop_back();
  for (auto& c : t) c = char(std::tolower(uint8_t(c)));
  return t;
}

void need_json_body(const Request& req, bool merge_patch) {
  std::string t = media_type(req);
  if (t == "application/json" || (merge_patch && t == "application/merge-patch+json")) return;
  throw ApiError(415, "Unsupported Media Type",
                 std::string("the body must be application/json") +
                     (merge_patch ? " or application/merge-patch+json" : "") +
                     (t.empty() ? " (no Content-Type given)" : ", not " + t.substr(0, 100)));
}

const std::string& path_id(const Request& req) {
  static const std::string kEmpty;
  if (req.params.empty()) return kEmpty;
  return req.params[0];
}

void check_path_id(const std::string& id) {
  if (!is_uuid(id)) not_found("no such object: ids are lower-case UUIDs");
}

// 422 when creating one more object of `kind` would pass the box's configured limit.
void check_capacity(ApiContext& ctx, store::Db& db, const KindSpec& k) {
  int64_t max = 0;
  const char* key = "";
  if (k.kind == "vpcs") {
    max = ctx.limits.max_vpcs;
    key = "max-vpcs";
  } else if (k.kind == "nics") {
    max = ctx.limits.max_nics;
    key = "max-nics";
  }
  if (max <= 0) return;
  Query q(db, "SELECT count(*) FROM " + k.table);
  q.next();
  if (q.int64(0) >= max)
    throw ApiError(422, "Limit Reached",
                   "this box allows at most " + std::to_string(max) + " " + k.kind + " (config key " + key +
                       "); delete one or raise the limit",
                   "");
}

// A write the database could not make for lack of space or an I/O error: nothing was written (the transaction
// rolled back). nullopt for other errors.
std::optional<Response> storage_problem(const DbError& e) {
  const int primary = e.code() & 0xff;
  if (primary == SQLITE_FULL) {
    return http::problem(507, "Insufficient Storage",
                         "the filesystem of the state directory is full: nothing was written; free space and retry");
  }
  if (primary == SQLITE_IOERR || primary == SQLITE_CANTOPEN || primary == SQLITE_READONLY) {
    Response r = http::problem(503, "Service Unavailable",
                               std::string("the database could not be written (") + e.what() +
                                   "): nothing was written; retry later");
    r.headers.emplace_back("Retry-After", "5");
    return r;
  }
  return std::nullopt;
}

void record_event(store::Db& db, const Request& req, const std::string& kind, const std::string& object_id,
                  int status) {
  Query(db, "INSERT INTO events (time, token_id, method, kind, object_id, status) VALUES (?, ?, ?, ?, ?, ?)",
        store::now_rfc3339(), req.token_id, req.method, kind, object_id, status)
      .run();
  Query(db, "DELETE FROM events WHERE seq <= ?", int64_t(sqlite3_last_insert_rowid(db.raw())) - kMaxEvents).run();
}

// Runs one write: validation and the change in one transaction with its audit row; failures are audited too.
template <class Fn>
Response run_write(ApiContext& ctx, const Request& req, const std::string& kind, Fn&& fn) {
  std::string object_id = path_id(req);
  Response resp;
  bool changed = false;
  try {
    auto session = ctx.store.session();
    Transaction tx(session.db());
    WriteResult res = fn(session.db(), object_id);
    changed = res.changed;
    if (res.status == 204) {
      resp.status = 204;
      resp.content_type.clear();
    } else {
      resp = object_response(res.status, res.object);
      if (res.status == 201) resp.headers.emplace_back("Location", "/v1/" + kind + "/" + object_id);
    }
    record_event(session.db(), req, kind, object_id, resp.status);
    tx.commit();
  } catch (const ApiError& e) {
    resp = error_response(e);
  } catch (const DbError& e) {
    // The checks in normalize() come first; a constraint that still fires (a race is impossible under the session
    // mutex, so this is a missed check) is reported as the conflict it is.
    if (auto p = storage_problem(e)) {
      resp = std::move(*p);
    } else if (e.is_constraint()) {
      resp = http::problem(409, "Conflict", e.what());
    } else {
      throw;
    }
  } catch (const json::exception& e) {
    resp = http::problem(400, "Bad Request", std::string("bad value: ") + e.what());
  }
  if (resp.status >= 400) {
    try {  // the audit row of a refused write; on a full disk it cannot be written either, and that is no new error
      auto session = ctx.store.session();
      Transaction tx(session.db());
      record_event(session.db(), req, kind, object_id, resp.status);
      tx.commit();
    } catch (const DbError& e) {
      if (!storage_problem(e)) throw;
    }
  }
  if (changed && ctx.on_change) ctx.on_change();
  return resp;
}

template <class Fn>
Response run_read(ApiContext& ctx, Fn&& fn) {
  try {
    auto session = ctx.store.session();
    Transaction tx(session.db(), false);
    return fn(session.db());
  } catch (const ApiError& e) {
    return error_response(e);
  }
}

void add_kind_routes(std::vector<RouteDef>& out, ApiContext& ctx, const KindSpec& k) {
  const std::string base = "/v1/" + k.kind;
  const KindSpec* kp = &k;
  auto doc = [&k](const char* op) {
    RouteDoc d;
    d.kind = k.kind;
    d.op = op;
    return d;
  };
  out.push_back({"GET", base,
                 [&ctx, kp](const Request& req) {
                   return run_read(ctx, [&](store::Db& db) {
                     return json_response(200, list_objects(db, *kp, req.query));
                   });
                 },
                 Role::kViewer, doc("list")});
  out.push_back({"GET", base + "/{id}",
                 [&ctx, kp](const Request& req) {
                   return run_read(ctx, [&](store::Db& db) {
                     check_path_id(path_id(req));
                     auto obj = get_object(db, *kp, path_id(req));
                     if (!obj) not_found(kp->singular + " " + path_id(req) + " does not exist");
                     return object_response(200, *obj);
                   });
                 },
                 Role::kViewer, doc("get")});
  out.push_back({"POST", base,
                 [&ctx, kp](const Request& req) {
                   return run_write(ctx, req, kp->kind, [&](store::Db& db, std::string& id) {
                     require_capability(*kp);
                     need_json_body(req, false);
                     json body = parse_body(req.body);
                     if (body.contains("id"))
                       bad_request("id", "the server chooses the id on POST; use PUT " "/v1/" + kp->kind +
                                             "/ID to choose it");
                     id = new_uuid();
                     check_capacity(ctx, db, *kp);
                     return create_object(db, *kp, id, body);
                   });
                 },
                 Role::kAdmin, doc("create")});
  out.push_back({"PUT", base + "/{id}",
                 [&ctx, kp](const Request& req) {
                   return run_write(ctx, req, kp->kind, [&](store::Db& db, std::string& id) {
                     require_capability(*kp);
                     if (!is_uuid(id)) bad_request("id", "the id in the path must be a lower-case UUID");
                     need_json_body(req, false);
                     json body = parse_body(req.body);
                     auto if_match = req.header("if-match");
                     if (!get_object(db, *kp, id)) check_capacity(ctx, db, *kp);
                     return put_object(db, *kp, id, body,
                                       if_match ? std::optional<std::string>(*if_match) : std::nullopt);
                   });
                 },
                 Role::kAdmin, doc("put")});
  out.push_back({"PATCH", base + "/{id}",
                 [&ctx, kp](const Request& req) {
                   return run_write(ctx, req, kp->kind, [&](store::Db& db, std::string& id) {
                     require_capability(*kp);
                     check_path_id(id);
                     need_json_body(req, true);
                     json body = parse_body(req.body);
                     auto if_match = req.header("if-match");
                     return patch_object(db, *kp, id, body,
                                         if_match ? std::optional<std::string>(*if_match) : std::nullopt);
                   });
                 },
                 Role::kAdmin, doc("patch")});
  out.push_back({"DELETE", base + "/{id}",
                 [&ctx, kp](const Request& req) {
                   return run_write(ctx, req, kp->kind, [&](store::Db& db, std::string& id) {
                     check_path_id(id);
                     auto if_match = req.header("if-match");
                     delete_object(db, *kp, id, if_match ? std::optional<std::string>(*if_match) : std::nullopt);
                     WriteResult res;
                     res.status = 204;
                     res.changed = true;
                     return res;
                   });
                 },
                 Role::kAdmin, doc("delete")});
}

RouteDoc route_doc(std::string operation_id, std::string summary, json response_schema,
                   std::string content_type = "application/json") {
  RouteDoc d;
  d.operation_id = std::move(operation_id);
  d.summary = std::move(summary);
  d.response_schema = std::move(response_schema);
  d.content_type = std::move(content_type);
  return d;
}

json counters_schema() { return {{"type", "integer"}, {"minimum", 0}}; }

// GET /v1/stats: an object; its per-worker counters are described (stats_render.cc writes them).
json stats_schema() {
  json worker = {{"type", "object"},
                 {"properties",
                  {{"batches", counters_schema()},
                   {"packets", counters_schema()},
                   {"wakeups", counters_schema()},
                   {"cpu",
                    {{"type", {"integer", "null"}},
                     {"minimum", 0},
                     {"description", "the CPU this worker is pinned to (config worker-cpus); null: not pinned"}}},
                   {"empty_polls",
                    {{"type", "integer"},
                     {"minimum", 0},
                     {"description", "loop turns in which this worker polled without sleeping (busy-poll on, or "
                                     "adaptive after frames) and received no frame"}}},
                   {"spin_starts",
                    {{"type", "integer"},
                     {"minimum", 0},
                     {"description", "busy-poll = adaptive: times this worker went from sleeping to polling without "
                                     "sleeping after frames"}}},
                   {"spin_stops",
                    {{"type", "integer"},
                     {"minimum", 0},
                     {"description", "busy-poll = adaptive: times this worker went back to sleeping once busy-poll-us "
                                     "passed without a frame"}}},
                   {"snapshot_generation", counters_schema()},
                   {"icmp_rate_limited",
                    {{"type", "integer"},
                     {"minimum", 0},
                     {"description", "ICMP errors this worker's router did not send: over its rate limit"}}},
                   {"pool_exhausted",
                    {{"type", "integer"},
                     {"minimum", 0},
                     {"description", "frames this worker's stages could not generate or keep: its packet pool was empty"}}},
                   {"tcp_coalesced_frames",
                    {{"type", "integer"},
                     {"minimum", 0},
                     {"description", "GSO super-frames this worker's tcp-coalesce stage built for guests (software GRO)"}}},
                   {"tcp_coalesced_segments",
                    {{"type", "integer"},
                     {"minimum", 0},
                     {"description", "TCP segments this worker's tcp-coalesce stage joined into super-frames"}}},
                   {"vxlan_uso_rx_frames",
                    {{"type", "integer"},
                     {"minimum", 0},
                     {"description", "UDP GSO super-frames this worker's uplink-input received and split into VXLAN datagrams"}}},
                   {"vxlan_uso_rx_segments",
                    {{"type", "integer"},
                     {"minimum", 0},
                     {"description", "VXLAN datagrams this worker's uplink-input took out of UDP GSO super-frames"}}},
                   {"vxlan_uso_tx_superframes",
                    {{"type", "integer"},
                     {"minimum", 0},
                     {"description", "guest GSO super-frames this worker sent to tunnels as UDP segmentation offload frames (vxlan-uso)"}}},
                   {"vxlan_uso_tx_frames",
                    {{"type", "integer"},
                     {"minimum", 0},
                     {"description", "UDP segmentation offload frames this worker handed to the underlay uplink"}}},
                   {"vxlan_uso_tx_segments",
                    {{"type", "integer"},
                     {"minimum", 0},
                     {"description", "VXLAN datagrams in the UDP segmentation offload frames this worker sent"}}},
                   {"vxlan_uso_tx_fallbacks",
                    {{"type", "integer"},
                     {"minimum", 0},
                     {"description", "guest GSO super-frames this worker sent to tunnels one frame per segment although vxlan-uso is on (they did not fit its limits)"}}},
                   {"stage_packets",
                    {{"type", "object"},
                     {"additionalProperties", counters_schema()},
                     {"description", "packets each pipeline stage processed, by stage name (stages with none left out)"}}}}},
                 {"required",
                  {"batches", "packets", "wakeups", "cpu", "empty_polls", "spin_starts", "spin_stops", "snapshot_generation",
                   "icmp_rate_limited", "pool_exhausted", "stage_packets"}}};
  const json port_counters = {{"type", "object"},
                              {"properties",
                               {{"rx_packets", counters_schema()},
                                {"rx_bytes", counters_schema()},
                                {"tx_packets", counters_schema()},
                                {"tx_bytes", counters_schema()},
                                {"drops", {{"type", "object"}, {"additionalProperties", counters_schema()}}}}}};
  json uplink = port_counters;
  uplink["description"] =
      "an uplink's counters (by uplink id): frames as on the wire, VXLAN datagrams and ARP; a UDP GSO super-frame "
      "(vxlan-uso) counts as the datagrams it holds, each with its own outer headers, received as sent";
  json tunnel = port_counters;
  tunnel["properties"]["vpc_id"] = {{"type", "string"}};
  tunnel["properties"]["remote_ip"] = {{"type", "string"}};
  tunnel["description"] =
      "a remote VTEP of a VPC (keyed \"VPC id/underlay IP\"): rx = inner frames decapsulated from it (inner bytes), "
      "tx = VXLAN datagrams encapsulated to it (bytes with the outer headers), one per datagram also when they "
      "crossed the underlay in a UDP GSO super-frame; drops charged to it";
  return {{"type", "object"},
          {"properties",
           {{"workers", {{"type", "array"}, {"description", "one per datapath worker"}, {"items", worker}}},
            {"uplinks", {{"type", "object"}, {"additionalProperties", uplink}}},
            {"tunnels", {{"type", "object"}, {"additionalProperties", tunnel}}},
            {"fastpath",
             {{"type", "object"},
              {"description",
               "the kernel fast path (config kernel-fastpath): frames between netns/tap NICs of a VPC without firewall "
               "stages, within a subnet or routed between two, forwarded by a BPF program; the NICs' counters include "
               "them"},
              {"properties",
               {{"enabled", {{"type", "boolean"}, {"description", "configured on and loaded"}}},
                {"error",
                 {{"type", "string"}, {"description", "why it is off although configured on (empty otherwise)"}}},
                {"ports", {{"type", "integer"}, {"minimum", 0}, {"description", "NICs it carries now"}}}}},
              {"required", {"enabled", "error", "ports"}},
              {"additionalProperties", false}}}}}};
}

RouteDoc events_doc() {
  RouteDoc d = route_doc(
      "listEvents", "The audit log: every write, also refused ones (newest first, the newest 10,000 kept)",
      {{"type", "object"},
       {"properties",
        {{"items",
          {{"type", "array"},
           {"items",
            {{"type", "object"},
             {"properties",
              {{"seq", counters_schema()},
               {"time", {{"type", "string"}, {"format", "date-time"}}},
               {"token_id", {{"type", "string"}}},
               {"method", {{"type", "string"}}},
               {"kind", {{"type", "string"}}},
               {"object_id", {{"type", "string"}}},
               {"status", {{"type", "integer"}}}}},
             {"required", {"seq", "time", "token_id", "method", "kind", "object_id", "status"}},
             {"additionalProperties", false}}}}},
         {"total", counters_schema()},
         {"limit", {{"type", "integer"}, {"minimum", 1}, {"maximum", 1000}}},
         {"offset", counters_schema()}}},
       {"required", {"items", "total", "limit", "offset"}},
       {"additionalProperties", false}});
  d.query = {{"limit", "page size (1..1000, default 100)"}, {"offset", "items to skip"}};
  return d;
}

json zero_nic_stats() {
  return json{{"rx_packets", 0}, {"rx_bytes", 0}, {"tx_packets", 0}, {"tx_bytes", 0}, {"drops", json::object()}};
}

}  // namespace

std::vector<RouteDef> api_routes(ApiContext& ctx) {
  std::vector<RouteDef> out;
  out.push_back({"GET", "/v1/health",
                 [&ctx](const Request&) { return json_response(200, {{"status", "ok"}, {"version", ctx.version}}); },
                 Role::kNone,
                 route_doc("getHealth", "Liveness and version (no token needed)",
                           {{"type", "object"},
                            {"properties", {{"status", {{"const", "ok"}}}, {"version", {{"type", "string"}}}}},
                            {"required", {"status", "version"}}})});
  out.push_back({"GET", "/v1/whoami",
                 [](const Request& req) {
                   return json_response(200, {{"role", req.role == Role::kAdmin ? "admin" : "viewer"},
                                              {"token_id", req.token_id},
                                              {"capabilities", capabilities_json()}});
                 },
                 Role::kViewer,
                 route_doc("getWhoami",
                           "The calling token's role and id, and what this box's datapath carries out (a write of a "
                           "capability that is false answers 501)",
                           {{"type", "object"},
                            {"properties",
                             {{"role", {{"type", "string"}, {"enum", {"admin", "viewer"}}}},
                              {"token_id", {{"type", "string"}}},
                              {"capabilities",
                               {{"type", "object"},
                                {"description", "capability name (a kind, or nic-backend-TYPE) -> carried"},
                                {"additionalProperties", {{"type", "boolean"}}}}}}},
                            {"required", {"role", "token_id", "capabilities"}},
                            {"additionalProperties", false}})});
  out.push_back({"GET", "/v1/stats",
                 [&ctx](const Request&) {
                   Response r;
                   r.body = ctx.stats_json ? ctx.stats_json() : "{}";
                   return r;
                 },
                 Role::kViewer,
                 route_doc("getStats", "Counters per NIC, worker and drop reason (the JSON twin of /metrics)",
                           stats_schema())});
  out.push_back({"GET", "/metrics",
                 [&ctx](const Request&) {
                   Response r;
                   r.content_type = "text/plain; version=0.0.4; charset=utf-8";
                   r.body = ctx.metrics_text ? ctx.metrics_text() : "";
                   return r;
                 },
                 Role::kViewer,
                 route_doc("getMetrics", "Prometheus text format", {{"type", "string"}},
                           "text/plain; version=0.0.4; charset=utf-8")});
  out.push_back({"GET", "/v1/events",
                 [&ctx](const Request& req) {
                   return run_read(ctx, [&](store::Db& db) {
                     for (const auto& [key, val] : req.query)
                       if (key != "limit" && key != "offset")
                         bad_request(key, "unknown query parameter \"" + key.substr(0, 100) +
                                              "\" (allowed: limit, offset)");
                     auto [limit, offset] = page_params(req.query);
                     json page;
                     {
                       Query q(db, "SELECT count(*) FROM events");
                       q.next();
                       page["total"] = q.int64(0);
                     }
                     json items = json::array();
                     Query q(db,
                             "SELECT seq, time, token_id, method, kind, object_id, status FROM events "
                             "ORDER BY seq DESC LIMIT ? OFFSET ?",
                             limit, offset);
                     while (q.next())
                       items.push_back({{"seq", q.int64(0)}, {"time", q.text(1)}, {"token_id", q.text(2)},
                                        {"method", q.text(3)}, {"kind", q.text(4)}, {"object_id", q.text(5)},
                                        {"status", q.int64(6)}});
                     page["items"] = std::move(items);
                     page["limit"] = limit;
                     page["offset"] = offset;
                     return json_response(200, page);
                   });
                 },
                 Role::kViewer, events_doc()});
  out.push_back({"GET", "/v1/nics/{id}/stats",
                 [&ctx](const Request& req) {
                   std::string id = path_id(req);
                   Response r = run_read(ctx, [&](store::Db& db) {
                     check_path_id(id);
                     Query q(db, "SELECT 1 FROM nics WHERE id = ?", id);
                     if (!q.next()) not_found("NIC " + id + " does not exist");
                     return Response{};
                   });
                   if (r.status != 200) return r;
                   std::optional<std::string> body = ctx.nic_stats_json ? ctx.nic_stats_json(id) : std::nullopt;
                   r.body = body ? *body : zero_nic_stats().dump();
                   return r;
                 },
                 Role::kViewer,
                 route_doc("getNicStats", "A NIC's counters (all zero until the datapath has counters for it)",
                           {{"type", "object"},
                            {"properties",
                             {{"rx_packets", counters_schema()},
                              {"rx_bytes", counters_schema()},
                              {"tx_packets", counters_schema()},
                              {"tx_bytes", counters_schema()},
                              {"drops", {{"type", "object"}, {"additionalProperties", counters_schema()}}}}},
                            {"required", {"rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "drops"}}})});
  add_capture_routes(out, ctx);
  for (const auto& k : all_kinds()) add_kind_routes(out, ctx, k);
  // Last, so that the document describes every route above (and itself).
  auto openapi = std::make_shared<std::string>();
  out.push_back({"GET", "/v1/openapi.json",
                 [openapi](const Request&) {
                   Response r;
                   r.body = *openapi;
                   return r;
                 },
                 Role::kNone,
                 route_doc("getOpenApi", "This document: OpenAPI 3.1, generated from the server's own tables",
                           {{"type", "object"}})});
  *openapi = openapi_document(out, ctx.version).dump(-1, ' ', false, json::error_handler_t::replace);
  return out;
}

}  // namespace vpcd::api
