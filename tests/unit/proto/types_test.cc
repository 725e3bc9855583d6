#include "datapath/proto/types.h"

#include <gtest/gtest.h>

namespace vpcd {
namespace {

TEST(Ipv4Addr, ParsesStrictDottedQuad) {
  struct Case { const char* text; bool ok; uint32_t v; } const kCases[] = {
      {"10.0.0.1", true, 0x0a000001}, {"255.255.255.255", true, 0xffffffff}, {"0.0.0.0", true, 0},
      {"10.0.0", false, 0},           {"10.0.0.256", false, 0},            {"010.0.0.1", false, 0},
      {"10.0.0.1 ", false, 0},        {"", false, 0},                      {"1.2.3.4.5", false, 0},
      {"a.b.c.d", false, 0},          {"1..2.3", false, 0},                {"1234.1.1.1", false, 0},
  };
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.text);
    auto a = Ipv4Addr::parse(c.text);
    ASSERT_EQ(a.has_value(), c.ok);
    if (c.ok) {
      EXPECT_EQ(a->v, c.v);
      EXPECT_EQ(a->to_string(), c.text);
    }
  }
}

TEST(Ipv4Prefix, ParsesAndRelates) {
  auto p = Ipv4Prefix::parse("10.0.0.0/24");
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->contains(*Ipv4Addr::parse("10.0.0.77")));
  EXPECT_FALSE(p->contains(*Ipv4Addr::parse("10.0.1.1")));
  EXPECT_EQ(p->broadcast().to_string(), "10.0.0.255");
  EXPECT_FALSE(Ipv4Prefix::parse("10.0.0.1/24"));               // host bits set
  EXPECT_TRUE(Ipv4Prefix::parse("10.0.0.1/24", /*strict=*/false));
  EXPECT_FALSE(Ipv4Prefix::parse("10.0.0.0/33"));
  EXPECT_FALSE(Ipv4Prefix::parse("10.0.0.0/"));
  EXPECT_FALSE(Ipv4Prefix::parse("10.0.0.0/024"));
  EXPECT_TRUE(Ipv4Prefix::parse("0.0.0.0/0")->contains(*Ipv4Addr::parse("1.2.3.4")));
  auto big = *Ipv4Prefix::parse("10.0.0.0/16"), small = *Ipv4Prefix::parse("10.0.5.0/24");
  EXPECT_TRUE(big.overlaps(small));
  EXPECT_TRUE(small.overlaps(big));
  EXPECT_FALSE(small.overlaps(*Ipv4Prefix::parse("10.0.6.0/24")));
}

TEST(MacAddr, ParsesAndClassifies) {
  auto m = MacAddr::parse("02:AB:cd:00:11:22");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->to_string(), "02:ab:cd:00:11:22");
  EXPECT_FALSE(m->is_multicast());
  EXPECT_EQ(MacAddr::from_u64(m->to_u64()), *m);
  EXPECT_TRUE(kBroadcastMac.is_broadcast());
  EXPECT_TRUE(MacAddr::parse("01:00:5e:00:00:01")->is_multicast());
  EXPECT_FALSE(MacAddr::parse("02:ab:cd:00:11"));
  EXPECT_FALSE(MacAddr::parse("02:ab:cd:00:11:2g"));
  EXPECT_FALSE(MacAddr::parse("02:ab:cd:00:11:22:"));
}

TEST(ByteOrder, RoundTrips) {
  EXPECT_EQ(be16::from_host(0x0800).raw, 0x0008);
  EXPECT_EQ(be32::from_host(0x0a000001).to_host(), 0x0a000001u);
}

}  // namespace
}  // namespace vpcd
