// Validation of request values for the API: each check throws ApiError naming the offending JSON field, so handlers
// turn any bad input into a 4xx problem+json and never a 500.
//
// Threading: pure functions (user/group look-ups use the reentrant getpwnam_r/getgrnam_r).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>

#include "datapath/proto/types.h"

namespace vpcd::api {

using json = nlohmann::json;

// An API failure: becomes problem+json with this status, title, detail and field.
struct ApiError : std::runtime_error {
  int status;
  std::string title;
  std::string field;
  std::string capability;  // 501: the datapath capability that is missing (problem member "capability")
  ApiError(int st, std::string ttl, const std::string& detail, std::string fld = {})
      : std::runtime_error(detail), status(st), title(std::move(ttl)), field(std::move(fld)) {}
};

[[noreturn]] void bad_request(const std::string& field, const std::string& detail);    // 400
[[noreturn]] void unprocessable(const std::string& field, const std::string& detail);  // 422
[[noreturn]] void conflict(const std::string& field, const std::string& detail);       // 409
[[noreturn]] void not_found(const std::string& detail);                                // 404

constexpr size_t kMaxNameBytes = 255;
constexpr size_t kMaxLabels = 64;
constexpr size_t kMaxLabelKeyBytes = 128;
constexpr size_t kMaxLabelValueBytes = 1024;
constexpr int kMaxJsonDepth = 32;

// Parses a request body: 400 for malformed JSON, invalid UTF-8, nesting deeper than kMaxJsonDepth or a non-object.
json parse_body(const std::string& body);

bool is_uuid(std::string_view s);  // lower-case canonical 8-4-4-4-12
std::string new_uuid();             // random (v4), lower-case

// Field readers: `obj` is a JSON object, `path` the field's name as reported ("backend.ifname", "rules[2].cidr").
std::string need_string(const json& v, const std::string& path, size_t max_bytes);
int64_t need_int(const json& v, const std::string& path, int64_t min, int64_t max);
bool need_bool(const json& v, const std::string& path);
std::string need_uuid(const json& v, const std::string& path);
Ipv4Prefix need_cidr(const json& v, const std::string& path);       // canonical: host bits zero
Ipv4Prefix need_host_cidr(const json& v, const std::string& path);  // "192.0.2.10/24": an address with its prefix
Ipv4Addr need_ipv4(const json& v, const std::string& path);         // dotted quad
Ipv4Addr need_unicast_ipv4(const json& v, const std::string& path); // not 0/8, loopback, multicast, broadcast
MacAddr need_unicast_mac(const json& v, const std::string& path);
std::string need_ifname(const json& v, const std::string& path);    // 1..15 bytes of [A-Za-z0-9_.-], not "." / ".."
std::string need_netns_name(const json& v, const std::string& path);
std::string need_enum(const json& v, const std::string& path, std::initializer_list<std::string_view> allowed);

// Checks that `obj` is an object and has no members outside `allowed` (400 naming the first unknown one).
void only_fields(const json& obj, const std::string& path, std::initializer_list<std::string_view> allowed);
const json* member(const json& obj, std::string_view name);  // nullptr when absent or null

json check_name(const json& v);    // name: string <= 255 bytes
json check_labels(const json& v);  // labels: string -> string map, bounded

// Looks up a user / group by name or decimal id; nullopt when it does not exist.
std::optional<uid_t> lookup_user(const std::string& name);
std::optional<gid_t> lookup_group(const std::string& name);

// Locally administered unicast MAC derived from `seed` (02:xx:xx:xx:xx:xx).
MacAddr derived_mac(std::string_view seed, uint32_t attempt);

}  // namespace vpcd::api
