// See capture_stream.h.
#include "server/reconcile/capture_stream.h"

namespace vpcd::reconcile {
namespace {

class CaptureBody final : public http::BodyStream {
 public:
  explicit CaptureBody(std::shared_ptr<dp::CaptureSession> s) : s_(std::move(s)) {}
  ~CaptureBody() override { s_->stop(); }
  State read(std::string& out) override {
    return s_->read(out) == dp::CaptureSession::ReadState::kEnd ? State::kEnd : State::kMore;
  }

 private:
  std::shared_ptr<dp::CaptureSession> s_;
};

}  // namespace

http::Response capture_response(dp::Controller& c, const api::CaptureRequest& r) {
  dp::CaptureSpec spec;
  spec.filter = r.filter;
  spec.max_frames = r.count;
  spec.duration = std::chrono::seconds(r.seconds);
  spec.snaplen = r.snaplen;
  auto res = c.start_capture(r.id, spec,
                             r.kind == "uplinks" ? dp::Controller::CaptureOn::kUplink : dp::Controller::CaptureOn::kNic);
  if (auto* e = std::get_if<dp::CaptureError>(&res)) {
    switch (e->kind) {
      case dp::CaptureError::Kind::kBadFilter:
        return http::problem(400, "Bad Request", "filter does not compile: " + e->message, "filter");
      case dp::CaptureError::Kind::kBadSpec:
        return http::problem(400, "Bad Request", e->message);
      case dp::CaptureError::Kind::kTooMany: {
        http::Response p = http::problem(429, "Too Many Requests", e->message);
        p.headers.emplace_back("Retry-After", "5");
        return p;
      }
      case dp::CaptureError::Kind::kNoPort:
        return http::problem(409, "Conflict", e->message);
    }
  }
  http::Response out;
  out.content_type = "application/vnd.tcpdump.pcap";
  out.headers.emplace_back("Content-Disposition", "attachment; filename=\"" + r.kind.substr(0, r.kind.size() - 1) +
                                                      "-" + r.id + ".pcap\"");
  out.stream = std::make_shared<CaptureBody>(std::get<std::shared_ptr<dp::CaptureSession>>(std::move(res)));
  return out;
}

}  // namespace vpcd::reconcile
