// Counter bookkeeping for the live views: normalises GET /v1/stats and GET /v1/nics/ID/stats into one shape, keeps a
// bounded history of samples per object and turns cumulative counters into rates. Pure; tested with node --test.

const kCounterKeys = ['rx_packets', 'rx_bytes', 'tx_packets', 'tx_bytes'];

function num(v) {
  const n = typeof v === 'string' ? Number(v) : v;
  return Number.isFinite(n) && n >= 0 ? n : 0;
}

// Any counters object -> {rx_packets, rx_bytes, tx_packets, tx_bytes, drops: {reason: n}}.
export function normalize_counters(raw) {
  const out = { rx_packets: 0, rx_bytes: 0, tx_packets: 0, tx_bytes: 0, drops: {} };
  if (!raw || typeof raw !== 'object') return out;
  for (const k of kCounterKeys) out[k] = num(raw[k]);
  const drops = raw.drops;
  if (drops && typeof drops === 'object' && !Array.isArray(drops)) {
    for (const [reason, n] of Object.entries(drops)) out.drops[reason] = num(n);
  } else if (Array.isArray(drops)) {
    for (const d of drops) if (d && typeof d.reason === 'string') out.drops[d.reason] = num(d.count ?? d.value);
  } else if (Number.isFinite(drops)) {
    out.drops.total = num(drops);
  }
  return out;
}

export function total_drops(counters) {
  return Object.values(counters?.drops || {}).reduce((a, b) => a + b, 0);
}

// A collection in /v1/stats may be a list of objects with an id/ifname, or a map keyed by id.
function keyed(coll, keys) {
  const out = new Map();
  if (Array.isArray(coll)) {
    for (const item of coll) {
      if (!item || typeof item !== 'object') continue;
      const key = keys.map((k) => item[k]).find((v) => typeof v === 'string' && v);
      if (key) out.set(key, { ...normalize_counters(item), raw: item });
    }
  } else if (coll && typeof coll === 'object') {
    for (const [key, item] of Object.entries(coll)) out.set(key, { ...normalize_counters(item), raw: item });
  }
  return out;
}

// GET /v1/stats -> {nics: Map, uplinks: Map, tunnels: Map, workers: [], totals, drops: {reason: n}, total_drops}.
// vpcd sends {"totals": {...}, "nics": {"ID": {...}}, "workers": [...]}; the box-wide drops are totals.drops (or a
// top-level "drops") when present, else the sum over NICs, uplinks and workers.
export function normalize_box_stats(json) {
  const j = json && typeof json === 'object' ? json : {};
  const nics = keyed(j.nics, ['id', 'nic_id']);
  const uplinks = keyed(j.uplinks, ['id', 'uplink_id', 'ifname']);
  // Per remote VTEP of a VPC: {"VPC id/underlay IP": {..., vpc_id, remote_ip}}.
  const tunnels = keyed(j.tunnels, ['key']);
  const workers = Array.isArray(j.workers) ? j.workers.map((w) => ({ ...normalize_counters(w), raw: w })) : [];
  const totals = j.totals && typeof j.totals === 'object' ? normalize_counters(j.totals) : null;
  let drops = {};
  if (totals) {
    drops = totals.drops;
  } else if (j.drops && typeof j.drops === 'object') {
    drops = normalize_counters({ drops: j.drops }).drops;
  } else {
    for (const c of [...nics.values(), ...uplinks.values(), ...workers]) {
      for (const [r, n] of Object.entries(c.drops)) drops[r] = (drops[r] || 0) + n;
    }
  }
  return { nics, uplinks, tunnels, workers, totals, drops,
    total_drops: Object.values(drops).reduce((a, b) => a + b, 0) };
}

// Samples of one object's counters over time; rates between consecutive samples. A counter that goes down (the
// object was recreated, the daemon restarted) restarts the series instead of giving a negative rate.
export class CounterHistory {
  constructor(capacity = 60) {
    this.capacity_ = capacity;
    this.samples_ = [];  // {t: ms, c: counters}
    this.rates_ = [];    // {t, rx_pps, tx_pps, rx_bps, tx_bps, drops_ps, drops: {reason: per s}}
  }

  push(t_ms, counters) {
    const c = normalize_counters(counters);
    const prev = this.samples_[this.samples_.length - 1];
    if (prev && t_ms > prev.t) {
      const dt = (t_ms - prev.t) / 1000;
      const went_back = kCounterKeys.some((k) => c[k] < prev.c[k]) || total_drops(c) < total_drops(prev.c);
      if (went_back) {
        this.rates_ = [];
        this.samples_ = [];
      } else {
        const drops = {};
        for (const [r, n] of Object.entries(c.drops)) {
          const d = (n - (prev.c.drops[r] || 0)) / dt;
          if (d > 0) drops[r] = d;
        }
        this.rates_.push({
          t: t_ms,
          rx_pps: (c.rx_packets - prev.c.rx_packets) / dt,
          tx_pps: (c.tx_packets - prev.c.tx_packets) / dt,
          rx_bps: (c.rx_bytes - prev.c.rx_bytes) / dt,
          tx_bps: (c.tx_bytes - prev.c.tx_bytes) / dt,
          drops_ps: Object.values(drops).reduce((a, b) => a + b, 0),
          drops,
        });
        if (this.rates_.length > this.capacity_) this.rates_.shift();
      }
    } else if (prev && t_ms <= prev.t) {
      return;
    }
    this.samples_.push({ t: t_ms, c });
    if (this.samples_.length > this.capacity_ + 1) this.samples_.shift();
  }

  latest() { return this.samples_.length ? this.samples_[this.samples_.length - 1].c : null; }
  latest_rate() { return this.rates_.length ? this.rates_[this.rates_.length - 1] : null; }
  series(key) { return this.rates_.map((r) => r[key]); }

  // Drops counted in the last window_ms (or since the first sample when the history is shorter): {count, span_ms}.
  drops_within(window_ms) {
    if (this.samples_.length === 0) return { count: 0, span_ms: 0 };
    const last = this.samples_[this.samples_.length - 1];
    let first = last;
    for (let i = this.samples_.length - 1; i >= 0; i--) {
      if (last.t - this.samples_[i].t > window_ms) break;
      first = this.samples_[i];
    }
    return { count: Math.max(0, total_drops(last.c) - total_drops(first.c)), span_ms: last.t - first.t };
  }
}

// Histories outlive the page that shows them (the dashboard is one document), so a chart is not empty again every
// time the user comes back to a page. Keyed by object id ("box" for the whole box).
const kHistories = new Map();
const kMaxHistories = 2000;

export function history_for(key, capacity = 30) {
  let hist = kHistories.get(key);
  if (!hist) {
    if (kHistories.size >= kMaxHistories) kHistories.delete(kHistories.keys().next().value);
    hist = new CounterHistory(capacity);
    kHistories.set(key, hist);
  }
  return hist;
}
