// See controller_target.h.
//
// Threading: the reconciler thread only.
#include "server/reconcile/controller_target.h"

namespace vpcd::reconcile {

std::map<std::string, dp::NicState> ControllerTarget::apply(const dp::DesiredState& d) { return c_.apply(d); }

std::map<std::string, dp::NicState> ControllerTarget::uplink_states() { return c_.uplink_states(); }

void ControllerTarget::remove_stale_os_objects() { c_.remove_stale_os_objects(); }

}  // namespace vpcd::reconcile
