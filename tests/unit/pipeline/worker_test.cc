// Worker threads against FakePorts: a frame injected on a port owned by one worker comes out of the destination port,
// per-worker counters and the acked generation are right, threads carry their names, a port dropped from the snapshot
// is no longer polled once the workers acked, frames a port refused at a flush go out later without new traffic (or
// are discarded and counted after the retry limit), stop() leaves no thread behind, and the busy-poll modes: off never
// polls without sleeping, on always does, adaptive does after frames for a bounded time and then sleeps again.
#include "datapath/pipeline/worker.h"

#include <gtest/gtest.h>

#include <sched.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "datapath/io/fake_port.h"
#include "datapath/proto/frame_builder.h"

namespace vpcd::dp {
namespace {

using namespace std::chrono_literals;

const MacAddr kMacA{{0x02, 0, 0, 0, 0, 0x0a}};
const MacAddr kMacB{{0x02, 0, 0, 0, 0, 0x0b}};
const Ipv4Addr kIpA{0x0a000002}, kIpB{0x0a000003}, kGw{0x0a000001};

struct Fixture {
  std::vector<std::shared_ptr<PortRuntime>> rts;
  std::vector<FakePort*> ports;

  Fixture() {
    for (int i = 0; i < 2; ++i) {
      auto rt = std::make_shared<PortRuntime>();
      auto fp = std::make_unique<FakePort>("fake" + std::to_string(i));
      ports.push_back(fp.get());
      rt->io = std::move(fp);
      rt->seq = uint64_t(i + 1);
      rt->nic_id = "nic" + std::to_string(i);
      rts.push_back(std::move(rt));
    }
  }

  // A snapshot with the given ports (0 and/or 1) in one VPC; port p's queue 0 polled by worker p % workers.
  std::shared_ptr<const DatapathSnapshot> snapshot(std::set<int> present, unsigned workers, uint64_t gen) {
    auto cfg = std::make_shared<DataplaneConfig>();
    cfg->generation = gen;
    cfg->ports.resize(2);
    VpcConfig vpc;
    vpc.index = 0;
    vpc.gen = 1;
    vpc.id = "vpc";
    vpc.vni = 100;
    vpc.router_mac = MacAddr{{0x02, 0x76, 0x70, 0, 0, 100}};
    cfg->vpcs.push_back(vpc);
    auto snap = std::make_shared<DatapathSnapshot>();
    snap->rx.resize(workers);
    for (int p : present) {
      PortConfig& pc = cfg->ports[size_t(p)];
      pc.index = uint16_t(p);
      pc.vpc = 0;
      pc.mac = p == 0 ? kMacA : kMacB;
      pc.ips = {p == 0 ? kIpA : kIpB};
      pc.mtu = 1500;
      pc.rt = rts[size_t(p)];
      pc.features = default_features(pc);
      snap->rx[unsigned(p) % workers].push_back(RxQueueRef{uint16_t(p), 0});
    }
    build_vpc_tables(*cfg, cfg->vpcs[0], {kGw});
    snap->config = std::move(cfg);
    return snap;
  }
};

std::vector<uint8_t> frame_a_to_b() {
  return proto::FrameBuilder().eth(kMacA, kMacB).ipv4(kIpA, kIpB).udp(1000, 2000).payload_size(32).build();
}

bool wait_for(const std::function<bool()>& cond, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(1ms);
  }
  return cond();
}

std::set<std::string> thread_names() {
  std::set<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream f(e.path() / "comm");
    std::string name;
    std::getline(f, name);
    out.insert(name);
  }
  return out;
}

// The frames `port` transmits, collected until at least n arrived or 2 s passed.
template <class Port>
std::vector<std::vector<uint8_t>> drain_at_least(Port& port, size_t n) {
  std::vector<std::vector<uint8_t>> out;
  wait_for([&] {
    for (auto& f : port.drain_bytes()) out.push_back(std::move(f));
    return out.size() >= n;
  }, 2s);
  return out;
}

// Waits (bounded) until an adaptive worker started at least min_starts spells of polling and went back to sleeping
// after each of them.
bool wait_asleep(const Worker& w, uint64_t min_starts) {
  return wait_for([&] {
    const auto c = w.counters();
    return c.spin_starts >= min_starts && c.spin_stops == c.spin_starts;
  }, 5s);
}

TEST(Worker, ResolvesWorkerCount) {
  EXPECT_EQ(resolve_worker_count(3), 3u);
  EXPECT_EQ(resolve_worker_count(1000), kMaxWorkers);
  unsigned cores = std::thread::hardware_concurrency();
  EXPECT_EQ(resolve_worker_count(0), cores > 1 ? std::min(cores - 1, kMaxWorkers) : 1u);
}

// The CPUs (Cpus_allowed_list of /proc/self/task/TID/status, e.g. "0-1" or "1") of the thread named `name`; "" when
// there is no such thread.
std::string thread_cpus(const std::string& name) {
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(e.path() / "comm");
    std::string n;
    std::getline(comm, n);
    if (n != name) continue;
    std::ifstream status(e.path() / "status");
    for (std::string line; std::getline(status, line);) {
      if (line.rfind("Cpus_allowed_list:", 0) == 0) return line.substr(line.find_first_not_of(" \t", 18));
    }
  }
  return "";
}

// worker-cpus: each worker thread runs only on its CPU from before its loop (it has its name only then), and it
// still forwards; a CPU the process may not use, or one listed twice, is refused with a message naming it.
TEST(Worker, PinnedWorkersRunOnlyOnTheirCpu) {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  ASSERT_EQ(sched_getaffinity(0, sizeof allowed, &allowed), 0);
  std::vector<unsigned> mine;
  for (unsigned c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &allowed)) mine.push_back(c);
  ASSERT_FALSE(mine.empty());
  const unsigned last = mine.back();

  Fixture fx;
  DatapathPublisher pub(2);
  Worker w0(0, pub), w1(1, pub);
  w0.start(last);
  w1.start(mine.front());
  ASSERT_TRUE(wait_for([] { return !thread_cpus("vpcd-wk-0").empty() && !thread_cpus("vpcd-wk-1").empty(); }, 2s));
  EXPECT_EQ(thread_cpus("vpcd-wk-0"), std::to_string(last));
  EXPECT_EQ(thread_cpus("vpcd-wk-1"), std::to_string(mine.front()));
  EXPECT_EQ(w0.counters().cpu, int(last));  // /v1/stats workers[i].cpu
  uint64_t g = pub.publish(fx.snapshot({0, 1}, 2, pub.next_generation()));
  ASSERT_TRUE(pub.wait_acked(g, 2s));
  for (int i = 0; i < 3; ++i) fx.ports[0]->inject(frame_a_to_b());
  EXPECT_EQ(drain_at_least(*fx.ports[1], 3).size(), 3u);
  w0.stop();
  w1.stop();

  EXPECT_NO_THROW(check_worker_cpus({}));
  EXPECT_NO_THROW(check_worker_cpus(mine));
  unsigned foreign = 0;  // a CPU outside this process's affinity (the highest possible one when it has them all)
  while (foreign < CPU_SETSIZE - 1 && CPU_ISSET(foreign, &allowed)) ++foreign;
  try {
    check_worker_cpus({last, foreign});
    ADD_FAILURE() << "accepted CPU " << foreign;
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("CPU " + std::to_string(foreign) + " is not one vpcd may run on"),
              std::string::npos)
        << e.what();
  }
  try {
    check_worker_cpus({last, last});
    ADD_FAILURE() << "accepted CPU " << last << " twice";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("is listed twice"), std::string::npos) << e.what();
  }
  // Pinning a thread to a CPU the machine does not have fails in start(), which leaves no thread behind. (A CPU only
  // outside the process's taskset could still be set: check_worker_cpus is what refuses that.)
  const unsigned absent = unsigned(std::max(sysconf(_SC_NPROCESSORS_CONF), 1L));
  auto tasks = [] {
    return std::distance(std::filesystem::directory_iterator("/proc/self/task"), std::filesystem::directory_iterator());
  };
  Worker w2(0, pub);
  const auto before = tasks();
  EXPECT_THROW(w2.start(absent), std::system_error);
  EXPECT_EQ(tasks(), before);
  EXPECT_EQ(w2.counters().cpu, -1);
}

TEST(Worker, ForwardsBetweenPortsOwnedByDifferentWorkers) {
  Fixture fx;
  DatapathPublisher pub(2);
  Worker w0(0, pub), w1(1, pub);
  w0.start();
  w1.start();
  uint64_t g = pub.publish(fx.snapshot({0, 1}, 2, pub.next_generation()));
  ASSERT_TRUE(pub.wait_acked(g, 2s));
  EXPECT_EQ(w0.counters().snapshot_generation, g);
  EXPECT_EQ(w1.counters().snapshot_generation, g);
  auto names = thread_names();
  EXPECT_TRUE(names.count("vpcd-wk-0"));
  EXPECT_TRUE(names.count("vpcd-wk-1"));

  for (int i = 0; i < 5; ++i) fx.ports[0]->inject(frame_a_to_b());
  const auto out = drain_at_least(*fx.ports[1], 5);
  ASSERT_EQ(out.size(), 5u);
  EXPECT_EQ(out[0], frame_a_to_b());
  // The worker counts a batch after it flushed and released it: wait (bounded) for the count, not only the frames
  // (under ThreadSanitizer the frames were seen first).
  EXPECT_TRUE(wait_for([&] { return w0.counters().packets == 5; }, 2s)) << w0.counters().packets;
  EXPECT_GE(w0.counters().batches, 1u);
  EXPECT_GE(w0.counters().wakeups, 1u);
  EXPECT_EQ(w1.counters().packets, 0u);
  PortCounters in = fx.rts[0]->sum(), outc = fx.rts[1]->sum();
  EXPECT_EQ(in.rx_packets, 5u);
  EXPECT_EQ(outc.tx_packets, 5u);
  EXPECT_EQ(in.total_drops(), 0u);
  EXPECT_EQ(w0.epoll_errors() + w1.epoll_errors(), 0u);
  w0.stop();
  w1.stop();
}

TEST(Worker, CountsFramesTheKernelLostAtAFullRxRing) {
  Fixture fx;
  DatapathPublisher pub(1);
  Worker w0(0, pub);
  w0.start();
  uint64_t g = pub.publish(fx.snapshot({0, 1}, 1, pub.next_generation()));
  ASSERT_TRUE(pub.wait_acked(g, 2s));
  fx.ports[0]->lose_at_ring(7);
  fx.ports[1]->lose_at_ring(2);
  // Collected within the poll interval even while idle (the worker wakes from epoll every 100 ms at the latest).
  ASSERT_TRUE(wait_for([&] {
    return fx.rts[0]->sum().drops[size_t(DropReason::kRxRingFull)] == 7 &&
           fx.rts[1]->sum().drops[size_t(DropReason::kRxRingFull)] == 2;
  }, 2s));
  EXPECT_EQ(fx.rts[0]->sum().total_drops(), 7u);
  EXPECT_EQ(kDropReasonNames[size_t(DropReason::kRxRingFull)], "rx_ring_full");
  w0.stop();
}

TEST(Worker, StopsPollingAPortRemovedFromTheSnapshot) {
  Fixture fx;
  DatapathPublisher pub(2);
  Worker w0(0, pub), w1(1, pub, {BusyPoll::kOn});  // worker 1 busy-polls
  w0.start();
  w1.start();
  uint64_t g = pub.publish(fx.snapshot({0, 1}, 2, pub.next_generation()));
  ASSERT_TRUE(pub.wait_acked(g, 2s));
  g = pub.publish(fx.snapshot({0}, 2, pub.next_generation()));
  ASSERT_TRUE(pub.wait_acked(g, 2s));
  // Port 1 is gone: what it receives stays there.
  fx.ports[1]->inject(frame_a_to_b());
  std::this_thread::sleep_for(150ms);
  EXPECT_EQ(fx.ports[1]->rx_pending(), 1u);
  EXPECT_EQ(w1.counters().packets, 0u);
  EXPECT_EQ(pub.retired_count(), 0u);
  // Port 0 still polled; frames to the removed B are flooded to nobody (no other port in the VPC).
  fx.ports[0]->inject(frame_a_to_b());
  ASSERT_TRUE(wait_for([&] { return fx.rts[0]->sum().rx_packets == 1; }, 2s));
  EXPECT_EQ(fx.rts[1]->sum().tx_packets, 0u);
  w0.stop();
  w1.stop();
  // join() returns once the thread's tid is cleared, a moment before the kernel removes the task from
  // /proc/self/task: wait (bounded) for the names to go.
  EXPECT_TRUE(wait_for([] {
    const auto names = thread_names();
    return !names.count("vpcd-wk-0") && !names.count("vpcd-wk-1");
  }, 2s));
}

// A flush the kernel refused (EAGAIN/ENOBUFS) leaves the frame in the ring: the worker flushes again on its own, so
// the frame goes out once the port takes it, even though no further frame arrives.
TEST(Worker, RetriesARefusedFlushWithoutNewTraffic) {
  for (BusyPoll mode : {BusyPoll::kOff, BusyPoll::kOn, BusyPoll::kAdaptive}) {
    SCOPED_TRACE(busy_poll_name(mode));
    Fixture fx;
    DatapathPublisher pub(1);
    Worker w0(0, pub, {mode, 50});
    w0.set_tx_retry_limit(60s);  // never discarded in this test
    w0.start();
    uint64_t g = pub.publish(fx.snapshot({0, 1}, 1, pub.next_generation()));
    ASSERT_TRUE(pub.wait_acked(g, 2s));
    fx.ports[1]->set_refuse_flush(true);
    fx.ports[0]->inject(frame_a_to_b());
    ASSERT_TRUE(wait_for([&] { return fx.rts[1]->sum().tx_packets == 1; }, 2s));
    std::this_thread::sleep_for(30ms);  // several retries, all refused
    EXPECT_TRUE(fx.ports[1]->drain_bytes().empty());
    // adaptive: back to sleeping (with the 1 ms retry timeout) before the port takes frames again.
    if (mode == BusyPoll::kAdaptive) {
      ASSERT_TRUE(wait_asleep(w0, 1));
    }
    fx.ports[1]->set_refuse_flush(false);
    const auto out = drain_at_least(*fx.ports[1], 1);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0], frame_a_to_b());
    EXPECT_EQ(fx.rts[1]->sum().total_drops(), 0u);
    EXPECT_EQ(fx.ports[1]->tx_discarded(), 0u);
    w0.stop();
  }
}

// Frames a port keeps refusing are discarded after the retry limit and counted as tx_stalled on that port; the ring
// takes new frames afterwards.
TEST(Worker, DiscardsAndCountsFramesAPortKeepsRefusing) {
  Fixture fx;
  DatapathPublisher pub(1);
  Worker w0(0, pub);
  w0.set_tx_retry_limit(20ms);
  w0.start();
  uint64_t g = pub.publish(fx.snapshot({0, 1}, 1, pub.next_generation()));
  ASSERT_TRUE(pub.wait_acked(g, 2s));
  fx.ports[1]->set_refuse_flush(true);
  for (int i = 0; i < 3; ++i) fx.ports[0]->inject(frame_a_to_b());
  ASSERT_TRUE(wait_for([&] { return fx.rts[1]->sum().drops[size_t(DropReason::kTxStalled)] == 3; }, 2s));
  EXPECT_EQ(fx.ports[1]->tx_discarded(), 3u);
  EXPECT_TRUE(fx.ports[1]->drain_bytes().empty());
  EXPECT_EQ(kDropReasonNames[size_t(DropReason::kTxStalled)], "tx_stalled");
  fx.ports[1]->set_refuse_flush(false);
  fx.ports[0]->inject(frame_a_to_b());
  const auto out = drain_at_least(*fx.ports[1], 1);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(fx.rts[1]->sum().drops[size_t(DropReason::kTxStalled)], 3u);
  w0.stop();
}

// A port removed from the snapshot while its frames are still refused: the worker discards and counts them before it
// acks the snapshot without the port (so the port can be destroyed).
TEST(Worker, DiscardsPendingFramesOfARemovedPortBeforeItsAck) {
  Fixture fx;
  DatapathPublisher pub(1);
  Worker w0(0, pub);
  w0.set_tx_retry_limit(60s);
  w0.start();
  uint64_t g = pub.publish(fx.snapshot({0, 1}, 1, pub.next_generation()));
  ASSERT_TRUE(pub.wait_acked(g, 2s));
  fx.ports[1]->set_refuse_flush(true);
  fx.ports[0]->inject(frame_a_to_b());
  ASSERT_TRUE(wait_for([&] { return fx.rts[1]->sum().tx_packets == 1; }, 2s));
  g = pub.publish(fx.snapshot({0}, 1, pub.next_generation()));
  ASSERT_TRUE(pub.wait_acked(g, 2s));
  EXPECT_EQ(fx.ports[1]->tx_discarded(), 1u);
  EXPECT_EQ(fx.rts[1]->sum().drops[size_t(DropReason::kTxStalled)], 1u);
  w0.stop();
}

// Adaptive: frames make the worker poll without sleeping (at least one empty poll after the last frame), for a bounded
// time: then it blocks in epoll, and while nothing arrives it makes no further empty poll. (The 5 frames may arrive
// in more than one spell when this thread is descheduled between injections longer than the budget.)
TEST(Worker, AdaptivePollsABoundedTimeAfterFramesThenSleeps) {
  Fixture fx;
  DatapathPublisher pub(1);
  Worker w0(0, pub, {BusyPoll::kAdaptive, 1000});
  w0.start();
  uint64_t g = pub.publish(fx.snapshot({0, 1}, 1, pub.next_generation()));
  ASSERT_TRUE(pub.wait_acked(g, 2s));
  EXPECT_EQ(w0.counters().empty_polls, 0u);  // idle since start: asleep, never polled
  EXPECT_EQ(w0.counters().spin_starts, 0u);

  for (int i = 0; i < 5; ++i) fx.ports[0]->inject(frame_a_to_b());
  ASSERT_EQ(drain_at_least(*fx.ports[1], 5).size(), 5u);
  ASSERT_TRUE(wait_asleep(w0, 1)) << w0.counters().spin_starts << " " << w0.counters().spin_stops;
  const uint64_t empty = w0.counters().empty_polls, spells = w0.counters().spin_starts;
  EXPECT_GE(empty, spells);  // at least one empty poll ends each spell
  EXPECT_LE(spells, 5u);
  std::this_thread::sleep_for(300ms);  // three idle timeouts: the worker wakes, but does not poll without sleeping
  const auto c = w0.counters();
  EXPECT_EQ(c.empty_polls, empty);
  EXPECT_EQ(c.spin_starts, spells);
  EXPECT_EQ(c.spin_stops, spells);
  EXPECT_EQ(c.packets, 5u);
  EXPECT_EQ(w0.epoll_errors(), 0u);
  w0.stop();
}

// Adaptive: a sleeping worker is woken by a frame as before (and starts polling again), and by the publisher's
// eventfd (it acks a new snapshot at once; a snapshot is not traffic, so it does not start polling).
TEST(Worker, AdaptiveSleepingWorkerIsWokenByFramesAndSnapshots) {
  Fixture fx;
  DatapathPublisher pub(1);
  Worker w0(0, pub, {BusyPoll::kAdaptive, 50});
  w0.start();
  uint64_t g = pub.publish(fx.snapshot({0, 1}, 1, pub.next_generation()));
  ASSERT_TRUE(pub.wait_acked(g, 2s));
  for (uint64_t round = 1; round <= 3; ++round) {
    fx.ports[0]->inject(frame_a_to_b());
    const auto out = drain_at_least(*fx.ports[1], 1);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0], frame_a_to_b());
    ASSERT_TRUE(wait_asleep(w0, round));
  }
  const uint64_t empty = w0.counters().empty_polls;
  g = pub.publish(fx.snapshot({0, 1}, 1, pub.next_generation()));
  ASSERT_TRUE(pub.wait_acked(g, 2s));
  EXPECT_EQ(w0.counters().snapshot_generation, g);
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(w0.counters().spin_starts, 3u);
  EXPECT_EQ(w0.counters().empty_polls, empty);
  EXPECT_EQ(w0.counters().packets, 3u);
  w0.stop();
}

// off: the worker always sleeps when its queues are empty (no empty poll, no spell of polling), traffic or not. on:
// it never sleeps, idle or not (empty polls keep growing with no traffic at all), and has no spells to count.
TEST(Worker, BusyPollOffNeverPollsAndOnAlwaysPolls) {
  Fixture fx;
  DatapathPublisher pub(2);
  Worker off(0, pub, {BusyPoll::kOff, 50}), on(1, pub, {BusyPoll::kOn, 50});
  off.start();
  on.start();
  uint64_t g = pub.publish(fx.snapshot({0, 1}, 2, pub.next_generation()));  // port 0 on worker 0, port 1 on worker 1
  ASSERT_TRUE(pub.wait_acked(g, 2s));
  const uint64_t idle_polls = on.counters().empty_polls;
  EXPECT_TRUE(wait_for([&] { return on.counters().empty_polls > idle_polls + 100; }, 5s));
  for (int i = 0; i < 5; ++i) fx.ports[0]->inject(frame_a_to_b());  // worker 0 (off) forwards to port 1
  ASSERT_EQ(drain_at_least(*fx.ports[1], 5).size(), 5u);
  fx.ports[1]->inject(proto::FrameBuilder().eth(kMacB, kMacA).ipv4(kIpB, kIpA).udp(2000, 1000).payload_size(32).build());
  ASSERT_EQ(drain_at_least(*fx.ports[0], 1).size(), 1u);  // worker 1 (on) forwards to port 0
  std::this_thread::sleep_for(150ms);
  const auto c_off = off.counters(), c_on = on.counters();
  EXPECT_EQ(c_off.packets, 5u);
  EXPECT_EQ(c_off.empty_polls, 0u);
  EXPECT_EQ(c_off.spin_starts + c_off.spin_stops, 0u);
  EXPECT_EQ(c_on.packets, 1u);
  EXPECT_GT(c_on.empty_polls, idle_polls + 100);
  EXPECT_EQ(c_on.spin_starts + c_on.spin_stops, 0u);
  off.stop();
  on.stop();
}

}  // namespace
}  // namespace vpcd::dp
