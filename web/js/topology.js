// Topology picture of one VPC: layout_topology() places uplinks, the VPC router, subnets, NICs and remote VTEPs on a
// grid (pure, tested with node); render_topology() draws that layout as SVG on the browser's main thread.
import { s } from './dom.js';
import { display_name } from './format.js';

const kCol = 210;       // width of a subnet column
const kGap = 24;        // space between columns and rows
const kBoxH = 46;       // height of uplink, router, subnet and VTEP boxes
const kNicH = 64;       // height of a NIC box: name, IPs, MAC
const kNicGap = 10;
const kMaxLabel = 28;

export function clip(text, n = kMaxLabel) {
  const t = String(text ?? '');
  return t.length > n ? `${t.slice(0, n - 1)}\u2026` : t;
}

// model: {vpc, subnets, nics, uplinks, vtep_peers, remote_nics} as the API returns them.
// -> {width, height, nodes: [{id, kind, x, y, w, h, label, sub, state}], edges: [{from, to, kind, x1, y1, x2, y2}]}
export function layout_topology(model) {
  const subnets = model.subnets || [];
  const nics = model.nics || [];
  const uplinks = model.uplinks || [];
  const peers = model.vtep_peers || [];
  const remote = model.remote_nics || [];
  const nodes = [];
  const edges = [];

  // Remote VTEPs: every vtep-peer plus every underlay IP that only remote-nics name, with the MACs behind it.
  const vteps = new Map();
  for (const p of peers) vteps.set(p.underlay_ip, { ip: p.underlay_ip, id: p.id, macs: [] });
  for (const r of remote) {
    if (!vteps.has(r.underlay_ip)) vteps.set(r.underlay_ip, { ip: r.underlay_ip, id: `vtep-${r.underlay_ip}`, macs: [] });
    vteps.get(r.underlay_ip).macs.push(r.mac);
  }

  const cols = Math.max(subnets.length, 1);
  const main_w = cols * kCol + (cols + 1) * kGap;
  const side_w = vteps.size ? kCol + kGap : 0;
  const width = Math.max(main_w + side_w, 2 * kCol + 3 * kGap);

  // Row 0: uplinks, spread across the main area (below a bus line for the VXLAN tunnels when there are VTEPs).
  const y_bus = kGap / 2;
  const y_up = vteps.size ? kGap + 12 : kGap;
  const up_w = uplinks.length ? Math.min(kCol, (main_w - kGap * (uplinks.length + 1)) / uplinks.length) : 0;
  uplinks.forEach((u, i) => {
    nodes.push({
      id: u.id, kind: 'uplink', x: kGap + i * (up_w + kGap), y: y_up, w: up_w, h: kBoxH,
      label: clip(`uplink ${u.ifname}`), sub: clip(`${u.address || ''} ${u.role || ''}`.trim()), state: u.state || '',
    });
  });

  // Row 1: the VPC's router.
  const y_vpc = uplinks.length || vteps.size ? y_up + kBoxH + kGap * 2 : kGap;
  const vpc = model.vpc || {};
  const cidrs = Array.isArray(vpc.cidrs) ? vpc.cidrs.join(' ') : '';
  nodes.push({
    id: vpc.id || 'vpc', kind: 'vpc', x: kGap, y: y_vpc, w: main_w - 2 * kGap, h: kBoxH,
    label: clip(`VPC ${display_name(vpc)}  VNI ${vpc.vni ?? '-'}`, 60), sub: clip(cidrs, 60), state: '',
  });
  const vpc_node = nodes[nodes.length - 1];
  for (const u of nodes.filter((n) => n.kind === 'uplink')) {
    edges.push({ from: u.id, to: vpc_node.id, kind: 'uplink',
      x1: u.x + u.w / 2, y1: u.y + u.h, x2: u.x + u.w / 2, y2: vpc_node.y });
  }

  // Row 2: subnets, one column each; NICs stacked below their subnet.
  const y_sub = y_vpc + kBoxH + kGap * 2;
  let bottom = y_sub + kBoxH;
  subnets.forEach((sn, i) => {
    const x = kGap + i * (kCol + kGap);
    nodes.push({ id: sn.id, kind: 'subnet', x, y: y_sub, w: kCol, h: kBoxH,
      label: clip(`subnet ${display_name(sn)}`), sub: clip(`${sn.cidr} gw ${sn.gateway || '-'}`, 32), state: '' });
    edges.push({ from: vpc_node.id, to: sn.id, kind: 'router',
      x1: x + kCol / 2, y1: vpc_node.y + vpc_node.h, x2: x + kCol / 2, y2: y_sub });
    let y = y_sub + kBoxH + kGap;
    for (const n of nics.filter((nic) => nic.subnet_id === sn.id)) {
      const ips = Array.isArray(n.ips) ? n.ips.join(' ') : '';
      nodes.push({ id: n.id, kind: 'nic', x: x + 12, y, w: kCol - 12, h: kNicH,
        label: clip(`${display_name(n)} ${n.backend?.type || ''}`.trim(), 24), sub: clip(ips || 'no address', 30),
        sub2: n.mac || '', state: n.state || 'unknown' });
      edges.push({ from: sn.id, to: n.id, kind: 'port', x1: x + 6, y1: y_sub + kBoxH, x2: x + 12, y2: y + kNicH / 2 });
      y += kNicH + kNicGap;
    }
    bottom = Math.max(bottom, y);
  });

  // Side column: remote VTEPs, tunnelled from the underlay uplinks (or from the router when there is none).
  let y_v = y_up;  // VTEP column starts level with the uplinks
  const tunnel_from = nodes.filter((n) => n.kind === 'uplink' && /underlay|both/.test(n.sub));
  for (const v of vteps.values()) {
    const x = main_w;
    const macs = v.macs.length ? `${v.macs.length} remote NIC${v.macs.length > 1 ? 's' : ''}` : 'flood target';
    nodes.push({ id: v.id, kind: 'vtep', x, y: y_v, w: kCol, h: kBoxH, label: clip(`VTEP ${v.ip}`), sub: macs, state: '' });
    const srcs = tunnel_from.length ? tunnel_from : [vpc_node];
    // Tunnels leave the top of the uplink, run along the bus above the uplinks and drop into the VTEP column, so they
    // never cross another box.
    for (const u of srcs) {
      const x1 = u.x + u.w / 2;
      const y2 = y_v + kBoxH / 2;
      edges.push({ from: u.id, to: v.id, kind: 'tunnel', x1, y1: u.y, x2: x, y2,
        d: `M${x1} ${u.y} V${y_bus} H${x - kGap / 2} V${y2} H${x}` });
    }
    y_v += kBoxH + kGap;
  }
  bottom = Math.max(bottom, y_v);
  return { width, height: bottom + kGap, nodes, edges };
}

export function render_topology(layout, { title = 'VPC topology' } = {}) {
  const svg = s('svg', {
    class: 'topology', viewBox: `0 0 ${layout.width} ${layout.height}`, role: 'img', 'aria-label': title,
    preserveAspectRatio: 'xMinYMin meet', width: layout.width, height: layout.height,
  });
  svg.append(s('title', {}, title));
  for (const e of layout.edges) {
    if (e.d) {
      svg.append(s('path', { class: `edge edge-${e.kind}`, d: e.d }));
    } else if (e.kind === 'port') {
      svg.append(s('path', { class: `edge edge-${e.kind}`, d: `M${e.x1} ${e.y1} V${e.y2} H${e.x2}` }));
    } else {
      svg.append(s('line', { class: `edge edge-${e.kind}`, x1: e.x1, y1: e.y1, x2: e.x2, y2: e.y2 }));
    }
  }
  for (const n of layout.nodes) {
    const state = n.state ? ` state-${n.state}` : '';
    svg.append(s('g', { class: `node node-${n.kind}${state}`, 'data-id': n.id, 'data-kind': n.kind },
      s('title', {}, `${n.label}\n${n.sub}${n.sub2 ? `\n${n.sub2}` : ''}${n.state ? `\nstate: ${n.state}` : ''}`),
      s('rect', { x: n.x, y: n.y, width: n.w, height: n.h, rx: 6 }),
      n.kind === 'nic' ? s('circle', { class: 'dot', cx: n.x + n.w - 12, cy: n.y + 12, r: 5 }) : null,
      s('text', { class: 'label', x: n.x + 8, y: n.y + 19 }, n.label),
      s('text', { class: 'sub', x: n.x + 8, y: n.y + 36 }, n.sub),
      n.sub2 ? s('text', { class: 'sub mono', x: n.x + 8, y: n.y + 53 }, n.sub2) : null));
  }
  return svg;
}
