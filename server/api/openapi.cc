// The OpenAPI 3.1 document of the API (GET /v1/openapi.json), generated from the route table (api_routes) and the
// kind tables (KindSpec / FieldSpec in kinds_*.cc): the schemas are the ones the server validates with, written once.
// Every kind gets two schemas: NAME (an object as the server returns it: every field present, nothing else) and
// NAMEInput (a POST/PUT body: API.md's required fields; read-only fields are accepted and ignored). Kinds and fields
// whose datapath capability is not carried are marked (x-vpcd-capability, a 501 response).
//
// Threading: pure; called once at start-up.
#include <cctype>
#include <map>
#include <stdexcept>

#include "server/api/api.h"
#include "server/api/kinds.h"
#include "server/api/schema.h"

namespace vpcd::api {

namespace {

using http::Role;

const char* role_name(Role r) { return r == Role::kAdmin ? "admin" : r == Role::kViewer ? "viewer" : "none"; }

json schema_ref(const std::string& name) { return {{"$ref", "#/components/schemas/" + name}}; }

json labels_schema() {
  return {{"type", "object"},
          {"maxProperties", kMaxLabels},
          {"propertyNames", {{"minLength", 1}, {"maxLength", kMaxLabelKeyBytes}}},
          {"additionalProperties", schema::string(kMaxLabelValueBytes)},
          {"description", "the portal's own keys"}};
}

// A field's schema with its capability said in words (and as x-vpcd-capability) when it needs one.
json field_schema(const FieldSpec& f) {
  json s = f.schema;
  if (f.needs) {
    const auto& info = dp::capability_info(*f.needs);
    s["x-vpcd-capability"] = std::string(info.name);
    std::string values = "a non-empty value";
    for (size_t i = 0; i < f.needs_values.size(); ++i)
      values = (i == 0 ? "the value " : values + " or ") + "\"" + f.needs_values[i] + "\"";
    std::string note = values + " needs capability " + std::string(info.name) +
                       (info.carried ? "" : " (not carried yet: 501)");
    s["description"] = s.contains("description") ? s["description"].get<std::string>() + "; " + note : note;
  }
  return s;
}

// The object as the server returns it.
json object_schema(const KindSpec& k) {
  json props = {{"id", schema::uuid()},
                {"name", schema::string(kMaxNameBytes)},
                {"labels", labels_schema()},
                {"revision", schema::integer(1, INT64_MAX)},
                {"created_at", {{"type", "string"}, {"format", "date-time"}}},
                {"updated_at", {{"type", "string"}, {"format", "date-time"}}}};
  json required = {"id", "name", "labels", "revision", "created_at", "updated_at"};
  for (const auto& f : k.fields) {
    props[f.name] = field_schema(f);
    required.push_back(f.name);
  }
  for (const auto& f : k.output_columns) {
    json s = f.schema;
    s["readOnly"] = true;
    props[f.name] = s;
    required.push_back(f.name);
  }
  for (const char* ro : {"id", "revision", "created_at", "updated_at"}) props[ro]["readOnly"] = true;
  return {{"type", "object"},
          {"description", k.description},
          {"properties", props},
          {"required", required},
          {"additionalProperties", false}};
}

// A POST/PUT body.
json input_schema(const KindSpec& k) {
  json props = {{"name", schema::string(kMaxNameBytes)}, {"labels", labels_schema()}};
  json required = json::array();
  for (const auto& f : k.fields) {
    props[f.name] = field_schema(f);
    if (f.required) required.push_back(f.name);
  }
  for (const char* ro : {"id", "revision", "created_at", "updated_at"})
    props[ro] = {{"readOnly", true}, {"description", "read-only: accepted and ignored (id must match the path)"}};
  for (const auto& f : k.output_columns) props[f.name] = {{"readOnly", true}, {"description", "read-only: ignored"}};
  json s = {{"type", "object"},
            {"description", k.description + " (request body)"},
            {"properties", props},
            {"additionalProperties", false}};
  if (!required.empty()) s["required"] = required;
  return s;
}

json list_schema(const KindSpec& k) {
  return {{"type", "object"},
          {"properties",
           {{"items", {{"type", "array"}, {"items", schema_ref(k.schema_name)}}},
            {"total", schema::integer(0, INT64_MAX)},
            {"limit", schema::integer(1, 1000)},
            {"offset", schema::integer(0, INT64_MAX)}}},
          {"required", {"items", "total", "limit", "offset"}},
          {"additionalProperties", false}};
}

json problem_schema() {
  return {{"type", "object"},
          {"description", "RFC 9457 problem details"},
          {"properties",
           {{"type", {{"type", "string"}}},
            {"title", {{"type", "string"}}},
            {"status", schema::integer(100, 599)},
            {"detail", {{"type", "string"}}},
            {"field", {{"type", "string"}, {"description", "the offending JSON field or query parameter"}}},
            {"capability",
             {{"type", "string"}, {"description", "501: the datapath capability that is missing (GET /v1/whoami)"}}}}},
          {"required", {"type", "title", "status"}}};
}

json problem_response(const std::string& description) {
  return {{"description", description},
          {"content", {{"application/problem+json", {{"schema", schema_ref("Problem")}}}}}};
}

json json_response(const std::string& description, const json& schema, const std::string& content_type) {
  json r = {{"description", description}};
  if (!schema.is_null()) r["content"] = {{content_type, {{"schema", schema}}}};
  return r;
}

const std::map<int, std::string> kStatusText = {
    {400, "malformed JSON, a bad value or an unknown field or query parameter (field names it)"},
    {401, "no token or an unknown token"},
    {403, "a viewer token on a write"},
    {404, "no object with this id"},
    {409, "a conflict with other objects (a value in use, dependents on delete)"},
    {412, "If-Match does not hold the object's revision"},
    {413, "body too large"},
    {415, "the body is not JSON"},
    {422, "valid JSON that cannot be carried out (a referenced object is missing, an immutable field changed)"},
    {429, "too many requests"},
};

void add_problems(json& responses, std::initializer_list<int> statuses) {
  for (int st : statuses) responses[std::to_string(st)] = problem_response(kStatusText.at(st));
  responses["default"] = problem_response("any other error (problem+json)");
}

json id_parameter(const std::string& what) {
  return {{"name", "id"},
          {"in", "path"},
          {"required", true},
          {"description", "the " + what + "'s id (a lower-case UUID; anything else is 404)"},
          {"schema", {{"type", "string"}}}};
}

json query_parameter(const std::string& name, const std::string& description, json schema) {
  return {{"name", name}, {"in", "query"}, {"required", false}, {"description", description}, {"schema", schema}};
}

json if_match_parameter() {
  return {{"name", "If-Match"},
          {"in", "header"},
          {"required", false},
          {"description", "the revision the change is based on (\"N\"); 412 when the object's differs"},
          {"schema", {{"type", "string"}}}};
}

json etag_header() {
  return {{"ETag", {{"description", "the object's revision, quoted"}, {"schema", {{"type", "string"}}}}}};
}

// One operation of a resource route.
json kind_operation(const KindSpec& k, const std::string& op, Role role) {
  json o;
  const std::string& S = k.schema_name;
  o["tags"] = json::array({k.kind});
  json responses = json::object();
  bool is_write = op == "create" || op == "put" || op == "patch";
  if (op == "list") {
    o["operationId"] = "list" + S + "s";
    o["summary"] = "List " + k.singular + "s (ordered by created_at, id)";
    json params = {query_parameter("limit", "page size", schema::integer(1, 1000)),
                   query_parameter("offset", "items to skip", schema::integer(0, INT64_MAX))};
    for (const auto& f : k.filters) params.push_back(query_parameter(f, "only those with this " + f, schema::uuid()));
    o["parameters"] = params;
    responses["200"] = json_response("one page", schema_ref(S + "List"), "application/json");
    add_problems(responses, {400, 401, 429});
  } else if (op == "get") {
    o["operationId"] = "get" + S;
    o["summary"] = "Get a " + k.singular;
    o["parameters"] = json::array({id_parameter(k.singular)});
    responses["200"] = json_response("the object", schema_ref(S), "application/json");
    responses["200"]["headers"] = etag_header();
    add_problems(responses, {401, 404, 429});
  } else if (op == "create") {
    o["operationId"] = "create" + S;
    o["summary"] = "Create a " + k.singular + " (the server chooses the id)";
    o["requestBody"] = {{"required", true}, {"content", {{"application/json", {{"schema", schema_ref(S + "Input")}}}}}};
    responses["201"] = json_response("created", schema_ref(S), "application/json");
    responses["201"]["headers"] = etag_header();
    responses["201"]["headers"]["Location"] = {{"description", "/v1/KIND/ID"}, {"schema", {{"type", "string"}}}};
    add_problems(responses, {400, 401, 403, 409, 413, 415, 422, 429});
  } else if (op == "put") {
    o["operationId"] = "put" + S;
    o["summary"] = "Create a " + k.singular + " with this id, or replace its writable fields (idempotent)";
    o["parameters"] = json::array({id_parameter(k.singular), if_match_parameter()});
    o["requestBody"] = {{"required", true}, {"content", {{"application/json", {{"schema", schema_ref(S + "Input")}}}}}};
    responses["200"] = json_response("replaced (or unchanged: an identical retry)", schema_ref(S), "application/json");
    responses["200"]["headers"] = etag_header();
    responses["201"] = json_response("created", schema_ref(S), "application/json");
    responses["201"]["headers"] = etag_header();
    add_problems(responses, {400, 401, 403, 409, 412, 413, 415, 422, 429});
  } else if (op == "patch") {
    o["operationId"] = "patch" + S;
    o["summary"] = "Change some fields of a " + k.singular + " (RFC 7396 merge patch)";
    o["parameters"] = json::array({id_parameter(k.singular), if_match_parameter()});
    json patch = {{"type", "object"}, {"description", "merge patch over " + S + "Input (null removes a label)"}};
    o["requestBody"] = {{"required", true},
                        {"content", {{"application/merge-patch+json", {{"schema", patch}}},
                                     {"application/json", {{"schema", patch}}}}}};
    responses["200"] = json_response("the object after the change", schema_ref(S), "application/json");
    responses["200"]["headers"] = etag_header();
    add_problems(responses, {400, 401, 403, 404, 409, 412, 413, 415, 422, 429});
  } else {  // delete
    o["operationId"] = "delete" + S;
    o["summary"] = "Delete a " + k.singular;
    o["parameters"] = json::array({id_parameter(k.singular), if_match_parameter()});
    responses["204"] = {{"description", "deleted"}};
    add_problems(responses, {401, 403, 404, 409, 412, 429});
  }
  if (k.needs) {
    const auto& info = dp::capability_info(*k.needs);
    o["x-vpcd-capability"] = std::string(info.name);
    if (is_write && !info.carried) {
      o["description"] = "The datapath does not carry out " + std::string(info.what) +
                         " yet: this write answers 501 (capability " + std::string(info.name) + ").";
    }
  }
  if (is_write) {
    bool any_501 = k.needs && !dp::carries(*k.needs);
    for (const auto& f : k.fields) any_501 = any_501 || (f.needs && !dp::carries(*f.needs));
    if (any_501 || k.kind == "nics")  // nics: a backend type may need a capability too
      responses["501"] = problem_response("the datapath does not carry out what the body asks for yet (capability "
                                          "names it)");
  }
  o["responses"] = responses;
  o["x-vpcd-role"] = role_name(role);
  return o;
}

std::string lower(std::string s) {
  for (auto& c : s) c = char(std::tolower(uint8_t(c)));
  return s;
}

// operationId for a route without one: "get_v1_nics_id_capture".
std::string derived_operation_id(const RouteDef& r) {
  std::string id = lower(r.method);
  for (char c : r.pattern) {
    if (std::isalnum(uint8_t(c))) id += c;
    else if (c == '/' || c == '-' || c == '.') id += '_';
  }
  return id;
}

json other_operation(const RouteDef& r) {
  json o;
  const RouteDoc& d = r.doc;
  o["operationId"] = d.operation_id.empty() ? derived_operation_id(r) : d.operation_id;
  o["summary"] = d.summary.empty() ? r.method + " " + r.pattern : d.summary;
  o["tags"] = json::array({"box"});
  json params = json::array();
  for (size_t open = r.pattern.find('{'); open != std::string::npos; open = r.pattern.find('{', open + 1)) {
    const std::string name = r.pattern.substr(open + 1, r.pattern.find('}', open) - open - 1);
    json p = id_parameter("object");
    p["name"] = name;
    params.push_back(p);
  }
  for (const auto& [name, desc] : d.query) params.push_back(query_parameter(name, desc, {{"type", "string"}}));
  if (!params.empty()) o["parameters"] = params;
  json responses;
  responses["200"] = json_response("OK", d.response_schema, d.content_type);
  if (r.min_role == Role::kNone) {
    add_problems(responses, {429});
  } else {
    add_problems(responses, {401, 429});
    if (r.min_role == Role::kAdmin) responses["403"] = problem_response(kStatusText.at(403));
  }
  o["responses"] = responses;
  o["x-vpcd-role"] = role_name(r.min_role);
  return o;
}

}  // namespace

json capabilities_json() {
  json c = json::object();
  for (const auto& info : dp::kCapabilities) c[std::string(info.name)] = info.carried;
  return c;
}

json openapi_document(const std::vector<RouteDef>& routes, const std::string& version) {
  json doc;
  doc["openapi"] = "3.1.0";
  doc["info"] = {{"title", "vpcd REST API"},
                 {"version", version},
                 {"summary", "VPCs, subnets, NICs and the rest of a vpcd gateway box"},
                 {"description",
                  "Generated by vpcd from the tables it validates with (server/api/kinds_*.cc). The contract with "
                  "portals is shared/API.md; server/api/README.md says how this server reads it. Writes of what the "
                  "datapath does not carry out yet answer 501 (see GET /v1/whoami capabilities)."},
                 {"license", {{"name", "Apache-2.0"}, {"identifier", "Apache-2.0"}}}};
  json server = {{"url", "https://{host}:{port}"},
                 {"description", "a vpcd box (default port 8443)"},
                 {"variables", {{"host", {{"default", "localhost"}}}, {"port", {{"default", "8443"}}}}}};
  doc["servers"] = json::array({server});
  json bearer = json::object();
  bearer["bearer"] = json::array();
  doc["security"] = json::array({bearer});
  json schemas;
  schemas["Problem"] = problem_schema();
  json tags = json::array();
  tags.push_back({{"name", "box"}, {"description", "Health, identity, counters, audit log and this document"}});
  for (const auto& k : all_kinds()) {
    schemas[k.schema_name] = object_schema(k);
    schemas[k.schema_name + "Input"] = input_schema(k);
    schemas[k.schema_name + "List"] = list_schema(k);
    tags.push_back({{"name", k.kind}, {"description", k.description}});
  }
  doc["tags"] = tags;
  json bearer_scheme = {{"type", "http"},
                        {"scheme", "bearer"},
                        {"description", "a token from `vpcd token create --role admin|viewer`; viewers may only GET"}};
  doc["components"]["schemas"] = schemas;
  doc["components"]["securitySchemes"]["bearer"] = bearer_scheme;
  json paths = json::object();
  for (const auto& r : routes) {
    json op;
    if (!r.doc.kind.empty()) {
      const KindSpec* k = nullptr;
      for (const auto& kk : all_kinds())
        if (kk.kind == r.doc.kind) k = &kk;
      if (!k) throw std::logic_error("route " + r.pattern + " names unknown kind " + r.doc.kind);
      op = kind_operation(*k, r.doc.op, r.min_role);
    } else {
      op = other_operation(r);
    }
    if (r.min_role == Role::kNone) op["security"] = json::array();
    paths[r.pattern][lower(r.method)] = op;
  }
  doc["paths"] = paths;
  return doc;
}

}  // namespace vpcd::api
