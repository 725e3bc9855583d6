// RetryBackoff: exponential, capped, reset by success; what describe() says.
#include "datapath/control/retry_backoff.h"

#include <gtest/gtest.h>

namespace vpcd::dp {
namespace {

using namespace std::chrono_literals;
using TP = RetryBackoff::Clock::time_point;

TEST(RetryBackoff, DoublesUpToTheCapAndResetsOnSuccess) {
  RetryBackoff b(1s, 10s);
  const TP t0{};
  EXPECT_TRUE(b.due(t0));
  EXPECT_EQ(b.describe(t0), "");
  const std::chrono::seconds want[] = {1s, 2s, 4s, 8s, 10s, 10s};
  TP now = t0;
  for (auto w : want) {
    b.failed(now);
    EXPECT_EQ(b.delay(), w);
    EXPECT_FALSE(b.due(now));
    EXPECT_FALSE(b.due(now + w - 1ms));
    EXPECT_TRUE(b.due(now + w));
    now += w;
  }
  EXPECT_EQ(b.failures(), 6u);
  b.failed(now);
  EXPECT_EQ(b.describe(now + 2500ms), "attempt 7 failed; next retry in 8 s");
  b.success();
  EXPECT_TRUE(b.due(now));
  b.failed(now);
  EXPECT_EQ(b.delay(), 1s) << "success starts over";
}

TEST(RetryBackoff, ManyFailuresDoNotOverflow) {
  RetryBackoff b(1s, 60s);
  TP now{};
  for (int i = 0; i < 1000; ++i) b.failed(now);
  EXPECT_EQ(b.delay(), 60s);
  EXPECT_TRUE(b.due(now + 60s));
}

}  // namespace
}  // namespace vpcd::dp
