// Events page: the audit list of API writes (GET /v1/events), newest first as the server orders them, paged with
// limit/offset. Browser main thread.
import { h, clear } from '../dom.js';
import { format_time, short_id } from '../format.js';
import { table, error_text } from '../ui.js';

const kPage = 50;

export async function render_events(root, ctx) {
  const list = h('div', { id: 'event-list' });
  const pager = h('nav', { class: 'pager', 'aria-label': 'Event pages' });
  const status = h('p', { class: 'status-line', role: 'status' });
  let offset = 0;
  root.append(h('h1', {}, 'Events'), h('p', { class: 'help' }, 'Every change made through the API, with who made it.'),
    status, list, pager);

  async function load() {
    let page;
    try {
      page = await ctx.api.get(`/events?limit=${kPage}&offset=${offset}`);
    } catch (e) {
      status.textContent = `Could not load: ${error_text(e)}`;
      return;
    }
    status.textContent = '';
    const items = Array.isArray(page?.items) ? page.items : [];
    const total = Number.isInteger(page?.total) ? page.total : items.length;
    clear(list).append(table([
      { title: 'Time', cell: (e) => format_time(e.time) },
      { title: 'Method', cell: (e) => e.method || '-' },
      { title: 'Kind', cell: (e) => e.kind || '-' },
      { title: 'Object', cls: 'mono', cell: (e) => (e.object_id ? h('span', { title: e.object_id }, short_id(e.object_id)) : '-') },
      { title: 'Status', cls: 'num', cell: (e) => h('span', { class: e.status >= 400 ? 'bad' : '' }, String(e.status ?? '-')) },
      { title: 'Token', cls: 'mono', cell: (e) => short_id(e.token_id) || '-' },
    ], items, { empty: 'No events yet.' }));
    const last = Math.min(offset + items.length, total);
    clear(pager).append(
      h('button', { type: 'button', disabled: offset === 0, onclick: () => { offset = Math.max(0, offset - kPage); load(); } },
        'Newer'),
      h('span', {}, total ? ` ${offset + 1}-${last} of ${total} ` : ' '),
      h('button', { type: 'button', disabled: last >= total, onclick: () => { offset += kPage; load(); } }, 'Older'));
  }

  await load();
  ctx.every(5000, () => { if (offset === 0) load(); });
}
