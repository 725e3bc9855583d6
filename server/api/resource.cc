// The generic resource engine; see resource.h.
#include "server/api/resource.h"

#include <algorithm>
#include <charconv>

#include "server/store/store.h"

namespace vpcd::api {

namespace {

constexpr std::string_view kCommonReadOnly[] = {"id", "revision", "created_at", "updated_at"};

struct Row {
  std::string name;
  json labels;
  int64_t revision = 0;
  std::string created_at, updated_at;
  json spec;
  std::vector<std::pair<std::string, std::string>> extra;  // output_columns
};

std::string select_columns(const KindSpec& k) {
  std::string cols = "id, name, labels, revision, created_at, updated_at, spec";
  for (const auto& c : k.output_columns) cols += ", " + c.name;
  return cols;
}

Row read_row(const KindSpec& k, Query& q) {
  Row r;
  r.name = q.text(1);
  r.labels = json::parse(q.text(2));
  r.revision = q.int64(3);
  r.created_at = q.text(4);
  r.updated_at = q.text(5);
  r.spec = json::parse(q.text(6));
  for (size_t i = 0; i < k.output_columns.size(); ++i)
    r.extra.emplace_back(k.output_columns[i].name, q.text(int(7 + i)));
  return r;
}

json to_object(const std::string& id, const Row& r) {
  json out = r.spec;
  out["id"] = id;
  out["name"] = r.name;
  out["labels"] = r.labels;
  out["revision"] = r.revision;
  out["created_at"] = r.created_at;
  out["updated_at"] = r.updated_at;
  for (const auto& [col, val] : r.extra) out[col] = val;
  return out;
}

std::optional<Row> load_row(Db& db, const KindSpec& k, const std::string& id) {
  Query q(db, "SELECT " + select_columns(k) + " FROM " + k.table + " WHERE id = ?", id);
  if (!q.next()) return std::nullopt;
  return read_row(k, q);
}

bool contains(const std::vector<std::string>& v, std::string_view s) {
  for (const auto& x : v)
    if (x == s) return true;
  return false;
}

bool contains(const std::vector<FieldSpec>& v, std::string_view s) { return find_field(v, s) != nullptr; }

bool is_empty_value(const json& v) { return v.is_null() || ((v.is_array() || v.is_object()) && v.empty()); }

// 501 for a field whose capability is not carried, when the write would set it to something non-empty that is not
// already stored (`old`: the stored spec, nullptr on create).
void check_field_capabilities(const KindSpec& k, const json& fields, const json* old, CarriedFn carried) {
  for (const auto& f : k.fields) {
    if (!f.needs || carried(*f.needs)) continue;
    auto it = fields.find(f.name);
    if (it == fields.end() || is_empty_value(*it)) continue;
    if (!f.needs_values.empty() && !(it->is_string() && contains(f.needs_values, it->get<std::string>()))) continue;
    if (old && old->contains(f.name) && (*old)[f.name] == *it) continue;
    not_carried(*f.needs, f.name);
  }
}

// Splits a request body into name, labels and the kind's writable fields. Read-only fields are accepted and ignored
// (so a client may send back what it read), except an `id` that contradicts the path.
struct Split {
  json name = "";
  json labels = json::object();
  json fields = json::object();
};

Split split_body(const KindSpec& k, const std::string& id, const json& body) {
  Split s;
  for (const auto& [key, val] : body.items()) {
    if (key == "name") {
      if (!val.is_null()) s.name = check_name(val);
    } else if (key == "labels") {
      if (!val.is_null()) s.labels = check_labels(val);
    } else if (contains(k.fields, key)) {
      if (!val.is_null()) s.fields[key] = val;
    } else if (key == "id") {
      if (!val.is_string() || val.get_ref<const std::string&>() != id)
        bad_request("id", "id in the body does not match the id in the path");
    } else if (std::find(std::begin(kCommonReadOnly), std::end(kCommonReadOnly), key) !=
                   std::end(kCommonReadOnly) ||
               contains(k.output_columns, key)) {
      // read-only: ignored
    } else {
      bad_request(key, "unknown field \"" + key.substr(0, 300) + "\"");
    }
  }
  return s;
}

void check_if_match(const std::optional<std::string>& if_match, int64_t revision) {
  if (!if_match) return;
  std::string_view v = *if_match;
  bool any_valid = false;
  while (!v.empty()) {
    size_t comma = v.find(',');
    std::string_view tag = v.substr(0, comma);
    v = comma == std::string_view::npos ? std::string_view{} : v.substr(comma + 1);
    while (!tag.empty() && tag.front() == ' ') tag.remove_prefix(1);
    while (!tag.empty() && tag.back() == ' ') tag.remove_suffix(1);
    if (tag == "*") return;
    if (tag.starts_with("W/")) tag.remove_prefix(2);
    if (tag.size() >= 2 && tag.front() == '"' && tag.back() == '"') tag = tag.substr(1, tag.size() - 2);
    int64_t rev = 0;
    auto [p, ec] = std::from_chars(tag.data(), tag.data() + tag.size(), rev);
    if (ec != std::errc() || p != tag.data() + tag.size() || tag.empty()) continue;
    any_valid = true;
    if (rev == revision) return;
  }
  if (!any_valid) bad_request("If-Match", "If-Match must hold a revision such as \"3\"");
  throw ApiError(412, "Precondition Failed",
                 "the object's revision is " + std::to_string(revision) + ", not the one in If-Match");
}

void bind_value(Query& q, int idx, const ColumnValue& v) {
  std::visit([&](const auto& x) { q.bind(idx, x); }, v);
}

void check_immutable(const KindSpec& k, const json& in, const json& old) {
  for (const auto& f : k.immutable) {
    auto it = in.find(f);
    if (it != in.end() && old.contains(f) && *it != old[f])
      unprocessable(f, f + " cannot be changed once the " + k.singular + " exists; delete and recreate it");
  }
}

void insert_row(Db& db, const KindSpec& k, const std::string& id, const Split& s, const Normalized& n) {
  std::string cols = "id, name, labels, revision, created_at, updated_at, spec";
  std::string marks = "?, ?, ?, 1, ?, ?, ?";
  for (const auto& [col, val] : n.columns) {
    cols += ", " + col;
    marks += ", ?";
  }
  std::string now = store::now_rfc3339();
  Query q(db, "INSERT INTO " + k.table + " (" + cols + ") VALUES (" + marks + ")", id, s.name.get<std::string>(),
          s.labels.dump(), now, now, n.spec.dump());
  int idx = 6;
  for (const auto& [col, val] : n.columns) bind_value(q, ++idx, val);
  q.run();
  if (k.write_side) k.write_side(db, id, n.spec);
}

void update_row(Db& db, const KindSpec& k, const std::string& id, const Split& s, const Normalized& n,
                int64_t revision) {
  std::string sets = "name = ?, labels = ?, revision = ?, updated_at = ?, spec = ?";
  for (const auto& [col, val] : n.columns) sets += ", " + col + " = ?";
  Query q(db, "UPDATE " + k.table + " SET " + sets + " WHERE id = ?", s.name.get<std::string>(), s.labels.dump(),
          revision, store::now_rfc3339(), n.spec.dump());
  int idx = 5;
  for (const auto& [col, val] : n.columns) bind_value(q, ++idx, val);
  q.bind(++idx, id);
  q.run();
  if (k.write_side) k.write_side(db, id, n.spec);
}

// Replaces the writable fields of an existing object; no change (and no revision bump) when they come out identical.
WriteResult replace(Db& db, const KindSpec& k, const std::string& id, const Row& old, const Split& s,
                    CarriedFn carried) {
  check_immutable(k, s.fields, old.spec);
  check_field_capabilities(k, s.fields, &old.spec, carried);
  Normalized n = k.normalize(db, id, s.fields, &old.spec);
  WriteResult res;
  if (n.spec == old.spec && s.name == old.name && s.labels == old.labels) {
    res.object = to_object(id, old);
    return res;
  }
  update_row(db, k, id, s, n, old.revision + 1);
  res.object = to_object(id, *load_row(db, k, id));
  res.changed = true;
  return res;
}

}  // namespace

const FieldSpec* find_field(const std::vector<FieldSpec>& fields, std::string_view name) {
  for (const auto& f : fields)
    if (f.name == name) return &f;
  return nullptr;
}

void not_carried(dp::Capability c, const std::string& field) {
  const auto& info = dp::capability_info(c);
  ApiError e(501, "Not Implemented",
             "the datapath does not carry out " + std::string(info.what) + " yet (capability \"" +
                 std::string(info.name) + "\"): the box refuses what it would ignore; GET /v1/whoami lists " +
                 "what it carries",
             field);
  e.capability = std::string(info.name);
  throw e;
}

void require_capability(const KindSpec& k) {
  if (k.needs && !dp::carries(*k.needs)) not_carried(*k.needs, "");
}

std::optional<json> load_spec(Db& db, const std::string& table, const std::string& id) {
  Query q(db, "SELECT spec FROM " + table + " WHERE id = ?", id);
  if (!q.next()) return std::nullopt;
  return json::parse(q.text(0));
}

json need_ref(Db& db, const json& in, const std::string& field, const std::string& table, const std::string& what) {
  const json* v = member(in, field);
  if (!v) bad_request(field, field + " is required");
  std::string ref = need_uuid(*v, field);
  auto spec = load_spec(db, table, ref);
  if (!spec) unprocessable(field, what + " " + ref + " does not exist");
  return *spec;
}

WriteResult create_object(Db& db, const KindSpec& k, const std::string& id, const json& body, CarriedFn carried) {
  // Ids are unique across kinds: side tables (vpc_macs, uplink_ips) key their rows by the owner's id alone, so a NAT
  // gateway and a floating IP (or a NIC and a remote NIC) sharing one client-chosen id would pass each other's
  // uniqueness checks and overwrite each other's rows.
  for (const auto& other : all_kinds()) {
    if (other.table == k.table) continue;
    Query q(db, "SELECT 1 FROM " + other.table + " WHERE id = ?", id);
    if (q.next())
      conflict("id", "id " + id + " is already the id of " + other.singular + " " + id + "; ids are unique across kinds");
  }
  Split s = split_body(k, id, body);
  check_field_capabilities(k, s.fields, nullptr, carried);
  Normalized n = k.normalize(db, id, s.fields, nullptr);
  insert_row(db, k, id, s, n);
  WriteResult res;
  res.object = to_object(id, *load_row(db, k, id));
  res.status = 201;
  res.changed = true;
  return res;
}

WriteResult put_object(Db& db, const KindSpec& k, const std::string& id, const json& body,
                       const std::optional<std::string>& if_match, CarriedFn carried) {
  auto old = load_row(db, k, id);
  if (!old) {
    if (if_match) throw ApiError(412, "Precondition Failed", k.singular + " " + id + " does not exist");
    return create_object(db, k, id, body, carried);
  }
  check_if_match(if_match, old->revision);
  return replace(db, k, id, *old, split_body(k, id, body), carried);
}

WriteResult patch_object(Db& db, const KindSpec& k, const std::string& id, const json& patch,
                         const std::optional<std::string>& if_match, CarriedFn carried) {
  auto old = load_row(db, k, id);
  if (!old) not_found(k.singular + " " + id + " does not exist");
  check_if_match(if_match, old->revision);
  json current = old->spec;
  current["name"] = old->name;
  current["labels"] = old->labels;
  // The patch's own members are checked for being known; their values are validated after merging (a null inside
  // labels removes that label, RFC 7396).
  json writable = json::object();
  for (const auto& [key, val] : patch.items()) {
    if (key == "name" || key == "labels" || contains(k.fields, key)) {
      writable[key] = val;
    } else if (key == "id") {
      if (!val.is_string() || val.get_ref<const std::string&>() != id)
        bad_request("id", "id in the body does not match the id in the path");
    } else if (std::find(std::begin(kCommonReadOnly), std::end(kCommonReadOnly), key) == std::end(kCommonReadOnly) &&
               !contains(k.output_columns, key)) {
      bad_request(key, "unknown field \"" + key.substr(0, 300) + "\"");
    }
  }
  current.merge_patch(writable);
  return replace(db, k, id, *old, split_body(k, id, current), carried);
}

void delete_object(Db& db, const KindSpec& k, const std::string& id, const std::optional<std::string>& if_match) {
  auto old = load_row(db, k, id);
  if (!old) not_found(k.singular + " " + id + " does not exist");
  check_if_match(if_match, old->revision);
  std::string users;
  for (const auto& d : k.dependents) {
    Query q(db, d.sql, id);
    std::string ids;
    while (q.next()) ids += (ids.empty() ? "" : ", ") + q.text(0);
    if (!ids.empty()) users += (users.empty() ? "" : "; ") + d.kind + " " + ids;
  }
  if (!users.empty()) conflict("", k.singular + " " + id + " is still used by " + users);
  if (k.delete_side) k.delete_side(db, id);
  Query q(db, "DELETE FROM " + k.table + " WHERE id = ?", id);
  q.run();
}

std::optional<json> get_object(Db& db, const KindSpec& k, const std::string& id) {
  auto row = load_row(db, k, id);
  if (!row) return std::nullopt;
  return to_object(id, *row);
}

std::pair<int64_t, int64_t> page_params(const std::map<std::string, std::string>& query) {
  auto num = [&](const char* name, int64_t def, int64_t min, int64_t max) {
    auto it = query.find(name);
    if (it == query.end()) return def;
    const std::string& s = it->second;
    int64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || p != s.data() + s.size() || v < min || v > max)
      bad_request(name, std::string(name) + " must be an integer in " + std::to_string(min) + ".." +
                            std::to_string(max));
    return v;
  };
  return {num("limit", 100, 1, 1000), num("offset", 0, 0, int64_t(1) << 40)};
}

json list_objects(Db& db, const KindSpec& k, const std::map<std::string, std::string>& query) {
  auto [limit, offset] = page_params(query);
  std::string where;
  std::vector<std::string> args;
  for (const auto& [key, val] : query) {
    if (key == "limit" || key == "offset") continue;
    if (!contains(k.filters, key)) {
      std::string allowed = "limit, offset";
      for (const auto& f : k.filters) allowed += ", " + f;
      bad_request(key, "unknown query parameter \"" + key.substr(0, 100) + "\" (allowed: " + allowed + ")");
    }
    if (!is_uuid(val)) bad_request(key, key + " must be a lower-case UUID");
    where += (where.empty() ? " WHERE " : " AND ") + key + " = ?";
    args.push_back(val);
  }
  json out;
  {
    Query q(db, "SELECT count(*) FROM " + k.table + where);
    for (size_t i = 0; i < args.size(); ++i) q.bind(int(i + 1), args[i]);
    q.next();
    out["total"] = q.int64(0);
  }
  json items = json::array();
  {
    Query q(db, "SELECT " + select_columns(k) + " FROM " + k.table + where +
                    " ORDER BY created_at, id LIMIT ? OFFSET ?");
    int idx = 0;
    for (const auto& a : args) q.bind(++idx, a);
    q.bind(++idx, limit);
    q.bind(++idx, offset);
    while (q.next()) items.push_back(to_object(q.text(0), read_row(k, q)));
  }
  out["items"] = std::move(items);
  out["limit"] = limit;
  out["offset"] = offset;
  return out;
}

}  // namespace vpcd::api
