// Static file serving with traversal checks; see static_files.h. Threading: const after construction.
#include "server/http/static_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>

namespace vpcd::http {
namespace {

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string real_path(const std::string& p) {
  char buf[PATH_MAX];
  if (!::realpath(p.c_str(), buf)) return "";
  return buf;
}

Response not_found(std::string_view path) { return problem(404, "Not Found", "no file at " + std::string(path)); }

}  // namespace

StaticFiles::StaticFiles(std::string root) {
  if (!root.empty()) root_ = real_path(root);
  if (root_ == "/") root_.clear();  // serving the whole file system is never intended
}

std::string_view StaticFiles::content_type_for(std::string_view name) {
  struct Entry {
    std::string_view ext, type;
  };
  static constexpr Entry kTypes[] = {
      {".html", "text/html; charset=utf-8"},       {".htm", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},   {".mjs", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},         {".svg", "image/svg+xml"},
      {".png", "image/png"},                       {".json", "application/json"},
      {".ico", "image/x-icon"},                    {".txt", "text/plain; charset=utf-8"},
  };
  for (const auto& e : kTypes)
    if (ends_with(name, e.ext)) return e.type;
  return "application/octet-stream";
}

Response StaticFiles::serve(std::string_view path) const {
  if (path.empty() || path[0] != '/' || path.find('\0') != std::string_view::npos)
    return problem(400, "Bad Request", "malformed path");
  // Reject any ".." segment before touching the file system.
  for (size_t pos = 0; pos <= path.size();) {
    size_t next = path.find('/', pos);
    if (next == std::string_view::npos) next = path.size();
    if (path.substr(pos, next - pos) == "..") return problem(400, "Bad Request", "'..' is not allowed in paths");
    pos = next + 1;
  }
  if (root_.empty()) return not_found(path);
  std::string want = root_ + std::string(path);
  if (want.back() == '/') want += "index.html";
  std::string real = real_path(want);
  if (!real.empty()) {
    struct stat st;
    if (::stat(real.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) real = real_path(real + "/index.html");
  }
  if (real.empty() || real.compare(0, root_.size() + 1, root_ + "/") != 0) return not_found(path);

  int fd = ::open(real.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return not_found(path);
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || static_cast<size_t>(st.st_size) > kMaxFileBytes) {
    ::close(fd);
    return not_found(path);
  }
  Response r;
  r.body.resize(static_cast<size_t>(st.st_size));
  size_t got = 0;
  while (got < r.body.size()) {
    ssize_t n = ::read(fd, r.body.data() + got, r.body.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  r.body.resize(got);
  r.content_type = std::string(content_type_for(real));
  r.headers.emplace_back("Cache-Control", "no-cache");
  return r;
}

}  // namespace vpcd::http
