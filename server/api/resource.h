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

struct KindSpec {
  std::string kind;      // URL segment: "vpcs", "security-groups"
  std::string table;     // "vpcs", "security_groups"
  std::string singular;  // for messages: "VPC", "security group"
  std::vector<std::string> fields;         // writable fields besides name and labels
  std::vector<std::string> immutable;      // fields that cannot change once created (422)
  std::vector<std::string> output_columns; // read-only columns shown in the object (nics: vpc_id, state, ...)
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

// `if_match`: the raw If-Match header (nullopt when absent).
WriteResult create_object(Db& db, const KindSpec& k, const std::string& id, const json& body);
WriteResult put_object(Db& db, const KindSpec& k, const std::string& id, const json& body,
                       const std::optional<std::string>& if_match);
WriteResult patch_object(Db& db, const KindSpec& k, const std::string& id, const json& patch,
                         const std::optional<std::string>& if_match);
void delete_object(Db& db, const KindSpec& k, const std::string& id, const std::optional<std::string>& if_match);
std::optional<json> get_object(Db& db, const KindSpec& k, const std::string& id);
json list_objects(Db& db, const KindSpec& k, const std::map<std::string, std::string>& query);

// Parses ?limit=&offset= (limit 1..1000, default 100); throws ApiError 400.
std::pair<int64_t, int64_t> page_params(const std::map<std::string, std::string>& query);

// Shared look-ups for the kinds' normalize(): the spec of an existing object of `table`, or nullopt.
std::optional<json> load_spec(Db& db, const std::string& table, const std::string& id);
// A required reference in a body: 400 when not a UUID, 422 when the object does not exist. Returns its spec.
json need_ref(Db& db, const json& in, const std::string& field, const std::string& table, const std::string& what);

// Every kind of API.md, by URL segment.
const std::vector<KindSpec>& all_kinds();

}  // namespace vpcd::api
