// Dashboard entry point: login with a token (kept in sessionStorage, never in the URL), the token's role and the box's
// capabilities from GET /v1/whoami (once per page load and login), the header and the hash router (#/, #/vpc/ID,
// #/vpc/ID/topology, #/events). Each view gets a context whose timers stop when the view is left. Browser main thread.
import { h, clear } from './dom.js';
import { Api, whoami } from './api.js';
import { error_text } from './ui.js';
import { render_overview } from './views/overview.js';
import { render_vpc } from './views/vpc.js';
import { render_topology_page } from './views/topology.js';
import { render_events } from './views/events.js';

const kTokenKey = 'vpcd.token';
const kUuid = '[0-9a-fA-F-]{36}';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
let current_ctx = null;
let who_cache = null;  // { token, role, token_id, capabilities }: whoami of the logged-in token, for this page load

function stored(key) {
  try { return sessionStorage.getItem(key); } catch { return null; }
}

function logout(message) {
  sessionStorage.removeItem(kTokenKey);
  who_cache = null;
  show_login(message);
}

function make_api(token) {
  return new Api(token, { on_unauthorized: () => logout('Your token was refused; log in again.') });
}

function stop_view() {
  if (current_ctx) current_ctx.stop();
  current_ctx = null;
}

function show_login(message) {
  stop_view();
  document.body.classList.remove('role-admin', 'role-viewer');
  nav.hidden = true;
  clear(who);
  const err = h('p', { class: 'form-error', id: 'login-error', role: 'alert', hidden: !message }, message || '');
  const input = h('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'off', required: true,
    'aria-describedby': 'login-error token-help' });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Log in');
  const form = h('form', { id: 'login', class: 'login card' },
    h('h1', {}, 'Log in to vpcd'),
    h('label', { for: 'token' }, 'API token'), input,
    h('small', { id: 'token-help', class: 'help' }, 'Create one on the box with: vpcd token create --role viewer'),
    h('div', { class: 'form-actions' }, submit), err);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const token = input.value.trim();
    err.hidden = true;
    if (!token) {
      err.textContent = 'Enter a token.';
      err.hidden = false;
      input.focus();
      return;
    }
    submit.disabled = true;
    try {
      const who = await whoami(new Api(token));
      sessionStorage.setItem(kTokenKey, token);
      who_cache = { token, ...who };
      input.value = '';
      route();
    } catch (e) {
      err.textContent = e.status === 401 ? 'This token is not valid.' : error_text(e);
      err.hidden = false;
      input.focus();
    } finally {
      submit.disabled = false;
    }
  });
  clear(main).append(form);
  input.focus();
}

function make_ctx(api, who) {
  const timers = [];
  let stopped = false;
  const ctx = {
    api, role: who.role, capabilities: who.capabilities,
    every(ms, fn) {
      let busy = false;
      const id = setInterval(async () => {
        if (busy || stopped) return;
        busy = true;
        try { await fn(); } finally { busy = false; }
      }, ms);
      timers.push(id);
    },
    stop() {
      stopped = true;
      for (const id of timers) clearInterval(id);
    },
    get stopped() { return stopped; },
  };
  return ctx;
}

async function route() {
  const token = stored(kTokenKey);
  if (!token) return show_login('');
  stop_view();
  if (!who_cache || who_cache.token !== token) {
    try {
      who_cache = { token, ...(await whoami(make_api(token))) };
    } catch (e) {
      if (e.status === 401) return undefined;  // make_api's on_unauthorized has shown the login form
      clear(main).append(h('p', { class: 'form-error', role: 'alert' }, `Could not reach vpcd: ${error_text(e)}`));
      return undefined;
    }
  }
  const role = who_cache.role;
  document.body.classList.toggle('role-admin', role === 'admin');
  document.body.classList.toggle('role-viewer', role === 'viewer');
  nav.hidden = false;
  clear(who).append(h('span', { class: `badge role-${role}`, id: 'role' }, role),
    h('button', { type: 'button', id: 'logout', class: 'small', onclick: () => logout('') }, 'Log out'));

  const hash = location.hash || '#/';
  for (const a of nav.querySelectorAll('a')) {
    const active = a.getAttribute('href') === hash || (a.getAttribute('href') === '#/' && hash.startsWith('#/vpc'));
    if (active) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  const ctx = make_ctx(make_api(token), who_cache);
  current_ctx = ctx;
  const view = h('div', { class: 'view' });
  clear(main).append(view);
  let m;
  try {
    if ((m = new RegExp(`^#/vpc/(${kUuid})/topology$`).exec(hash))) await render_topology_page(view, ctx, m[1].toLowerCase());
    else if ((m = new RegExp(`^#/vpc/(${kUuid})$`).exec(hash))) await render_vpc(view, ctx, m[1].toLowerCase());
    else if (hash === '#/events') await render_events(view, ctx);
    else await render_overview(view, ctx);
  } catch (e) {
    if (ctx.stopped) return;
    view.append(h('p', { class: 'form-error', role: 'alert' }, `Something went wrong: ${error_text(e)}`));
  }
  const heading = view.querySelector('h1');
  if (heading && !document.activeElement?.closest('form')) {
    heading.setAttribute('tabindex', '-1');
    heading.focus({ preventScroll: true });
  }
}

window.addEventListener('hashchange', () => {
  if (location.hash === '' || location.hash.startsWith('#/')) route();
});
route();
