// Validation helper tests: table-driven accept/refuse cases, and that refusals name the field and pick the status.
#include <gtest/gtest.h>

#include "server/api/validate.h"

namespace vpcd::api {
namespace {

template <class F>
ApiError error_of(F&& f) {
  try {
    f();
  } catch (const ApiError& e) {
    return e;
  }
  ADD_FAILURE() << "no ApiError thrown";
  return ApiError(0, "", "");
}

TEST(Validation, Uuid) {
  EXPECT_TRUE(is_uuid("0f8fad5b-d9cb-469f-a165-70867728950e"));
  EXPECT_FALSE(is_uuid("0F8FAD5B-D9CB-469F-A165-70867728950E"));  // upper case is not canonical
  EXPECT_FALSE(is_uuid("0f8fad5bd9cb469fa16570867728950e"));
  EXPECT_FALSE(is_uuid("0f8fad5b-d9cb-469f-a165-70867728950"));
  EXPECT_FALSE(is_uuid("0f8fad5b-d9cb-469f-a165-70867728950g"));
  EXPECT_FALSE(is_uuid(""));
  std::string a = new_uuid(), b = new_uuid();
  EXPECT_TRUE(is_uuid(a)) << a;
  EXPECT_NE(a, b);
}

TEST(Validation, ParseBody) {
  EXPECT_TRUE(parse_body(R"({"a": [1, {"b": "x"}]})").is_object());
  struct Case {
    const char* name;
    std::string body;
  } cases[] = {
      {"empty", ""},
      {"truncated", R"({"a": )"},
      {"array", "[1]"},
      {"string", R"("x")"},
      {"trailing", R"({} {})"},
      {"bad utf8", "{\"a\": \"\xff\"}"},
      {"deep", std::string(1000, '[') + std::string(1000, ']')},
      {"number overflow", R"({"mtu": 1e400})"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(error_of([&] { parse_body(c.body); }).status, 400);
  }
  // Brackets inside strings do not count as nesting.
  EXPECT_TRUE(parse_body("{\"a\": \"" + std::string(100, '[') + "\"}").is_object());
}

TEST(Validation, IntegersRefuseWrongTypesAndHugeValues) {
  EXPECT_EQ(need_int(json(5), "mtu", 1, 10), 5);
  for (const json& v : {json(0), json(11), json(-1), json("5"), json(5.5), json(true), json(nullptr),
                        json::parse("18446744073709551615"), json::parse("1e300"), json::parse("-9223372036854775808")}) {
    SCOPED_TRACE(v.dump());
    auto e = error_of([&] { need_int(v, "mtu", 1, 10); });
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.field, "mtu");
  }
}

TEST(Validation, Cidrs) {
  EXPECT_EQ(need_cidr(json("10.0.0.0/16"), "c").to_string(), "10.0.0.0/16");
  auto e = error_of([] { need_cidr(json("10.0.0.1/16"), "cidrs[0]"); });
  EXPECT_EQ(e.field, "cidrs[0]");
  EXPECT_NE(std::string(e.what()).find("10.0.0.0/16"), std::string::npos);  // suggests the canonical form
  for (const char* bad : {"10.0.0.0", "10.0.0.0/33", "10.0.0/8", "x/8", "010.0.0.0/8", "10.0.0.0/-1", ""})
    EXPECT_EQ(error_of([&] { need_cidr(json(bad), "c"); }).status, 400) << bad;
  EXPECT_EQ(need_host_cidr(json("192.0.2.10/24"), "a").addr.to_string(), "192.0.2.10");
}

TEST(Validation, Addresses) {
  EXPECT_EQ(need_unicast_ipv4(json("192.0.2.1"), "ip").to_string(), "192.0.2.1");
  for (const char* bad : {"0.0.0.0", "127.0.0.1", "224.0.0.1", "255.255.255.255", "1.2.3", "1.2.3.256"})
    EXPECT_EQ(error_of([&] { need_unicast_ipv4(json(bad), "ip"); }).field, "ip") << bad;
  EXPECT_EQ(need_unicast_mac(json("02:00:00:00:00:01"), "mac").to_string(), "02:00:00:00:00:01");
  for (const char* bad : {"01:00:5e:00:00:01", "ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00", "02:00:00:00:00", "zz"})
    EXPECT_EQ(error_of([&] { need_unicast_mac(json(bad), "mac"); }).status, 400) << bad;
}

TEST(Validation, DerivedMacIsLocallyAdministeredUnicastAndStable) {
  MacAddr a = derived_mac("0f8fad5b-d9cb-469f-a165-70867728950e", 0);
  EXPECT_EQ(a.b[0], 0x02);
  EXPECT_FALSE(a.is_multicast());
  EXPECT_EQ(a, derived_mac("0f8fad5b-d9cb-469f-a165-70867728950e", 0));
  EXPECT_NE(a, derived_mac("0f8fad5b-d9cb-469f-a165-70867728950e", 1));
  EXPECT_NE(a, derived_mac("0f8fad5b-d9cb-469f-a165-70867728950f", 0));
}

TEST(Validation, InterfaceAndNamespaceNames) {
  EXPECT_EQ(need_ifname(json("tap-vm1.0_a"), "f"), "tap-vm1.0_a");
  EXPECT_EQ(need_ifname(json("abcdefghijklmno"), "f").size(), 15u);
  for (const char* bad : {"", "abcdefghijklmnop", "a b", "a/b", ".", "..", "tap:0", "ä"})
    EXPECT_EQ(error_of([&] { need_ifname(json(bad), "backend.ifname"); }).field, "backend.ifname") << bad;
  EXPECT_EQ(error_of([] { need_ifname(json(5), "f"); }).status, 400);
  EXPECT_EQ(need_netns_name(json("guest-ns_1"), "n"), "guest-ns_1");
  EXPECT_EQ(error_of([] { need_netns_name(json("../etc"), "n"); }).status, 400);
}

TEST(Validation, NamesAndLabels) {
  EXPECT_EQ(check_name(json(std::string(255, 'a'))).get<std::string>().size(), 255u);
  EXPECT_EQ(error_of([] { check_name(json(std::string(256, 'a'))); }).field, "name");
  EXPECT_EQ(error_of([] { check_name(json(5)); }).field, "name");
  EXPECT_NO_THROW(check_labels(json{{"env", "prod"}}));
  EXPECT_EQ(error_of([] { check_labels(json{{"env", 5}}); }).field, "labels.env");
  EXPECT_EQ(error_of([] { check_labels(json::array()); }).field, "labels");
  EXPECT_EQ(error_of([] { check_labels(json{{std::string(200, 'k'), "v"}}); }).field, "labels");
  EXPECT_EQ(error_of([] { check_labels(json{{"k", std::string(2000, 'v')}}); }).field, "labels.k");
  json many = json::object();
  for (int i = 0; i < 65; ++i) many["k" + std::to_string(i)] = "v";
  EXPECT_EQ(error_of([&] { check_labels(many); }).field, "labels");
}

TEST(Validation, UnknownFieldsAreNamed) {
  EXPECT_NO_THROW(only_fields(json{{"type", "tap"}}, "backend", {"type", "ifname"}));
  auto e = error_of([] { only_fields(json{{"type", "tap"}, {"colour", 1}}, "backend", {"type", "ifname"}); });
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.field, "backend.colour");
}

TEST(Validation, EnumsListTheChoices) {
  EXPECT_EQ(need_enum(json("udp"), "p", {"tcp", "udp"}), "udp");
  auto e = error_of([] { need_enum(json("sctp"), "rules[0].protocol", {"tcp", "udp"}); });
  EXPECT_EQ(e.field, "rules[0].protocol");
  EXPECT_NE(std::string(e.what()).find("tcp, udp"), std::string::npos);
}

TEST(Validation, UsersAndGroups) {
  EXPECT_EQ(lookup_user("root"), uid_t(0));
  EXPECT_EQ(lookup_user("0"), uid_t(0));
  EXPECT_FALSE(lookup_user("no-such-user-vpcd-test"));
  EXPECT_FALSE(lookup_user("4294967000"));
  EXPECT_EQ(lookup_group("root"), gid_t(0));
  EXPECT_FALSE(lookup_group("no-such-group-vpcd-test"));
}

}  // namespace
}  // namespace vpcd::api
