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

// Writes "2026-11-22T03:57:15.123Z INFO  msg\n" to stderr when `level` is enabled, msg escaped by append_escaped():
// one call is always one line, and text from requests (paths, names) can never reach a terminal as control codes.
void write(Level level, std::string_view msg);

// Appends `msg` to `out` with every control byte escaped: \n \r \t, other C0 controls, DEL, C1 controls (U+0080..
// U+009F) and bytes that are not well-formed UTF-8 as \xHH; a backslash doubled. Printable ASCII and well-formed
// UTF-8 text are kept as they are.
void append_escaped(std::string& out, std::string_view msg);

inline void debug(std::string_view msg) { write(Level::kDebug, msg); }
inline void info(std::string_view msg) { write(Level::kInfo, msg); }
inline void warn(std::string_view msg) { write(Level::kWarn, msg); }
inline void error(std::string_view msg) { write(Level::kError, msg); }

std::string rfc3339_now();  // UTC, millisecond precision, "Z" suffix

}  // namespace vpcd::log
