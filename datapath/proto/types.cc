#include "datapath/proto/types.h"

#include <charconv>
#include <cstdio>

namespace vpcd {

namespace {
int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

std::optional<MacAddr> MacAddr::parse(std::string_view s) {
  if (s.size() != 17) return std::nullopt;
  MacAddr m;
  for (int i = 0; i < 6; ++i) {
    int hi = hex_digit(s[i * 3]), lo = hex_digit(s[i * 3 + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    if (i < 5 && s[i * 3 + 2] != ':' && s[i * 3 + 2] != '-') return std::nullopt;
    m.b[i] = uint8_t(hi << 4 | lo);
  }
  return m;
}

std::string MacAddr::to_string() const {
  char buf[18];
  std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4], b[5]);
  return buf;
}

std::optional<Ipv4Addr> Ipv4Addr::parse(std::string_view s) {
  uint32_t v = 0;
  size_t pos = 0;
  for (int part = 0; part < 4; ++part) {
    if (part > 0) {
      if (pos >= s.size() || s[pos] != '.') return std::nullopt;
      ++pos;
    }
    size_t start = pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9' && pos - start < 4) ++pos;
    size_t n = pos - start;
    if (n == 0 || n > 3 || (n > 1 && s[start] == '0')) return std::nullopt;
    unsigned octet = 0;
    std::from_chars(s.data() + start, s.data() + pos, octet);
    if (octet > 255) return std::nullopt;
    v = v << 8 | octet;
  }
  if (pos != s.size()) return std::nullopt;
  return Ipv4Addr{v};
}

std::string Ipv4Addr::to_string() const {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", v >> 24, (v >> 16) & 255, (v >> 8) & 255, v & 255);
  return buf;
}

std::optional<Ipv4Prefix> Ipv4Prefix::parse(std::string_view s, bool strict) {
  auto slash = s.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  auto addr = Ipv4Addr::parse(s.substr(0, slash));
  auto lens = s.substr(slash + 1);
  if (!addr || lens.empty() || lens.size() > 2 || (lens.size() > 1 && lens[0] == '0')) return std::nullopt;
  unsigned len = 0;
  auto [p, ec] = std::from_chars(lens.data(), lens.data() + lens.size(), len);
  if (ec != std::errc() || p != lens.data() + lens.size() || len > 32) return std::nullopt;
  Ipv4Prefix pfx{*addr, uint8_t(len)};
  if (strict && !pfx.is_canonical()) return std::nullopt;
  return pfx;
}

std::string Ipv4Prefix::to_string() const { return addr.to_string() + "/" + std::to_string(len); }

}  // namespace vpcd
