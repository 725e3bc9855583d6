// Serves the web dashboard's static files from a root directory: "/" and directory paths map to index.html,
// content types for html/js/css/svg/png/json (others: application/octet-stream), Cache-Control no-cache.
// Traversal is refused twice: ".." segments are rejected outright, and the resolved real path (symlinks followed)
// must stay under the canonical root. Threading: immutable after construction; serve() from any thread.
#pragma once

#include <string>
#include <string_view>

#include "server/http/types.h"

namespace vpcd::http {

class StaticFiles {
 public:
  // `root` need not exist yet; it is canonicalized when it does. An empty root serves nothing (404).
  explicit StaticFiles(std::string root);

  // `path` is the decoded request path ("/", "/app.js", "/img/logo.svg"). Returns the file, or problem+json 404
  // (missing, outside the root, not a regular file) / 400 (".." or NUL in the path).
  Response serve(std::string_view path) const;

  static std::string_view content_type_for(std::string_view file_name);

  static constexpr size_t kMaxFileBytes = 32u << 20;

 private:
  std::string root_;  // canonical, no trailing '/'; "" when unusable
};

}  // namespace vpcd::http
