// Request value validation; see validate.h.
#include "server/api/validate.h"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>
#include <uuid/uuid.h>

#include <charconv>
#include <vector>

namespace vpcd::api {

void bad_request(const std::string& field, const std::string& detail) {
  throw ApiError(400, "Bad Request", detail, field);
}
void unprocessable(const std::string& field, const std::string& detail) {
  throw ApiError(422, "Unprocessable Content", detail, field);
}
void conflict(const std::string& field, const std::string& detail) { throw ApiError(409, "Conflict", detail, field); }
void not_found(const std::string& detail) { throw ApiError(404, "Not Found", detail); }

namespace {

// Deepest array/object nesting of a JSON text, counted outside strings; stops early once over the limit.
bool depth_within(const std::string& text, int limit) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '[' || c == '{') {
      if (++depth > limit) return false;
    } else if (c == ']' || c == '}') --depth;
  }
  return true;
}

bool is_ifname_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
         c == '-';
}

}  // namespace

json parse_body(const std::string& body) {
  if (!depth_within(body, kMaxJsonDepth))
    bad_request("", "JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  json j;
  try {
    j = json::parse(body);
  } catch (const json::exception& e) {
    bad_request("", std::string("malformed JSON: ") + e.what());
  }
  if (!j.is_object()) bad_request("", "the body must be a JSON object");
  return j;
}

bool is_uuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

std::string new_uuid() {
  uuid_t u;
  uuid_generate_random(u);
  char buf[37];
  uuid_unparse_lower(u, buf);
  return buf;
}

std::string need_string(const json& v, const std::string& path, size_t max_bytes) {
  if (!v.is_string()) bad_request(path, path + " must be a string");
  const auto& s = v.get_ref<const std::string&>();
  if (s.size() > max_bytes)
    bad_request(path, path + " is longer than " + std::to_string(max_bytes) + " bytes");
  return s;
}

int64_t need_int(const json& v, const std::string& path, int64_t min, int64_t max) {
  std::string range = std::to_string(min) + ".." + std::to_string(max);
  if (v.is_number_unsigned()) {
    uint64_t u = v.get<uint64_t>();
    if (u > uint64_t(INT64_MAX) || int64_t(u) > max || int64_t(u) < min)
      bad_request(path, path + " must be an integer in " + range);
    return int64_t(u);
  }
  if (v.is_number_integer()) {
    int64_t i = v.get<int64_t>();
    if (i < min || i > max) bad_request(path, path + " must be an integer in " + range);
    return i;
  }
  bad_request(path, path + " must be an integer in " + range);
}

bool need_bool(const json& v, const std::string& path) {
  if (!v.is_boolean()) bad_request(path, path + " must be true or false");
  return v.get<bool>();
}

std::string need_uuid(const json& v, const std::string& path) {
  if (!v.is_string() || !is_uuid(v.get_ref<const std::string&>()))
    bad_request(path, path + " must be a lower-case UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)");
  return v.get<std::string>();
}

Ipv4Prefix need_cidr(const json& v, const std::string& path) {
  if (!v.is_string()) bad_request(path, path + " must be an IPv4 CIDR string such as \"10.0.0.0/16\"");
  const auto& s = v.get_ref<const std::string&>();
  auto loose = Ipv4Prefix::parse(s, false);
  if (!loose) bad_request(path, path + ": \"" + s.substr(0, 64) + "\" is not an IPv4 CIDR such as \"10.0.0.0/16\"");
  if (!loose->is_canonical()) {
    Ipv4Prefix canon{Ipv4Addr{loose->addr.v & loose->mask()}, loose->len};
    bad_request(path, path + ": \"" + s + "\" has host bits set; did you mean \"" + canon.to_string() + "\"?");
  }
  return *loose;
}

Ipv4Prefix need_host_cidr(const json& v, const std::string& path) {
  if (!v.is_string()) bad_request(path, path + " must be an address with prefix such as \"192.0.2.10/24\"");
  const auto& s = v.get_ref<const std::string&>();
  auto p = Ipv4Prefix::parse(s, false);
  if (!p) bad_request(path, path + ": \"" + s.substr(0, 64) + "\" is not an address with prefix (\"192.0.2.10/24\")");
  return *p;
}

Ipv4Addr need_ipv4(const json& v, const std::string& path) {
  if (!v.is_string()) bad_request(path, path + " must be an IPv4 address string");
  const auto& s = v.get_ref<const std::string&>();
  auto a = Ipv4Addr::parse(s);
  if (!a) bad_request(path, path + ": \"" + s.substr(0, 64) + "\" is not an IPv4 address");
  return *a;
}

Ipv4Addr need_unicast_ipv4(const json& v, const std::string& path) {
  Ipv4Addr a = need_ipv4(v, path);
  uint8_t first = uint8_t(a.v >> 24);
  if (first == 0 || first == 127 || first >= 224)
    bad_request(path, path + ": " + a.to_string() + " is not a unicast address");
  return a;
}

MacAddr need_unicast_mac(const json& v, const std::string& path) {
  if (!v.is_string()) bad_request(path, path + " must be a MAC address string such as \"02:00:00:00:00:01\"");
  const auto& s = v.get_ref<const std::string&>();
  auto m = MacAddr::parse(s);
  if (!m) bad_request(path, path + ": \"" + s.substr(0, 64) + "\" is not a MAC address");
  if (m->is_multicast()) bad_request(path, path + ": " + m->to_string() + " is a multicast address");
  if (m->is_zero()) bad_request(path, path + ": the zero MAC address is not allowed");
  return *m;
}

std::string need_ifname(const json& v, const std::string& path) {
  if (!v.is_string()) bad_request(path, path + " must be an interface name string");
  const auto& s = v.get_ref<const std::string&>();
  bool ok = !s.empty() && s.size() <= 15 && s != "." && s != "..";
  for (char c : s) ok = ok && is_ifname_char(c);
  if (!ok) bad_request(path, path + " must be 1..15 characters of [A-Za-z0-9_.-]");
  return s;
}

std::string need_netns_name(const json& v, const std::string& path) {
  if (!v.is_string()) bad_request(path, path + " must be a namespace name string");
  const auto& s = v.get_ref<const std::string&>();
  bool ok = !s.empty() && s.size() <= 64 && s != "." && s != "..";
  for (char c : s) ok = ok && is_ifname_char(c);
  if (!ok) bad_request(path, path + " must be 1..64 characters of [A-Za-z0-9_.-]");
  return s;
}

std::string need_enum(const json& v, const std::string& path, std::initializer_list<std::string_view> allowed) {
  std::string list;
  for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
  if (v.is_string()) {
    for (auto a : allowed)
      if (v.get_ref<const std::string&>() == a) return std::string(a);
  }
  bad_request(path, path + " must be one of: " + list);
}

void only_fields(const json& obj, const std::string& path, std::initializer_list<std::string_view> allowed) {
  if (!obj.is_object()) bad_request(path, (path.empty() ? "the body" : path) + " must be a JSON object");
  for (const auto& [key, val] : obj.items()) {
    bool known = false;
    for (auto a : allowed) known = known || key == a;
    if (!known) {
      std::string name = path.empty() ? key : path + "." + key;
      bad_request(name, "unknown field \"" + name.substr(0, 300) + "\"");
    }
  }
}

const json* member(const json& obj, std::string_view name) {
  auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

json check_name(const json& v) { return need_string(v, "name", kMaxNameBytes); }

json check_labels(const json& v) {
  if (!v.is_object()) bad_request("labels", "labels must be an object of string values");
  if (v.size() > kMaxLabels) bad_request("labels", "at most " + std::to_string(kMaxLabels) + " labels");
  for (const auto& [key, val] : v.items()) {
    if (key.empty() || key.size() > kMaxLabelKeyBytes)
      bad_request("labels", "label keys must be 1.." + std::to_string(kMaxLabelKeyBytes) + " bytes");
    need_string(val, "labels." + key, kMaxLabelValueBytes);
  }
  return v;
}

namespace {
template <class T>
std::optional<T> parse_id(const std::string& s) {
  T v{};
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}
}  // namespace

std::optional<uid_t> lookup_user(const std::string& name) {
  std::vector<char> buf(16384);
  passwd pw{}, *res = nullptr;
  if (auto id = parse_id<uid_t>(name)) {
    if (getpwuid_r(*id, &pw, buf.data(), buf.size(), &res) == 0 && res) return res->pw_uid;
    return std::nullopt;
  }
  if (getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &res) == 0 && res) return res->pw_uid;
  return std::nullopt;
}

std::optional<gid_t> lookup_group(const std::string& name) {
  std::vector<char> buf(16384);
  group gr{}, *res = nullptr;
  if (auto id = parse_id<gid_t>(name)) {
    if (getgrgid_r(*id, &gr, buf.data(), buf.size(), &res) == 0 && res) return res->gr_gid;
    return std::nullopt;
  }
  if (getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &res) == 0 && res) return res->gr_gid;
  return std::nullopt;
}

MacAddr derived_mac(std::string_view seed, uint32_t attempt) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a 64
  auto mix = [&h](uint8_t b) {
    h ^= b;
    h *= 1099511628211ull;
  };
  for (char c : seed) mix(uint8_t(c));
  for (int i = 0; i < 4; ++i) mix(uint8_t(attempt >> (8 * i)));
  MacAddr m = MacAddr::from_u64(h & 0xffffffffffull);
  m.b[0] = 0x02;
  return m;
}

}  // namespace vpcd::api
