// Pure formatting helpers for the dashboard (numbers, rates, times, ids). No DOM; tested with node --test.

const kSiUnits = ['', 'k', 'M', 'G', 'T', 'P'];

// 1234567 -> "1.23 M" (SI, three significant digits).
export function format_si(value, unit = '') {
  if (!Number.isFinite(value)) return '-';
  let v = Math.abs(value);
  let i = 0;
  while (v >= 1000 && i < kSiUnits.length - 1) { v /= 1000; i++; }
  const digits = i === 0 && Number.isInteger(v) ? 0 : v >= 100 ? 0 : v >= 10 ? 1 : 2;
  const sign = value < 0 ? '-' : '';
  const sep = unit || kSiUnits[i] ? ' ' : '';
  return `${sign}${v.toFixed(digits)}${sep}${kSiUnits[i]}${unit}`;
}

export function format_bytes(n) {
  if (!Number.isFinite(n)) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = Math.abs(n);
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${n < 0 ? '-' : ''}${i === 0 ? v : v.toFixed(v >= 100 ? 0 : 1)} ${units[i]}`;
}

export function format_pps(pps) { return format_si(pps, 'pkt/s'); }
// Bytes per second shown as bits per second, as link speeds are.
export function format_bps(bytes_per_s) { return format_si(bytes_per_s * 8, 'bit/s'); }

export function format_count(n) {
  if (!Number.isFinite(n)) return '-';
  return Math.round(n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

// RFC 3339 -> "2026-11-22 03:57:15Z" (UTC: the box and the API speak UTC).
export function format_time(rfc3339) {
  if (typeof rfc3339 !== 'string' || !rfc3339) return '-';
  const d = new Date(rfc3339);
  if (Number.isNaN(d.getTime())) return rfc3339;
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

export function short_id(id) {
  return typeof id === 'string' && id.length > 8 ? id.slice(0, 8) : String(id ?? '');
}

// A display name: the object's name when set, else the first 8 hex digits of its id.
export function display_name(obj) {
  if (!obj) return '-';
  return obj.name ? obj.name : short_id(obj.id);
}

// "a, b  c" -> ["a", "b", "c"]
export function parse_list(text) {
  return String(text ?? '').split(/[\s,]+/).map((x) => x.trim()).filter((x) => x.length > 0);
}
