// JSON Schema (2020-12, the dialect of OpenAPI 3.1) fragments for the kind tables' FieldSpecs: each describes a value
// the way validate.h's need_* functions check it, so the OpenAPI document and the validation come from one table.
//
// Threading: pure functions.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>

#include "server/api/validate.h"

namespace vpcd::api::schema {

inline json with_description(json s, std::string_view d) {
  s["description"] = std::string(d);
  return s;
}

inline json string(size_t max_bytes) { return {{"type", "string"}, {"maxLength", max_bytes}}; }

inline json uuid() {
  return {{"type", "string"}, {"format", "uuid"},
          {"pattern", "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"}};
}

// need_ipv4: dotted quad.
inline json ipv4() { return {{"type", "string"}, {"format", "ipv4"}}; }

// need_cidr / need_host_cidr: "A.B.C.D/LEN" (need_cidr also wants the host bits zero, which a schema cannot say).
inline json cidr() {
  return {{"type", "string"},
          {"pattern", "^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}"
                      "/([0-9]|[12][0-9]|3[0-2])$"}};
}

// need_unicast_mac: six colon-separated hex octets (the server answers in lower case).
inline json mac() { return {{"type", "string"}, {"pattern", "^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$"}}; }

// need_ifname: 1..15 bytes of [A-Za-z0-9_.-].
inline json ifname() { return {{"type", "string"}, {"pattern", "^[A-Za-z0-9_.-]{1,15}$"}}; }
// need_netns_name: 1..64 bytes of [A-Za-z0-9_.-].
inline json netns_name() { return {{"type", "string"}, {"pattern", "^[A-Za-z0-9_.-]{1,64}$"}}; }

inline json integer(int64_t min, int64_t max) { return {{"type", "integer"}, {"minimum", min}, {"maximum", max}}; }
inline json boolean() { return {{"type", "boolean"}}; }

inline json enumeration(std::initializer_list<std::string_view> values) {
  json e = json::array();
  for (auto v : values) e.push_back(std::string(v));
  return {{"type", "string"}, {"enum", e}};
}

inline json array(json items, size_t min_items, size_t max_items, bool unique = false) {
  json a = {{"type", "array"}, {"items", std::move(items)}, {"minItems", min_items}, {"maxItems", max_items}};
  if (unique) a["uniqueItems"] = true;
  return a;
}

// The value may also be null (stored and returned as null when absent, e.g. an uplink without a gateway).
inline json nullable(json s) {
  json t = s["type"];
  s["type"] = json::array({t, "null"});
  if (s.contains("enum")) s["enum"].push_back(nullptr);
  return s;
}

inline json object(json properties, std::initializer_list<std::string_view> required, bool closed = true) {
  json o = {{"type", "object"}, {"properties", std::move(properties)}};
  if (required.size()) {
    o["required"] = json::array();
    for (auto r : required) o["required"].push_back(std::string(r));
  }
  if (closed) o["additionalProperties"] = false;
  return o;
}

}  // namespace vpcd::api::schema
