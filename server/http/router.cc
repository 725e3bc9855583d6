// Segment-trie router; see router.h. Threading: immutable after setup.
#include "server/http/router.h"

#include <stdexcept>

namespace vpcd::http {

struct Router::Node {
  std::map<std::string, std::unique_ptr<Node>, std::less<>> literals;
  std::unique_ptr<Node> param;  // "{name}" child
  struct Route {
    Handler handler;
    Role min_role;
  };
  std::map<std::string, Route, std::less<>> routes;  // by method
};

namespace {

// Calls f(segment) for each segment of "/a/b/c" (the leading '/' is skipped; "/" has one empty segment).
template <class F>
bool for_each_segment(std::string_view path, F&& f) {
  if (path.empty() || path[0] != '/') return false;
  path.remove_prefix(1);
  while (true) {
    size_t slash = path.find('/');
    if (!f(path.substr(0, slash))) return false;
    if (slash == std::string_view::npos) return true;
    path.remove_prefix(slash + 1);
  }
}

const Router::Node* walk(const Router::Node* n, const std::vector<std::string_view>& segs, size_t i,
                         std::vector<std::string>* params) {
  if (i == segs.size()) return n->routes.empty() ? nullptr : n;
  if (auto it = n->literals.find(segs[i]); it != n->literals.end()) {
    if (const auto* r = walk(it->second.get(), segs, i + 1, params)) return r;
  }
  if (n->param && !segs[i].empty()) {
    params->emplace_back(segs[i]);
    if (const auto* r = walk(n->param.get(), segs, i + 1, params)) return r;
    params->pop_back();
  }
  return nullptr;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool percent_decode(std::string_view in, bool plus_is_space, bool in_path, std::string* out) {
  out->clear();
  out->reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return false;
      int hi = hex_digit(in[i + 1]), lo = hex_digit(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      char d = static_cast<char>(hi << 4 | lo);
      if (in_path && (d == '/' || d == '\0')) return false;
      out->push_back(d);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out->push_back(' ');
    } else {
      out->push_back(c);
    }
  }
  return true;
}

}  // namespace

Router::Router() : root_(std::make_unique<Node>()) {}
Router::~Router() = default;

void Router::add(std::string method, std::string pattern, Handler h, Role min_role) {
  if (method.empty() || !h) throw std::invalid_argument("route " + pattern + ": empty method or handler");
  Node* n = root_.get();
  bool ok = for_each_segment(pattern, [&](std::string_view seg) {
    if (seg.size() >= 2 && seg.front() == '{' && seg.back() == '}') {
      if (!n->param) n->param = std::make_unique<Node>();
      n = n->param.get();
      return true;
    }
    if (seg.find_first_of("{}") != std::string_view::npos) return false;
    auto it = n->literals.find(seg);
    if (it == n->literals.end()) it = n->literals.emplace(std::string(seg), std::make_unique<Node>()).first;
    n = it->second.get();
    return true;
  });
  if (!ok) throw std::invalid_argument("route pattern is malformed: " + pattern);
  if (!n->routes.emplace(std::move(method), Node::Route{std::move(h), min_role}).second)
    throw std::invalid_argument("route registered twice: " + pattern);
}

Router::Match Router::match(std::string_view method, std::string_view path) const {
  Match m;
  std::vector<std::string_view> segs;
  if (!for_each_segment(path, [&](std::string_view s) {
        segs.push_back(s);
        return true;
      }))
    return m;
  const Node* n = walk(root_.get(), segs, 0, &m.params);
  if (!n) {
    m.params.clear();
    return m;
  }
  auto it = n->routes.find(method);
  if (it == n->routes.end()) {
    m.kind = Match::Kind::kMethodNotAllowed;
    m.params.clear();
    for (const auto& [meth, route] : n->routes) {
      if (!m.allow.empty()) m.allow += ", ";
      m.allow += meth;
    }
    return m;
  }
  m.kind = Match::Kind::kFound;
  m.handler = &it->second.handler;
  m.min_role = it->second.min_role;
  return m;
}

Response Router::dispatch(Request& req) const {
  Match m = match(req.method, req.path);
  if (m.kind == Match::Kind::kNotFound) return problem(404, "Not Found", "no resource at " + req.path);
  if (m.kind == Match::Kind::kMethodNotAllowed) {
    Response r = problem(405, "Method Not Allowed", req.method + " is not allowed on " + req.path);
    r.headers.emplace_back("Allow", m.allow);
    return r;
  }
  if (m.min_role != Role::kNone && req.role == Role::kNone) {
    Response r = problem(401, "Unauthorized", "a valid bearer token is required");
    r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"vpcd\"");
    return r;
  }
  if (static_cast<int>(req.role) < static_cast<int>(m.min_role))
    return problem(403, "Forbidden", "this token's role may not " + req.method + " " + req.path);
  req.params = std::move(m.params);
  return (*m.handler)(req);
}

bool parse_target(std::string_view target, std::string* path, std::map<std::string, std::string>* query,
                  std::string* error) {
  if (target.empty() || target[0] != '/') {
    *error = "request target must start with '/'";
    return false;
  }
  size_t q = target.find('?');
  std::string_view raw_path = target.substr(0, q);
  if (!percent_decode(raw_path, false, true, path)) {
    *error = "bad percent-encoding in path";
    return false;
  }
  query->clear();
  if (q == std::string_view::npos) return true;
  std::string_view rest = target.substr(q + 1);
  size_t hash = rest.find('#');
  if (hash != std::string_view::npos) rest = rest.substr(0, hash);
  while (!rest.empty()) {
    size_t amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    std::string key, value;
    if (!percent_decode(pair.substr(0, eq), true, false, &key) ||
        (eq != std::string_view::npos && !percent_decode(pair.substr(eq + 1), true, false, &value))) {
      *error = "bad percent-encoding in query";
      return false;
    }
    (*query)[std::move(key)] = std::move(value);
  }
  return true;
}

}  // namespace vpcd::http
