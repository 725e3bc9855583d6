// ArpCache; behaviour and threading in arp_cache.h.
#include "datapath/tables/arp_cache.h"

namespace vpcd::dp {

bool ArpCache::lookup(Ipv4Addr ip, uint64_t now_ms, MacAddr* mac, bool* send_request) {
  auto it = entries_.find(ip.v);
  if (it == entries_.end()) {
    if (entries_.size() >= opt_.max_entries) {
      inc(counters_.table_full);
      return false;
    }
    Entry& e = entries_[ip.v];
    e.last_request_ms = now_ms;
    e.probes = 1;
    inc(counters_.misses);
    inc(counters_.requests);
    *send_request = true;
    return false;
  }
  Entry& e = it->second;
  switch (e.state) {
    case State::kReachable:
      if (now_ms - e.confirmed_ms < opt_.reachable_ms) break;
      e.state = State::kStale;
      e.probes = 0;
      e.last_request_ms = 0;
      [[fallthrough]];
    case State::kStale:
      if (e.probes == 0 || now_ms - e.last_request_ms >= opt_.retry_ms) {
        if (e.probes < opt_.max_probes) {
          ++e.probes;
          e.last_request_ms = now_ms;
          inc(counters_.requests);
          *send_request = true;
        }
      }
      break;
    case State::kIncomplete:
    case State::kFailed:
      inc(counters_.misses);
      return false;
  }
  inc(counters_.hits);
  *mac = e.mac;
  return true;
}

ArpCache::Result ArpCache::resolve(Ipv4Addr ip, uint64_t now_ms, uint32_t token, MacAddr* mac, bool* send_request) {
  if (lookup(ip, now_ms, mac, send_request)) return Result::kHit;
  auto it = entries_.find(ip.v);
  if (it == entries_.end()) return Result::kQueueFull;  // table full: nowhere to queue
  Entry& e = it->second;
  if (e.state == State::kFailed) return Result::kFailed;
  if (e.queue.size() >= opt_.queue_per_entry || queued_total_ >= opt_.queue_total) {
    inc(counters_.queue_full);
    return Result::kQueueFull;
  }
  e.queue.push_back(token);
  ++queued_total_;
  inc(counters_.queued);
  return Result::kQueued;
}

void ArpCache::learn(Ipv4Addr ip, const MacAddr& mac, uint64_t now_ms, bool create, std::vector<uint32_t>* released) {
  if (mac.is_multicast() || mac.is_zero() || ip.v == 0) return;
  auto it = entries_.find(ip.v);
  if (it == entries_.end()) {
    if (!create) return;
    if (entries_.size() >= opt_.max_entries) {
      inc(counters_.table_full);
      return;
    }
    it = entries_.emplace(ip.v, Entry{}).first;
  }
  Entry& e = it->second;
  e.state = State::kReachable;
  e.mac = mac;
  e.confirmed_ms = now_ms;
  e.probes = 0;
  inc(counters_.learned);
  if (!e.queue.empty()) {
    released->insert(released->end(), e.queue.begin(), e.queue.end());
    inc(counters_.released, e.queue.size());
    queued_total_ -= e.queue.size();
    e.queue.clear();
  }
}

void ArpCache::fail(Entry& e, uint64_t now_ms, std::vector<uint32_t>* failed) {
  e.state = State::kFailed;
  e.failed_ms = now_ms;
  inc(counters_.failed);
  if (!e.queue.empty()) {
    failed->insert(failed->end(), e.queue.begin(), e.queue.end());
    inc(counters_.failed_frames, e.queue.size());
    queued_total_ -= e.queue.size();
    e.queue.clear();
  }
}

void ArpCache::tick(uint64_t now_ms, std::vector<Ipv4Addr>* requests, std::vector<uint32_t>* failed) {
  for (auto it = entries_.begin(); it != entries_.end();) {
    Entry& e = it->second;
    bool erase = false;
    switch (e.state) {
      case State::kIncomplete:
        if (now_ms - e.last_request_ms >= opt_.retry_ms) {
          if (e.probes >= opt_.max_probes) {
            fail(e, now_ms, failed);
          } else {
            ++e.probes;
            e.last_request_ms = now_ms;
            inc(counters_.requests);
            requests->push_back(Ipv4Addr{it->first});
          }
        }
        break;
      case State::kStale:
        // Refreshes go out from lookup() while traffic flows; unanswered ones end the entry.
        if (e.probes >= opt_.max_probes && now_ms - e.last_request_ms >= opt_.retry_ms) erase = true;
        // An idle stale entry is dropped after another reachable period: nothing uses it.
        if (now_ms - e.confirmed_ms >= 2ull * opt_.reachable_ms) erase = true;
        break;
      case State::kReachable:
        if (now_ms - e.confirmed_ms >= opt_.reachable_ms) {
          e.state = State::kStale;
          e.probes = 0;
        }
        break;
      case State::kFailed:
        if (now_ms - e.failed_ms >= opt_.failed_hold_ms) erase = true;
        break;
    }
    it = erase ? entries_.erase(it) : std::next(it);
  }
}

void ArpCache::clear(std::vector<uint32_t>* dropped) {
  for (auto& [ip, e] : entries_) dropped->insert(dropped->end(), e.queue.begin(), e.queue.end());
  entries_.clear();
  queued_total_ = 0;
}

void ArpCache::unconfirmed(std::vector<std::pair<Ipv4Addr, uint64_t>>* out) const {
  for (const auto& [ip, e] : entries_) {
    if (e.state != State::kReachable) out->emplace_back(Ipv4Addr{ip}, e.confirmed_ms);
  }
}

bool ArpCache::state(Ipv4Addr ip, State* s, MacAddr* mac) const {
  auto it = entries_.find(ip.v);
  if (it == entries_.end()) return false;
  *s = it->second.state;
  if (mac) *mac = it->second.mac;
  return true;
}

}  // namespace vpcd::dp
