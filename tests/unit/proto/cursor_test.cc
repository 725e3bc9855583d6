// Tests for datapath/proto/cursor.h: reads advance only on success, limit() bounds later reads.
#include "datapath/proto/cursor.h"

#include <gtest/gtest.h>

#include <vector>

#include "datapath/proto/ethernet.h"

namespace vpcd::proto {
namespace {

TEST(Cursor, ReadsAdvanceOnlyOnSuccess) {
  std::vector<uint8_t> bytes = {0x81, 0x00, 0x20, 0x64, 0x08, 0x00, 0xaa};
  Cursor c(bytes.data(), bytes.size());
  VlanHdr v;
  ASSERT_TRUE(c.try_read(v));
  EXPECT_EQ(v.tci.to_host(), 0x8100);
  EXPECT_EQ(v.ethertype.to_host(), 0x2064);
  EXPECT_EQ(c.offset(), 4u);
  EXPECT_EQ(c.remaining(), 3u);
  EXPECT_FALSE(c.try_read(v));  // 3 bytes left: untouched
  EXPECT_EQ(c.offset(), 4u);
  EXPECT_EQ(c.pos(), bytes.data() + 4);
  be16 x;
  ASSERT_TRUE(c.try_peek(x));
  EXPECT_EQ(x.to_host(), 0x0800);
  EXPECT_EQ(c.offset(), 4u);
  EXPECT_FALSE(c.try_skip(4));
  EXPECT_TRUE(c.try_skip(3));
  EXPECT_EQ(c.remaining(), 0u);
  EXPECT_FALSE(c.try_read(x));
}

TEST(Cursor, LimitBoundsLaterReads) {
  std::vector<uint8_t> bytes(20, 0x11);
  Cursor c{std::span<const uint8_t>(bytes)};
  ASSERT_TRUE(c.try_skip(2));
  c.limit(5);
  EXPECT_EQ(c.remaining(), 5u);
  c.limit(50);  // never grows
  EXPECT_EQ(c.remaining(), 5u);
  EthHdr e;
  EXPECT_FALSE(c.try_read(e));
  EXPECT_EQ(c.rest().size(), 5u);
  EXPECT_EQ(c.offset(), 2u);
}

TEST(Cursor, EmptySpan) {
  Cursor c(nullptr, 0);
  uint8_t b;
  EXPECT_FALSE(c.try_read(b));
  EXPECT_TRUE(c.try_skip(0));
  EXPECT_EQ(c.remaining(), 0u);
}

}  // namespace
}  // namespace vpcd::proto
