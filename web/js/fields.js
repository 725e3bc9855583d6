// Maps the `field` of an API problem (e.g. "cidrs[1]", "backend.netns", "rules[0].port_min") onto the input of a form
// that edits it, and builds request bodies from form values. Pure; tested with node --test.

// Splits "rules[0].port_min" into ["rules", "0", "port_min"]; accepts a JSON pointer "/rules/0/port_min" too.
export function field_path(field) {
  const f = String(field ?? '').trim();
  if (!f) return [];
  if (f.startsWith('/')) return f.slice(1).split('/').filter((p) => p !== '');
  return f.replace(/\[(\d+)\]/g, '.$1').split('.').filter((p) => p !== '');
}

// The best of `names` (the data-field of each input, in the same dotted syntax) for a problem field: an exact match,
// else the longest name that is a prefix of the field path ("cidrs" for "cidrs[1]"), else the longest field path that
// is a prefix of a name ("backend" -> "backend.netns" when only one such input exists). null when none fits.
export function match_field(field, names) {
  const want = field_path(field);
  if (want.length === 0) return null;
  let best = null;
  let best_len = 0;
  for (const name of names) {
    const have = field_path(name);
    if (have.length === 0 || have.length > want.length) continue;
    if (have.every((p, i) => p === want[i]) && have.length > best_len) {
      best = name;
      best_len = have.length;
    }
  }
  if (best) return best;
  const wider = names.filter((name) => {
    const have = field_path(name);
    return have.length > want.length && want.every((p, i) => p === have[i]);
  });
  return wider.length === 1 ? wider[0] : null;
}

function int_or_undefined(text, what) {
  const t = String(text ?? '').trim();
  if (t === '') return undefined;
  if (!/^-?\d+$/.test(t)) throw new FormError(what, 'must be a whole number');
  return Number(t);
}

export class FormError extends Error {
  constructor(field, message) {
    super(message);
    this.field = field;
  }
}

// Drops keys whose value is undefined or an empty string/list, so the server applies its defaults.
export function compact(obj) {
  const out = {};
  for (const [k, v] of Object.entries(obj)) {
    if (v === undefined || v === '' || (Array.isArray(v) && v.length === 0)) continue;
    out[k] = v;
  }
  return out;
}

// The NIC backend object from form values {backend_type, netns, ifname, queues, owner, socket, mode}.
export function build_backend(v) {
  switch (v.backend_type) {
    case 'netns':
      return compact({ type: 'netns', netns: v.netns?.trim(), ifname: v.ifname?.trim() });
    case 'tap':
      return compact({ type: 'tap', ifname: v.ifname?.trim(), queues: int_or_undefined(v.queues, 'backend.queues'),
        owner: v.owner?.trim() });
    case 'vhost-user':
      return compact({ type: 'vhost-user', socket: v.socket?.trim(), mode: v.mode,
        queues: int_or_undefined(v.queues, 'backend.queues') });
    default:
      throw new FormError('backend.type', 'choose a backend');
  }
}

// A security-group rule from form values; the server validates ranges and CIDRs.
export function build_rule(v) {
  const rule = { direction: v.direction, protocol: v.protocol };
  if (v.protocol === 'tcp' || v.protocol === 'udp') {
    const lo = int_or_undefined(v.port_min, 'port_min');
    const hi = int_or_undefined(v.port_max, 'port_max');
    if (lo !== undefined) rule.port_min = lo;
    if (hi !== undefined) rule.port_max = hi;
    else if (lo !== undefined) rule.port_max = lo;
  }
  const cidr = String(v.cidr ?? '').trim();
  if (v.remote_group_id) rule.remote_group_id = v.remote_group_id;
  else rule.cidr = cidr || '0.0.0.0/0';
  return rule;
}

export { int_or_undefined };
