// Test helper: hex strings to bytes ("45 00 00 73", whitespace and ':' ignored). Threading: pure functions.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string_view>
#include <vector>

namespace vpcd::testutil {

inline std::vector<uint8_t> from_hex(std::string_view s) {
  auto nibble = [](char ch) -> int {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
  };
  std::vector<uint8_t> out;
  int hi = -1;
  for (char ch : s) {
    if (ch == ' ' || ch == '\n' || ch == ':' || ch == '\t') continue;
    const int v = nibble(ch);
    if (v < 0) throw std::invalid_argument("bad hex digit");
    if (hi < 0) {
      hi = v;
    } else {
      out.push_back(uint8_t(hi << 4 | v));
      hi = -1;
    }
  }
  if (hi >= 0) throw std::invalid_argument("odd number of hex digits");
  return out;
}

}  // namespace vpcd::testutil
