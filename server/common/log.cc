// Leveled stderr logger; see log.h. Threading: lock-free; one write(2) per line.
#include "server/common/log.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <ctime>

namespace vpcd::log {
namespace {

std::atomic<int> g_level{static_cast<int>(Level::kInfo)};

constexpr std::string_view kLevelNames[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};


}  // namespace

void set_level(Level level) { g_level.store(static_cast<int>(level), std::memory_order_relaxed); }

Level level() { return static_cast<Level>(g_level.load(std::memory_order_relaxed)); }

bool enabled(Level lvl) { return static_cast<int>(lvl) >= g_level.load(std::memory_order_relaxed); }

std::optional<Level> parse_level(std::string_view name) {
  if (name == "debug") return Level::kDebug;
  if (name == "info") return Level::kInfo;
  if (name == "warn" || name == "warning") return Level::kWarn;
  if (name == "error") return Level::kError;
  return std::nullopt;
}

std::string rfc3339_now() {
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  time_t secs = static_cast<time_t>(ms / 1000);
  struct tm tm_utc;
  gmtime_r(&secs, &tm_utc);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm_utc.tm_year + 1900, tm_utc.tm_mon + 1,
                tm_utc.tm_mday, tm_utc.tm_hour, tm_utc.tm_min, tm_utc.tm_sec, static_cast<int>(ms % 1000));
  return buf;
}

namespace {

// Length of the well-formed UTF-8 sequence at the start of `s` (2..4 bytes), 0 when it is not one. Overlong forms,
// surrogates and code points above U+10FFFF are not well formed (RFC 3629).
size_t utf8_sequence(std::string_view s) {
  const auto b0 = static_cast<unsigned char>(s[0]);
  size_t n = 0;
  unsigned lo = 0x80, hi = 0xbf;  // allowed range of the second byte
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    n = 2;
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    n = 3;
    if (b0 == 0xe0) lo = 0xa0;
    if (b0 == 0xed) hi = 0x9f;
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    n = 4;
    if (b0 == 0xf0) lo = 0x90;
    if (b0 == 0xf4) hi = 0x8f;
  } else {
    return 0;
  }
  if (s.size() < n) return 0;
  for (size_t i = 1; i < n; ++i) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < (i == 1 ? lo : 0x80) || b > (i == 1 ? hi : 0xbf)) return 0;
  }
  return n;
}

void append_hex(std::string& out, unsigned char c) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += "\\x";
  out += kHex[c >> 4];
  out += kHex[c & 15];
}

}  // namespace

void append_escaped(std::string& out, std::string_view msg) {
  for (size_t i = 0; i < msg.size();) {
    const auto c = static_cast<unsigned char>(msg[i]);
    if (c >= 0x20 && c < 0x7f) {
      if (c == '\\') out += '\\';
      out += static_cast<char>(c);
      ++i;
    } else if (c == '\n') {
      out += "\\n";
      ++i;
    } else if (c == '\r') {
      out += "\\r";
      ++i;
    } else if (c == '\t') {
      out += "\\t";
      ++i;
    } else if (c < 0x80) {  // C0 controls and DEL
      append_hex(out, c);
      ++i;
    } else if (size_t n = utf8_sequence(msg.substr(i));
               n > 0 && !(c == 0xc2 && static_cast<unsigned char>(msg[i + 1]) < 0xa0)) {
      out.append(msg.substr(i, n));  // printable non-ASCII text stays readable
      i += n;
    } else {  // C1 controls (U+0080..U+009F) and bytes that are not UTF-8: a raw 0x9b is CSI on 8-bit terminals
      append_hex(out, c);
      ++i;
    }
  }
}

void write(Level lvl, std::string_view msg) {
  if (!enabled(lvl)) return;
  std::string line = rfc3339_now();
  line.reserve(line.size() + msg.size() + 16);
  line += ' ';
  line += kLevelNames[static_cast<int>(lvl)];
  line += ' ';
  append_escaped(line, msg);
  line += '\n';
  // One write(2) keeps the line whole; retry only on EINTR (a short write to a pipe of < PIPE_BUF cannot happen).
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    ssize_t n = ::write(STDERR_FILENO, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
}

}  // namespace vpcd::log
