// A tiny leveled logger: one line per call to stderr, prefixed with an RFC 3339 UTC timestamp and the level.
// Threading: every function may be called from any thread. Each line goes out in a single write(2), so lines from
// different threads never interleave; the level is a relaxed atomic.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace vpcd::log {

enum class Level { kDebug, kInfo, kWarn, kError };

void set_level(Level level);
Level level();
std::optional<Level> parse_level(std::string_view name);  // "debug", "info", "warn", "error"
bool enabled(Level level);

// Writes "2026-11-22T03:57:15.123Z INFO  msg\n" to stderr when `level` is enabled. Newlines inside msg are escaped so
// one call is always one line.
void write(Level level, std::string_view msg);

inline void debug(std::string_view msg) { write(Level::kDebug, msg); }
inline void info(std::string_view msg) { write(Level::kInfo, msg); }
inline void warn(std::string_view msg) { write(Level::kWarn, msg); }
inline void error(std::string_view msg) { write(Level::kError, msg); }

std::string rfc3339_now();  // UTC, millisecond precision, "Z" suffix

}  // namespace vpcd::log
