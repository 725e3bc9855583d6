// See table.h.
//
// Threading: pure functions.
#include "server/cli/table.h"

#include <map>
#include <vector>

namespace vpcctl {
namespace {

using nlohmann::json;

const std::map<std::string, std::vector<std::string>> kColumns = {
    {"vpcs", {"id", "name", "vni", "cidrs", "mtu"}},
    {"subnets", {"id", "name", "vpc_id", "cidr", "gateway"}},
    {"nics", {"id", "name", "subnet_id", "mac", "ips", "backend.type", "state"}},
    {"security-groups", {"id", "name", "vpc_id", "rules"}},
    {"uplinks", {"id", "name", "ifname", "address", "role"}},
    {"vtep-peers", {"id", "vpc_id", "underlay_ip"}},
    {"remote-nics", {"id", "vpc_id", "mac", "ips", "underlay_ip"}},
    {"routes", {"id", "vpc_id", "destination", "next_hop"}},
    {"nat-gateways", {"id", "vpc_id", "uplink_id", "external_ip"}},
    {"floating-ips", {"id", "uplink_id", "external_ip", "nic_id"}},
    {"events", {"time", "method", "kind", "object_id", "status"}},
};

// A cell: strings bare, lists of scalars comma-joined, a list of objects as its length, the rest as JSON.
std::string cell(const json& v) {
  if (v.is_null()) return "-";
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array()) {
    std::string out;
    for (const auto& e : v) {
      if (e.is_object() || e.is_array()) return std::to_string(v.size()) + " item(s)";
      if (!out.empty()) out += ",";
      out += e.is_string() ? e.get<std::string>() : e.dump();
    }
    return out.empty() ? "-" : out;
  }
  return v.dump();
}

const json* lookup(const json& obj, const std::string& dotted) {
  const json* at = &obj;
  size_t start = 0;
  while (true) {
    const auto dot = dotted.find('.', start);
    const std::string key = dotted.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!at->is_object() || !at->contains(key)) return nullptr;
    at = &(*at)[key];
    if (dot == std::string::npos) return at;
    start = dot + 1;
  }
}

}  // namespace

std::string render_list(const std::string& kind, const json& list) {
  const json* items = list.is_object() && list.contains("items") ? &list["items"] : &list;
  if (!items->is_array()) return list.dump(2) + "\n";
  std::vector<std::string> cols;
  if (auto it = kColumns.find(kind); it != kColumns.end()) {
    cols = it->second;
  } else {
    cols = {"id", "name"};
  }
  std::vector<std::string> header;
  for (const auto& c : cols) {
    std::string h = c;
    for (auto& ch : h) ch = (ch == '.' || ch == '_') ? ' ' : char(std::toupper(static_cast<unsigned char>(ch)));
    header.push_back(h);
  }
  std::vector<std::vector<std::string>> rows{header};
  for (const auto& item : *items) {
    std::vector<std::string> row;
    for (const auto& c : cols) {
      const json* v = lookup(item, c);
      row.push_back(v ? cell(*v) : "-");
    }
    rows.push_back(std::move(row));
  }
  std::vector<size_t> width(cols.size(), 0);
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  std::string out;
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size(); ++i) {
      out += r[i];
      if (i + 1 < r.size()) out += std::string(width[i] - r[i].size() + 2, ' ');
    }
    out += "\n";
  }
  if (list.is_object() && list.contains("total") && list["total"].is_number()) {
    const size_t shown = items->size();
    const auto total = list["total"].get<uint64_t>();
    if (total > shown) out += "(" + std::to_string(shown) + " of " + std::to_string(total) + "; use --offset)\n";
  }
  return out;
}

std::string render_object(const json& obj) {
  if (!obj.is_object()) return obj.dump(2) + "\n";
  size_t w = 0;
  for (const auto& [k, v] : obj.items()) w = std::max(w, k.size());
  std::string out;
  for (const auto& [k, v] : obj.items()) {
    out += k + ":" + std::string(w - k.size() + 1, ' ');
    out += v.is_string() ? v.get<std::string>() : v.dump();
    out += "\n";
  }
  return out;
}

}  // namespace vpcctl
