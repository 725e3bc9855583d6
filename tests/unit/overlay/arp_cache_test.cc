// ArpCache (datapath/tables/arp_cache): resolution with queueing, retries, failure, aging/refresh and bounds.
#include "datapath/tables/arp_cache.h"

#include <gtest/gtest.h>

#include <vector>

namespace vpcd::dp {
namespace {

const Ipv4Addr kGw = *Ipv4Addr::parse("192.0.2.254");
const Ipv4Addr kPeer = *Ipv4Addr::parse("192.0.2.2");
const MacAddr kGwMac{{0x02, 0xbb, 0, 0, 0, 0xfe}};
const MacAddr kGwMac2{{0x02, 0xbb, 0, 0, 0, 0xfd}};

ArpCache::Options opts() {
  ArpCache::Options o;
  o.reachable_ms = 10000;
  o.retry_ms = 1000;
  o.max_probes = 3;
  o.failed_hold_ms = 3000;
  o.queue_per_entry = 4;
  o.queue_total = 6;
  o.max_entries = 4;
  return o;
}

TEST(ArpCache, QueuesThenReleasesOnReply) {
  ArpCache c(opts());
  MacAddr m;
  bool req = false;
  EXPECT_EQ(c.resolve(kGw, 100, 1, &m, &req), ArpCache::Result::kQueued);
  EXPECT_TRUE(req);
  req = false;
  EXPECT_EQ(c.resolve(kGw, 150, 2, &m, &req), ArpCache::Result::kQueued);
  EXPECT_FALSE(req);  // one request per retry interval
  EXPECT_EQ(c.queued_total(), 2u);
  std::vector<uint32_t> released;
  c.learn(kGw, kGwMac, 200, true, &released);
  EXPECT_EQ(released, (std::vector<uint32_t>{1, 2}));
  EXPECT_EQ(c.queued_total(), 0u);
  EXPECT_EQ(c.resolve(kGw, 300, 3, &m, &req), ArpCache::Result::kHit);
  EXPECT_EQ(m, kGwMac);
  EXPECT_EQ(c.counters().requests.load(), 1u);
  EXPECT_EQ(c.counters().released.load(), 2u);
}

TEST(ArpCache, RetriesThenFailsAndDropsQueue) {
  ArpCache c(opts());
  MacAddr m;
  bool req = false;
  ASSERT_EQ(c.resolve(kGw, 0, 9, &m, &req), ArpCache::Result::kQueued);
  std::vector<Ipv4Addr> reqs;
  std::vector<uint32_t> failed;
  c.tick(500, &reqs, &failed);
  EXPECT_TRUE(reqs.empty());
  c.tick(1000, &reqs, &failed);
  c.tick(2000, &reqs, &failed);
  EXPECT_EQ(reqs.size(), 2u);  // probes 2 and 3
  EXPECT_TRUE(failed.empty());
  c.tick(3000, &reqs, &failed);
  EXPECT_EQ(failed, std::vector<uint32_t>{9});
  ArpCache::State s;
  ASSERT_TRUE(c.state(kGw, &s));
  EXPECT_EQ(s, ArpCache::State::kFailed);
  EXPECT_EQ(c.resolve(kGw, 3100, 10, &m, &req), ArpCache::Result::kFailed);  // held: no broadcast storm
  c.tick(6000, &reqs, &failed);
  EXPECT_FALSE(c.state(kGw, &s));  // hold over: the next frame starts again
  EXPECT_EQ(c.counters().failed.load(), 1u);
  EXPECT_EQ(c.counters().failed_frames.load(), 1u);
}

TEST(ArpCache, QueueBounds) {
  ArpCache c(opts());
  MacAddr m;
  bool req;
  for (uint32_t t = 0; t < 4; ++t) EXPECT_EQ(c.resolve(kGw, 0, t, &m, &req), ArpCache::Result::kQueued);
  EXPECT_EQ(c.resolve(kGw, 0, 4, &m, &req), ArpCache::Result::kQueueFull);  // per entry
  for (uint32_t t = 5; t < 7; ++t) EXPECT_EQ(c.resolve(kPeer, 0, t, &m, &req), ArpCache::Result::kQueued);
  EXPECT_EQ(c.resolve(kPeer, 0, 7, &m, &req), ArpCache::Result::kQueueFull);  // in total
  EXPECT_EQ(c.counters().queue_full.load(), 2u);
  std::vector<uint32_t> dropped;
  c.clear(&dropped);
  EXPECT_EQ(dropped.size(), 6u);
  EXPECT_EQ(c.queued_total(), 0u);
}

TEST(ArpCache, TableBound) {
  ArpCache c(opts());
  MacAddr m;
  bool req;
  for (uint32_t i = 1; i <= 4; ++i) c.resolve(Ipv4Addr{0xc0000200 + i}, 0, i, &m, &req);
  EXPECT_EQ(c.resolve(Ipv4Addr{0xc0000299}, 0, 99, &m, &req), ArpCache::Result::kQueueFull);
  EXPECT_EQ(c.counters().table_full.load(), 1u);
}

TEST(ArpCache, StaleEntryStillUsedAndRefreshed) {
  ArpCache c(opts());
  std::vector<uint32_t> rel;
  c.learn(kGw, kGwMac, 0, true, &rel);
  MacAddr m;
  bool req = false;
  EXPECT_TRUE(c.lookup(kGw, 9999, &m, &req));
  EXPECT_FALSE(req);
  EXPECT_TRUE(c.lookup(kGw, 10000, &m, &req));  // stale now: used, and a refresh goes out
  EXPECT_TRUE(req);
  EXPECT_EQ(m, kGwMac);
  req = false;
  EXPECT_TRUE(c.lookup(kGw, 10500, &m, &req));
  EXPECT_FALSE(req);  // one refresh per retry interval
  c.learn(kGw, kGwMac2, 10600, false, &rel);  // a reply (even unsolicited) updates an existing entry
  EXPECT_TRUE(c.lookup(kGw, 10700, &m, &req));
  EXPECT_EQ(m, kGwMac2);
  ArpCache::State s;
  ASSERT_TRUE(c.state(kGw, &s));
  EXPECT_EQ(s, ArpCache::State::kReachable);
}

TEST(ArpCache, UnansweredRefreshesEndTheEntry) {
  ArpCache c(opts());
  std::vector<uint32_t> rel, failed;
  std::vector<Ipv4Addr> reqs;
  c.learn(kGw, kGwMac, 0, true, &rel);
  MacAddr m;
  bool req;
  for (uint64_t t = 10000; t <= 12000; t += 1000) c.lookup(kGw, t, &m, &req);
  c.tick(13000, &reqs, &failed);
  ArpCache::State s;
  EXPECT_FALSE(c.state(kGw, &s));
}

TEST(ArpCache, LearnWithoutCreateIgnoresStrangers) {
  ArpCache c(opts());
  std::vector<uint32_t> rel;
  c.learn(kPeer, kGwMac, 0, false, &rel);
  EXPECT_EQ(c.size(), 0u);
  c.learn(kPeer, kBroadcastMac, 0, true, &rel);  // never a multicast MAC
  EXPECT_EQ(c.size(), 0u);
}

}  // namespace
}  // namespace vpcd::dp
