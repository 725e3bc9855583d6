// Overview page: box health, VPC and NIC counts by state, drops in the last minute, uplinks with live rates, the VPC
// list and (for admins) the create-VPC form. Browser main thread; refreshed every 2 s while shown.
import { h, clear } from '../dom.js';
import { display_name, format_pps, format_bps, format_count, parse_list } from '../format.js';
import { normalize_box_stats, history_for } from '../stats.js';
import { int_or_undefined, compact } from '../fields.js';
import { make_form, delete_button, table, section, state_badge, error_text } from '../ui.js';
import { sparkline } from '../chart.js';
import { capture_button } from '../capture.js';

export async function render_overview(root, ctx) {
  const health_box = h('div', { class: 'kpis', id: 'kpis' });
  const uplinks_box = h('div', { id: 'uplinks' });
  const traffic_box = h('div', { id: 'box-traffic' });
  const vpcs_box = h('div', { id: 'vpc-list' });
  const status = h('p', { class: 'status-line', role: 'status' });
  const box_history = history_for('box', 40);  // 80 s at one sample per 2 s
  let last_sig = '';

  root.append(h('h1', {}, 'Overview'), status, health_box,
    section('VPCs', vpcs_box,
      ctx.role === 'admin' ? make_form({
        id: 'create-vpc', title: 'Create a VPC', submit_label: 'Create VPC',
        fields: [
          { name: 'name', label: 'Name', placeholder: 'customer-a' },
          { name: 'cidrs', label: 'CIDRs', placeholder: '10.0.0.0/16', required: true,
            help: 'one or more IPv4 CIDRs, separated by commas' },
          { name: 'vni', label: 'VNI', type: 'number', placeholder: 'allocated' },
          { name: 'mtu', label: 'MTU', type: 'number', placeholder: '1450' },
        ],
        on_submit: (v) => ctx.api.post('/vpcs', compact({
          name: v.name.trim(), cidrs: parse_list(v.cidrs), vni: int_or_undefined(v.vni, 'vni'),
          mtu: int_or_undefined(v.mtu, 'mtu'),
        })),
        on_done: () => refresh(true),
      }) : null),
    section('Traffic, all ports', traffic_box),
    section('Uplinks', uplinks_box));

  async function refresh(force = false) {
    let vpcs, nics, uplinks, subnets, health, stats;
    try {
      [vpcs, subnets, nics, uplinks, health, stats] = await Promise.all([
        ctx.api.list_all('vpcs'), ctx.api.list_all('subnets'), ctx.api.list_all('nics'), ctx.api.list_all('uplinks'),
        ctx.api.health().catch((e) => ({ status: 'unreachable', detail: error_text(e) })),
        ctx.api.get('/stats').catch(() => null),
      ]);
    } catch (e) {
      status.textContent = `Could not load: ${error_text(e)}`;
      return;
    }
    status.textContent = '';
    const now = Date.now();
    const box = normalize_box_stats(stats);
    box_history.push(now, box.totals || { drops: box.drops });
    render_traffic(box_history, Boolean(stats));
    for (const u of uplinks) {
      const c = box.uplinks.get(u.id) || box.uplinks.get(u.ifname);
      if (!c) continue;
      history_for(`uplink:${u.id}`).push(now, c);
    }

    const by_state = { up: 0, down: 0, error: 0 };
    for (const n of nics) by_state[n.state] = (by_state[n.state] || 0) + 1;
    const drops = box_history.drops_within(60000);
    const window = drops.span_ms >= 59000 ? 'last minute'
      : drops.span_ms < 1000 ? 'counting from now' : `last ${Math.round(drops.span_ms / 1000)} s`;
    const workers = box.workers.length;
    const reconcile_error = typeof stats?.reconciler?.last_error === 'string' ? stats.reconciler.last_error : '';
    // The kernel fast path (config kernel-fastpath): on and how many NICs it carries, or why it is off.
    const fp = stats?.fastpath && typeof stats.fastpath === 'object' ? stats.fastpath : null;
    const fastpath = fp ? [kpi('Fast path', fp.enabled ? 'on' : 'off', fp.error ? 'warn' : '',
      fp.enabled ? `${format_count(fp.ports || 0)} NIC${fp.ports === 1 ? '' : 's'} forwarded in the kernel`
        : fp.error || 'kernel-fastpath = off', 'kpi-fastpath')] : [];
    clear(health_box).append(
      kpi('Box', health.status === 'ok' ? 'healthy' : health.status || 'unknown',
        health.status !== 'ok' ? 'bad' : reconcile_error ? 'warn' : 'ok',
        reconcile_error ? `reconciler: ${reconcile_error}`
          : `vpcd ${health.version || ''}${workers ? `, ${workers} worker${workers > 1 ? 's' : ''}` : ''}`, 'kpi-box'),
      kpi('VPCs', format_count(vpcs.length), '', `${subnets.length} subnets`),
      kpi('NICs', format_count(nics.length), by_state.error ? 'bad' : '',
        `${by_state.up} up, ${by_state.down} down, ${by_state.error} error`, 'kpi-nics'),
      kpi('Uplinks', format_count(uplinks.length), '', uplinks.map((u) => u.ifname).join(', ') || 'none'),
      kpi('Drops', stats ? format_count(drops.count) : 'n/a', drops.count ? 'warn' : '', stats ? window : 'no stats',
        'kpi-drops'), ...fastpath);

    // Uplink counters appear when the server reports them (GET /v1/stats "uplinks"); until then the cells say "-".
    const uplink_hist = (u) =>
      (box.uplinks.has(u.id) || box.uplinks.has(u.ifname) ? history_for(`uplink:${u.id}`) : null);
    clear(uplinks_box).append(table([
      { title: 'Interface', cell: (u) => u.ifname },
      { title: 'Address', cell: (u) => u.address || '-' },
      { title: 'Role', cell: (u) => u.role || '-' },
      { title: 'State', cell: (u) => (u.state ? h('span', {}, state_badge(u.state),
        u.state_detail ? h('small', { class: 'detail' }, ` ${u.state_detail}`) : null) : '-') },
      { title: 'Rx', cls: 'num', cell: (u) => rate_cell(uplink_hist(u), 'rx') },
      { title: 'Tx', cls: 'num', cell: (u) => rate_cell(uplink_hist(u), 'tx') },
      { title: 'Drops/s', cls: 'num', cell: (u) => drop_cell(uplink_hist(u)) },
      { title: 'Packets/s', cell: (u) => chart_cell(uplink_hist(u), u.ifname) },
      ...(ctx.role === 'admin' ? [{ title: 'Capture', cell: (u) => capture_button(ctx, 'uplinks', u, u.ifname) }] : []),
    ], uplinks, { empty: 'No uplinks configured.' }));

    const sig = JSON.stringify([vpcs, subnets.map((x) => x.vpc_id), nics.map((x) => [x.vpc_id, x.state])]);
    if (sig === last_sig && !force) return;
    last_sig = sig;
    const count = (list, vpc_id) => list.filter((x) => x.vpc_id === vpc_id).length;
    clear(vpcs_box).append(table([
      { title: 'Name', cell: (v) => h('a', { href: `#/vpc/${v.id}` }, display_name(v)) },
      { title: 'VNI', cls: 'num', cell: (v) => String(v.vni ?? '-') },
      { title: 'CIDRs', cell: (v) => (v.cidrs || []).join(', ') },
      { title: 'MTU', cls: 'num', cell: (v) => String(v.mtu ?? '-') },
      { title: 'Subnets', cls: 'num', cell: (v) => String(count(subnets, v.id)) },
      { title: 'NICs', cls: 'num', cell: (v) => String(count(nics, v.id)) },
      { title: 'Topology', cell: (v) => h('a', { href: `#/vpc/${v.id}/topology` }, 'picture') },
      ...(ctx.role === 'admin' ? [{ title: 'Actions', cell: (v) => delete_button(`VPC ${display_name(v)}`, async () => {
        await ctx.api.del(`/vpcs/${v.id}`);
        await refresh(true);
      }, v.id) }] : []),
    ], vpcs, { empty: 'No VPCs yet.' }));
  }

  function render_traffic(hist, have_stats) {
    if (!have_stats) {
      clear(traffic_box).append(h('p', { class: 'empty' }, 'The server reports no counters.'));
      return;
    }
    const c = hist.latest();
    const reasons = Object.entries(c.drops).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
    clear(traffic_box).append(h('div', { class: 'traffic' },
      h('div', {},
        h('p', {}, h('strong', {}, 'Received '), rate_cell(hist, 'rx')),
        h('p', {}, h('strong', {}, 'Sent '), rate_cell(hist, 'tx'))),
      h('div', { class: 'chart-big' }, sparkline([
        { values: hist.series('rx_pps'), cls: 'rx' }, { values: hist.series('tx_pps'), cls: 'tx' },
      ], { width: 320, height: 70, capacity: 40, label: 'packet rate of all ports: receive and transmit' }),
      h('small', { class: 'help' }, h('span', { class: 'rate-rx' }, 'rx'), ' / ', h('span', { class: 'rate-tx' }, 'tx'),
        ' packets per second, last 80 s')),
      h('div', {}, h('h3', {}, 'Drops by reason (since start)'), reasons.length === 0 ? h('p', { class: 'empty' }, 'none')
        : h('ul', { class: 'reasons', id: 'drop-reasons' }, reasons.map(([r, n]) => h('li', {}, `${r}: ${format_count(n)}`))))));
  }

  await refresh(true);
  ctx.every(2000, () => refresh());
}

function kpi(title, value, tone, sub, id) {
  return h('div', { class: `kpi ${tone ? `tone-${tone}` : ''}`, id: id || null },
    h('div', { class: 'kpi-title' }, title), h('div', { class: 'kpi-value' }, value), h('div', { class: 'kpi-sub' }, sub));
}

export function rate_cell(hist, dir) {
  if (!hist) return '-';
  const r = hist.latest_rate();
  if (!r) return h('span', { class: 'muted' }, 'measuring\u2026');
  return h('span', { class: `rate rate-${dir}` }, format_pps(r[`${dir}_pps`]), h('br'), format_bps(r[`${dir}_bps`]));
}

export function drop_cell(hist) {
  const r = hist?.latest_rate();
  if (!r) return '-';
  const reasons = Object.entries(r.drops).map(([k, v]) => `${k} ${v.toFixed(1)}/s`).join(', ');
  return h('span', { class: r.drops_ps > 0 ? 'drops-hot' : '', title: reasons || 'no drops' }, r.drops_ps.toFixed(1));
}

export function chart_cell(hist, label) {
  if (!hist) return '-';
  return sparkline([
    { values: hist.series('rx_pps'), cls: 'rx' },
    { values: hist.series('tx_pps'), cls: 'tx' },
  ], { capacity: 20, label: `packet rate of ${label}: receive and transmit over the last 40 s` });
}
