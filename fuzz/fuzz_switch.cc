// libFuzzer target: the switching stages (parse -> port-security -> arp-responder -> l2-switch -> output) on a fixed
// two-VPC network of FakePorts (tests/unit/stages/switch_test_net.h), fed a sequence of frames on chosen ports.
//
// Network: VPC 0 has a, b (port security on), c, d (port security off); VPC 1 has e, f with the same MACs and IPs as
// a, b. Input: records of [port selector][clock step][length lo][length hi][frame bytes], until the input ends; the
// MAC table learns across records (one net per input), the clock advances by the step (aging). Invariants checked
// after every record (a violation aborts): nothing crosses between VPCs; nothing leaves on its input port except an
// ARP reply; every frame a protected port sent out carries that port's MAC as source, or is an ARP reply the
// responder made; no frame is sent more than once per port; output frames keep their length.
// Seed corpus: fuzz/corpus/switch/ (fuzz/make_corpus.py). Run: scripts/fuzz.sh.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "tests/unit/stages/switch_test_net.h"

namespace {

using namespace vpcd::dp;
using vpcd::MacAddr;
using vpcd::dp::testing::ip;
using vpcd::dp::testing::mac;

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz_switch: invariant violated: %s\n", what);
    std::abort();
  }
}

bool is_arp_reply(const std::vector<uint8_t>& f) {
  return f.size() >= 14 + 28 && f[12] == 0x08 && f[13] == 0x06 && f[14 + 6] == 0 && f[14 + 7] == 2;
}

struct Net : vpcd::dp::testing::SwitchTestNet {
  Net() {
    const MacAddr router = mac(0xfe, 0xff);
    v0 = add_vpc(router, 1450, {ip("10.0.0.1")});
    v1 = add_vpc(router, 1450, {ip("10.0.0.1")});
    add_port(v0, mac(0x0a), {ip("10.0.0.2")});
    add_port(v0, mac(0x0b), {ip("10.0.0.3")});
    add_port(v0, mac(0x0c), {ip("10.0.0.4")}, false);
    add_port(v0, mac(0x0d), {ip("10.0.0.5")}, false);
    add_port(v1, mac(0x0a), {ip("10.0.0.2")});
    add_port(v1, mac(0x0b), {ip("10.0.0.3")});
    build();
  }
  uint16_t v0, v1;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Net net;
  size_t off = 0;
  while (off + 4 <= size) {
    const uint16_t in = uint16_t(data[off] % net.cfg.ports.size());
    vpcd::dp::testing::g_test_now_s += data[off + 1];
    size_t len = size_t(data[off + 2]) | size_t(data[off + 3]) << 8;
    off += 4;
    if (len > size - off) len = size - off;
    std::vector<uint8_t> frame(data + off, data + off + len);
    off += len;

    net.receive(in, frame);
    const PortConfig& pin = net.cfg.ports[in];
    for (uint16_t q = 0; q < net.cfg.ports.size(); ++q) {
      auto out = net.out(q);
      const PortConfig& pq = net.cfg.ports[q];
      check(out.size() <= 1, "one frame sent more than once to a port");
      for (const auto& f : out) {
        check(pq.vpc == pin.vpc, "frame crossed into another VPC");
        check(f.size() == frame.size(), "frame length changed");
        if (q == in) check(is_arp_reply(f), "frame other than an ARP reply hairpinned");
        if (pin.port_security && !is_arp_reply(f))
          check(std::memcmp(f.data() + 6, pin.mac.b.data(), 6) == 0, "protected port sent a foreign source MAC");
      }
    }
  }
  return 0;
}
