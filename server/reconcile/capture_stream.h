// Packet capture for the REST API: turns an api::CaptureRequest into dp::Controller::start_capture and the session into
// a streamed HTTP response (application/vnd.tcpdump.pcap, chunked), or a problem+json for what cannot start.
//
// Threading: runs on transport threads; start_capture() never blocks; the BodyStream is read from the connection's
// strand and its destruction (end, hang-up) stops the capture.
#pragma once

#include "datapath/controller.h"
#include "server/api/api.h"
#include "server/http/types.h"

namespace vpcd::reconcile {

http::Response capture_response(dp::Controller& c, const api::CaptureRequest& r);

}  // namespace vpcd::reconcile
