// Adapts the real datapath (dp::Controller) to the reconciler's DatapathTarget interface. Kept out of reconciler.h
// so that code using the reconciler with a fake datapath (unit tests) does not link the datapath's controller.
//
// Threading: called only from the reconciler thread (see reconciler.h).
#pragma once

#include "datapath/controller.h"
#include "server/reconcile/reconciler.h"

namespace vpcd::reconcile {

class ControllerTarget final : public DatapathTarget {
 public:
  explicit ControllerTarget(dp::Controller& c) : c_(c) {}
  std::map<std::string, dp::NicState> apply(const dp::DesiredState& d) override;
  std::map<std::string, dp::NicState> uplink_states() override;
  void remove_stale_os_objects() override;

 private:
  dp::Controller& c_;
};

}  // namespace vpcd::reconcile
