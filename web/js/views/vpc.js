// One VPC: its subnets, NICs (MAC, IPs, backend, state), live counters per NIC, security groups and their rules,
// routes, NAT and remote VTEPs, with create/delete forms for admins. A kind the box's datapath does not carry out yet
// (GET /v1/whoami capabilities; its writes answer 501) is listed read-only with a note, and its forms are not shown.
// Browser main thread; refreshed every 2 s.
import { h, clear } from '../dom.js';
import { ApiError } from '../api.js';
import { display_name, format_count, format_time, parse_list, short_id } from '../format.js';
import { history_for, normalize_box_stats } from '../stats.js';
import { build_backend, build_rule, compact, int_or_undefined } from '../fields.js';
import { make_form, delete_button, table, section, state_badge, error_text } from '../ui.js';
import { rate_cell, drop_cell, chart_cell } from './overview.js';
import { capture_button } from '../capture.js';

function backend_text(b) {
  if (!b || typeof b !== 'object') return '-';
  switch (b.type) {
    case 'netns': return `netns ${b.netns || '?'} / ${b.ifname || 'eth0'}`;
    case 'tap': return `tap ${b.ifname || '?'}${b.queues > 1 ? ` x${b.queues}` : ''}`;
    case 'vhost-user': return `vhost-user ${b.socket || '?'} (${b.mode || 'server'})`;
    default: return String(b.type || '-');
  }
}

function rule_ports(r) {
  if (r.protocol !== 'tcp' && r.protocol !== 'udp') return '-';
  if (r.port_min === undefined && r.port_max === undefined) return 'all';
  return r.port_min === r.port_max || r.port_max === undefined ? String(r.port_min) : `${r.port_min}-${r.port_max}`;
}

// A problem about the new rule ("rules[3].cidr") is shown at the rule form's own field ("cidr").
function rule_error(e, index) {
  if (!(e instanceof ApiError)) return e;
  const m = /^rules\[(\d+)\]\.?(.*)$/.exec(e.field || '');
  if (m && Number(m[1]) === index) e.field = m[2] || 'cidr';
  return e;
}

// Said under a kind's list when the box does not carry it out (its create form is hidden).
function not_carried_note(what) {
  return h('p', { class: 'help not-carried' },
    `This box's datapath does not carry out ${what} yet: the API refuses new ones (501); existing ones are shown `
    + 'and can be deleted.');
}

export async function render_vpc(root, ctx, vpc_id) {
  const admin = ctx.role === 'admin';
  const can = (capability) => ctx.capabilities?.[capability] === true;
  const sg_writable = admin && can('security-groups');
  const v = (p) => `/${p}?vpc_id=${encodeURIComponent(vpc_id)}`;
  let vpc;
  try {
    vpc = await ctx.api.get(`/vpcs/${vpc_id}`);
  } catch (e) {
    root.append(h('h1', {}, 'VPC'), h('p', { class: 'form-error', role: 'alert' }, error_text(e)),
      h('p', {}, h('a', { href: '#/' }, 'Back to the overview')));
    return;
  }

  const head = h('div', { class: 'vpc-head' });
  const subnets_box = h('div', { id: 'subnet-list' });
  const nics_box = h('div', { id: 'nic-list' });
  const live_box = h('div', { id: 'nic-live' });
  const sgs_box = h('div', { id: 'sg-list' });
  const routes_box = h('div', { id: 'route-list' });
  const nat_box = h('div', { id: 'nat-list' });
  const remote_box = h('div', { id: 'remote-list' });
  const status = h('p', { class: 'status-line', role: 'status' });
  const hist = { get: (id) => history_for(`nic:${id}`) };
  const sigs = {};

  const subnet_form = admin ? make_form({
    id: 'create-subnet', title: 'Create a subnet', submit_label: 'Create subnet',
    fields: [
      { name: 'name', label: 'Name', placeholder: 'web' },
      { name: 'cidr', label: 'CIDR', placeholder: '10.0.1.0/24', required: true },
      { name: 'gateway', label: 'Gateway', placeholder: 'first host address' },
    ],
    on_submit: (f) => ctx.api.post('/subnets', compact({
      vpc_id, name: f.name.trim(), cidr: f.cidr.trim(), gateway: f.gateway.trim(),
    })),
    on_done: () => refresh(true),
  }) : null;

  const is = (t) => (f) => f.backend_type === t;
  const nic_form = admin ? make_form({
    id: 'create-nic', title: 'Create a NIC', submit_label: 'Create NIC',
    fields: [
      { name: 'name', label: 'Name', placeholder: 'vm1-eth0' },
      { name: 'subnet_id', label: 'Subnet', type: 'select', options: [], required: true, api: 'subnet_id' },
      { name: 'backend_type', label: 'Backend', type: 'select', api: 'backend.type', required: true,
        options: [['netns', 'netns'], ['tap', 'tap'], ['vhost-user', 'vhost-user']]
          .filter(([t]) => can(`nic-backend-${t}`)),
        help: 'netns: a veth into a namespace; tap: QEMU opens it by name' },
      { name: 'netns', label: 'Namespace', api: 'backend.netns', placeholder: 'guest1', show_if: is('netns'), required: true },
      { name: 'ifname', label: 'Interface name', api: 'backend.ifname', placeholder: 'eth0 / tap-vm1',
        show_if: (f) => f.backend_type !== 'vhost-user' },
      { name: 'socket', label: 'Socket path', api: 'backend.socket', placeholder: '/run/vpcd/vm1.sock',
        show_if: is('vhost-user'), required: true },
      { name: 'mode', label: 'Socket mode', type: 'select', api: 'backend.mode', show_if: is('vhost-user'),
        options: [['server', 'server'], ['client', 'client']] },
      { name: 'queues', label: 'Queues', type: 'number', api: 'backend.queues', placeholder: '1',
        show_if: (f) => f.backend_type !== 'netns' },
      { name: 'owner', label: 'Owner (user)', api: 'backend.owner', placeholder: 'libvirt-qemu', show_if: is('tap') },
      { name: 'mac', label: 'MAC', placeholder: 'derived from the id' },
      { name: 'ips', label: 'IPs', placeholder: 'a free address', help: 'IPv4 addresses, separated by commas' },
      ...(can('security-groups')
        ? [{ name: 'security_group_ids', label: 'Security groups', type: 'multiselect', options: [] }] : []),
      { name: 'port_security', label: 'Port security', type: 'checkbox', value: true },
    ],
    on_submit: (f) => ctx.api.post('/nics', compact({
      name: f.name.trim(), subnet_id: f.subnet_id, backend: build_backend(f), mac: f.mac.trim(),
      ips: parse_list(f.ips), security_group_ids: can('security-groups') ? f.security_group_ids : undefined,
      port_security: f.port_security,
    })),
    on_done: () => refresh(true),
  }) : null;

  const sg_form = sg_writable ? make_form({
    id: 'create-sg', title: 'Create a security group', submit_label: 'Create group',
    fields: [{ name: 'name', label: 'Name', placeholder: 'web-servers', required: true }],
    on_submit: (f) => ctx.api.post('/security-groups', compact({ vpc_id, name: f.name.trim(), rules: [] })),
    on_done: () => refresh(true),
  }) : null;

  const route_form = admin && can('routes') ? make_form({
    id: 'create-route', title: 'Add a route', submit_label: 'Add route',
    fields: [
      { name: 'destination', label: 'Destination', placeholder: '0.0.0.0/0', required: true },
      { name: 'next_hop', label: 'Next hop', placeholder: '10.0.1.5, nat-gateway or blackhole', required: true },
    ],
    on_submit: (f) => ctx.api.post('/routes', { vpc_id, destination: f.destination.trim(), next_hop: f.next_hop.trim() }),
    on_done: () => refresh(true),
  }) : null;

  const nat_form = admin && can('nat-gateways') ? make_form({
    id: 'create-natgw', title: 'Add a NAT gateway', submit_label: 'Add NAT gateway',
    fields: [
      { name: 'uplink_id', label: 'Uplink', type: 'select', options: [], required: true },
      { name: 'external_ip', label: 'External IP', placeholder: '203.0.113.10', required: true },
    ],
    on_submit: (f) => ctx.api.post('/nat-gateways', { vpc_id, uplink_id: f.uplink_id, external_ip: f.external_ip.trim() }),
    on_done: () => refresh(true),
  }) : null;

  root.append(head, status,
    section('Subnets', subnets_box, subnet_form),
    section('NICs', nics_box, nic_form),
    section('Live counters', h('p', { class: 'help' }, 'Rates over the last 2 s; drops by reason since start.'), live_box),
    section('Security groups', sgs_box, can('security-groups') ? null : not_carried_note('security groups'), sg_form),
    section('Routes', routes_box, can('routes') ? null : not_carried_note('routes'), route_form),
    section('NAT', nat_box, can('nat-gateways') ? null : not_carried_note('NAT gateways'), nat_form),
    section('Remote VTEPs and NICs', remote_box,
      can('vtep-peers') && can('remote-nics') ? null : not_carried_note('VTEP peers and remote NICs (VXLAN)')));

  const changed = (key, value) => {
    const sig = JSON.stringify(value);
    if (sigs[key] === sig) return false;
    sigs[key] = sig;
    return true;
  };
  const del = (kind, obj, what) => delete_button(`${what} ${display_name(obj)}`, async () => {
    await ctx.api.del(`/${kind}/${obj.id}`);
    await refresh(true);
  }, obj.id);

  async function refresh(force = false) {
    if (force) for (const k of Object.keys(sigs)) delete sigs[k];
    let subnets, nics, sgs, routes, natgws, fips, uplinks, peers, remotes;
    try {
      [vpc, subnets, nics, sgs, routes, natgws, fips, uplinks, peers, remotes] = await Promise.all([
        ctx.api.get(`/vpcs/${vpc_id}`), ctx.api.list_all('subnets', { vpc_id }), ctx.api.list_all('nics', { vpc_id }),
        ctx.api.list_all('security-groups', { vpc_id }), ctx.api.list_all('routes', { vpc_id }),
        ctx.api.list_all('nat-gateways', { vpc_id }), ctx.api.list_all('floating-ips'), ctx.api.list_all('uplinks'),
        ctx.api.list_all('vtep-peers', { vpc_id }), ctx.api.list_all('remote-nics', { vpc_id }),
      ]);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        status.textContent = 'This VPC no longer exists.';
        ctx.stop();
        return;
      }
      status.textContent = `Could not load: ${error_text(e)}`;
      return;
    }
    status.textContent = '';
    const mine = (x) => x.vpc_id === undefined || x.vpc_id === vpc_id;
    subnets = subnets.filter(mine); nics = nics.filter(mine); sgs = sgs.filter(mine); routes = routes.filter(mine);
    natgws = natgws.filter(mine); peers = peers.filter(mine); remotes = remotes.filter(mine);
    const nic_ids = new Set(nics.map((n) => n.id));
    fips = fips.filter((f) => f.nic_id && nic_ids.has(f.nic_id));
    const subnet_name = new Map(subnets.map((x) => [x.id, display_name(x)]));
    const sg_name = new Map(sgs.map((x) => [x.id, display_name(x)]));
    const uplink_name = new Map(uplinks.map((x) => [x.id, x.ifname]));

    if (changed('head', vpc)) {
      clear(head).append(
        h('p', { class: 'crumbs' }, h('a', { href: '#/' }, 'Overview'), ' / VPC'),
        h('h1', {}, `VPC ${display_name(vpc)}`),
        h('dl', { class: 'facts' },
          h('dt', {}, 'ID'), h('dd', { class: 'mono' }, vpc.id),
          h('dt', {}, 'VNI'), h('dd', {}, String(vpc.vni ?? '-')),
          h('dt', {}, 'CIDRs'), h('dd', {}, (vpc.cidrs || []).join(', ')),
          h('dt', {}, 'MTU'), h('dd', {}, String(vpc.mtu ?? '-')),
          h('dt', {}, 'Updated'), h('dd', {}, format_time(vpc.updated_at))),
        h('p', { class: 'actions' }, h('a', { class: 'button', href: `#/vpc/${vpc_id}/topology` }, 'Topology picture'), ' ',
          admin ? delete_button(`VPC ${display_name(vpc)}`, async () => {
            await ctx.api.del(`/vpcs/${vpc_id}`);
            location.hash = '#/';
          }, vpc_id) : null));
    }

    if (changed('subnets', [subnets, nics.map((n) => n.subnet_id)])) {
      clear(subnets_box).append(table([
        { title: 'Name', cell: (x) => display_name(x) },
        { title: 'CIDR', cell: (x) => x.cidr },
        { title: 'Gateway', cell: (x) => x.gateway || '-' },
        { title: 'NICs', cls: 'num', cell: (x) => String(nics.filter((n) => n.subnet_id === x.id).length) },
        ...(admin ? [{ title: 'Actions', cell: (x) => del('subnets', x, 'subnet') }] : []),
      ], subnets, { empty: 'No subnets yet.' }));
      nic_form?.set_options('subnet_id', subnets.map((x) => [x.id, `${display_name(x)} (${x.cidr})`]));
    }
    if (changed('sg-options', sgs.map((x) => [x.id, x.name]))) {
      nic_form?.set_options('security_group_ids', sgs.map((x) => [x.id, display_name(x)]));
    }
    if (changed('uplink-options', uplinks.map((x) => [x.id, x.ifname]))) {
      nat_form?.set_options('uplink_id', uplinks.map((x) => [x.id, `${x.ifname} (${x.address || ''})`]));
    }

    if (changed('nics', [nics, subnets.map((x) => x.name), sgs.map((x) => x.name)])) {
      clear(nics_box).append(table([
        { title: 'Name', cell: (n) => display_name(n) },
        { title: 'Subnet', cell: (n) => subnet_name.get(n.subnet_id) || short_id(n.subnet_id) },
        { title: 'MAC', cls: 'mono', cell: (n) => n.mac || '-' },
        { title: 'IPs', cls: 'mono', cell: (n) => (n.ips || []).join(', ') || '-' },
        { title: 'Backend', cell: (n) => backend_text(n.backend) },
        { title: 'State', cell: (n) => h('span', {}, state_badge(n.state),
          n.state_detail ? h('small', { class: 'detail' }, ` ${n.state_detail}`) : null) },
        { title: 'Security groups', cell: (n) => (n.security_group_ids || []).map((id) => sg_name.get(id) || short_id(id))
          .join(', ') || '-' },
        ...(admin ? [{ title: 'Actions', cell: (n) => h('span', {}, capture_button(ctx, 'nics', n, display_name(n)),
          ' ', del('nics', n, 'NIC')) }] : []),
      ], nics, { empty: 'No NICs yet.' }));
    }

    if (changed('sgs', [sgs, sgs.length])) render_sgs(sgs);

    if (changed('routes', routes)) {
      clear(routes_box).append(table([
        { title: 'Destination', cls: 'mono', cell: (r) => r.destination },
        { title: 'Next hop', cls: 'mono', cell: (r) => r.next_hop },
        ...(admin ? [{ title: 'Actions', cell: (r) => del('routes', r, 'route') }] : []),
      ], routes, { empty: 'No static routes.' }));
    }

    if (changed('nat', [natgws, fips, uplinks.map((u) => u.ifname)])) {
      clear(nat_box).append(
        h('h3', {}, 'SNAT gateways'),
        table([
          { title: 'Uplink', cell: (g) => uplink_name.get(g.uplink_id) || short_id(g.uplink_id) },
          { title: 'External IP', cls: 'mono', cell: (g) => g.external_ip },
          ...(admin ? [{ title: 'Actions', cell: (g) => del('nat-gateways', g, 'NAT gateway') }] : []),
        ], natgws, { empty: 'No NAT gateway.' }),
        h('h3', {}, 'Floating IPs'),
        table([
          { title: 'External IP', cls: 'mono', cell: (f) => f.external_ip },
          { title: 'NIC', cell: (f) => display_name(nics.find((n) => n.id === f.nic_id)) },
          { title: 'Uplink', cell: (f) => uplink_name.get(f.uplink_id) || short_id(f.uplink_id) },
        ], fips, { empty: 'No floating IPs on this VPC\'s NICs.' }));
    }

    if (changed('remote', [peers, remotes])) {
      clear(remote_box).append(
        h('h3', {}, 'VTEP peers'),
        table([
          { title: 'Underlay IP', cls: 'mono', cell: (p) => p.underlay_ip },
          ...(admin ? [{ title: 'Actions', cell: (p) => del('vtep-peers', p, 'VTEP peer') }] : []),
        ], peers, { empty: 'This VPC lives on this box only.' }),
        h('h3', {}, 'Remote NICs'),
        table([
          { title: 'MAC', cls: 'mono', cell: (r) => r.mac },
          { title: 'IPs', cls: 'mono', cell: (r) => (r.ips || []).join(', ') || '-' },
          { title: 'Underlay IP', cls: 'mono', cell: (r) => r.underlay_ip },
        ], remotes, { empty: 'No remote NICs.' }));
    }

    await refresh_live(nics);
  }

  async function refresh_live(nics) {
    const now = Date.now();
    // One GET /v1/stats carries every NIC's counters; GET /v1/nics/ID/stats is the fallback for NICs it lacks.
    const box = await ctx.api.get('/stats').then(normalize_box_stats).catch(() => null);
    const results = await Promise.all(nics.map((n) => box?.nics.get(n.id) ||
      ctx.api.get(`/nics/${n.id}/stats`).catch(() => null)));
    nics.forEach((n, i) => {
      if (!results[i]) return;
      hist.get(n.id).push(now, results[i]);
    });
    clear(live_box).append(table([
      { title: 'NIC', cell: (n) => display_name(n) },
      { title: 'State', cell: (n) => state_badge(n.state) },
      { title: 'Rx', cls: 'num', cell: (n) => rate_cell(hist.get(n.id), 'rx') },
      { title: 'Tx', cls: 'num', cell: (n) => rate_cell(hist.get(n.id), 'tx') },
      { title: 'Rx total', cls: 'num', cell: (n) => counter_text(hist.get(n.id), 'rx_packets') },
      { title: 'Tx total', cls: 'num', cell: (n) => counter_text(hist.get(n.id), 'tx_packets') },
      { title: 'Drops/s', cls: 'num', cell: (n) => drop_cell(hist.get(n.id)) },
      { title: 'Drops by reason', cell: (n) => drop_reasons(hist.get(n.id)) },
      { title: 'Packets/s', cell: (n) => chart_cell(hist.get(n.id), display_name(n)) },
    ], nics, { empty: 'No NICs to measure.' }));
  }

  function render_sgs(sgs) {
    clear(sgs_box);
    if (sgs.length === 0) sgs_box.append(h('p', { class: 'empty' }, 'No security groups.'));
    for (const sg of sgs) {
      const rules = Array.isArray(sg.rules) ? sg.rules : [];
      const save_rules = (next) => ctx.api.patch(`/security-groups/${sg.id}`, { rules: next }, sg.revision);
      const card = h('div', { class: 'sg', 'data-id': sg.id },
        h('h3', {}, `Group ${display_name(sg)}`, admin ? ' ' : null, admin ? del('security-groups', sg, 'security group') : null),
        table([
          { title: 'Direction', cell: (r) => r.direction },
          { title: 'Protocol', cell: (r) => r.protocol },
          { title: 'Ports', cell: (r) => rule_ports(r) },
          { title: 'Peer', cls: 'mono', cell: (r) => r.remote_group_id
            ? `group ${display_name(sgs.find((x) => x.id === r.remote_group_id)) || short_id(r.remote_group_id)}`
            : (r.cidr || '-') },
          ...(sg_writable ? [{ title: 'Actions', cell: (r) => delete_button(`rule ${rules.indexOf(r) + 1}`, async () => {
            await save_rules(rules.filter((x) => x !== r));
            await refresh(true);
          }, `${sg.id}/${sg.revision}/${rules.indexOf(r)}`) }] : []),
        ], rules, { empty: 'No rules: nothing is allowed in but from this VPC.', row_id: (r) => String(rules.indexOf(r)) }));
      if (sg_writable) {
        card.append(make_form({
          id: `add-rule-${sg.id}`, title: 'Add a rule', submit_label: 'Add rule', compact_layout: true,
          fields: [
            { name: 'direction', label: 'Direction', type: 'select', options: [['ingress', 'ingress'], ['egress', 'egress']] },
            { name: 'protocol', label: 'Protocol', type: 'select',
              options: [['tcp', 'tcp'], ['udp', 'udp'], ['icmp', 'icmp'], ['any', 'any']] },
            { name: 'port_min', label: 'From port', type: 'number', placeholder: '22',
              show_if: (f) => f.protocol === 'tcp' || f.protocol === 'udp' },
            { name: 'port_max', label: 'To port', type: 'number', placeholder: 'same',
              show_if: (f) => f.protocol === 'tcp' || f.protocol === 'udp' },
            { name: 'cidr', label: 'CIDR', placeholder: '0.0.0.0/0' },
            { name: 'remote_group_id', label: 'or remote group', type: 'select',
              options: [['', '(use the CIDR)'], ...sgs.map((x) => [x.id, display_name(x)])] },
          ],
          on_submit: async (f) => {
            try {
              return await save_rules([...rules, build_rule(f)]);
            } catch (e) {
              throw rule_error(e, rules.length);
            }
          },
          on_done: () => refresh(true),
        }));
      }
      sgs_box.append(card);
    }
  }

  await refresh(true);
  ctx.every(2000, () => refresh());
}

function counter_text(hist, key) {
  const c = hist?.latest();
  return c ? format_count(c[key]) : '-';
}

function drop_reasons(hist) {
  const c = hist?.latest();
  if (!c) return '-';
  const r = hist.latest_rate();
  const entries = Object.entries(c.drops).filter(([, n]) => n > 0);
  if (entries.length === 0) return 'none';
  return h('ul', { class: 'reasons' }, entries.map(([reason, n]) =>
    h('li', {}, `${reason}: ${format_count(n)}`, r?.drops[reason] ? ` (${r.drops[reason].toFixed(1)}/s)` : '')));
}
