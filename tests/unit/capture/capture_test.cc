// Packet capture without ports: the SPSC ring (order, wrap-around, refusal when full, a concurrent producer), the libpcap
// filter and writer (read back with libpcap), and CaptureManager sessions fed through the workers' hook calls: filter,
// count, snaplen, overflow counted, hang-up, the session limit, the per-port hook unpublished when a session ends,
// and the outer headers of encapsulated frames in what a port sends.
#include <gtest/gtest.h>
#include <pcap/pcap.h>
#include <stdio.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "datapath/capture/capture_manager.h"
#include "datapath/capture/capture_ring.h"
#include "datapath/capture/pcap_stream.h"
#include "datapath/proto/frame_builder.h"

namespace vpcd::dp {
namespace {

using namespace std::chrono_literals;
using proto::FrameBuilder;

const MacAddr kMacA{{0x02, 0, 0, 0, 0, 0x0a}};
const MacAddr kMacB{{0x02, 0, 0, 0, 0, 0x0b}};
const Ipv4Addr kIpA{0x0a000002}, kIpB{0x0a000003};

std::vector<uint8_t> icmp_frame(uint16_t seq) {
  return FrameBuilder().eth(kMacA, kMacB).ipv4(kIpA, kIpB).icmp_echo(true, 7, seq).payload_size(56).build();
}
std::vector<uint8_t> udp_frame(size_t payload) {
  return FrameBuilder().eth(kMacA, kMacB).ipv4(kIpA, kIpB).udp(1000, 53).payload_size(payload).build();
}

struct Record {
  uint64_t ts_us;
  uint32_t caplen, len;
  std::vector<uint8_t> bytes;
};

// Reads a pcap file held in memory with libpcap.
std::vector<Record> read_pcap(const std::string& file, int* linktype = nullptr, int* snaplen = nullptr) {
  std::vector<Record> out;
  FILE* f = fmemopen(const_cast<char*>(file.data()), file.size(), "r");
  EXPECT_NE(f, nullptr);
  if (!f) return out;
  char err[PCAP_ERRBUF_SIZE];
  pcap_t* p = pcap_fopen_offline(f, err);
  EXPECT_NE(p, nullptr) << err;
  if (!p) return out;
  if (linktype) *linktype = pcap_datalink(p);
  if (snaplen) *snaplen = pcap_snapshot(p);
  pcap_pkthdr* h;
  const u_char* d;
  while (pcap_next_ex(p, &h, &d) == 1)
    out.push_back({uint64_t(h->ts.tv_sec) * 1000000 + uint64_t(h->ts.tv_usec), h->caplen, h->len,
                   std::vector<uint8_t>(d, d + h->caplen)});
  pcap_close(p);  // closes f
  return out;
}

TEST(CaptureRing, KeepsOrderAcrossWrapAndRefusesWhenFull) {
  CaptureRing r(4096);
  std::vector<uint8_t> data(1000, 0xab);
  uint64_t pushed = 0, popped = 0;
  for (int round = 0; round < 50; ++round) {
    while (r.push(pushed, 1000, data.data(), uint32_t(data.size()))) ++pushed;  // fill until refused
    EXPECT_LE(pushed - popped, 4u);  // 4 KiB holds at most 4 records of 1016 bytes
    r.pop(2, [&](const CaptureRing::RecordHdr& h, const uint8_t* b) {
      EXPECT_EQ(h.ts_ns, popped);
      EXPECT_EQ(h.cap_len, 1000u);
      EXPECT_EQ(b[999], 0xab);
      ++popped;
    });
  }
  r.pop(100, [&](const CaptureRing::RecordHdr& h, const uint8_t*) { EXPECT_EQ(h.ts_ns, popped++); });
  EXPECT_EQ(popped, pushed);
  EXPECT_TRUE(r.empty());
  EXPECT_FALSE(r.push(0, 4000, data.data(), 3000));  // larger than half the ring: never fits
}

TEST(CaptureRing, ConcurrentProducerAndConsumerSeeEveryAcceptedRecordInOrder) {
  CaptureRing r(1 << 16);
  constexpr uint64_t kN = 200000;
  std::atomic<bool> done{false};
  uint64_t accepted = 0;
  std::thread producer([&] {
    uint8_t buf[300];
    for (uint64_t i = 0; i < kN; ++i) {
      const uint32_t len = uint32_t(i % 300);
      std::memset(buf, int(i & 0xff), len);
      if (r.push(i, len, buf, len)) ++accepted;
    }
    done.store(true);
  });
  uint64_t seen = 0, last = 0;
  bool first = true, ok = true;
  auto check = [&](const CaptureRing::RecordHdr& h, const uint8_t* b) {
    if (!first && h.ts_ns <= last) ok = false;
    if (h.cap_len != h.ts_ns % 300) ok = false;
    for (uint32_t k = 0; k < h.cap_len; ++k)
      if (b[k] != uint8_t(h.ts_ns & 0xff)) ok = false;
    first = false;
    last = h.ts_ns;
    ++seen;
  };
  while (!done.load()) r.pop(64, check);
  producer.join();
  r.pop(SIZE_MAX, check);
  EXPECT_TRUE(ok);
  EXPECT_EQ(seen, accepted);
  EXPECT_GT(accepted, 0u);
}

TEST(PcapFilter, CompilesMatchesAndReportsErrors) {
  std::string err;
  auto f = PcapFilter::compile("icmp and host 10.0.0.3", 262144, &err);
  ASSERT_TRUE(f) << err;
  auto icmp = icmp_frame(1), udp = udp_frame(20);
  EXPECT_TRUE(f->matches(icmp.data(), uint32_t(icmp.size()), uint32_t(icmp.size())));
  EXPECT_FALSE(f->matches(udp.data(), uint32_t(udp.size()), uint32_t(udp.size())));
  auto all = PcapFilter::compile("  ", 262144, &err);
  ASSERT_TRUE(all);
  EXPECT_TRUE(all->match_all());
  EXPECT_FALSE(PcapFilter::compile("icmp and and", 262144, &err));
  EXPECT_NE(err.find("syntax error"), std::string::npos) << err;
  EXPECT_FALSE(PcapFilter::compile("port 99999999", 262144, &err));
  EXPECT_FALSE(err.empty());
}

TEST(PcapStream, WritesWhatLibpcapReadsBack) {
  PcapStream s(100);
  std::string file;
  s.take(file);
  EXPECT_EQ(file.size(), 24u);  // the file header alone
  auto a = icmp_frame(1), b = udp_frame(500);
  s.add(1700000000123456789ull, a.data(), uint32_t(a.size()), uint32_t(a.size()));
  s.add(1700000001000000000ull, b.data(), uint32_t(b.size()), uint32_t(b.size()) + 10);
  s.take(file);
  int lt = 0, snap = 0;
  auto recs = read_pcap(file, &lt, &snap);
  EXPECT_EQ(lt, DLT_EN10MB);
  EXPECT_EQ(snap, 100);
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[0].ts_us, 1700000000123456ull);
  EXPECT_EQ(recs[0].bytes, a);
  EXPECT_EQ(recs[1].caplen, 100u);  // cut at snaplen
  EXPECT_EQ(recs[1].len, b.size() + 10);
}

// A fake of the snapshot ack protocol: no workers run in these tests but the calling thread, which is between two
// "batches" whenever it is not inside capture_rx/capture_tx, so a poke publishes and acks at once.
struct FakeAcks {
  std::atomic<uint64_t> gen{1}, acked{1}, pokes{0};
  CaptureManager::Quiesce quiesce() {
    CaptureManager::Quiesce q;
    q.next_generation = [this] { return gen.load() + 1; };
    q.min_acked = [this] { return acked.load(); };
    q.poke = [this] {
      pokes.fetch_add(1);
      acked.store(gen.fetch_add(1) + 1);
    };
    return q;
  }
};

std::string read_all(CaptureSession& s, std::chrono::milliseconds limit = 5s) {
  std::string out;
  auto until = std::chrono::steady_clock::now() + limit;
  while (s.read(out) == CaptureSession::ReadState::kMore) {
    if (std::chrono::steady_clock::now() > until) {
      ADD_FAILURE() << "capture did not end";
      break;
    }
    std::this_thread::sleep_for(1ms);
  }
  return out;
}

bool wait_active(CaptureManager& m, uint64_t n) {
  for (int i = 0; i < 2000; ++i) {
    if (m.stats().active == n) return true;
    std::this_thread::sleep_for(1ms);
  }
  return false;
}

std::vector<Packet> packets(std::vector<std::vector<uint8_t>>& frames) {
  std::vector<Packet> out(frames.size());
  for (size_t i = 0; i < frames.size(); ++i) {
    out[i].data = frames[i].data();
    out[i].len = out[i].wire_len = uint32_t(frames[i].size());
    out[i].ts_ns = 1700000000000000000ull + i * 1000;
  }
  return out;
}

TEST(CaptureManager, FilterCountAndBothDirections) {
  FakeAcks acks;
  CaptureManager m(2, acks.quiesce());
  auto rt = std::make_shared<PortRuntime>();
  CaptureSpec spec;
  spec.filter = "icmp";
  spec.max_frames = 3;
  auto r = m.start(rt, "nic n1", spec);
  ASSERT_TRUE(std::holds_alternative<std::shared_ptr<CaptureSession>>(r));
  auto s = std::get<std::shared_ptr<CaptureSession>>(r);
  ASSERT_NE(rt->capture.load(), nullptr);

  std::vector<std::vector<uint8_t>> frames = {icmp_frame(1), udp_frame(10), icmp_frame(2)};
  auto pkts = packets(frames);
  capture_rx(*rt, 0, pkts);                // worker 0 received three frames, two of them ICMP
  capture_tx(*rt, 1, pkts[2]);             // worker 1 sent an ICMP frame
  capture_tx(*rt, 1, pkts[0]);             // beyond the count
  std::string file = read_all(*s);
  auto recs = read_pcap(file);
  ASSERT_EQ(recs.size(), 3u);
  for (const auto& rec : recs) EXPECT_EQ(rec.bytes.size(), frames[0].size());
  EXPECT_EQ(recs[0].bytes, frames[0]);
  EXPECT_EQ(rt->capture.load(), nullptr);  // unhooked once the count was reached
  EXPECT_TRUE(wait_active(m, 0));
  auto st = m.stats();
  EXPECT_EQ(st.frames_captured, 3u);
  EXPECT_EQ(st.started, 1u);
  EXPECT_GE(acks.pokes.load(), 1u);
}

TEST(CaptureManager, OverflowIsCountedNotWaitedFor) {
  FakeAcks acks;
  CaptureManager m(1, acks.quiesce(), {}, 4096);  // a tiny ring: most of a burst cannot fit
  auto rt = std::make_shared<PortRuntime>();
  CaptureSpec spec;
  spec.max_frames = 1000000;
  spec.duration = 2s;
  auto s = std::get<std::shared_ptr<CaptureSession>>(m.start(rt, "nic n1", spec));
  std::vector<std::vector<uint8_t>> frames(1000, udp_frame(1000));
  auto pkts = packets(frames);
  capture_rx(*rt, 0, pkts);
  s->stop();
  auto recs = read_pcap(read_all(*s));
  EXPECT_GT(s->dropped(), 0u);
  EXPECT_EQ(recs.size() + s->dropped(), 1000u);  // every frame was either kept or counted
  EXPECT_TRUE(wait_active(m, 0));
  EXPECT_EQ(m.stats().frames_dropped, s->dropped());
}

TEST(CaptureManager, SnaplenBadFilterLimitAndHangUp) {
  FakeAcks acks;
  CaptureManager m(1, acks.quiesce());
  auto rt = std::make_shared<PortRuntime>();
  CaptureSpec bad;
  bad.filter = "tcp port";
  auto r = m.start(rt, "nic n1", bad);
  ASSERT_TRUE(std::holds_alternative<CaptureError>(r));
  EXPECT_EQ(std::get<CaptureError>(r).kind, CaptureError::Kind::kBadFilter);
  EXPECT_FALSE(std::get<CaptureError>(r).message.empty());

  CaptureSpec spec;
  spec.snaplen = 40;
  std::vector<std::shared_ptr<CaptureSession>> held;
  for (unsigned i = 0; i < kMaxCaptureSessions; ++i)
    held.push_back(std::get<std::shared_ptr<CaptureSession>>(m.start(rt, "nic n1", spec)));
  auto sixth = m.start(rt, "nic n1", spec);
  ASSERT_TRUE(std::holds_alternative<CaptureError>(sixth));
  EXPECT_EQ(std::get<CaptureError>(sixth).kind, CaptureError::Kind::kTooMany);
  EXPECT_EQ(m.stats().active, kMaxCaptureSessions);

  std::vector<std::vector<uint8_t>> frames = {udp_frame(200)};
  auto pkts = packets(frames);
  capture_rx(*rt, 0, pkts);
  for (int i = 0; i < 1000 && held[0]->frames() == 0; ++i) std::this_thread::sleep_for(1ms);
  held[0]->stop();
  auto recs = read_pcap(read_all(*held[0]));
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].caplen, 40u);
  EXPECT_EQ(recs[0].len, frames[0].size());

  held.clear();  // the clients hang up: every session ends and is freed
  EXPECT_TRUE(wait_active(m, 0));
  EXPECT_EQ(rt->capture.load(), nullptr);
}

TEST(CaptureManager, SentFramesIncludeTheOuterHeadersThePortWrites) {
  FakeAcks acks;
  CaptureManager m(1, acks.quiesce());
  auto rt = std::make_shared<PortRuntime>();
  CaptureSpec spec;
  spec.max_frames = 1;
  auto s = std::get<std::shared_ptr<CaptureSession>>(m.start(rt, "uplink u1", spec));
  std::vector<std::vector<uint8_t>> frames = {icmp_frame(9)};
  auto pkts = packets(frames);
  const std::vector<uint8_t> outer(50, 0x77);  // stands for Ethernet + IPv4 + UDP + VXLAN
  pkts[0].prefix = outer.data();
  pkts[0].prefix_len = uint16_t(outer.size());
  capture_tx(*rt, 0, pkts[0]);
  auto recs = read_pcap(read_all(*s));
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].len, outer.size() + frames[0].size());
  std::vector<uint8_t> want = outer;
  want.insert(want.end(), frames[0].begin(), frames[0].end());
  EXPECT_EQ(recs[0].bytes, want);
}

TEST(CaptureManager, RemovedPortEndsTheCapture) {
  FakeAcks acks;
  CaptureManager m(1, acks.quiesce());
  auto rt = std::make_shared<PortRuntime>();
  auto s = std::get<std::shared_ptr<CaptureSession>>(m.start(rt, "nic n1", CaptureSpec{}));
  rt.reset();
  read_all(*s);
  EXPECT_TRUE(wait_active(m, 0));
}

}  // namespace
}  // namespace vpcd::dp
