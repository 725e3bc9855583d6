// Unit tests of the dashboard's pure modules (formatting, counters, charts, topology layout, form fields, API errors).
// Run with: node --test tests/browser/unit
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { format_si, format_bytes, format_bps, format_count, format_time, parse_list, display_name } from '../../../web/js/format.js';
import { normalize_counters, normalize_box_stats, CounterHistory, history_for } from '../../../web/js/stats.js';
import { sparkline_path } from '../../../web/js/chart.js';
import { layout_topology, clip } from '../../../web/js/topology.js';
import { field_path, match_field, build_backend, build_rule, compact, FormError } from '../../../web/js/fields.js';
import { Api, ApiError, problem_from_response, whoami } from '../../../web/js/api.js';

test('format helpers', () => {
  assert.equal(format_si(999), '999');
  assert.equal(format_si(1234567, 'pkt/s'), '1.23 Mpkt/s');
  assert.equal(format_si(12.5, 'pkt/s'), '12.5 pkt/s');
  assert.equal(format_si(2.5, 'pkt/s'), '2.50 pkt/s');
  assert.equal(format_si(NaN), '-');
  assert.equal(format_bytes(512), '512 B');
  assert.equal(format_bytes(1536), '1.5 KiB');
  assert.equal(format_bps(125000), '1.00 Mbit/s');
  assert.equal(format_count(1234567), '1,234,567');
  assert.equal(format_time('2026-11-22T03:57:15.123Z'), '2026-11-22 03:57:15Z');
  assert.equal(format_time('garbage'), 'garbage');
  assert.deepEqual(parse_list(' 10.0.0.0/16, 10.1.0.0/16  10.2.0.0/16,'), ['10.0.0.0/16', '10.1.0.0/16', '10.2.0.0/16']);
  assert.equal(display_name({ id: '0123456789abcdef', name: '' }), '01234567');
  assert.equal(display_name({ id: 'x', name: 'web' }), 'web');
});

test('normalize_counters accepts maps, lists and junk', () => {
  assert.deepEqual(normalize_counters({ rx_packets: 5, tx_bytes: '7', drops: { ttl: 2, bad: -1 } }),
    { rx_packets: 5, rx_bytes: 0, tx_packets: 0, tx_bytes: 7, drops: { ttl: 2, bad: 0 } });
  assert.deepEqual(normalize_counters({ drops: [{ reason: 'acl', count: 3 }] }).drops, { acl: 3 });
  assert.deepEqual(normalize_counters(null).drops, {});
});

test('normalize_box_stats keys NICs and uplinks and sums drops when no total is given', () => {
  const b = normalize_box_stats({
    nics: [{ id: 'n1', rx_packets: 1, drops: { a: 1 } }],
    uplinks: { u1: { tx_packets: 4, drops: { a: 2, b: 3 } } },
  });
  assert.equal(b.nics.get('n1').rx_packets, 1);
  assert.equal(b.uplinks.get('u1').tx_packets, 4);
  assert.deepEqual(b.drops, { a: 3, b: 3 });
  assert.equal(b.total_drops, 6);
  const t = normalize_box_stats({ drops: { x: 10 }, nics: [{ id: 'n', drops: { x: 99 } }] });
  assert.equal(t.total_drops, 10);
  const v = normalize_box_stats({ totals: { rx_packets: 9, drops: { no_route: 4 } }, nics: { n: { drops: { x: 1 } } },
    workers: [{ packets: 3 }] });
  assert.equal(v.totals.rx_packets, 9);
  assert.deepEqual(v.drops, { no_route: 4 });
  assert.equal(v.workers.length, 1);
  assert.equal(v.nics.get('n').drops.x, 1);
});

test('CounterHistory turns counters into rates and survives resets', () => {
  const hist = new CounterHistory(3);
  hist.push(0, { rx_packets: 0, rx_bytes: 0, drops: {} });
  assert.equal(hist.latest_rate(), null);
  hist.push(2000, { rx_packets: 200, rx_bytes: 30000, drops: { ttl: 4 } });
  let r = hist.latest_rate();
  assert.equal(r.rx_pps, 100);
  assert.equal(r.rx_bps, 15000);
  assert.equal(r.drops_ps, 2);
  assert.deepEqual(r.drops, { ttl: 2 });
  hist.push(1000, { rx_packets: 999 });  // older sample: ignored
  assert.equal(hist.latest().rx_packets, 200);
  hist.push(4000, { rx_packets: 10 });  // counter went back: series restarts, no negative rate
  assert.equal(hist.latest_rate(), null);
  hist.push(5000, { rx_packets: 20 });
  assert.equal(hist.latest_rate().rx_pps, 10);
  for (let t = 6000; t < 12000; t += 1000) hist.push(t, { rx_packets: t });
  assert.equal(hist.series('rx_pps').length, 3);
});

test('drops_within counts only the window', () => {
  const hist = new CounterHistory(100);
  for (let i = 0; i <= 40; i++) hist.push(i * 2000, { drops: { x: i * 10 } });
  const d = hist.drops_within(60000);
  assert.equal(d.span_ms, 60000);
  assert.equal(d.count, 300);
  const short = new CounterHistory(10);
  short.push(0, { drops: { x: 5 } });
  short.push(4000, { drops: { x: 9 } });
  assert.deepEqual(short.drops_within(60000), { count: 4, span_ms: 4000 });
});

test('history_for keeps one history per key across pages', () => {
  const a = history_for('nic:x');
  a.push(1000, { rx_packets: 1 });
  assert.equal(history_for('nic:x'), a);
  assert.equal(history_for('nic:x').latest().rx_packets, 1);
  assert.notEqual(history_for('nic:y'), a);
});

test('sparkline_path scales into the box, newest at the right', () => {
  assert.equal(sparkline_path([1], 100, 20), '');
  const d = sparkline_path([0, 10], 100, 20, 2);
  assert.equal(d, 'M0.0 19.0 L100.0 1.0');
  const partial = sparkline_path([5, 5], 100, 20, 5, 10);
  assert.equal(partial, 'M75.0 10.0 L100.0 10.0');
  assert.equal(sparkline_path([0, 0], 10, 10, 2), 'M0.0 9.0 L10.0 9.0');
});

test('layout_topology places every object, links NICs to their subnet and VTEPs to underlay uplinks', () => {
  const model = {
    vpc: { id: 'v', name: 'cust', vni: 7, cidrs: ['10.0.0.0/16'] },
    subnets: [{ id: 's1', cidr: '10.0.1.0/24', gateway: '10.0.1.1' }, { id: 's2', cidr: '10.0.2.0/24' }],
    nics: [{ id: 'n1', subnet_id: 's1', state: 'up', ips: ['10.0.1.2'], backend: { type: 'netns' } },
      { id: 'n2', subnet_id: 's1', state: 'error' }, { id: 'n3', subnet_id: 's2', state: 'down' }],
    uplinks: [{ id: 'u1', ifname: 'eth1', role: 'underlay', address: '192.0.2.1/24' }],
    vtep_peers: [{ id: 'p1', underlay_ip: '192.0.2.9' }],
    remote_nics: [{ id: 'r1', mac: '02:00:00:00:00:01', underlay_ip: '192.0.2.9' },
      { id: 'r2', mac: '02:00:00:00:00:02', underlay_ip: '192.0.2.10' }],
  };
  const l = layout_topology(model);
  const kinds = l.nodes.map((n) => n.kind).sort();
  assert.deepEqual(kinds, ['nic', 'nic', 'nic', 'subnet', 'subnet', 'uplink', 'vpc', 'vtep', 'vtep']);
  const node = (id) => l.nodes.find((n) => n.id === id);
  assert.ok(node('n2').y > node('n1').y, 'NICs of one subnet stack downwards');
  assert.equal(node('n3').x > node('n1').x, true, 'subnets are columns');
  assert.equal(node('n2').state, 'error');
  assert.equal(l.edges.filter((e) => e.kind === 'tunnel').length, 2);
  assert.ok(l.edges.some((e) => e.kind === 'port' && e.from === 's2' && e.to === 'n3'));
  for (const n of l.nodes) {
    assert.ok(n.x >= 0 && n.y >= 0 && n.x + n.w <= l.width && n.y + n.h <= l.height, `${n.id} inside the picture`);
  }
  for (let i = 0; i < l.nodes.length; i++) {
    for (let j = i + 1; j < l.nodes.length; j++) {
      const a = l.nodes[i];
      const b = l.nodes[j];
      const overlap = a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
      assert.ok(!overlap, `${a.id} and ${b.id} do not overlap`);
    }
  }
  assert.equal(node('vtep-192.0.2.10').sub, '1 remote NIC');
  const empty = layout_topology({ vpc: { id: 'v' } });
  assert.equal(empty.nodes.length, 1);
  assert.equal(clip('abcdef', 4), 'abc\u2026');
});

test('match_field finds the input for a problem field', () => {
  assert.deepEqual(field_path('rules[2].cidr'), ['rules', '2', 'cidr']);
  assert.deepEqual(field_path('/backend/netns'), ['backend', 'netns']);
  const names = ['name', 'cidrs', 'vni', 'backend.netns', 'backend.type'];
  assert.equal(match_field('cidrs[1]', names), 'cidrs');
  assert.equal(match_field('cidrs', names), 'cidrs');
  assert.equal(match_field('backend.netns', names), 'backend.netns');
  assert.equal(match_field('/backend/netns', names), 'backend.netns');
  assert.equal(match_field('backend', ['backend.netns']), 'backend.netns');
  assert.equal(match_field('backend', names), null, 'ambiguous');
  assert.equal(match_field('mtu', names), null);
  assert.equal(match_field('', names), null);
});

test('build_backend and build_rule', () => {
  assert.deepEqual(build_backend({ backend_type: 'netns', netns: ' g1 ', ifname: '' }), { type: 'netns', netns: 'g1' });
  assert.deepEqual(build_backend({ backend_type: 'tap', ifname: 'tap0', queues: '2', owner: '' }),
    { type: 'tap', ifname: 'tap0', queues: 2 });
  assert.throws(() => build_backend({ backend_type: 'tap', queues: 'x' }), (e) => e instanceof FormError && e.field === 'backend.queues');
  assert.throws(() => build_backend({ backend_type: '' }), FormError);
  assert.deepEqual(build_rule({ direction: 'ingress', protocol: 'tcp', port_min: '22', port_max: '', cidr: '' }),
    { direction: 'ingress', protocol: 'tcp', port_min: 22, port_max: 22, cidr: '0.0.0.0/0' });
  assert.deepEqual(build_rule({ direction: 'egress', protocol: 'icmp', port_min: '1', remote_group_id: 'g' }),
    { direction: 'egress', protocol: 'icmp', remote_group_id: 'g' });
  assert.deepEqual(compact({ a: '', b: [], c: 0, d: undefined, e: false }), { c: 0, e: false });
});

test('problem_from_response reads problem+json and survives other bodies', () => {
  const p = problem_from_response(400, 'application/problem+json',
    JSON.stringify({ type: 'x', title: 'Bad CIDR', status: 400, detail: 'not a prefix', field: 'cidrs[0]' }));
  assert.deepEqual(p, { type: 'x', title: 'Bad CIDR', status: 400, detail: 'not a prefix', field: 'cidrs[0]' });
  assert.equal(problem_from_response(502, 'text/html', '<html>').title, 'Bad gateway');
  assert.equal(problem_from_response(403, 'application/json', '{nope').title, 'Forbidden');
  assert.equal(problem_from_response(409, 'application/json', '[1]').title, 'Conflict');
});

function fake_fetch(routes, log) {
  return async (url, init) => {
    log.push([init.method, url, init.headers]);
    const r = routes(init.method, url);
    return {
      ok: r.status < 300, status: r.status,
      headers: { get: () => r.type || 'application/json' },
      text: async () => (r.body === undefined ? '' : JSON.stringify(r.body)),
    };
  };
}

test('Api sends the token, pages through lists and raises ApiError', async () => {
  const log = [];
  const api = new Api('tok', { fetch_impl: fake_fetch((method, url) => {
    const off = Number(new URL(url, 'https://x').searchParams.get('offset'));
    if (url.startsWith('/v1/vpcs?')) return { status: 200, body: { items: off === 0 ? Array(1000).fill({}) : [{}], total: 1001 } };
    return { status: 400, type: 'application/problem+json', body: { title: 'Bad', status: 400, field: 'cidr' } };
  }, log) });
  const all = await api.list_all('vpcs');
  assert.equal(all.length, 1001);
  assert.equal(log.length, 2);
  assert.equal(log[0][2].Authorization, 'Bearer tok');
  await assert.rejects(api.post('/subnets', { cidr: 'x' }), (e) => e instanceof ApiError && e.field === 'cidr' && e.status === 400);
  assert.equal(log[2][2]['Content-Type'], 'application/json');
});

test('whoami: one GET /v1/whoami gives role, token id and capabilities; never a write', async () => {
  const log = [];
  const mk = (routes) => new Api('t', { fetch_impl: fake_fetch(routes, log) });
  const who = await whoami(mk((m, u) => (u === '/v1/whoami'
    ? { status: 200, body: { role: 'viewer', token_id: 'abc', capabilities: { vpcs: true, routes: false } } }
    : { status: 500 })));
  assert.deepEqual(who, { role: 'viewer', token_id: 'abc', capabilities: { vpcs: true, routes: false } });
  assert.deepEqual(log.map((l) => [l[0], l[1]]), [['GET', '/v1/whoami']]);
  assert.equal((await whoami(mk(() => ({ status: 200, body: { role: 'admin', token_id: 'x' } })))).capabilities.vpcs, undefined);
  await assert.rejects(whoami(mk(() => ({ status: 401 }))), (e) => e.status === 401);
  await assert.rejects(whoami(mk(() => ({ status: 200, body: { role: 'root' } }))), (e) => e instanceof ApiError);
  assert.ok(log.every((l) => l[0] === 'GET'), 'no probe write');
});
