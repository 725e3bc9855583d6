// libFuzzer target: the split-virtqueue descriptor walker and the data path over guest memory the fuzzer controls.
// A well-behaved front-end sets the device up (64 KiB of guest memory, two rings of 16 entries); then the input is
// copied over guest memory (descriptor tables, avail rings, buffers, indirect tables: everything a guest controls)
// and a worker runs rx_burst (the guest's TX), tx_enqueue of what it got plus a fixed frame (the guest's RX, mergeable
// or not as the first byte says) and tx_flush. walk_chain() is also called directly on every head.
// Build: scripts/fuzz.sh (clang++, -DVPCD_FUZZ=ON); seeds in fuzz/corpus/vhost_desc/.
#include <cstdint>
#include <cstring>
#include <vector>

#include "datapath/io/vhost_user/virtqueue.h"
#include "datapath/io/vhost_user/vhost_user_port.h"
#include "tests/unit/io/vhost_user/fake_frontend.h"

using namespace vpcd::dp;
using namespace vpcd::dp::vhost;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t mode = data[0];
  ++data, --size;
  VhostUserPortConfig pc;
  pc.name = "fuzz";
  std::string err;
  auto port = VhostUserPort::create(pc, &err);
  port->on_connect();
  testing::FakeFrontend fe(port.get(), -1, 1 << 16);
  uint64_t features = testing::kDefaultFeatures;
  if (mode & 1) features &= ~feat::kNetMrgRxbuf;
  if (mode & 2) features &= ~feat::kRingEventIdx;
  if (mode & 4) features &= ~(feat::kNetGuestTso4 | feat::kNetGuestCsum);
  if (!fe.start(features, 1, 16)) return 0;
  // Guest memory from offset 4096 on (the rings live there) is the fuzzer's.
  std::memcpy(fe.host(testing::FakeFrontend::kGpaBase + 4096), data, std::min<size_t>(size, (1 << 16) - 4096));
  // The walker alone, every head (and one past the end), both directions, over the same memory.
  {
    MemTable t{};
    t.nregions = 1;
    t.regions[0] = MemRegion{testing::FakeFrontend::kGpaBase, fe.mem_size(), testing::FakeFrontend::kUvaBase, 0};
    UniqueFd fd(::dup(fe.memfd()));
    auto mem = GuestMemory::map(t, std::span<UniqueFd>(&fd, 1), &err);
    if (mem) {
      const auto* table = reinterpret_cast<const VringDesc*>(fe.host(fe.rings[1].desc_gpa));
      Chain c;
      uint8_t sink[256];
      for (uint16_t head = 0; head <= 16; ++head)
        for (bool writes : {false, true})
          if (walk_chain(*mem, table, 16, head, writes, true, c) == ChainError::kOk) chain_read(c, 0, sink, sizeof sink);
    }
  }
  Packet pkts[32];
  for (int round = 0; round < 3; ++round) {
    unsigned n = port->rx_burst(0, pkts, 32);
    for (unsigned i = 0; i < n; ++i) port->tx_enqueue(0, pkts[i]);
    std::vector<uint8_t> f = testing::test_frame(3, 300);
    Packet p;
    p.data = f.data();
    p.len = p.wire_len = uint32_t(f.size());
    port->tx_enqueue(0, p);
    port->tx_flush(0);
    if (n) port->rx_release(0);
  }
  port->refresh_status();
  port->on_disconnect("", "");
  return 0;
}
