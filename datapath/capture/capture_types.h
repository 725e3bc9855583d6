// The capture types the control plane sees (Controller::start_capture, Stats::capture): no datapath internals, so
// controller.h can include this. The implementation is CaptureManager (capture_manager.h).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <variant>
#include <vector>

namespace vpcd::dp {

struct CaptureSpec {
  std::string filter;        // tcpdump expression; "" = everything
  uint64_t max_frames = 1000;
  std::chrono::milliseconds duration{10000};
  uint32_t snaplen = 262144;  // bytes kept per frame in the file
};

inline constexpr uint64_t kCaptureMaxFrames = 1000000;
inline constexpr std::chrono::seconds kCaptureMaxDuration{3600};

struct CaptureError {
  enum class Kind { kBadFilter, kTooMany, kNoPort, kBadSpec } kind;
  std::string message;  // kBadFilter: libpcap's message
};

// One running (or finished) capture as seen by whoever started it. Destroying the last shared_ptr to it, or stop(),
// ends the capture.
class CaptureSession {
 public:
  enum class ReadState { kMore, kEnd };
  virtual ~CaptureSession() = default;
  // Non-blocking: appends the pcap bytes produced since the last call to out. kEnd once the capture has ended and its
  // last bytes were handed out (in this call or before).
  virtual ReadState read(std::string& out) = 0;
  virtual void stop() = 0;
  virtual uint64_t frames() const = 0;   // frames written to the file so far
  virtual uint64_t dropped() const = 0;  // frames the workers could not put into the rings so far
};

struct CaptureInfo {
  uint64_t id = 0;
  std::string object_id;  // the NIC's (or uplink's) id
  std::string filter;
  uint64_t frames = 0, dropped = 0;
};

struct CaptureStats {
  uint64_t active = 0;           // sessions not yet ended (freed)
  uint64_t started = 0;          // since start-up
  uint64_t frames_captured = 0;  // written to files, all sessions
  uint64_t frames_dropped = 0;   // refused by a full ring, all sessions
  uint64_t frames_filtered = 0;  // read from rings but not matching the filter
  std::vector<CaptureInfo> sessions;  // the active ones
};

}  // namespace vpcd::dp
