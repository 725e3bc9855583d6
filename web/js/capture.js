// Packet capture from the dashboard (admin only): GET /v1/nics/ID/capture or /v1/uplinks/ID/capture streams a pcap;
// the panel shows the frames counted so far while it runs, then downloads the file. One capture per panel at a time;
// leaving the page or pressing Stop aborts the request, which ends the capture on the server (hang-up).
// Browser main thread; pcap_counter is pure (also used by the node unit tests).
import { h } from './dom.js';
import { error_text } from './ui.js';

// Counts the records of a classic pcap stream fed in pieces: 24-byte file header, then 16-byte record headers whose
// incl_len (bytes 8..11, in the file's byte order given by the magic) says how much data follows.
export function pcap_counter() {
  let skip = 24;
  let little = true;
  const magic = [];
  const head = new Uint8Array(16);
  let fill = 0;
  const state = {
    frames: 0,
    valid: true,
    push(chunk) {
      for (let i = 0; i < chunk.length;) {
        if (magic.length < 4) {
          magic.push(chunk[i]);
          if (magic.length === 4) {
            const m = magic.map((b) => b.toString(16).padStart(2, '0')).join('');
            little = m === 'd4c3b2a1' || m === '4d3cb2a1';
            state.valid = little || m === 'a1b2c3d4' || m === 'a1b23c4d';
          }
        }
        if (skip > 0) {
          const k = magic.length < 4 ? 1 : Math.min(skip, chunk.length - i);
          skip -= k;
          i += k;
          continue;
        }
        head[fill++] = chunk[i++];
        if (fill === 16) {
          const len = little
            ? head[8] | (head[9] << 8) | (head[10] << 16) | (head[11] << 24)
            : (head[8] << 24) | (head[9] << 16) | (head[10] << 8) | head[11];
          skip = len >>> 0;
          fill = 0;
          state.frames += 1;
        }
      }
    },
  };
  return state;
}

// A "Capture" button for one NIC or uplink that opens a small form (filter, duration) and runs the capture.
// kind: 'nics' | 'uplinks'; name: shown and used for the file name. The element is kept per view (ctx) and object,
// so a table redrawn every refresh moves the same element (and a capture in progress) into its new row.
const kept = new WeakMap();

export function capture_button(ctx, kind, obj, name) {
  if (!kept.has(ctx)) kept.set(ctx, new Map());
  const mine = kept.get(ctx);
  const key = `${kind}:${obj.id}`;
  if (!mine.has(key)) mine.set(key, make_button(ctx, kind, obj, name));
  return mine.get(key);
}

function make_button(ctx, kind, obj, name) {
  const box = h('span', { class: 'capture-wrap' });
  const open_btn = h('button', { type: 'button', class: 'small', 'aria-label': `Capture ${name}` }, 'Capture');
  box.append(open_btn);
  open_btn.addEventListener('click', () => {
    const panel = capture_panel(ctx, kind, obj, name, () => { panel.remove(); open_btn.hidden = false; });
    open_btn.hidden = true;
    box.append(panel);
  });
  return box;
}

function capture_panel(ctx, kind, obj, name, on_close) {
  const filter = h('input', { type: 'text', name: 'filter', placeholder: 'icmp or port 80', size: '18',
    'aria-label': 'Capture filter' });
  const seconds = h('input', { type: 'number', name: 'seconds', min: '1', max: '3600', value: '10', size: '4',
    'aria-label': 'Capture seconds' });
  const start = h('button', { type: 'button', class: 'small' }, 'Start');
  const stop = h('button', { type: 'button', class: 'small', hidden: true }, 'Stop');
  const close = h('button', { type: 'button', class: 'small secondary' }, 'Close');
  const status = h('span', { class: 'capture-status', role: 'status' });
  let abort = null;

  start.addEventListener('click', async () => {
    const q = new URLSearchParams({ seconds: seconds.value || '10', count: '1000000' });
    if (filter.value.trim()) q.set('filter', filter.value.trim());
    abort = new AbortController();
    start.disabled = true;
    stop.hidden = false;
    status.textContent = 'Starting…';
    const counter = pcap_counter();
    const parts = [];
    try {
      const res = await ctx.api.open_stream(`/${kind}/${obj.id}/capture?${q}`, abort.signal);
      const reader = res.body.getReader();
      const t0 = Date.now();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        parts.push(value);
        counter.push(value);
        status.textContent = `Capturing: ${counter.frames} frames, ${Math.round((Date.now() - t0) / 1000)} s`;
      }
    } catch (e) {
      if (e?.name !== 'AbortError') {
        status.textContent = error_text(e);
        start.disabled = false;
        stop.hidden = true;
        return;
      }
    }
    stop.hidden = true;
    start.disabled = false;
    if (!counter.valid || parts.length === 0) {
      status.textContent = 'The capture returned no pcap data.';
      return;
    }
    const blob = new Blob(parts, { type: 'application/vnd.tcpdump.pcap' });
    const a = h('a', { href: URL.createObjectURL(blob), download: `${name}-${obj.id.slice(0, 8)}.pcap` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 60000);
    status.textContent = `Saved ${counter.frames} frames.`;
  });
  stop.addEventListener('click', () => abort?.abort());
  close.addEventListener('click', () => { abort?.abort(); on_close(); });

  return h('span', { class: 'capture-panel' }, filter, ' ', seconds, ' s ', start, stop, close, ' ', status);
}
