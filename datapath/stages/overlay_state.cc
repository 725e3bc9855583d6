// OverlayWorkerState; see overlay_state.h. Threading: constructed by the thread that creates the worker, before the
// worker thread starts.
#include "datapath/stages/overlay_state.h"

#include "datapath/pipeline/packet_pool.h"
#include "datapath/stages/vxlan_uso.h"

namespace vpcd::dp {

OverlayWorkerState::OverlayWorkerState()
    : tx_scratch(std::make_unique<uint8_t[]>(PacketPool::kBufBytes)),
      uso_buf(std::make_unique<uint8_t[]>(kUsoFrameBytes)),
      split(std::make_unique<Packet[]>(kSplitPackets)) {}

}  // namespace vpcd::dp
