// API handler tests: every route of api_routes() driven through a minimal in-test dispatcher (pattern match only; the
// transport's router, auth and limits are tested in their own suites) against an in-memory store.
#include <gtest/gtest.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "datapath/router_mac.h"
#include "server/api/api.h"
#include "server/api/kinds.h"
#include "server/api/validate.h"

namespace vpcd::api {
namespace {

using nlohmann::json;

struct Reply {
  int status = 0;
  json body;
  std::string content_type;
  std::map<std::string, std::string> headers;
};

class ApiTest : public ::testing::Test {
 protected:
  ApiTest()
      : store_(":memory:", VPCD_SOURCE_DIR "/migrations"),
        ctx_{store_, [this] { ++changes_; }, [] { return std::string(R"({"workers": []})"); },
             [] { return std::string("vpcd_up 1\n"); },
             [](const std::string&) -> std::optional<std::string> { return std::nullopt; }, "9.9.9", nullptr, Limits{}},
        routes_(api_routes(ctx_)) {}

  Reply call(const std::string& method, const std::string& target, const std::optional<json>& body = std::nullopt,
             std::map<std::string, std::string> headers = {}) {
    http::Request req;
    req.method = method;
    req.token_id = "test-token";
    std::string path = target.substr(0, target.find('?'));
    if (auto q = target.find('?'); q != std::string::npos) {
      std::string rest = target.substr(q + 1);
      size_t pos = 0;
      while (pos <= rest.size()) {
        size_t amp = rest.find('&', pos);
        std::string kv = rest.substr(pos, amp == std::string::npos ? std::string::npos : amp - pos);
        auto eq = kv.find('=');
        req.query[kv.substr(0, eq)] = eq == std::string::npos ? "" : kv.substr(eq + 1);
        if (amp == std::string::npos) break;
        pos = amp + 1;
      }
    }
    req.path = path;
    if (body) {
      req.body = body->dump();
      req.headers["content-type"] = "application/json";
    }
    for (auto& [k, v] : headers) req.headers[k] = v;
    for (auto& r : routes_) {
      if (r.method != method) continue;
      std::vector<std::string> params;
      if (!match(r.pattern, path, params)) continue;
      req.params = params;
      http::Response resp = r.handler(req);
      Reply out;
      out.status = resp.status;
      out.content_type = resp.content_type;
      for (auto& [k, v] : resp.headers) out.headers[k] = v;
      if (!resp.body.empty() && resp.content_type.find("json") != std::string::npos) out.body = json::parse(resp.body);
      else out.body = resp.body;
      return out;
    }
    ADD_FAILURE() << "no route for " << method << " " << path;
    return {};
  }
  Reply raw(const std::string& method, const std::string& path, const std::string& body,
            const std::string& content_type) {
    http::Request req;
    req.method = method;
    req.path = path;
    req.body = body;
    if (!content_type.empty()) req.headers["content-type"] = content_type;
    for (auto& r : routes_) {
      std::vector<std::string> params;
      if (r.method != method || !match(r.pattern, path, params)) continue;
      req.params = params;
      http::Response resp = r.handler(req);
      return Reply{resp.status, json::parse(resp.body, nullptr, false), resp.content_type, {}};
    }
    ADD_FAILURE() << "no route";
    return {};
  }

  static bool match(const std::string& pattern, const std::string& path, std::vector<std::string>& params) {
    auto split = [](const std::string& s) {
      std::vector<std::string> out;
      size_t pos = 1;
      while (pos <= s.size()) {
        size_t slash = s.find('/', pos);
        out.push_back(s.substr(pos, slash == std::string::npos ? std::string::npos : slash - pos));
        if (slash == std::string::npos) break;
        pos = slash + 1;
      }
      return out;
    };
    auto p = split(pattern), a = split(path);
    if (p.size() != a.size()) return false;
    for (size_t i = 0; i < p.size(); ++i) {
      if (p[i].starts_with("{")) params.push_back(a[i]);
      else if (p[i] != a[i]) return false;
    }
    return true;
  }

  std::string make_vpc(const std::string& cidr = "10.0.0.0/16") {
    auto r = call("POST", "/v1/vpcs", json{{"cidrs", {cidr}}});
    EXPECT_EQ(r.status, 201) << r.body.dump();
    return r.body.value("id", "");
  }
  std::string make_subnet(const std::string& vpc, const std::string& cidr) {
    auto r = call("POST", "/v1/subnets", json{{"vpc_id", vpc}, {"cidr", cidr}});
    EXPECT_EQ(r.status, 201) << r.body.dump();
    return r.body.value("id", "");
  }
  Reply make_nic(const std::string& subnet, const std::string& ifname, json extra = json::object()) {
    json body{{"subnet_id", subnet}, {"backend", {{"type", "tap"}, {"ifname", ifname}}}};
    body.update(extra);
    return call("POST", "/v1/nics", body);
  }

  // A write straight through the resource engine and the kind table (create / patch / put), the way the routes run it
  // but with every capability allowed: the validation of a kind the datapath does not carry yet (its routes answer
  // 501) stays tested here.
  Reply engine(const std::string& method, const std::string& kind, const json& body, std::string id = {}) {
    const KindSpec* k = nullptr;
    for (const auto& kk : all_kinds())
      if (kk.kind == kind) k = &kk;
    if (!k) {
      ADD_FAILURE() << "no kind " << kind;
      return {};
    }
    auto all = [](dp::Capability) { return true; };
    Reply out;
    try {
      auto session = store_.session();
      store::Transaction tx(session.db());
      WriteResult res;
      if (method == "POST") res = create_object(session.db(), *k, new_uuid(), body, all);
      else if (method == "PUT") res = put_object(session.db(), *k, id, body, std::nullopt, all);
      else res = patch_object(session.db(), *k, id, body, std::nullopt, all);
      tx.commit();
      out.status = res.status;
      out.body = res.object;
    } catch (const ApiError& e) {
      out.status = e.status;
      out.body = json{{"field", e.field}, {"detail", e.what()}};
    }
    return out;
  }

  Store store_;
  std::atomic<int> changes_{0};
  ApiContext ctx_;
  std::vector<RouteDef> routes_;
};

TEST_F(ApiTest, HealthStatsMetrics) {
  auto h = call("GET", "/v1/health");
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.body["status"], "ok");
  EXPECT_EQ(h.body["version"], "9.9.9");
  EXPECT_EQ(call("GET", "/v1/stats").body["workers"], json::array());
  auto m = call("GET", "/metrics");
  EXPECT_EQ(m.body, "vpcd_up 1\n");
  EXPECT_NE(m.content_type.find("text/plain"), std::string::npos);
  for (auto& r : routes_) {
    if (r.pattern == "/v1/health" || r.pattern == "/v1/openapi.json") EXPECT_EQ(r.min_role, http::Role::kNone);
    else if (r.pattern.ends_with("/capture")) EXPECT_EQ(r.min_role, http::Role::kAdmin) << r.pattern;  // API.md
    else if (r.method == "GET") EXPECT_EQ(r.min_role, http::Role::kViewer) << r.pattern;
    else EXPECT_EQ(r.min_role, http::Role::kAdmin) << r.method << " " << r.pattern;
  }
}

TEST_F(ApiTest, CreateVpcAllocatesVniAndDefaults) {
  auto r = call("POST", "/v1/vpcs", json{{"name", "blue"}, {"cidrs", {"10.0.0.0/16"}}, {"labels", {{"t", "x"}}}});
  ASSERT_EQ(r.status, 201) << r.body.dump();
  std::string id = r.body["id"];
  EXPECT_TRUE(is_uuid(id));
  EXPECT_EQ(r.headers["Location"], "/v1/vpcs/" + id);
  EXPECT_EQ(r.headers["ETag"], "\"1\"");
  EXPECT_EQ(r.body["vni"], 1);
  EXPECT_EQ(r.body["mtu"], 1450);
  EXPECT_EQ(r.body["revision"], 1);
  EXPECT_EQ(r.body["name"], "blue");
  EXPECT_EQ(r.body["labels"]["t"], "x");
  EXPECT_EQ(changes_, 1);
  auto r2 = call("POST", "/v1/vpcs", json{{"cidrs", {"10.0.0.0/16"}}});
  EXPECT_EQ(r2.body["vni"], 2);
  auto taken = call("POST", "/v1/vpcs", json{{"cidrs", {"10.1.0.0/16"}}, {"vni", 2}});
  EXPECT_EQ(taken.status, 409);
  EXPECT_EQ(taken.body["field"], "vni");
  EXPECT_EQ(taken.content_type, "application/problem+json");
  EXPECT_EQ(changes_, 2);
  auto got = call("GET", "/v1/vpcs/" + id);
  EXPECT_EQ(got.status, 200);
  EXPECT_EQ(got.body, r.body);
}

TEST_F(ApiTest, VpcValidationNamesTheField) {
  struct Case {
    json body;
    int status;
    const char* field;
  } cases[] = {
      {json::object(), 400, "cidrs"},
      {json{{"cidrs", json::array()}}, 400, "cidrs"},
      {json{{"cidrs", {"10.0.0.1/16"}}}, 400, "cidrs[0]"},
      {json{{"cidrs", {"10.0.0.0/16", "10.0.128.0/24"}}}, 400, "cidrs[1]"},
      {json{{"cidrs", {"127.0.0.0/8"}}}, 400, "cidrs[0]"},
      {json{{"cidrs", {"10.0.0.0/16"}}, {"vni", 0}}, 400, "vni"},
      {json{{"cidrs", {"10.0.0.0/16"}}, {"vni", 16777216}}, 400, "vni"},
      {json{{"cidrs", {"10.0.0.0/16"}}, {"vni", "5"}}, 400, "vni"},
      {json{{"cidrs", {"10.0.0.0/16"}}, {"mtu", 100}}, 400, "mtu"},
      {json{{"cidrs", {"10.0.0.0/16"}}, {"colour", "red"}}, 400, "colour"},
      {json{{"cidrs", {"10.0.0.0/16"}}, {"name", std::string(256, 'n')}}, 400, "name"},
      {json{{"cidrs", {"10.0.0.0/16"}}, {"id", "0f8fad5b-d9cb-469f-a165-70867728950e"}}, 400, "id"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.body.dump());
    auto r = call("POST", "/v1/vpcs", c.body);
    EXPECT_EQ(r.status, c.status);
    EXPECT_EQ(r.body["field"], c.field);
    EXPECT_EQ(r.body["status"], c.status);
  }
  EXPECT_EQ(changes_, 0);
  EXPECT_EQ(call("GET", "/v1/vpcs").body["total"], 0);
}

TEST_F(ApiTest, MalformedBodiesAndMediaTypes) {
  EXPECT_EQ(raw("POST", "/v1/vpcs", "{\"cidrs\": [", "application/json").status, 400);
  EXPECT_EQ(raw("POST", "/v1/vpcs", "[]", "application/json").status, 400);
  EXPECT_EQ(raw("POST", "/v1/vpcs", R"({"cidrs":["10.0.0.0/16"]})", "text/plain").status, 415);
  EXPECT_EQ(raw("POST", "/v1/vpcs", R"({"cidrs":["10.0.0.0/16"]})", "").status, 415);
  EXPECT_EQ(raw("POST", "/v1/vpcs", R"({"cidrs":["10.0.0.0/16"]})", "application/json; charset=utf-8").status, 201);
  EXPECT_EQ(raw("POST", "/v1/vpcs", R"({"cidrs":["10.1.0.0/16"], "mtu": 1e999})", "application/json").status, 400);
}

TEST_F(ApiTest, SubnetsNestNotOverlapAndGetAGateway) {
  std::string vpc = make_vpc("10.0.0.0/16");
  auto s = call("POST", "/v1/subnets", json{{"vpc_id", vpc}, {"cidr", "10.0.1.0/24"}});
  ASSERT_EQ(s.status, 201) << s.body.dump();
  EXPECT_EQ(s.body["gateway"], "10.0.1.1");
  auto outside = call("POST", "/v1/subnets", json{{"vpc_id", vpc}, {"cidr", "10.1.0.0/24"}});
  EXPECT_EQ(outside.status, 422);
  EXPECT_EQ(outside.body["field"], "cidr");
  auto overlap = call("POST", "/v1/subnets", json{{"vpc_id", vpc}, {"cidr", "10.0.0.0/23"}});
  EXPECT_EQ(overlap.status, 409);
  EXPECT_NE(overlap.body["detail"].get<std::string>().find(s.body["id"].get<std::string>()), std::string::npos);
  for (const char* gw : {"10.0.2.0", "10.0.2.255", "10.0.3.1", "x"}) {
    auto r = call("POST", "/v1/subnets", json{{"vpc_id", vpc}, {"cidr", "10.0.2.0/24"}, {"gateway", gw}});
    EXPECT_EQ(r.status, 400) << gw;
    EXPECT_EQ(r.body["field"], "gateway");
  }
  auto missing = call("POST", "/v1/subnets",
                      json{{"vpc_id", "0f8fad5b-d9cb-469f-a165-70867728950e"}, {"cidr", "10.0.2.0/24"}});
  EXPECT_EQ(missing.status, 422);
  EXPECT_EQ(missing.body["field"], "vpc_id");
  EXPECT_EQ(call("POST", "/v1/subnets", json{{"vpc_id", "nope"}, {"cidr", "10.0.2.0/24"}}).status, 400);
  // Shrinking the VPC so a subnet falls outside is refused.
  auto shrink = call("PATCH", "/v1/vpcs/" + vpc, json{{"cidrs", {"10.2.0.0/16"}}});
  EXPECT_EQ(shrink.status, 409);
  EXPECT_EQ(shrink.body["field"], "cidrs");
  auto move = call("PATCH", "/v1/subnets/" + s.body["id"].get<std::string>(), json{{"cidr", "10.0.9.0/24"}});
  EXPECT_EQ(move.status, 422);
  EXPECT_EQ(move.body["field"], "cidr");
}

TEST_F(ApiTest, NicsGetAddressesMacsAndCheckBackends) {
  std::string vpc = make_vpc();
  std::string sn = make_subnet(vpc, "10.0.1.0/29");
  auto a = make_nic(sn, "tap-a");
  ASSERT_EQ(a.status, 201) << a.body.dump();
  EXPECT_EQ(a.body["ips"], json({"10.0.1.2"}));
  EXPECT_EQ(a.body["vpc_id"], vpc);
  EXPECT_EQ(a.body["state"], "down");
  EXPECT_EQ(a.body["port_security"], true);
  EXPECT_EQ(a.body["backend"]["queues"], 1);
  EXPECT_EQ(a.body["mac"].get<std::string>().substr(0, 3), "02:");
  auto b = make_nic(sn, "tap-b", {{"ips", {"10.0.1.4"}}});
  ASSERT_EQ(b.status, 201) << b.body.dump();
  auto c = make_nic(sn, "tap-c");
  EXPECT_EQ(c.body["ips"], json({"10.0.1.3"}));  // first free

  struct Case {
    json extra;
    int status;
    const char* field;
  } cases[] = {
      {{{"ips", {"10.0.1.2"}}}, 409, "ips[0]"},
      {{{"ips", {"10.0.1.1"}}}, 409, "ips[0]"},
      {{{"ips", {"10.0.2.5"}}}, 422, "ips[0]"},
      {{{"ips", {"10.0.1.7"}}}, 422, "ips[0]"},  // broadcast
      {{{"ips", {"10.0.1.5", "10.0.1.5"}}}, 400, "ips[1]"},
      {{{"ips", json::array()}}, 400, "ips"},
      {{{"mac", a.body["mac"]}}, 409, "mac"},
      {{{"mac", "01:00:00:00:00:01"}}, 400, "mac"},
      {{{"backend", {{"type", "tap"}, {"ifname", "tap-a"}}}}, 409, "backend.ifname"},
      {{{"backend", {{"type", "tap"}, {"ifname", "waytoolongifname0"}}}}, 400, "backend.ifname"},
      {{{"backend", {{"type", "tap"}, {"ifname", "t1"}, {"queues", 17}}}}, 400, "backend.queues"},
      {{{"backend", {{"type", "tap"}, {"ifname", "t1"}, {"owner", "no-such-user-x"}}}}, 422, "backend.owner"},
      {{{"backend", {{"type", "tap"}, {"ifname", "t1"}, {"mtu", 5}}}}, 400, "backend.mtu"},
      {{{"backend", {{"type", "vhost-user"}, {"socket", "/run/x.sock"}, {"owner", "root"}}}}, 422, "backend.owner"},
      {{{"backend", {{"type", "vhost-user"}, {"socket", "/run/x y.sock"}}}}, 400, "backend.socket"},
      {{{"backend", {{"type", "vhost-user"}, {"socket", "/run/x.sock"}, {"queues", 9}}}}, 400, "backend.queues"},
      {{{"backend", {{"type", "vhost-user"}, {"socket", "rel.sock"}}}}, 400, "backend.socket"},
      {{{"backend", {{"type", "pci"}}}}, 400, "backend.type"},
      {{{"backend", {{"type", "netns"}, {"netns", "../x"}}}}, 400, "backend.netns"},
      {{{"backend", "tap"}}, 400, "backend"},
      {{{"port_security", "yes"}}, 400, "port_security"},
      {{{"security_group_ids", {"0f8fad5b-d9cb-469f-a165-70867728950e"}}}, 422, "security_group_ids[0]"},
      {{{"state", "up"}, {"bogus", 1}}, 400, "bogus"},
  };
  for (const auto& cs : cases) {
    SCOPED_TRACE(cs.extra.dump());
    auto r = make_nic(sn, "tap-x", cs.extra);
    EXPECT_EQ(r.status, cs.status) << r.body.dump();
    EXPECT_EQ(r.body["field"], cs.field);
  }
  // The /29 holds .2 .. .6; .2 .3 .4 are used, so two more fit, then the subnet is full.
  EXPECT_EQ(make_nic(sn, "tap-d").status, 201);
  EXPECT_EQ(make_nic(sn, "tap-e").status, 201);
  auto full = make_nic(sn, "tap-f");
  EXPECT_EQ(full.status, 409);
  EXPECT_EQ(full.body["field"], "ips");
  auto ns = make_nic(make_subnet(vpc, "10.0.2.0/24"), "", {{"backend", {{"type", "netns"}, {"netns", "guest1"}}}});
  ASSERT_EQ(ns.status, 201) << ns.body.dump();
  EXPECT_EQ(ns.body["backend"]["ifname"], "eth0");
}

TEST_F(ApiTest, PutIsIdempotentAndReplaces) {
  const std::string id = "0f8fad5b-d9cb-469f-a165-70867728950e";
  json body{{"cidrs", {"10.0.0.0/16"}}, {"name", "a"}};
  auto first = call("PUT", "/v1/vpcs/" + id, body);
  ASSERT_EQ(first.status, 201) << first.body.dump();
  EXPECT_EQ(first.headers["Location"], "/v1/vpcs/" + id);
  auto retry = call("PUT", "/v1/vpcs/" + id, body);
  EXPECT_EQ(retry.status, 200);
  EXPECT_EQ(retry.body, first.body);  // same object, no revision bump, vni kept
  EXPECT_EQ(changes_, 1);
  // Sending back what was read (with its read-only fields) is also an identical retry.
  EXPECT_EQ(call("PUT", "/v1/vpcs/" + id, first.body).body["revision"], 1);
  body["name"] = "b";
  auto replaced = call("PUT", "/v1/vpcs/" + id, body);
  EXPECT_EQ(replaced.status, 200);
  EXPECT_EQ(replaced.body["revision"], 2);
  EXPECT_EQ(replaced.body["vni"], first.body["vni"]);
  EXPECT_EQ(replaced.headers["ETag"], "\"2\"");
  EXPECT_EQ(changes_, 2);
  EXPECT_EQ(call("PUT", "/v1/vpcs/0F8FAD5B-D9CB-469F-A165-70867728950E", body).status, 400);
  auto wrong_id = call("PUT", "/v1/vpcs/" + id, json{{"cidrs", {"10.0.0.0/16"}}, {"id", "x"}});
  EXPECT_EQ(wrong_id.status, 400);
  EXPECT_EQ(wrong_id.body["field"], "id");
}

TEST_F(ApiTest, IfMatchAndPatch) {
  std::string vpc = make_vpc();
  auto stale = call("PATCH", "/v1/vpcs/" + vpc, json{{"mtu", 1400}}, {{"if-match", "\"7\""}});
  EXPECT_EQ(stale.status, 412);
  auto ok = call("PATCH", "/v1/vpcs/" + vpc, json{{"mtu", 1400}, {"labels", {{"a", "1"}, {"b", "2"}}}},
                 {{"if-match", "\"1\""}});
  ASSERT_EQ(ok.status, 200) << ok.body.dump();
  EXPECT_EQ(ok.body["mtu"], 1400);
  EXPECT_EQ(ok.body["revision"], 2);
  auto removed = call("PATCH", "/v1/vpcs/" + vpc, json{{"labels", {{"a", nullptr}}}});
  EXPECT_EQ(removed.body["labels"], json({{"b", "2"}}));
  EXPECT_EQ(removed.body["revision"], 3);
  auto noop = call("PATCH", "/v1/vpcs/" + vpc, json{{"mtu", 1400}});
  EXPECT_EQ(noop.body["revision"], 3);
  auto reset = call("PATCH", "/v1/vpcs/" + vpc, json{{"mtu", nullptr}});
  EXPECT_EQ(reset.body["mtu"], 1450);
  EXPECT_EQ(call("PATCH", "/v1/vpcs/" + vpc, json{{"mtu", "big"}}).body["field"], "mtu");
  EXPECT_EQ(call("PATCH", "/v1/vpcs/" + vpc, json{{"nope", 1}}).body["field"], "nope");
  EXPECT_EQ(call("PUT", "/v1/vpcs/" + vpc, json{{"cidrs", {"10.0.0.0/16"}}}, {{"if-match", "\"1\""}}).status, 412);
  EXPECT_EQ(call("PUT", "/v1/vpcs/" + vpc, json{{"cidrs", {"10.0.0.0/16"}}}, {{"if-match", "junk"}}).status, 400);
  EXPECT_EQ(call("DELETE", "/v1/vpcs/" + vpc, std::nullopt, {{"if-match", "\"1\""}}).status, 412);
  EXPECT_EQ(call("DELETE", "/v1/vpcs/" + vpc, std::nullopt, {{"if-match", "*"}}).status, 204);
  EXPECT_EQ(call("PATCH", "/v1/vpcs/" + vpc, json{{"mtu", 1400}}).status, 404);
  EXPECT_EQ(call("PUT", "/v1/vpcs/" + vpc, json{{"cidrs", {"10.0.0.0/16"}}}, {{"if-match", "\"1\""}}).status, 412);
}

TEST_F(ApiTest, DeleteNamesDependentsAndIs404Afterwards) {
  std::string vpc = make_vpc();
  std::string sn = make_subnet(vpc, "10.0.1.0/24");
  std::string nic = make_nic(sn, "tap-a").body["id"];
  auto busy = call("DELETE", "/v1/vpcs/" + vpc);
  EXPECT_EQ(busy.status, 409);
  EXPECT_NE(busy.body["detail"].get<std::string>().find(sn), std::string::npos);
  auto busy_sn = call("DELETE", "/v1/subnets/" + sn);
  EXPECT_EQ(busy_sn.status, 409);
  EXPECT_NE(busy_sn.body["detail"].get<std::string>().find(nic), std::string::npos);
  EXPECT_EQ(call("DELETE", "/v1/nics/" + nic).status, 204);
  EXPECT_EQ(call("DELETE", "/v1/nics/" + nic).status, 404);
  EXPECT_EQ(call("GET", "/v1/nics/" + nic).status, 404);
  EXPECT_EQ(call("GET", "/v1/nics/not-a-uuid").status, 404);
  EXPECT_EQ(call("DELETE", "/v1/subnets/" + sn).status, 204);
  EXPECT_EQ(call("DELETE", "/v1/vpcs/" + vpc).status, 204);
  // The freed address, MAC and tap name can be used again.
  std::string vpc2 = make_vpc();
  EXPECT_EQ(make_nic(make_subnet(vpc2, "10.0.1.0/24"), "tap-a").status, 201);
}

TEST_F(ApiTest, ListsPaginateAndFilter) {
  std::string v1 = make_vpc(), v2 = make_vpc("10.1.0.0/16");
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(make_subnet(v1, "10.0." + std::to_string(i) + ".0/24"));
  make_subnet(v2, "10.1.0.0/24");
  auto page = call("GET", "/v1/subnets?vpc_id=" + v1 + "&limit=2&offset=1");
  ASSERT_EQ(page.status, 200);
  EXPECT_EQ(page.body["total"], 5);
  EXPECT_EQ(page.body["limit"], 2);
  EXPECT_EQ(page.body["offset"], 1);
  ASSERT_EQ(page.body["items"].size(), 2u);
  EXPECT_EQ(page.body["items"][0]["id"], ids[1]);  // creation order
  EXPECT_EQ(page.body["items"][1]["id"], ids[2]);
  EXPECT_EQ(call("GET", "/v1/subnets").body["total"], 6);
  EXPECT_EQ(call("GET", "/v1/subnets").body["limit"], 100);
  for (const char* q : {"limit=0", "limit=1001", "limit=x", "offset=-1", "vpc_id=nope", "colour=red"})
    EXPECT_EQ(call("GET", std::string("/v1/subnets?") + q).status, 400) << q;
  EXPECT_EQ(call("GET", "/v1/vpcs?vpc_id=" + v1).status, 400);
}

// Routes, security groups and NICs' security_group_ids reach the datapath's desired state.
TEST_F(ApiTest, DesiredStateCarriesRoutesAndSecurityGroups) {
  std::string vpc = make_vpc();
  std::string sn = make_subnet(vpc, "10.0.1.0/24");
  json web_body = json::parse(R"({"rules": [
      {"direction": "ingress", "protocol": "tcp", "port_min": 22, "port_max": 23, "cidr": "10.0.0.0/24"},
      {"direction": "egress", "protocol": "icmp"}]})");
  web_body["vpc_id"] = vpc;
  auto web = call("POST", "/v1/security-groups", web_body);
  ASSERT_EQ(web.status, 201) << web.body.dump();
  json db_body = json::parse(R"({"rules": [{"direction": "ingress", "protocol": "any"}]})");
  db_body["vpc_id"] = vpc;
  db_body["rules"][0]["remote_group_id"] = web.body["id"];
  auto db = call("POST", "/v1/security-groups", db_body);
  ASSERT_EQ(db.status, 201) << db.body.dump();
  json extra = json::object();
  extra["security_group_ids"] = json::array({web.body["id"], db.body["id"]});
  auto nic = make_nic(sn, "tap-a", extra);
  ASSERT_EQ(nic.status, 201) << nic.body.dump();
  json r1 = json::object(), r2 = json::object();
  r1["vpc_id"] = r2["vpc_id"] = vpc;
  r1["destination"] = "192.168.0.0/16";
  r1["next_hop"] = "10.0.1.2";
  r2["destination"] = "172.16.0.0/12";
  r2["next_hop"] = "blackhole";
  ASSERT_EQ(call("POST", "/v1/routes", r1).status, 201);
  ASSERT_EQ(call("POST", "/v1/routes", r2).status, 201);
  json r3 = r2;
  r3["destination"] = "172.32.0.0/12";
  r3["next_hop"] = "nat-gateway";
  EXPECT_EQ(call("POST", "/v1/routes", r3).status, 501);  // NAT is not carried yet
  dp::DesiredState d = store_.load_desired_state();
  ASSERT_EQ(d.nics.size(), 1u);
  EXPECT_EQ(d.nics[0].security_group_ids,
            (std::vector<std::string>{web.body["id"].get<std::string>(), db.body["id"].get<std::string>()}));
  ASSERT_EQ(d.routes.size(), 2u);
  EXPECT_EQ(d.routes[0].vpc_id, vpc);
  EXPECT_EQ(d.routes[0].destination.to_string(), "192.168.0.0/16");
  EXPECT_EQ(d.routes[0].next_hop_kind, dp::NextHopKind::kAddress);
  EXPECT_EQ(d.routes[0].next_hop.to_string(), "10.0.1.2");
  EXPECT_EQ(d.routes[1].next_hop_kind, dp::NextHopKind::kBlackhole);
  ASSERT_EQ(d.security_groups.size(), 2u);
  const auto& g = d.security_groups[0];
  EXPECT_EQ(g.id, web.body["id"].get<std::string>());
  ASSERT_EQ(g.rules.size(), 2u);
  EXPECT_EQ(g.rules[0].direction, dp::RuleDirection::kIngress);
  EXPECT_EQ(g.rules[0].protocol, dp::RuleProtocol::kTcp);
  EXPECT_EQ(g.rules[0].port_min, 22);
  EXPECT_EQ(g.rules[0].port_max, 23);
  EXPECT_EQ(g.rules[0].cidr->to_string(), "10.0.0.0/24");
  EXPECT_EQ(g.rules[1].direction, dp::RuleDirection::kEgress);
  EXPECT_EQ(g.rules[1].protocol, dp::RuleProtocol::kIcmp);
  EXPECT_EQ(g.rules[1].cidr->to_string(), "0.0.0.0/0");
  EXPECT_EQ(d.security_groups[1].rules[0].remote_group_id, web.body["id"].get<std::string>());
  EXPECT_FALSE(d.security_groups[1].rules[0].cidr);
}

TEST_F(ApiTest, ReconcilerViewAndNicState) {
  std::string vpc = make_vpc();
  std::string sn = make_subnet(vpc, "10.0.1.0/24");
  auto nic = make_nic(sn, "tap-a", {{"backend", {{"type", "tap"}, {"ifname", "tap-a"}, {"queues", 2},
                                                 {"owner", "root"}}}});
  ASSERT_EQ(nic.status, 201) << nic.body.dump();
  std::string id = nic.body["id"];
  dp::DesiredState d = store_.load_desired_state();
  ASSERT_EQ(d.vpcs.size(), 1u);
  EXPECT_EQ(d.vpcs[0].vni, 1u);
  ASSERT_EQ(d.vpcs[0].subnets.size(), 1u);
  EXPECT_EQ(d.vpcs[0].subnets[0].gateway.to_string(), "10.0.1.1");
  ASSERT_EQ(d.nics.size(), 1u);
  EXPECT_EQ(d.nics[0].vpc_id, vpc);
  EXPECT_EQ(d.nics[0].mac.to_string(), nic.body["mac"]);
  ASSERT_EQ(d.nics[0].ips.size(), 1u);
  EXPECT_EQ(d.nics[0].ips[0].to_string(), "10.0.1.2");
  auto* tap = std::get_if<dp::TapBackend>(&d.nics[0].backend);
  ASSERT_TRUE(tap);
  EXPECT_EQ(tap->ifname, "tap-a");
  EXPECT_EQ(tap->queues, 2);
  EXPECT_EQ(tap->owner, uid_t(0));
  EXPECT_FALSE(tap->group);

  EXPECT_TRUE(store_.set_nic_state(id, dp::NicStatus::kError, "no carrier"));
  EXPECT_FALSE(store_.set_nic_state(id, dp::NicStatus::kError, "no carrier"));
  EXPECT_FALSE(store_.set_nic_state("gone", dp::NicStatus::kUp, ""));
  auto got = call("GET", "/v1/nics/" + id);
  EXPECT_EQ(got.body["state"], "error");
  EXPECT_EQ(got.body["state_detail"], "no carrier");
  EXPECT_EQ(got.body["revision"], 1);
  EXPECT_EQ(got.body["updated_at"], nic.body["updated_at"]);
  auto stats = call("GET", "/v1/nics/" + id + "/stats");
  EXPECT_EQ(stats.status, 200);
  EXPECT_EQ(stats.body["rx_packets"], 0);
  EXPECT_EQ(call("GET", "/v1/nics/0f8fad5b-d9cb-469f-a165-70867728950e/stats").status, 404);
}

TEST_F(ApiTest, SecurityGroupsAndTheirReferences) {
  std::string vpc = make_vpc();
  auto web = engine("POST", "security-groups",
                  json{{"vpc_id", vpc},
                       {"rules", {{{"direction", "ingress"}, {"protocol", "tcp"}, {"port_min", 80}, {"port_max", 443}},
                                  {{"direction", "egress"}}}}});
  ASSERT_EQ(web.status, 201) << web.body.dump();
  EXPECT_EQ(web.body["rules"][0]["cidr"], "0.0.0.0/0");
  EXPECT_EQ(web.body["rules"][1]["protocol"], "any");
  std::string web_id = web.body["id"];
  auto db = engine("POST", "security-groups",
                 json{{"vpc_id", vpc}, {"rules", {{{"direction", "ingress"}, {"remote_group_id", web_id}}}}});
  ASSERT_EQ(db.status, 201) << db.body.dump();
  struct Case {
    json rule;
    const char* field;
  } cases[] = {
      {{{"protocol", "tcp"}}, "rules[0].direction"},
      {{{"direction", "in"}}, "rules[0].direction"},
      {{{"direction", "ingress"}, {"protocol", "icmp"}, {"port_min", 1}}, "rules[0].port_min"},
      {{{"direction", "ingress"}, {"protocol", "tcp"}, {"port_min", 90}, {"port_max", 80}}, "rules[0].port_min"},
      {{{"direction", "ingress"}, {"protocol", "tcp"}, {"port_max", 70000}}, "rules[0].port_max"},
      {{{"direction", "ingress"}, {"cidr", "10.0.0.1/8"}}, "rules[0].cidr"},
      {{{"direction", "ingress"}, {"cidr", "10.0.0.0/8"}, {"remote_group_id", web_id}}, "rules[0].remote_group_id"},
      {{{"direction", "ingress"}, {"extra", 1}}, "rules[0].extra"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.rule.dump());
    auto r = engine("POST", "security-groups", json{{"vpc_id", vpc}, {"rules", {c.rule}}});
    EXPECT_EQ(r.status, 400);
    EXPECT_EQ(r.body["field"], c.field);
  }
  std::string sn = make_subnet(vpc, "10.0.1.0/24");
  auto nic = engine("POST", "nics", json{{"subnet_id", sn},
                                         {"backend", {{"type", "tap"}, {"ifname", "tap-a"}}},
                                         {"security_group_ids", {web_id}}});
  ASSERT_EQ(nic.status, 201) << nic.body.dump();
  auto busy = call("DELETE", "/v1/security-groups/" + web_id);
  EXPECT_EQ(busy.status, 409);
  std::string detail = busy.body["detail"];
  EXPECT_NE(detail.find(nic.body["id"].get<std::string>()), std::string::npos) << detail;
  EXPECT_NE(detail.find(db.body["id"].get<std::string>()), std::string::npos) << detail;
  std::string other_vpc = make_vpc("10.9.0.0/16");
  auto foreign = engine("POST", "nics", json{{"subnet_id", make_subnet(other_vpc, "10.9.0.0/24")},
                                             {"backend", {{"type", "tap"}, {"ifname", "tap-b"}}},
                                             {"security_group_ids", {web_id}}});
  EXPECT_EQ(foreign.status, 422);
}

TEST_F(ApiTest, UplinksNatAndFloatingIps) {
  std::string vpc = make_vpc();
  auto up = engine("POST", "uplinks", json{{"ifname", "eth1"}, {"address", "192.0.2.10/24"}, {"gateway", "192.0.2.1"}});
  ASSERT_EQ(up.status, 201) << up.body.dump();
  EXPECT_EQ(up.body["role"], "both");
  std::string up_id = up.body["id"];
  // At most one uplink carries the underlay (role underlay or both).
  auto second_underlay =
      engine("POST", "uplinks", json{{"ifname", "eth3"}, {"address", "198.51.100.2/24"}, {"role", "underlay"}});
  EXPECT_EQ(second_underlay.status, 409);
  EXPECT_EQ(second_underlay.body["field"], "role");
  ASSERT_EQ(engine("PATCH", "uplinks", json{{"role", "external"}}, up_id).status, 200);
  EXPECT_EQ(engine("POST", "uplinks", json{{"ifname", "eth1"}, {"address", "192.0.2.11/24"}}).status, 409);
  EXPECT_EQ(engine("POST", "uplinks", json{{"ifname", "eth2"}, {"address", "192.0.2.11/24"}, {"gateway", "10.0.0.1"}})
                .body["field"],
            "gateway");
  auto under = engine("POST", "uplinks", json{{"ifname", "eth3"}, {"address", "198.51.100.2/24"}, {"role", "underlay"}});
  ASSERT_EQ(under.status, 201) << under.body.dump();
  auto nat = engine("POST", "nat-gateways", json{{"vpc_id", vpc}, {"uplink_id", up_id}, {"external_ip", "192.0.2.50"}});
  ASSERT_EQ(nat.status, 201) << nat.body.dump();
  auto dup = engine("POST", "floating-ips", json{{"uplink_id", up_id}, {"external_ip", "192.0.2.50"}});
  EXPECT_EQ(dup.status, 409);
  EXPECT_EQ(dup.body["field"], "external_ip");
  auto wrong_role = engine("POST", "nat-gateways",
                         json{{"vpc_id", vpc}, {"uplink_id", under.body["id"]}, {"external_ip", "198.51.100.9"}});
  EXPECT_EQ(wrong_role.status, 422);
  std::string nic = make_nic(make_subnet(vpc, "10.0.1.0/24"), "tap-a").body["id"];
  auto fip = engine("POST", "floating-ips", json{{"uplink_id", up_id}, {"external_ip", "192.0.2.51"}, {"nic_id", nic}});
  ASSERT_EQ(fip.status, 201) << fip.body.dump();
  auto second = engine("POST", "floating-ips", json{{"uplink_id", up_id}, {"external_ip", "192.0.2.52"}, {"nic_id", nic}});
  EXPECT_EQ(second.status, 409);
  EXPECT_EQ(second.body["field"], "nic_id");
  EXPECT_EQ(call("DELETE", "/v1/nics/" + nic).status, 409);
  auto unassigned = engine("PATCH", "floating-ips", json{{"nic_id", nullptr}}, fip.body["id"]);
  EXPECT_EQ(unassigned.body["nic_id"], nullptr);
  EXPECT_EQ(call("DELETE", "/v1/nics/" + nic).status, 204);
  EXPECT_EQ(engine("PATCH", "uplinks", json{{"role", "underlay"}}, up_id).status, 409);
  EXPECT_EQ(engine("PATCH", "uplinks", json{{"role", "both"}}, up_id).status, 409);  // eth3 carries the underlay
  EXPECT_EQ(call("DELETE", "/v1/uplinks/" + up_id).status, 409);
  EXPECT_EQ(call("DELETE", "/v1/nat-gateways/" + nat.body["id"].get<std::string>()).status, 204);
  // The NAT gateway's address is free again.
  EXPECT_EQ(engine("POST", "floating-ips", json{{"uplink_id", up_id}, {"external_ip", "192.0.2.50"}}).status, 201);
}

// API.md: every VPC's mtu + 50 must fit the underlay uplink's interface (422). Runs on a thread of its own in a private
// network namespace whose loopback gets MTU 1480, so nothing outside the test changes.
TEST_F(ApiTest, UnderlayMtuMustFitVpcMtuPlusVxlan) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root for a private network namespace (scripts/test.sh runs as root)";
  std::thread t([this] {
    ASSERT_EQ(::unshare(CLONE_NEWNET), 0) << std::strerror(errno);
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    ifreq ifr{};
    std::strcpy(ifr.ifr_name, "lo");
    ifr.ifr_mtu = 1480;
    ASSERT_EQ(::ioctl(fd, SIOCSIFMTU, &ifr), 0) << std::strerror(errno);
    ::close(fd);
    std::string vpc = make_vpc();  // mtu 1450: 1500 > 1480
    auto up = call("POST", "/v1/uplinks", json{{"ifname", "lo"}, {"address", "192.0.2.10/24"}, {"role", "underlay"}});
    EXPECT_EQ(up.status, 422) << up.body.dump();
    EXPECT_EQ(up.body["field"], "ifname");
    ASSERT_EQ(call("PATCH", "/v1/vpcs/" + vpc, json{{"mtu", 1430}}).status, 200);
    up = call("POST", "/v1/uplinks", json{{"ifname", "lo"}, {"address", "192.0.2.10/24"}, {"role", "underlay"}});
    ASSERT_EQ(up.status, 201) << up.body.dump();
    auto bigger = call("PATCH", "/v1/vpcs/" + vpc, json{{"mtu", 1431}});
    EXPECT_EQ(bigger.status, 422);
    EXPECT_EQ(bigger.body["field"], "mtu");
    EXPECT_EQ(call("POST", "/v1/vpcs", json{{"cidrs", {"10.5.0.0/16"}}, {"mtu", 1500}}).body["field"], "mtu");
    EXPECT_EQ(call("POST", "/v1/vpcs", json{{"cidrs", {"10.5.0.0/16"}}, {"mtu", 1400}}).status, 201);
    // An external-only uplink serves NAT alone: 501 naming the field until the datapath carries NAT.
    auto ext = call("PATCH", "/v1/uplinks/" + up.body["id"].get<std::string>(), json{{"role", "external"}});
    EXPECT_EQ(ext.status, dp::carries(dp::Capability::kNatGateways) ? 200 : 501) << ext.body.dump();
    if (ext.status == 501) {
      EXPECT_EQ(ext.body["field"], "role");
      EXPECT_EQ(ext.body["capability"], "nat-gateways");
      EXPECT_EQ(call("POST", "/v1/uplinks", json{{"ifname", "eth7"}, {"address", "192.0.2.20/24"}, {"role", "external"}})
                    .status,
                501);
    }
    // Without the underlay uplink there is no MTU rule.
    ASSERT_EQ(call("DELETE", "/v1/uplinks/" + up.body["id"].get<std::string>()).status, 204);
    EXPECT_EQ(call("PATCH", "/v1/vpcs/" + vpc, json{{"mtu", 9000}}).status, 200);
  });
  t.join();
}

TEST_F(ApiTest, VtepPeersRemoteNicsRoutes) {
  std::string vpc = make_vpc();
  EXPECT_EQ(engine("POST", "vtep-peers", json{{"vpc_id", vpc}, {"underlay_ip", "198.51.100.7"}}).status, 201);
  EXPECT_EQ(engine("POST", "vtep-peers", json{{"vpc_id", vpc}, {"underlay_ip", "198.51.100.7"}}).status, 409);
  EXPECT_EQ(engine("POST", "vtep-peers", json{{"vpc_id", vpc}, {"underlay_ip", "224.0.0.1"}}).status, 400);
  std::string nic_mac = make_nic(make_subnet(vpc, "10.0.1.0/24"), "tap-a").body["mac"];
  auto rn = engine("POST", "remote-nics",
                 json{{"vpc_id", vpc}, {"mac", "02:aa:00:00:00:01"}, {"ips", {"10.0.5.5"}}, {"underlay_ip", "198.51.100.7"}});
  ASSERT_EQ(rn.status, 201) << rn.body.dump();
  EXPECT_EQ(engine("POST", "remote-nics", json{{"vpc_id", vpc}, {"mac", nic_mac}, {"underlay_ip", "198.51.100.7"}})
                .status,
            409);
  EXPECT_EQ(engine("POST", "remote-nics",
                 json{{"vpc_id", vpc}, {"mac", "02:aa:00:00:00:02"}, {"ips", {"192.168.0.1"}}, {"underlay_ip", "198.51.100.7"}})
                .status,
            422);
  // A route to the NAT gateway needs NAT in the datapath (501 until it is carried).
  EXPECT_EQ(engine("POST", "routes", json{{"vpc_id", vpc}, {"destination", "0.0.0.0/0"}, {"next_hop", "nat-gateway"}})
                .status,
            501);
  auto r = engine("POST", "routes", json{{"vpc_id", vpc}, {"destination", "0.0.0.0/0"}, {"next_hop", "blackhole"}});
  ASSERT_EQ(r.status, 201) << r.body.dump();
  EXPECT_EQ(engine("POST", "routes", json{{"vpc_id", vpc}, {"destination", "0.0.0.0/0"}, {"next_hop", "blackhole"}})
                .status,
            409);
  EXPECT_EQ(engine("POST", "routes", json{{"vpc_id", vpc}, {"destination", "192.168.0.0/16"}, {"next_hop", "10.0.1.9"}})
                .status,
            201);
  EXPECT_EQ(engine("POST", "routes", json{{"vpc_id", vpc}, {"destination", "172.16.0.0/12"}, {"next_hop", "8.8.8.8"}})
                .status,
            422);
  EXPECT_EQ(engine("POST", "routes", json{{"vpc_id", vpc}, {"destination", "172.16.0.0/12"}, {"next_hop", 5}}).status,
            400);
  EXPECT_EQ(call("GET", "/v1/routes?vpc_id=" + vpc).body["total"], 2);
  auto busy = call("DELETE", "/v1/vpcs/" + vpc);
  EXPECT_EQ(busy.status, 409);
  for (const char* kind : {"subnets", "vtep-peers", "remote-nics", "routes"})
    EXPECT_NE(busy.body["detail"].get<std::string>().find(kind), std::string::npos) << kind;
}

// House rule: what the datapath does not carry out is refused (501 naming the capability), never stored and ignored.
TEST_F(ApiTest, KindsTheDatapathDoesNotCarryAnswer501) {
  std::string vpc = make_vpc();
  const std::string some_id = "0f8fad5b-d9cb-469f-a165-70867728950e";
  int refused = 0;
  for (const auto& k : all_kinds()) {
    if (!k.needs || dp::carries(*k.needs)) continue;
    ++refused;
    SCOPED_TRACE(k.kind);
    const std::string name(dp::capability_info(*k.needs).name);
    for (auto [method, path] : {std::pair<std::string, std::string>{"POST", "/v1/" + k.kind},
                                {"PUT", "/v1/" + k.kind + "/" + some_id},
                                {"PATCH", "/v1/" + k.kind + "/" + some_id}}) {
      auto r = call(method, path, json{{"vpc_id", vpc}});
      EXPECT_EQ(r.status, 501) << method << " " << r.body.dump();
      EXPECT_EQ(r.content_type, "application/problem+json");
      EXPECT_EQ(r.body["capability"], name);
      EXPECT_NE(r.body["detail"].get<std::string>().find(name), std::string::npos);
    }
    EXPECT_EQ(call("GET", "/v1/" + k.kind).status, 200);
  }
  if (refused == 0) GTEST_SKIP() << "the datapath carries every kind: no write is refused";
  // Rows stored before (an older vpcd, or the engine directly) stay readable and deletable.
  if (!dp::carries(dp::Capability::kVtepPeers)) {
    auto peer = engine("POST", "vtep-peers", json{{"vpc_id", vpc}, {"underlay_ip", "198.51.100.7"}});
    ASSERT_EQ(peer.status, 201) << peer.body.dump();
    std::string id = peer.body["id"];
    EXPECT_EQ(call("GET", "/v1/vtep-peers/" + id).status, 200);
    EXPECT_EQ(call("PATCH", "/v1/vtep-peers/" + id, json{{"name", "x"}}).status, 501);
    EXPECT_EQ(call("DELETE", "/v1/vtep-peers/" + id).status, 204);
  }
  // A field that needs a capability: refused when set, accepted when empty.
  std::string sn = make_subnet(vpc, "10.0.1.0/24");
  if (!dp::carries(dp::Capability::kSecurityGroups)) {
    auto r = make_nic(sn, "tap-a", {{"security_group_ids", {some_id}}});
    EXPECT_EQ(r.status, 501);
    EXPECT_EQ(r.body["field"], "security_group_ids");
    EXPECT_EQ(r.body["capability"], "security-groups");
    auto ev = call("GET", "/v1/events?limit=1");  // refused writes are audited like any other
    EXPECT_EQ(ev.body["items"][0]["status"], 501);
    EXPECT_EQ(make_nic(sn, "tap-a", {{"security_group_ids", json::array()}}).status, 201);
  }
}

TEST_F(ApiTest, WhoamiSaysRoleTokenAndCapabilities) {
  http::Request req;
  req.method = "GET";
  req.path = "/v1/whoami";
  req.role = http::Role::kViewer;
  req.token_id = "abc";
  for (auto& r : routes_) {
    if (r.pattern != "/v1/whoami") continue;
    EXPECT_EQ(r.min_role, http::Role::kViewer);
    auto resp = r.handler(req);
    ASSERT_EQ(resp.status, 200);
    json body = json::parse(resp.body);
    EXPECT_EQ(body["role"], "viewer");
    EXPECT_EQ(body["token_id"], "abc");
    for (const auto& info : dp::kCapabilities) EXPECT_EQ(body["capabilities"][std::string(info.name)], info.carried);
    EXPECT_EQ(body["capabilities"]["vpcs"], true);
    req.role = http::Role::kAdmin;
    EXPECT_EQ(json::parse(r.handler(req).body)["role"], "admin");
    return;
  }
  ADD_FAILURE() << "no /v1/whoami route";
}

TEST_F(ApiTest, OpenApiDocumentDescribesEveryRouteFromTheKindTables) {
  auto r = call("GET", "/v1/openapi.json");
  ASSERT_EQ(r.status, 200);
  const json& doc = r.body;
  EXPECT_EQ(doc["openapi"], "3.1.0");
  EXPECT_EQ(doc["info"]["version"], "9.9.9");
  for (const auto& route : routes_) {
    std::string m = route.method;
    for (auto& c : m) c = char(std::tolower(uint8_t(c)));
    ASSERT_TRUE(doc["paths"].contains(route.pattern)) << route.pattern;
    const json& op = doc["paths"][route.pattern][m];
    ASSERT_TRUE(op.is_object()) << route.method << " " << route.pattern;
    EXPECT_TRUE(op.contains("operationId") && op.contains("summary") && op.contains("responses")) << route.pattern;
    if (route.min_role == http::Role::kNone) {
      EXPECT_EQ(op["security"], json::array()) << route.pattern;
    }
  }
  // The schemas are the kind tables': every field, its requiredness, and the capability marks.
  for (const auto& k : all_kinds()) {
    SCOPED_TRACE(k.kind);
    const json& obj = doc["components"]["schemas"][k.schema_name];
    const json& in = doc["components"]["schemas"][k.schema_name + "Input"];
    ASSERT_TRUE(obj.is_object() && in.is_object());
    for (const auto& f : k.fields) {
      EXPECT_TRUE(obj["properties"].contains(f.name)) << f.name;
      bool req = in.contains("required") &&
                 std::find(in["required"].begin(), in["required"].end(), f.name) != in["required"].end();
      EXPECT_EQ(req, f.required) << f.name;
    }
    for (const auto& f : k.output_columns) EXPECT_EQ(obj["properties"][f.name]["readOnly"], true) << f.name;
    bool refused = k.needs && !dp::carries(*k.needs);
    for (const auto& f : k.fields) refused |= f.needs && !dp::carries(*f.needs);  // uplinks: role external
    EXPECT_EQ(doc["paths"]["/v1/" + k.kind]["post"]["responses"].contains("501"), refused || k.kind == "nics");
  }
  EXPECT_EQ(doc["components"]["schemas"]["Nic"]["properties"]["security_group_ids"]["x-vpcd-capability"],
            "security-groups");
}

TEST_F(ApiTest, WritesAreAudited) {
  make_vpc();
  call("POST", "/v1/vpcs", json{{"cidrs", "bad"}});
  auto ev = call("GET", "/v1/events?limit=10");
  ASSERT_EQ(ev.status, 200);
  EXPECT_EQ(ev.body["total"], 2);
  EXPECT_EQ(ev.body["items"][0]["status"], 400);  // newest first
  EXPECT_EQ(ev.body["items"][1]["status"], 201);
  EXPECT_EQ(ev.body["items"][1]["method"], "POST");
  EXPECT_EQ(ev.body["items"][1]["kind"], "vpcs");
  EXPECT_EQ(ev.body["items"][1]["token_id"], "test-token");
  EXPECT_TRUE(is_uuid(ev.body["items"][1]["object_id"].get<std::string>()));
  EXPECT_EQ(call("GET", "/v1/events?vpc_id=x").status, 400);
}

TEST_F(ApiTest, AuditLogKeepsTheNewestTenThousand) {
  {
    auto session = store_.session();
    store::Transaction tx(session.db());
    for (int i = 0; i < 10000; ++i)
      store::Query(session.db(),
                   "INSERT INTO events (time, token_id, method, kind, object_id, status) VALUES ('t', 'x', 'POST', "
                   "'vpcs', ?, 201)",
                   std::to_string(i))
          .run();
    tx.commit();
  }
  make_vpc();
  auto ev = call("GET", "/v1/events?limit=1&offset=9999");
  EXPECT_EQ(ev.body["total"], 10000);
  EXPECT_EQ(ev.body["items"][0]["object_id"], "1");  // "0" was trimmed
}

TEST_F(ApiTest, ConcurrentWritersGetDistinctVnis) {
  std::vector<std::thread> threads;
  std::atomic<int> created{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        http::Request req;
        req.method = "POST";
        req.path = "/v1/vpcs";
        req.headers["content-type"] = "application/json";
        req.body = json{{"cidrs", {"10." + std::to_string(t * 20 + i) + ".0.0/16"}}}.dump();
        for (auto& r : routes_)
          if (r.method == "POST" && r.pattern == "/v1/vpcs" && r.handler(req).status == 201) ++created;
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(created.load(), 80);
  auto all = call("GET", "/v1/vpcs?limit=1000");
  std::set<int64_t> vnis;
  for (const auto& v : all.body["items"]) vnis.insert(v["vni"].get<int64_t>());
  EXPECT_EQ(vnis.size(), 80u);
}

// Side tables (vpc_macs, uplink_ips) key rows by their owner's id: objects of two kinds sharing a client-chosen id
// used to pass each other's uniqueness checks. Ids are unique across kinds now.
TEST_F(ApiTest, ClientChosenIdsAreUniqueAcrossKinds) {
  const std::string id = "0f8fad5b-d9cb-469f-a165-70867728950e";
  std::string vpc = make_vpc();
  std::string subnet = make_subnet(vpc, "10.0.1.0/24");
  auto up = engine("POST", "uplinks", json{{"ifname", "eth1"}, {"address", "192.0.2.10/24"}, {"role", "external"}});
  ASSERT_EQ(up.status, 201) << up.body.dump();
  std::string up_id = up.body["id"];

  auto nat = engine("PUT", "nat-gateways", json{{"vpc_id", vpc}, {"uplink_id", up_id}, {"external_ip", "192.0.2.50"}}, id);
  ASSERT_EQ(nat.status, 201) << nat.body.dump();
  // The same id and external address as a floating IP: refused, whatever the address.
  for (const char* ip : {"192.0.2.50", "192.0.2.51"}) {
    auto fip = engine("PUT", "floating-ips", json{{"uplink_id", up_id}, {"external_ip", ip}}, id);
    EXPECT_EQ(fip.status, 409) << fip.body.dump();
    EXPECT_EQ(fip.body["field"], "id");
  }
  // The NAT gateway still holds its address.
  auto fip = engine("POST", "floating-ips", json{{"uplink_id", up_id}, {"external_ip", "192.0.2.50"}});
  EXPECT_EQ(fip.status, 409) << fip.body.dump();
  EXPECT_EQ(fip.body["field"], "external_ip");

  // A NIC and a remote NIC with one id and one MAC.
  const std::string nic_id = "1f8fad5b-d9cb-469f-a165-70867728950e";
  auto nic = call("PUT", "/v1/nics/" + nic_id,
                  json{{"subnet_id", subnet}, {"backend", {{"type", "tap"}, {"ifname", "tapx"}}}, {"mac", "02:00:00:00:00:10"}});
  ASSERT_EQ(nic.status, 201) << nic.body.dump();
  auto remote = engine("PUT", "remote-nics",
                       json{{"vpc_id", vpc}, {"mac", "02:00:00:00:00:10"}, {"underlay_ip", "198.51.100.7"}}, nic_id);
  EXPECT_EQ(remote.status, 409) << remote.body.dump();
  EXPECT_EQ(remote.body["field"], "id");
  remote = engine("POST", "remote-nics", json{{"vpc_id", vpc}, {"mac", "02:00:00:00:00:10"}, {"underlay_ip", "198.51.100.7"}});
  EXPECT_EQ(remote.status, 409) << remote.body.dump();
  EXPECT_EQ(remote.body["field"], "mac");
  // Any kind: a VPC with the NIC's id.
  EXPECT_EQ(call("PUT", "/v1/vpcs/" + nic_id, json{{"cidrs", {"10.9.0.0/16"}}}).status, 409);
  // Deleting one kind never removes another's rows: the NAT gateway's address is still taken after a failed PUT.
  EXPECT_EQ(call("DELETE", "/v1/floating-ips/" + id).status, 404);
  EXPECT_EQ(engine("POST", "floating-ips", json{{"uplink_id", up_id}, {"external_ip", "192.0.2.50"}}).status, 409);
}

TEST_F(ApiTest, RouterMacIsRefusedForGuests) {
  auto v = call("POST", "/v1/vpcs", json{{"cidrs", {"10.0.0.0/16"}}, {"vni", 5}});
  ASSERT_EQ(v.status, 201);
  std::string vpc = v.body["id"];
  std::string subnet = make_subnet(vpc, "10.0.1.0/24");
  const std::string router = router_mac_for(5).to_string();
  EXPECT_EQ(router, "02:76:70:00:00:05");
  auto r = make_nic(subnet, "tapr", json{{"mac", router}});
  EXPECT_EQ(r.status, 409) << r.body.dump();
  EXPECT_EQ(r.body["field"], "mac");
  EXPECT_EQ(r.content_type, "application/problem+json");
  EXPECT_NE(r.body["detail"].get<std::string>().find("router"), std::string::npos) << r.body.dump();
  auto ok = make_nic(subnet, "tapr", json{{"mac", "02:76:70:00:00:07"}});
  ASSERT_EQ(ok.status, 201) << ok.body.dump();
  // Patching a NIC to the router MAC, a remote NIC with it, or a VNI whose router MAC a NIC holds: all refused.
  EXPECT_EQ(call("PATCH", "/v1/nics/" + ok.body["id"].get<std::string>(), json{{"mac", router}}).status, 409);
  auto rn = engine("POST", "remote-nics", json{{"vpc_id", vpc}, {"mac", router}, {"underlay_ip", "198.51.100.7"}});
  EXPECT_EQ(rn.status, 409);
  EXPECT_EQ(rn.body["field"], "mac");
  auto vni = call("PATCH", "/v1/vpcs/" + vpc, json{{"vni", 7}});
  EXPECT_EQ(vni.status, 409) << vni.body.dump();
  EXPECT_EQ(vni.body["field"], "vni");
  EXPECT_EQ(call("PATCH", "/v1/vpcs/" + vpc, json{{"vni", 8}}).status, 200);
}

TEST_F(ApiTest, ConfiguredLimitsOnVpcsAndNicsAre422NamingTheKey) {
  ctx_.limits = Limits{2, 1};
  std::string a = make_vpc("10.1.0.0/16");
  make_vpc("10.2.0.0/16");
  auto r = call("POST", "/v1/vpcs", json{{"cidrs", {"10.3.0.0/16"}}});
  EXPECT_EQ(r.status, 422);
  EXPECT_NE(r.body["detail"].get<std::string>().find("max-vpcs"), std::string::npos) << r.body.dump();
  r = call("PUT", "/v1/vpcs/0f8fad5b-d9cb-469f-a165-70867728950e", json{{"cidrs", {"10.3.0.0/16"}}});
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(call("PUT", "/v1/vpcs/" + a, json{{"cidrs", {"10.1.0.0/16"}}, {"mtu", 1400}}).status, 200);  // replace is fine
  std::string subnet = make_subnet(a, "10.1.1.0/24");
  EXPECT_EQ(make_nic(subnet, "tap1").status, 201);
  auto n = make_nic(subnet, "tap2");
  EXPECT_EQ(n.status, 422);
  EXPECT_NE(n.body["detail"].get<std::string>().find("max-nics"), std::string::npos) << n.body.dump();
}

// SQLITE_FULL (here from max_page_count; on a real box a full filesystem) is a 507 problem, nothing is written, and
// writes work again once there is room.
TEST_F(ApiTest, FullDatabaseIs507AndRecovers) {
  make_vpc("10.1.0.0/16");
  int64_t pages = 0;
  {
    auto session = store_.session();
    store::Query q(session.db(), "PRAGMA page_count");
    q.next();
    pages = q.int64(0);
    session.db().exec("PRAGMA max_page_count = " + std::to_string(pages));
  }
  int full = 0;
  for (int i = 0; i < 200 && full == 0; ++i) {
    auto r = call("POST", "/v1/vpcs", json{{"cidrs", {"10." + std::to_string(10 + i) + ".0.0/16"}},
                                           {"name", std::string(200, 'x')}, {"labels", {{"k", std::string(1000, 'y')}}}});
    if (r.status == 507) {
      ++full;
      EXPECT_EQ(r.content_type, "application/problem+json");
      EXPECT_NE(r.body["detail"].get<std::string>().find("full"), std::string::npos) << r.body.dump();
    } else {
      ASSERT_EQ(r.status, 201) << r.body.dump();
    }
  }
  ASSERT_EQ(full, 1) << "the database never filled up";
  const auto before = call("GET", "/v1/vpcs?limit=1000").body["total"].get<int64_t>();
  store_.session().db().exec("PRAGMA max_page_count = 1073741823");
  EXPECT_EQ(call("POST", "/v1/vpcs", json{{"cidrs", {"10.250.0.0/16"}}}).status, 201);
  EXPECT_EQ(call("GET", "/v1/vpcs?limit=1000").body["total"].get<int64_t>(), before + 1);
  auto session = store_.session();
  store::Query q(session.db(), "PRAGMA integrity_check");
  ASSERT_TRUE(q.next());
  EXPECT_EQ(q.text(0), "ok");
}

}  // namespace
}  // namespace vpcd::api
