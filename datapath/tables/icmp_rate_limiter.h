// IcmpRateLimiter: a token bucket bounding the ICMP errors one worker generates (router: time exceeded, unreachable).
// Threading: one per worker (WorkerContext::icmp_limiter), used by that worker only.
#pragma once

#include <algorithm>
#include <cstdint>

namespace vpcd::dp {

// Token bucket for ICMP errors, one per worker.
class IcmpRateLimiter {
 public:
  explicit IcmpRateLimiter(uint32_t per_second = 100, uint32_t burst = 50) noexcept
      : rate_(per_second), burst_(burst), tokens_(burst) {}
  bool allow(uint64_t now_ns) noexcept {
    if (last_ns_ == 0) last_ns_ = now_ns;
    const uint64_t add = (now_ns - last_ns_) * rate_ / 1000000000ull;
    if (add > 0) {
      tokens_ = uint32_t(std::min<uint64_t>(burst_, tokens_ + add));
      last_ns_ += add * 1000000000ull / (rate_ ? rate_ : 1);
    }
    if (tokens_ == 0) return false;
    --tokens_;
    return true;
  }

 private:
  uint32_t rate_, burst_, tokens_;
  uint64_t last_ns_ = 0;
};

}  // namespace vpcd::dp
