// Router: literal and {param} matching, 404, 405 with Allow, role checks in dispatch, target parsing.
#include "server/http/router.h"

#include <gtest/gtest.h>

namespace vpcd::http {
namespace {

Handler tag(std::string name) {
  return [name](const Request& r) {
    Response res;
    res.body = name;
    for (const auto& p : r.params) res.body += "|" + p;
    return res;
  };
}

class RouterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    r_.add("GET", "/v1/health", tag("health"), Role::kNone);
    r_.add("GET", "/v1/vpcs", tag("list"), Role::kViewer);
    r_.add("POST", "/v1/vpcs", tag("create"), Role::kAdmin);
    r_.add("GET", "/v1/vpcs/{id}", tag("get"), Role::kViewer);
    r_.add("PUT", "/v1/vpcs/{id}", tag("put"), Role::kAdmin);
    r_.add("DELETE", "/v1/vpcs/{id}", tag("delete"), Role::kAdmin);
    r_.add("GET", "/v1/vpcs/{id}/stats", tag("stats"), Role::kViewer);
    r_.add("GET", "/v1/vpcs/default", tag("default"), Role::kViewer);
    r_.add("GET", "/v1/nics/{id}/peers/{peer}", tag("peer"), Role::kViewer);
  }
  Response call(std::string method, std::string path, Role role = Role::kAdmin) {
    Request req;
    req.method = std::move(method);
    req.path = std::move(path);
    req.role = role;
    return r_.dispatch(req);
  }
  Router r_;
};

TEST_F(RouterTest, MatchesLiteralsAndParams) {
  struct Case {
    const char* method;
    const char* path;
    int status;
    const char* body;
  } const kCases[] = {
      {"GET", "/v1/health", 200, "health"},
      {"GET", "/v1/vpcs", 200, "list"},
      {"POST", "/v1/vpcs", 200, "create"},
      {"GET", "/v1/vpcs/abc", 200, "get|abc"},
      {"PUT", "/v1/vpcs/abc", 200, "put|abc"},
      {"GET", "/v1/vpcs/abc/stats", 200, "stats|abc"},
      {"GET", "/v1/vpcs/default", 200, "default"},  // literal wins over {id}
      {"GET", "/v1/vpcs/default/stats", 200, "stats|default"},  // backtracks into {id}
      {"GET", "/v1/nics/n1/peers/p2", 200, "peer|n1|p2"},
      {"GET", "/v1/vpcs/", 404, nullptr},  // empty segment is not an id
      {"GET", "/v1/vpcs/abc/other", 404, nullptr},
      {"GET", "/v2/vpcs", 404, nullptr},
      {"GET", "/", 404, nullptr},
      {"GET", "", 404, nullptr},
  };
  for (const auto& c : kCases) {
    SCOPED_TRACE(std::string(c.method) + " " + c.path);
    Response res = call(c.method, c.path);
    EXPECT_EQ(res.status, c.status);
    if (c.body) {
      EXPECT_EQ(res.body, c.body);
    }
    if (c.status == 404) {
      EXPECT_EQ(res.content_type, "application/problem+json");
    }
  }
}

TEST_F(RouterTest, WrongMethodIs405WithAllow) {
  Response res = call("PATCH", "/v1/vpcs/abc");
  EXPECT_EQ(res.status, 405);
  EXPECT_EQ(res.content_type, "application/problem+json");
  ASSERT_EQ(res.headers.size(), 1u);
  EXPECT_EQ(res.headers[0].first, "Allow");
  EXPECT_EQ(res.headers[0].second, "DELETE, GET, PUT");
  Router::Match m = r_.match("DELETE", "/v1/vpcs");
  EXPECT_EQ(m.kind, Router::Match::Kind::kMethodNotAllowed);
  EXPECT_EQ(m.allow, "GET, POST");
}

TEST_F(RouterTest, DispatchChecksRoles) {
  EXPECT_EQ(call("GET", "/v1/health", Role::kNone).status, 200);
  Response unauth = call("GET", "/v1/vpcs", Role::kNone);
  EXPECT_EQ(unauth.status, 401);
  EXPECT_EQ(call("GET", "/v1/vpcs", Role::kViewer).status, 200);
  EXPECT_EQ(call("POST", "/v1/vpcs", Role::kViewer).status, 403);
  EXPECT_EQ(call("POST", "/v1/vpcs", Role::kAdmin).status, 200);
}

TEST_F(RouterTest, RejectsBadPatternsAndDuplicates) {
  EXPECT_THROW(r_.add("GET", "/v1/health", tag("x"), Role::kNone), std::invalid_argument);
  EXPECT_THROW(r_.add("GET", "v1/no-slash", tag("x"), Role::kNone), std::invalid_argument);
  EXPECT_THROW(r_.add("GET", "/v1/a{id}", tag("x"), Role::kNone), std::invalid_argument);
  EXPECT_THROW(r_.add("GET", "/v1/x", Handler{}, Role::kNone), std::invalid_argument);
}

TEST(ParseTarget, DecodesPathAndQuery) {
  std::string path, error;
  std::map<std::string, std::string> q;
  ASSERT_TRUE(parse_target("/v1/vpcs?limit=10&offset=5&name=a+b%21&limit=20&flag", &path, &q, &error));
  EXPECT_EQ(path, "/v1/vpcs");
  EXPECT_EQ(q["limit"], "20");  // last one wins
  EXPECT_EQ(q["offset"], "5");
  EXPECT_EQ(q["name"], "a b!");
  EXPECT_EQ(q.count("flag"), 1u);
  ASSERT_TRUE(parse_target("/v1/a%20b", &path, &q, &error));
  EXPECT_EQ(path, "/v1/a b");
  EXPECT_TRUE(q.empty());
}

TEST(ParseTarget, RejectsBadTargets) {
  std::string path, error;
  std::map<std::string, std::string> q;
  for (const char* t : {"", "v1/x", "http://h/v1", "/v1/%2Fetc", "/v1/%00", "/v1/%zz", "/v1/%4", "/v1?x=%g0"}) {
    SCOPED_TRACE(t);
    EXPECT_FALSE(parse_target(t, &path, &q, &error));
    EXPECT_FALSE(error.empty());
  }
}

}  // namespace
}  // namespace vpcd::http
