// RetryBackoff: when to try a failing operation again (a NIC whose backend failed), instead of on every reconcile pass:
// after the n-th consecutive failure the next attempt is due base * 2^(n-1) later, capped at `cap`. success() (or a
// changed request) resets it, so the next failure waits `base` again.
//
//   RetryBackoff b(1s, 60s);
//   if (b.due(now)) { if (try_it()) b.success(); else b.failed(now); }
//   detail += b.describe(now);   // "attempt 3 failed; next retry in 4 s"
//
// Threading: a value; the owner (the control thread) calls everything.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace vpcd::dp {

class RetryBackoff {
 public:
  using Clock = std::chrono::steady_clock;

  explicit RetryBackoff(Clock::duration base = std::chrono::seconds(1), Clock::duration cap = std::chrono::seconds(60))
      : base_(base > Clock::duration::zero() ? base : Clock::duration(1)), cap_(cap > base_ ? cap : base_) {}

  // True when no failure is pending or its delay has passed.
  bool due(Clock::time_point now) const noexcept { return failures_ == 0 || now >= next_; }

  // Records a failure at `now`: the next attempt is due after delay().
  void failed(Clock::time_point now) noexcept {
    if (failures_ < UINT32_MAX) ++failures_;
    next_ = now + delay();
  }
  void success() noexcept { failures_ = 0; }

  uint32_t failures() const noexcept { return failures_; }
  // The wait after the failures so far: base * 2^(failures-1), at most cap (zero before any failure).
  Clock::duration delay() const noexcept {
    if (failures_ == 0) return Clock::duration::zero();
    Clock::duration d = base_;
    for (uint32_t i = 1; i < failures_ && d < cap_; ++i) d *= 2;
    return d < cap_ ? d : cap_;
  }
  Clock::time_point next_attempt() const noexcept { return next_; }

  // "attempt N failed; next retry in S s" (rounded up to whole seconds), or "" before any failure.
  std::string describe(Clock::time_point now) const {
    if (failures_ == 0) return "";
    const auto left = next_ > now ? next_ - now : Clock::duration::zero();
    const auto s = std::chrono::ceil<std::chrono::seconds>(left).count();
    return "attempt " + std::to_string(failures_) + " failed; next retry in " + std::to_string(s) + " s";
  }

 private:
  Clock::duration base_, cap_;
  uint32_t failures_ = 0;
  Clock::time_point next_{};
};

}  // namespace vpcd::dp
