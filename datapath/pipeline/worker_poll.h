// How a datapath worker waits for frames (vpcd.conf `busy-poll`, `busy-poll-us`; Worker, worker.h).
//
// off:      the worker sleeps in epoll_wait whenever its queues are empty (woken by the kernel for the next frame, by
//           the publisher's eventfd, or by the timeouts worker.h lists). An idle worker costs nothing.
// on:       the worker never sleeps: epoll_wait with timeout 0 on every loop turn, idle or not (a whole core per
//           worker, also while no frame arrives; as an OVS PMD or a VPP worker in polling rx-mode).
// adaptive: as off while idle; after a loop turn that received frames the worker keeps polling with timeout 0 until
//           budget_us have passed since the last frame it received (at least one such poll after every turn with
//           frames), then sleeps again (VPP's adaptive rx-mode, the kernel's net.core.busy_poll budget). A burst or a
//           stream keeps it spinning; a worker whose traffic stopped spins for at most about budget_us more.
//
// Threading: plain values, copied into each Worker before it starts.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace vpcd::dp {

enum class BusyPoll : uint8_t { kOff, kOn, kAdaptive };

inline constexpr uint32_t kDefaultBusyPollUs = 50;   // adaptive budget when busy-poll-us is not set
inline constexpr uint32_t kMaxBusyPollUs = 100000;   // 100 ms: longer is `on` in all but name

struct PollPolicy {
  BusyPoll mode = BusyPoll::kOff;
  uint32_t budget_us = kDefaultBusyPollUs;  // adaptive only: how long after the last frame the worker keeps polling
  friend bool operator==(const PollPolicy&, const PollPolicy&) = default;
};

constexpr std::string_view busy_poll_name(BusyPoll m) noexcept {
  switch (m) {
    case BusyPoll::kOff: return "off";
    case BusyPoll::kOn: return "on";
    case BusyPoll::kAdaptive: return "adaptive";
  }
  return "?";
}

// "off" | "on" | "adaptive" (and the booleans busy-poll always accepted: true/false, yes/no, 1/0); nullopt otherwise.
constexpr std::optional<BusyPoll> parse_busy_poll(std::string_view v) noexcept {
  if (v == "adaptive") return BusyPoll::kAdaptive;
  if (v == "on" || v == "true" || v == "yes" || v == "1") return BusyPoll::kOn;
  if (v == "off" || v == "false" || v == "no" || v == "0") return BusyPoll::kOff;
  return std::nullopt;
}

}  // namespace vpcd::dp
