// The generic resource engine behind every object kind of API.md: create (POST / PUT with a client id), replace
// (PUT), merge-patch (PATCH), get, list with pagination and parent filters, delete with dependents (409) and
// If-Match (412). A kind is data: a KindSpec names its table, writable fields, filters and dependents, and supplies
// normalize() (validate a body into canonical fields and column values) and side-table writers.
//
// Every row keeps the common columns and `spec` (canonical writable fields as JSON); normalize() also yields the real
// columns that carry the kind's foreign keys and UNIQUE constraints.
//
// Threading: every function runs inside the caller's transaction on one Db (the caller holds the store session).
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "datapath/capabilities.h"
#include "server/api/validate.h"
#include "server/store/db.h"

namespace vpcd::api {

using store::Db;
using store::Query;

using ColumnValue = std::variant<std::nullopt_t, int64_t, std::string>;

struct Normalized {
  json spec = json::object();                                // every writable field, canonical
  std::vector<std::pair<std::string, ColumnValue>> columns;  // the kind's real columns
};

// Another object that keeps this one from being deleted: `sql` selects their ids given ?1 = this object's id.
struct Dependent {
  std::string kind;
  std::string sql;
};

// One field of a kind: its name, the JSON Schema (2020-12, as OpenAPI 3.1 uses it) of its value as the server stores
// and returns it, and what it needs. The OpenAPI document (openapi.cc) is generated from these; normalize() is the
// validation that the schema describes (the API suite checks every object the server returns against the document).
struct FieldSpec {
  std::string name;
  json schema;                          // the value's schema; null is allowed only where the schema says so
  bool required = false;                // required on create (API.md's `*`)
  std::optional<dp::Capability> needs;  // a write that sets it to a non-empty value needs this capability (501)
  std::vector<std::string> needs_values;  // non-empty: `needs` applies only to these (string) values of the field
};

struct KindSpec {
  std::string kind;         // URL segment: "vpcs", "security-groups"
  std::string table;        // "vpcs", "security_groups"
  std::string singular;     // for messages: "VPC", "security group"
  std::string schema_name;  // OpenAPI component name: "Vpc", "SecurityGroup"
  std::string description;  // one line for the OpenAPI document
  std::optional<dp::Capability> needs;      // writes (POST/PUT/PATCH) need it (501 otherwise); reads and DELETE do not
  std::vector<FieldSpec> fields;            // writable fields besides name and labels
  std::vector<std::string> immutable;       // fields that cannot change once created (422)
  std::vector<FieldSpec> output_columns;    // read-only columns shown in the object (nics: vpc_id, state, ...)
  std::vector<std::string> filters;        // list filters (?vpc_id=): column names
  std::vector<Dependent> dependents;
  // Validates `in` (writable fields only; unknown fields already refused) for object `id`; `old` is the current spec
  // on replace/patch, nullptr on create. Throws ApiError.
  std::function<Normalized(Db&, const std::string& id, const json& in, const json* old)> normalize;
  // Rewrites the kind's side-table rows after its row was inserted/updated, and removes them before a delete.
  std::function<void(Db&, const std::string& id, const json& spec)> write_side;
  std::function<void(Db&, const std::string& id)> delete_side;
};

// Outcome of a write: the object, the HTTP status (200/201/204) and whether the store changed.
struct WriteResult {
  json object;
  int status = 200;
  bool changed = false;
};

// Which capabilities a write may use: the routes pass dp::carries (what the datapath carries out); unit tests of a
// kind's validation pass one that allows everything, so a kind is tested before the datapath carries it.
using CarriedFn = bool (*)(dp::Capability);

// `if_match`: the raw If-Match header (nullopt when absent). A field whose capability `carried` refuses is 501.
WriteResult create_object(Db& db, const KindSpec& k, const std::string& id, const json& body,
                          CarriedFn carried = dp::carries);
WriteResult put_object(Db& db, const KindSpec& k, const std::string& id, const json& body,
                       const std::optional<std::string>& if_match, CarriedFn carried = dp::carries);
WriteResult patch_object(Db& db, const KindSpec& k, const std::string& id, const json& patch,
                         const std::optional<std::string>& if_match, CarriedFn carried = dp::carries);
void delete_object(Db& db, const KindSpec& k, const std::string& id, const std::optional<std::string>& if_match);
std::optional<json> get_object(Db& db, const KindSpec& k, const std::string& id);
json list_objects(Db& db, const KindSpec& k, const std::map<std::string, std::string>& query);

// Parses ?limit=&offset= (limit 1..1000, default 100); throws ApiError 400.
std::pair<int64_t, int64_t> page_params(const std::map<std::string, std::string>& query);

// 501 problem+json when `k` needs a capability the datapath does not carry (every write but DELETE calls it).
void require_capability(const KindSpec& k);
// Throws the 501 ApiError for capability `c` (field: the JSON field that asked for it, "" for a whole kind).
[[noreturn]] void not_carried(dp::Capability c, const std::string& field);
// Field lookup by name; nullptr when `k` has no such writable field.
const FieldSpec* find_field(const std::vector<FieldSpec>& fields, std::string_view name);

// Shared look-ups for the kinds' normalize(): the spec of an existing object of `table`, or nullopt.
std::optional<json> load_spec(Db& db, const std::string& table, const std::string& id);
// A required reference in a body: 400 when not a UUID, 422 when the object does not exist. Returns its spec.
json need_ref(Db& db, const json& in, const std::string& field, const std::string& table, const std::string& what);

// Every kind of API.md, by URL segment.
const std::vector<KindSpec>& all_kinds();

}  // namespace vpcd::api
