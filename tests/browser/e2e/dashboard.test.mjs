// End-to-end test of the vpcd dashboard in Debian's headless chromium (driven by playwright-core) against a real vpcd
// that tests/browser/run.sh started: log in, create a VPC, a subnet and two netns NICs through the forms, see them in
// the lists and the topology, ping between the guests and watch the counters rise, a bad CIDR's error next to its
// field (VPC form and security-group rule form), a packet capture downloaded from a NIC, a security group with a rule
// (or, while the datapath does not carry security groups, no form for them), a viewer without write controls whose
// forced write shows 403, loading the page makes no write and logs no error (the role comes from GET /v1/whoami), an
// uplink on a missing interface shown in error with the reason, delete everything, no console errors.
// Env: VPCD_URL, VPCD_ADMIN_TOKEN, VPCD_VIEWER_TOKEN, VPCD_SCREENSHOT_DIR. Needs root (ip netns).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, request } from 'playwright-core';

const url = process.env.VPCD_URL;
const admin_token = process.env.VPCD_ADMIN_TOKEN;
const viewer_token = process.env.VPCD_VIEWER_TOKEN;
const shots = process.env.VPCD_SCREENSHOT_DIR || join(process.cwd(), 'artifacts', 'screenshots');
const ready = Boolean(url && admin_token && viewer_token);
const skip = ready ? false : 'VPCD_URL, VPCD_ADMIN_TOKEN and VPCD_VIEWER_TOKEN are not set (run tests/browser/run.sh)';

const tag = `bt${process.pid}`;
const ns_a = `${tag}a`;
const ns_b = `${tag}b`;
// 10.N.0.0/16 picked from the pid so that concurrent runs in other namespaces do not look alike; traffic stays in ns.
const octet = 100 + (process.pid % 100);
const vpc_cidr = `10.${octet}.0.0/16`;
const subnet_cidr = `10.${octet}.1.0/24`;
const ip_a = `10.${octet}.1.10`;
const ip_b = `10.${octet}.1.11`;

let browser;  // a persistent context: chromium gets its own fresh --user-data-dir this way
let user_data_dir;
let api;
const pings = [];
const made_ns = [];
const console_errors = [];
const all_console_errors = [];  // unfiltered, for the page-load check
// Network errors the test provokes on purpose: the refused token (401), the bad CIDR (400), the viewer's forced write
// (403). Chromium logs each failed response as a console error.
const expected_network = /Failed to load resource: the server responded with a status of (400|401|403)/;

function ip(...args) {
  return execFileSync('ip', args, { encoding: 'utf8', timeout: 10000 });
}

async function new_page() {
  // Each page (tab) has its own sessionStorage, so the admin's and the viewer's logins stay apart.
  const page = await browser.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error') all_console_errors.push(`${m.text()} @ ${page.url()}`);
    if (m.type() === 'error' && !expected_network.test(m.text())) console_errors.push(`${m.text()} @ ${page.url()}`);
  });
  page.on('pageerror', (e) => console_errors.push(`uncaught: ${e.message} @ ${page.url()}`));
  page.setDefaultTimeout(15000);
  return page;
}

async function login(page, token) {
  await page.goto(url);
  await page.getByLabel('API token', { exact: true }).fill(token);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('heading', { name: 'Overview' }).waitFor();
}

// Counter of one NIC in the live table (e.g. 'Rx total'), or -1 while it shows none.
async function live_counter(page, nic_id, column) {
  const cell = page.locator(`#nic-live tr[data-id="${nic_id}"] td[data-label="${column}"]`);
  const text = (await cell.textContent({ timeout: 5000 }).catch(() => '-')) || '-';
  const n = Number(text.replace(/,/g, ''));
  return Number.isFinite(n) ? n : -1;
}

async function until(what, fn, timeout_ms = 20000) {
  const end = Date.now() + timeout_ms;
  let last;
  while (Date.now() < end) {
    last = await fn();
    if (last) return last;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out after ${timeout_ms} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
}

before(async () => {
  if (!ready) return;
  mkdirSync(shots, { recursive: true });
  user_data_dir = mkdtempSync(join(tmpdir(), 'vpcd-chromium-'));
  browser = await chromium.launchPersistentContext(user_data_dir, {
    executablePath: '/usr/bin/chromium', headless: true, ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  api = await request.newContext({ baseURL: url, ignoreHTTPSErrors: true,
    extraHTTPHeaders: { Authorization: `Bearer ${admin_token}` } });
  for (const ns of [ns_a, ns_b]) {
    ip('netns', 'add', ns);
    made_ns.push(ns);
  }
});

after(async () => {
  for (const p of pings) if (p.exitCode === null) p.kill('SIGKILL');
  // Objects this run created (named with its tag) are deleted children first, even when a step failed.
  if (api) {
    for (const kind of ['nics', 'security-groups', 'subnets', 'vpcs', 'uplinks']) {
      const res = await api.get(`/v1/${kind}?limit=1000`).catch(() => null);
      const items = res && res.ok() ? (await res.json()).items : [];
      for (const o of items) if (String(o.name || '').startsWith(tag)) await api.delete(`/v1/${kind}/${o.id}`).catch(() => {});
    }
    await api.dispose();
  }
  if (browser) await browser.close();
  for (const ns of made_ns) {
    try { ip('netns', 'del', ns); } catch { /* already gone */ }
  }
  if (user_data_dir) rmSync(user_data_dir, { recursive: true, force: true });
});

test('dashboard end to end against a real vpcd', { skip, timeout: 240000 }, async (t) => {
  const page = await new_page();
  let vpc_id;
  const nic_ids = {};

  await t.test('log in with an admin token', async () => {
    await page.goto(url);
    await page.getByLabel('API token', { exact: true }).fill('not-a-token');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.locator('#login-error').filter({ hasText: 'not valid' }).waitFor();
    // Keyboard only: the token field has the focus after the refusal, Enter submits.
    assert.ok(await page.evaluate(() => document.activeElement?.id === 'token'), 'focus is on the token field');
    await page.keyboard.press('ControlOrMeta+a');
    await page.keyboard.type(admin_token);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    assert.equal(await page.locator('#role').textContent(), 'admin');
    assert.ok(!page.url().includes(admin_token), 'the token is not in the URL');
  });

  await t.test('loading the page asks whoami: no write, no audit event, no console error', async () => {
    const total = async () => (await (await api.get('/v1/events?limit=1')).json()).total;
    const events_before = await total();
    const errors_before = all_console_errors.length;
    const writes = [];
    const on_request = (r) => { if (r.method() !== 'GET') writes.push(`${r.method()} ${r.url()}`); };
    page.on('request', on_request);
    await page.reload();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    await page.locator('#vpc-list').waitFor();
    assert.equal(await page.locator('#role').textContent(), 'admin');
    page.off('request', on_request);
    assert.deepEqual(writes, [], 'no request but GETs while loading');
    assert.deepEqual(all_console_errors.slice(errors_before), [], 'no console error while loading');
    assert.equal(await total(), events_before, 'no audit event from loading the page');
  });

  await t.test('a bad CIDR shows the API error next to the field', async () => {
    const form = page.locator('#create-vpc');
    await form.getByLabel('Name', { exact: true }).fill(`${tag}-bad`);
    await form.getByLabel('CIDRs', { exact: true }).fill('10.0.0.0/33');
    await form.getByRole('button', { name: 'Create VPC' }).click();
    const err = page.locator('#create-vpc-cidrs-err');
    await err.waitFor({ state: 'visible' });
    assert.match(await err.textContent(), /\S/);
    assert.equal(await form.getByLabel('CIDRs', { exact: true }).getAttribute('aria-invalid'), 'true');
    assert.ok(await page.evaluate(() => document.activeElement?.id === 'create-vpc-cidrs'), 'focus moves to the field');
  });

  await t.test('create a VPC through the form', async () => {
    const form = page.locator('#create-vpc');
    await form.getByLabel('Name', { exact: true }).fill(`${tag}-vpc`);
    await form.getByLabel('CIDRs', { exact: true }).fill(vpc_cidr);
    await form.getByRole('button', { name: 'Create VPC' }).click();
    const link = page.locator('#vpc-list a', { hasText: `${tag}-vpc` });
    await link.waitFor();
    assert.equal(await page.locator('#create-vpc-cidrs-err').isVisible(), false);
    await link.click();
    await page.getByRole('heading', { name: `VPC ${tag}-vpc` }).waitFor();
    vpc_id = /#\/vpc\/([0-9a-f-]{36})$/.exec(page.url())[1];
  });

  await t.test('create a subnet and two netns NICs through the forms', async () => {
    const sf = page.locator('#create-subnet');
    await sf.getByLabel('Name', { exact: true }).fill(`${tag}-sn`);
    await sf.getByLabel('CIDR', { exact: true }).fill(subnet_cidr);
    await sf.getByRole('button', { name: 'Create subnet' }).click();
    await page.locator('#subnet-list td', { hasText: subnet_cidr }).waitFor();

    const nf = page.locator('#create-nic');
    await until('the subnet in the NIC form', async () => (await nf.getByLabel('Subnet', { exact: true }).locator('option').count()) > 0);
    for (const [name, ns, addr] of [[`${tag}-a`, ns_a, ip_a], [`${tag}-b`, ns_b, ip_b]]) {
      await nf.getByLabel('Name', { exact: true }).fill(name);
      await nf.getByLabel('Backend', { exact: true }).selectOption('netns');
      await nf.getByLabel('Namespace', { exact: true }).fill(ns);
      await nf.getByLabel('Interface name', { exact: true }).fill('eth0');
      await nf.getByLabel('IPs', { exact: true }).fill(addr);
      await nf.getByRole('button', { name: 'Create NIC' }).click();
      const row = page.locator('#nic-list tr', { hasText: name });
      await row.waitFor();
      nic_ids[name] = await row.getAttribute('data-id');
    }
    for (const name of Object.keys(nic_ids)) {
      await page.locator(`#nic-list tr[data-id="${nic_ids[name]}"] .badge.state-up`).waitFor({ timeout: 30000 });
    }
    const text = await page.locator('#nic-list').textContent();
    assert.ok(text.includes(ip_a) && text.includes(ip_b), 'both NICs show their IPs');
    assert.ok(text.includes(`netns ${ns_a}`), 'the backend is shown');
  });

  await t.test('ping between the guests and see the counters rise', async () => {
    const id_a = nic_ids[`${tag}-a`];
    const id_b = nic_ids[`${tag}-b`];
    await page.locator(`#nic-live tr[data-id="${id_a}"]`).waitFor();
    const before_rx = await live_counter(page, id_a, 'Rx total');
    const before_tx_b = await live_counter(page, id_b, 'Tx total');
    // Bounded: at most 150 echo requests, 0.2 s apart, the whole run capped at 30 s (killed earlier by after()).
    const ping = spawn('ip', ['netns', 'exec', ns_a, 'ping', '-n', '-q', '-c', '150', '-i', '0.2', '-w', '30', ip_b],
      { stdio: 'ignore' });
    pings.push(ping);
    await until('NIC a to count received frames', async () => (await live_counter(page, id_a, 'Rx total')) > Math.max(before_rx, 0) + 5);
    await until('NIC b to count sent frames', async () => (await live_counter(page, id_b, 'Tx total')) > Math.max(before_tx_b, 0) + 5);
    await until('a packet rate', async () => {
      const txt = await page.locator(`#nic-live tr[data-id="${id_a}"] td[data-label="Rx"]`).textContent();
      return /[1-9][\d.]* [kM]?pkt\/s/.test(txt) ? txt : null;
    });
    await until('a chart with a few points', async () => {
      const d = await page.locator(`#nic-live tr[data-id="${id_a}"] svg.spark path.spark-line.rx`).getAttribute('d')
        .catch(() => null);
      return d && (d.match(/L/g) || []).length >= 3;
    });
    await page.screenshot({ path: join(shots, 'vpc.png'), fullPage: true });
  });

  await t.test('capture from a NIC downloads a pcap with frames in it', async () => {
    // The ping of the previous step is still running (a request every 0.2 s).
    const row = page.locator(`#nic-list tr[data-id="${nic_ids[`${tag}-a`]}"]`);
    await row.getByRole('button', { name: /^Capture / }).click();
    await row.getByLabel('Capture filter').fill('icmp');
    await row.getByLabel('Capture seconds').fill('3');
    const download = page.waitForEvent('download', { timeout: 20000 });
    await row.getByRole('button', { name: 'Start' }).click();
    await until('the frame count while capturing', async () =>
      /Capturing: [1-9]\d* frames/.test(await row.locator('.capture-status').textContent()));
    await row.screenshot({ path: join(shots, 'capture.png') });
    const file = readFileSync(await (await download).path());
    assert.ok(file.length > 24, 'more than a pcap header');
    assert.equal(file.readUInt32LE(0), 0xa1b2c3d4, 'pcap magic');
    assert.equal(file.readUInt32LE(20), 1, 'Ethernet link type');
    let frames = 0;
    for (let off = 24; off + 16 <= file.length; frames += 1) off += 16 + file.readUInt32LE(off + 8);
    assert.ok(frames > 0, 'frames in the file');
    await until('the saved message', async () => /Saved [1-9]\d* frames/.test(await row.locator('.capture-status').textContent()));
  });

  await t.test('security groups: through the forms, or no form while the datapath does not carry them', async () => {
    const caps = (await (await api.get('/v1/whoami')).json()).capabilities;
    if (!caps['security-groups']) {
      // The box would ignore them (house rule: refused with 501 until carried out), so the dashboard offers no form.
      assert.equal(await page.locator('#create-sg').count(), 0, 'no create form for security groups');
      assert.equal(await page.locator('#create-nic').getByLabel('Security groups', { exact: true }).count(), 0,
        'no security-group field on the NIC form');
      await page.locator('section', { hasText: 'Security groups' }).locator('.not-carried').waitFor();
      assert.equal(await page.locator('#create-route').count(), caps.routes ? 1 : 0);
      assert.equal(await page.locator('#create-natgw').count(), caps['nat-gateways'] ? 1 : 0);
      const options = await page.locator('#create-nic').getByLabel('Backend', { exact: true }).locator('option')
        .evaluateAll((os) => os.map((o) => o.value));
      assert.equal(options.includes('vhost-user'), Boolean(caps['nic-backend-vhost-user']));
      return;
    }
    const gf = page.locator('#create-sg');
    await gf.getByLabel('Name', { exact: true }).fill(`${tag}-sg`);
    await gf.getByRole('button', { name: 'Create group' }).click();
    const card = page.locator('.sg', { hasText: `Group ${tag}-sg` });
    await card.waitFor();
    const rf = card.locator('form');
    await rf.getByLabel('Protocol', { exact: true }).selectOption('tcp');
    await rf.getByLabel('From port', { exact: true }).fill('22');
    await rf.getByLabel('CIDR', { exact: true }).fill('10.1.0.0/99');
    await rf.getByRole('button', { name: 'Add rule' }).click();
    const err = rf.locator('[id$="-cidr-err"]');
    await err.waitFor({ state: 'visible' });
    assert.match(await err.textContent(), /cidr/i, 'the rule CIDR error is shown at the CIDR field');
    await rf.getByLabel('CIDR', { exact: true }).fill('10.1.0.0/16');
    await rf.getByRole('button', { name: 'Add rule' }).click();
    const rule = page.locator('.sg', { hasText: `Group ${tag}-sg` }).locator('tr', { hasText: '10.1.0.0/16' });
    await rule.waitFor();
    assert.match(await rule.textContent(), /ingress.*tcp.*22/);
    await rule.getByRole('button', { name: /^Delete rule/ }).click();
    await rule.getByRole('button', { name: /^Confirm delete rule/ }).click();
    await rule.waitFor({ state: 'detached' });
    const head = page.locator('.sg', { hasText: `Group ${tag}-sg` }).locator('h3').first();
    await head.getByRole('button', { name: /^Delete security group/ }).click();
    await head.getByRole('button', { name: /^Confirm delete security group/ }).click();
    await page.locator('.sg', { hasText: `Group ${tag}-sg` }).waitFor({ state: 'detached' });
  });

  await t.test('the topology shows the VPC, subnet and NICs', async () => {
    await page.getByRole('link', { name: 'Topology picture' }).click();
    const svg = page.locator('#topology svg');
    await svg.waitFor();
    assert.equal(await svg.locator('g.node-vpc').count(), 1);
    assert.equal(await svg.locator('g.node-subnet').count(), 1);
    assert.equal(await svg.locator('g.node-nic').count(), 2);
    for (const id of Object.values(nic_ids)) await svg.locator(`g.node-nic.state-up[data-id="${id}"]`).waitFor();
    await page.screenshot({ path: join(shots, 'topology.png'), fullPage: true });
  });

  await t.test('the overview counts the NICs and shows drops', async () => {
    await page.getByRole('link', { name: 'Overview' }).first().click();
    await page.locator('#kpi-nics').filter({ hasText: '2 up' }).waitFor();
    await page.locator('#kpi-drops').waitFor();
    // Both netns NICs of the subnet (no security group left) are on the kernel fast path.
    await page.locator('#kpi-fastpath').filter({ hasText: '2 NICs forwarded in the kernel' }).waitFor();
    await page.locator('#vpc-list a', { hasText: `${tag}-vpc` }).waitFor();
    await until('box-wide traffic and its chart while the ping runs', async () =>
      /[1-9][\d.]* [kM]?pkt\/s/.test(await page.locator('#box-traffic').textContent()) &&
      (await page.locator('#box-traffic path.spark-line.rx').count()) > 0);
    await page.screenshot({ path: join(shots, 'overview.png'), fullPage: true });
    await page.setViewportSize({ width: 400, height: 800 });
    await page.locator('#vpc-list a', { hasText: `${tag}-vpc` }).click();
    await page.locator('#nic-list').waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 1, `no horizontal scrolling on a narrow window (overflow ${overflow}px)`);
    await page.screenshot({ path: join(shots, 'vpc-narrow.png') });
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  await t.test('an uplink on an interface that is not there shows its error and the reason on the overview', async () => {
    const ifname = `${tag}nx`;  // never created: vpcd finds no such interface and says so (it touches nothing)
    const res = await api.post('/v1/uplinks',
      { data: { name: `${tag}-uplink`, ifname, address: '198.18.99.1/24', role: 'underlay' } });
    assert.equal(res.status(), 201, await res.text());
    const up = await res.json();
    await page.getByRole('link', { name: 'Overview' }).first().click();
    const row = page.locator('#uplinks tr', { hasText: ifname });
    await until('the uplink in error with its reason', async () => {
      const txt = await row.textContent({ timeout: 1000 }).catch(() => '');
      return /error/.test(txt) && txt.includes(`uplink interface ${ifname} does not exist`) ? txt : null;
    });
    await page.screenshot({ path: join(shots, 'overview-uplink-error.png'), fullPage: true });
    const del = await api.delete(`/v1/uplinks/${up.id}`);
    assert.equal(del.status(), 204, await del.text());
  });

  await t.test('a viewer sees no write controls and a forced write shows 403', async () => {
    const vp = await new_page();
    await login(vp, viewer_token);
    assert.equal(await vp.locator('#role').textContent(), 'viewer');
    await vp.locator('#vpc-list a', { hasText: `${tag}-vpc` }).waitFor();
    assert.equal(await vp.locator('form.api-form').count(), 0, 'no forms on the overview');
    assert.equal(await vp.getByRole('button', { name: /Delete/ }).count(), 0, 'no delete buttons on the overview');
    await vp.locator('#vpc-list a', { hasText: `${tag}-vpc` }).click();
    await vp.locator('#nic-list tr', { hasText: `${tag}-a` }).waitFor();
    assert.equal(await vp.locator('form').count(), 0, 'no forms on the VPC page');
    assert.equal(await vp.getByRole('button', { name: /Delete|Confirm/ }).count(), 0, 'no delete buttons on the VPC page');
    // Force the write controls by answering whoami with the admin role in this tab: the server still refuses.
    await vp.route('**/v1/whoami', async (route) => {
      const res = await route.fetch();
      await route.fulfill({ response: res, json: { ...(await res.json()), role: 'admin' } });
    });
    await vp.goto(`${url}/#/`);
    await vp.reload();
    const form = vp.locator('#create-vpc');
    await form.getByLabel('CIDRs', { exact: true }).fill('10.250.0.0/16');
    await form.getByLabel('Name', { exact: true }).fill(`${tag}-forced`);
    await form.getByRole('button', { name: 'Create VPC' }).click();
    const err = form.locator('.form-error');
    await err.waitFor({ state: 'visible' });
    assert.match(await err.textContent(), /403/);
    await vp.close();
    const res = await api.get('/v1/vpcs?limit=1000');
    assert.ok(!(await res.json()).items.some((v) => v.name === `${tag}-forced`), 'the forced write changed nothing');
  });

  await t.test('delete everything through the dashboard', async () => {
    await page.goto(`${url}/#/vpc/${vpc_id}`);
    for (const id of Object.values(nic_ids)) {
      const row = page.locator(`#nic-list tr[data-id="${id}"]`);
      await row.getByRole('button', { name: /^Delete NIC/ }).click();
      await row.getByRole('button', { name: /^Confirm delete NIC/ }).click();
      await row.waitFor({ state: 'detached' });
    }
    const srow = page.locator('#subnet-list tr', { hasText: subnet_cidr });
    await srow.getByRole('button', { name: /^Delete subnet/ }).click();
    await srow.getByRole('button', { name: /^Confirm delete subnet/ }).click();
    await srow.waitFor({ state: 'detached' });
    await page.locator('.vpc-head').getByRole('button', { name: /^Delete VPC/ }).click();
    await page.locator('.vpc-head').getByRole('button', { name: /^Confirm delete VPC/ }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    await page.locator('#vpc-list').waitFor();
    assert.equal(await page.locator('#vpc-list a', { hasText: `${tag}-vpc` }).count(), 0);
    for (const kind of ['vpcs', 'subnets', 'nics']) {
      const items = (await (await api.get(`/v1/${kind}?limit=1000`)).json()).items;
      assert.equal(items.filter((o) => String(o.name || '').startsWith(tag)).length, 0, `no ${kind} left`);
    }
  });

  await t.test('the events list shows the writes', async () => {
    await page.getByRole('link', { name: 'Events' }).click();
    await page.locator('#event-list td', { hasText: 'DELETE' }).first().waitFor();
  });

  await t.test('no console errors during the run', () => {
    assert.deepEqual(console_errors, []);
  });
});
