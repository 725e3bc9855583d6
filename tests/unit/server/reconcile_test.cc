// Unit tests for the reconciler (server/reconcile) against a fake store and a fake datapath.
#include "server/reconcile/reconciler.h"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <set>
#include <stdexcept>
#include <vector>

#include "datapath/pipeline/stage.h"
#include "server/reconcile/stats_render.h"

namespace vpcd::reconcile {
namespace {

using namespace std::chrono_literals;

dp::NicSpec nic(const std::string& id) {
  dp::NicSpec n;
  n.id = id;
  n.vpc_id = "vpc";
  n.subnet_id = "subnet";
  n.backend = dp::NetnsBackend{"ns-" + id, "eth0"};
  return n;
}

class FakeStore : public DesiredStateSource {
 public:
  dp::DesiredState load_desired_state() override {
    std::lock_guard lk(mu);
    ++loads;
    if (fail_loads > 0) {
      --fail_loads;
      throw std::runtime_error("database is locked");
    }
    return desired;
  }
  void set_nic_state(const std::string& id, const dp::NicState& st) override {
    std::lock_guard lk(mu);
    writes.emplace_back(id, st);
  }
  void set_uplink_state(const std::string& id, const dp::NicState& st) override {
    std::lock_guard lk(mu);
    uplink_writes.emplace_back(id, st);
  }
  void set_desired(dp::DesiredState d) {
    std::lock_guard lk(mu);
    desired = std::move(d);
  }
  std::vector<std::pair<std::string, dp::NicState>> take_writes() {
    std::lock_guard lk(mu);
    return std::exchange(writes, {});
  }
  std::vector<std::pair<std::string, dp::NicState>> take_uplink_writes() {
    std::lock_guard lk(mu);
    return std::exchange(uplink_writes, {});
  }

  std::mutex mu;
  dp::DesiredState desired;
  int fail_loads = 0;
  int loads = 0;
  std::vector<std::pair<std::string, dp::NicState>> writes;
  std::vector<std::pair<std::string, dp::NicState>> uplink_writes;
};

// Reports every NIC up, except those listed in `broken` (error with a detail). Can be made to block in apply().
class FakeDatapath : public DatapathTarget {
 public:
  std::map<std::string, dp::NicState> apply(const dp::DesiredState& d) override {
    std::unique_lock lk(mu);
    ++applies;
    entered_cv.notify_all();
    gate_cv.wait(lk, [&] { return open; });
    std::map<std::string, dp::NicState> out;
    for (const auto& n : d.nics) {
      dp::NicState st;
      if (broken.count(n.id)) {
        st.status = dp::NicStatus::kError;
        st.detail = "namespace: permission denied";
      } else {
        st.status = dp::NicStatus::kUp;
      }
      st.host_ifname = "v" + n.id;
      out[n.id] = st;
    }
    out["ghost"] = dp::NicState{};  // a NIC the store does not have: never written back
    uplinks.clear();
    for (const auto& u : d.uplinks) uplinks.push_back(u.id);
    return out;
  }
  // Every uplink of the last apply() up, except those in `broken_uplinks` (error), plus one the store does not have.
  std::map<std::string, dp::NicState> uplink_states() override {
    std::lock_guard lk(mu);
    std::map<std::string, dp::NicState> out;
    for (const auto& id : uplinks) {
      dp::NicState st;
      st.host_ifname = "up-" + id;
      if (broken_uplinks.count(id)) {
        st.status = dp::NicStatus::kError;
        st.detail = "uplink interface up-" + id + " does not exist";
      } else {
        st.status = dp::NicStatus::kUp;
      }
      out[id] = st;
    }
    out["ghost-uplink"] = dp::NicState{};
    return out;
  }
  void remove_stale_os_objects() override {
    std::lock_guard lk(mu);
    stale_removed_after_apply = applies;
  }
  void set_open(bool o) {
    {
      std::lock_guard lk(mu);
      open = o;
    }
    gate_cv.notify_all();
  }
  int apply_count() {
    std::lock_guard lk(mu);
    return applies;
  }
  bool wait_entered(int n, std::chrono::milliseconds t) {
    std::unique_lock lk(mu);
    return entered_cv.wait_for(lk, t, [&] { return applies >= n; });
  }

  std::mutex mu;
  std::condition_variable gate_cv, entered_cv;
  bool open = true;
  int applies = 0;
  int stale_removed_after_apply = -1;
  std::set<std::string> broken;
  std::set<std::string> broken_uplinks;
  std::vector<std::string> uplinks;  // ids of the last apply()
};

// One state written back: for object `id`, with `status`.
void expect_write(const std::pair<std::string, dp::NicState>& w, const std::string& id, dp::NicStatus status) {
  EXPECT_EQ(w.first, id);
  EXPECT_EQ(w.second.status, status);
}

TEST(Reconciler, StartAppliesThenRemovesStaleAndWritesStates) {
  FakeStore store;
  FakeDatapath dpth;
  store.desired.nics = {nic("a"), nic("b")};
  dpth.broken = {"b"};
  Reconciler r(store, dpth, {100ms, 0ms});
  ASSERT_TRUE(r.start());
  EXPECT_EQ(dpth.applies, 1);
  EXPECT_EQ(dpth.stale_removed_after_apply, 1);
  auto w = store.take_writes();
  ASSERT_EQ(w.size(), 2u);
  expect_write(w[0], "a", dp::NicStatus::kUp);
  expect_write(w[1], "b", dp::NicStatus::kError);
  EXPECT_EQ(w[1].second.detail, "namespace: permission denied");
  r.stop();
}

TEST(Reconciler, WritesOnlyChangedStates) {
  FakeStore store;
  FakeDatapath dpth;
  store.desired.nics = {nic("a"), nic("b")};
  Reconciler r(store, dpth, {100ms, 0ms});
  ASSERT_TRUE(r.start());
  EXPECT_EQ(store.take_writes().size(), 2u);

  r.notify();
  ASSERT_TRUE(r.wait_idle(5s));
  EXPECT_TRUE(store.take_writes().empty());  // nothing changed

  {
    std::lock_guard lk(dpth.mu);
    dpth.broken = {"a"};
  }
  r.notify();
  ASSERT_TRUE(r.wait_idle(5s));
  auto w = store.take_writes();
  ASSERT_EQ(w.size(), 1u);
  expect_write(w[0], "a", dp::NicStatus::kError);

  // A NIC removed and re-created with the same id gets its state written again.
  store.set_desired({{}, {nic("b")}});
  r.notify();
  ASSERT_TRUE(r.wait_idle(5s));
  EXPECT_TRUE(store.take_writes().empty());
  store.set_desired({{}, {nic("a"), nic("b")}});
  r.notify();
  ASSERT_TRUE(r.wait_idle(5s));
  w = store.take_writes();
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].first, "a");
  EXPECT_EQ(r.stats().state_writes, 4u);
}

// Uplink states are written back like NIC states: once, again only when they change, never for an uplink the store
// no longer has (the fake datapath also reports "ghost-uplink"), and again after an uplink is removed and re-added.
TEST(Reconciler, WritesUplinkStatesWhenTheyChange) {
  FakeStore store;
  FakeDatapath dpth;
  dp::UplinkSpec u1, u2;
  u1.id = "u1";
  u2.id = "u2";
  store.desired.uplinks = {u1, u2};
  dpth.broken_uplinks = {"u2"};
  Reconciler r(store, dpth, {100ms, 0ms});
  ASSERT_TRUE(r.start());
  auto w = store.take_uplink_writes();
  ASSERT_EQ(w.size(), 2u);
  expect_write(w[0], "u1", dp::NicStatus::kUp);
  expect_write(w[1], "u2", dp::NicStatus::kError);
  EXPECT_EQ(w[1].second.detail, "uplink interface up-u2 does not exist");

  r.notify();
  ASSERT_TRUE(r.wait_idle(5s));
  EXPECT_TRUE(store.take_uplink_writes().empty());  // nothing changed
  {
    std::lock_guard lk(dpth.mu);
    dpth.broken_uplinks.clear();  // the interface appeared
  }
  dp::DesiredState d;
  d.uplinks = {u2};
  store.set_desired(d);  // u1 removed
  r.notify();
  ASSERT_TRUE(r.wait_idle(5s));
  d.uplinks = {u1, u2};
  store.set_desired(d);  // and added again: written again
  r.notify();
  ASSERT_TRUE(r.wait_idle(5s));
  w = store.take_uplink_writes();
  ASSERT_EQ(w.size(), 2u);
  expect_write(w[0], "u2", dp::NicStatus::kUp);
  expect_write(w[1], "u1", dp::NicStatus::kUp);
  EXPECT_EQ(r.stats().state_writes, 4u);
  r.stop();
}

TEST(Reconciler, NotificationsDuringAPassCoalesceIntoOne) {
  FakeStore store;
  FakeDatapath dpth;
  store.desired.nics = {nic("a")};
  Reconciler r(store, dpth, {100ms, 0ms});
  ASSERT_TRUE(r.start());
  ASSERT_EQ(dpth.apply_count(), 1);

  dpth.set_open(false);
  r.notify();
  ASSERT_TRUE(dpth.wait_entered(2, 5s));  // pass 2 is blocked inside apply()
  for (int i = 0; i < 100; ++i) r.notify();
  EXPECT_FALSE(r.wait_idle(50ms));  // pass 2 has not finished, and 100 more are owed
  dpth.set_open(true);
  ASSERT_TRUE(r.wait_idle(5s));
  EXPECT_EQ(dpth.apply_count(), 3);  // pass 2 and exactly one more for the 100 notifications
  const auto s = r.stats();
  EXPECT_EQ(s.notifications, 101u);
  EXPECT_EQ(s.passes, 3u);
  EXPECT_GT(s.max_notify_to_applied_us, 0u);
  r.stop();
  EXPECT_EQ(dpth.apply_count(), 3);
}

TEST(Reconciler, FailedLoadsAreRetried) {
  FakeStore store;
  FakeDatapath dpth;
  store.desired.nics = {nic("a")};
  store.fail_loads = 2;
  Reconciler r(store, dpth, {10ms, 0ms});
  EXPECT_FALSE(r.start());  // first pass failed: no stale clean-up on an unknown desired state
  r.notify();
  ASSERT_TRUE(r.wait_idle(5s));
  EXPECT_EQ(dpth.apply_count(), 1);
  EXPECT_EQ(dpth.stale_removed_after_apply, 1);  // after the first successful apply
  const auto s = r.stats();
  EXPECT_EQ(s.failed_passes, 2u);
  EXPECT_EQ(s.last_error, "database is locked");
  EXPECT_EQ(store.take_writes().size(), 1u);
}

TEST(Reconciler, PeriodicResyncWithoutNotify) {
  FakeStore store;
  FakeDatapath dpth;
  Reconciler r(store, dpth, {10ms, 20ms});
  ASSERT_TRUE(r.start());
  ASSERT_TRUE(dpth.wait_entered(3, 5s));
  r.stop();
  const int n = dpth.apply_count();
  std::this_thread::sleep_for(60ms);
  EXPECT_EQ(dpth.apply_count(), n);  // stopped means stopped
}

TEST(StatsRender, JsonAndMetrics) {
  dp::Stats s;
  dp::PortCounters c;
  c.rx_packets = 5;
  c.tx_bytes = 700;
  c.drops[size_t(dp::DropReason::kSpoofedSourceIp)] = 2;
  s.nics["n1"] = c;
  s.totals = c;
  s.workers.resize(2);
  s.workers[1].packets = 9;
  s.workers[1].icmp_rate_limited = 3;
  s.workers[1].pool_exhausted = 4;
  s.workers[1].tcp_coalesced_frames = 5;
  s.workers[1].tcp_coalesced_segments = 90;
  s.workers[1].empty_polls = 1234;
  s.workers[1].spin_starts = 7;
  s.workers[1].spin_stops = 6;
  s.workers[1].cpu = 3;
  s.workers[1].stage_packets.assign(dp::kStageCount, 0);
  s.workers[1].stage_packets[size_t(dp::Next::kL2Switch)] = 8;
  ReconcilerStats r;
  r.passes = 4;
  EXPECT_EQ(nic_stats_json(s, "n1").value(),
            R"({"drops":{"spoofed_source_ip":2},"rx_bytes":0,"rx_packets":5,"tx_bytes":700,"tx_packets":0})");
  EXPECT_FALSE(nic_stats_json(s, "n2").has_value());
  const auto j = stats_json(s, r);
  EXPECT_NE(j.find(R"("passes":4)"), std::string::npos);
  EXPECT_NE(j.find(R"("icmp_rate_limited":3)"), std::string::npos);
  EXPECT_NE(j.find(R"("pool_exhausted":4)"), std::string::npos);
  EXPECT_NE(j.find(R"("tcp_coalesced_frames":5)"), std::string::npos);
  EXPECT_NE(j.find(R"("tcp_coalesced_segments":90)"), std::string::npos);
  EXPECT_NE(j.find(R"("empty_polls":1234)"), std::string::npos);
  EXPECT_NE(j.find(R"("spin_starts":7)"), std::string::npos);
  EXPECT_NE(j.find(R"("spin_stops":6)"), std::string::npos);
  EXPECT_NE(j.find(R"("cpu":3)"), std::string::npos) << j;
  EXPECT_NE(j.find(R"("cpu":null)"), std::string::npos) << j;  // worker 0: not pinned
  EXPECT_NE(j.find(R"("stage_packets":{"l2-switch":8})"), std::string::npos) << j;
  const auto m = metrics_text(s, r);
  EXPECT_NE(m.find("vpcd_nic_rx_packets_total{nic=\"n1\"} 5\n"), std::string::npos);
  EXPECT_NE(m.find("vpcd_nic_drops_total{nic=\"n1\",reason=\"spoofed_source_ip\"} 2\n"), std::string::npos);
  EXPECT_NE(m.find("vpcd_worker_packets_total{worker=\"1\"} 9\n"), std::string::npos);
  EXPECT_NE(m.find("vpcd_worker_icmp_rate_limited_total{worker=\"1\"} 3\n"), std::string::npos);
  EXPECT_NE(m.find("# TYPE vpcd_worker_icmp_rate_limited_total counter\n"), std::string::npos);
  EXPECT_NE(m.find("vpcd_worker_pool_exhausted_total{worker=\"1\"} 4\n"), std::string::npos);
  EXPECT_NE(m.find("vpcd_worker_tcp_coalesced_segments_total{worker=\"1\"} 90\n"), std::string::npos);
  EXPECT_NE(m.find("vpcd_worker_empty_polls_total{worker=\"1\"} 1234\n"), std::string::npos);
  EXPECT_NE(m.find("# TYPE vpcd_worker_empty_polls_total counter\n"), std::string::npos);
  EXPECT_NE(m.find("vpcd_worker_spin_starts_total{worker=\"1\"} 7\n"), std::string::npos);
  EXPECT_NE(m.find("vpcd_worker_spin_stops_total{worker=\"1\"} 6\n"), std::string::npos);
  EXPECT_NE(m.find("vpcd_stage_packets_total{worker=\"1\",stage=\"l2-switch\"} 8\n"), std::string::npos) << m;
  EXPECT_NE(m.find("vpcd_reconcile_passes_total 4\n"), std::string::npos);
  EXPECT_NE(m.find("# TYPE vpcd_nic_tx_bytes_total counter\n"), std::string::npos);
}

}  // namespace
}  // namespace vpcd::reconcile
