// vpcctl's human-readable output: a list response as an aligned table with columns chosen per kind, one object as
// "key: value" lines (nested values as compact JSON).
//
// Threading: pure functions.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace vpcctl {

std::string render_list(const std::string& kind, const nlohmann::json& list);
std::string render_object(const nlohmann::json& obj);

}  // namespace vpcctl
