// Request routing by method and path pattern ("/v1/vpcs/{id}/stats"). Patterns are split into segments and stored
// in a trie: a lookup walks the request's segments once (literal children before the {param} child, backtracking
// only when a literal branch dead-ends). No regex.
// Threading: add() during setup only; match()/dispatch() are const and safe from many threads once setup is done.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "server/http/types.h"

namespace vpcd::http {

class Router {
 public:
  struct Match {
    enum class Kind { kFound, kNotFound, kMethodNotAllowed };
    Kind kind = Kind::kNotFound;
    const Handler* handler = nullptr;  // kFound: points into the router
    Role min_role = Role::kNone;       // kFound
    std::vector<std::string> params;   // kFound: values of {param} segments, in order
    std::string allow;                 // kMethodNotAllowed: "GET, PUT"
  };

  Router();
  ~Router();
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  // Registers a route. Throws std::invalid_argument for a malformed pattern or a duplicate method+pattern.
  // min_role: kNone = no authentication, kViewer = any valid token, kAdmin = admin token.
  void add(std::string method, std::string pattern, Handler h, Role min_role);

  Match match(std::string_view method, std::string_view path) const;

  // Matches, checks req.role against the route (401 when kNone and the route needs a token, 403 when too low),
  // fills req.params and calls the handler. 404/405 (with Allow) as problem+json. Exceptions propagate.
  Response dispatch(Request& req) const;

  struct Node;  // trie node; defined in router.cc (public only so its helpers can name it)

 private:
  std::unique_ptr<Node> root_;
};

// Splits a request target into a decoded path and decoded query parameters. False (with *error set) for a target
// that does not start with '/', bad percent-encoding, or an encoded '/' or NUL in the path.
bool parse_target(std::string_view target, std::string* path, std::map<std::string, std::string>* query,
                  std::string* error);

}  // namespace vpcd::http
