// Unit tests for the logger's escaping (server/common/log): no byte of a logged message can act on a terminal.
#include "server/common/log.h"

#include <gtest/gtest.h>

namespace vpcd::log {
namespace {

std::string escaped(std::string_view s) {
  std::string out;
  append_escaped(out, s);
  return out;
}

TEST(Log, EscapesEveryControlByte) {
  struct Case {
    const char* name;
    std::string in, out;
  } cases[] = {
      {"plain", "GET /v1/vpcs 200", "GET /v1/vpcs 200"},
      {"newline and CR", "a\nb\rc\td", "a\\nb\\rc\\td"},
      {"ESC sequence", "\x1b[2J\x1b]0;title\x07", "\\x1b[2J\\x1b]0;title\\x07"},
      {"NUL and DEL", std::string("a\0b\x7f", 4), "a\\x00b\\x7f"},
      {"backslash doubled", "a\\x1b", "a\\\\x1b"},
      {"C1 CSI as UTF-8", "\xc2\x9b" "31m", "\\xc2\\x9b31m"},
      {"raw 8-bit CSI", "\x9b" "31m", "\\x9b31m"},
      {"UTF-8 text kept", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},
      {"truncated sequence", "\xe2\x82", "\\xe2\\x82"},
      {"overlong slash", "\xc0\xaf", "\\xc0\\xaf"},
      {"surrogate", "\xed\xa0\x80", "\\xed\\xa0\\x80"},
      {"above U+10FFFF", "\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(escaped(c.in), c.out);
  }
  // Every byte value: nothing below 0x20, no DEL, no C1 control survives.
  for (int b = 0; b < 256; ++b) {
    std::string out = escaped(std::string(1, char(b)));
    for (char ch : out) {
      auto u = static_cast<unsigned char>(ch);
      EXPECT_TRUE(u >= 0x20 && u != 0x7f && u < 0x80) << b;
    }
  }
}

}  // namespace
}  // namespace vpcd::log
