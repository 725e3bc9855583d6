// Reusable dashboard widgets: forms whose API errors land next to the offending field, two-step delete buttons,
// tables, state badges and notices. Browser main thread only.
import { h, clear } from './dom.js';
import { ApiError } from './api.js';
import { match_field, FormError } from './fields.js';

let form_seq = 0;

// fields: [{name, label, type: text|number|select|checkbox|multiselect, api (problem field, default name), options:
// [[value, label]], placeholder, help, required, value, show_if: (values) => bool}]
// on_submit(values) returns a promise; an ApiError or FormError is shown next to its field or above the buttons.
export function make_form({ id, title, fields, submit_label = 'Create', on_submit, on_done, compact_layout = false }) {
  const form_id = id || `form-${++form_seq}`;
  const rows = new Map();   // name -> {row, input, err, def}
  const form_err = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const ok_msg = h('p', { class: 'form-ok', role: 'status', 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit', class: 'primary' }, submit_label);
  const form = h('form', { id: form_id, class: `api-form${compact_layout ? ' compact' : ''}`, novalidate: true });
  if (title) form.append(h('h3', {}, title));
  const grid = h('div', { class: 'form-grid' });
  form.append(grid);

  for (const def of fields) {
    const input_id = `${form_id}-${def.name}`;
    const err_id = `${input_id}-err`;
    let input;
    if (def.type === 'select' || def.type === 'multiselect') {
      input = h('select', { id: input_id, name: def.name, multiple: def.type === 'multiselect' });
      for (const [value, label] of def.options || []) input.append(h('option', { value }, label));
      if (def.value !== undefined) input.value = def.value;
    } else if (def.type === 'checkbox') {
      input = h('input', { id: input_id, name: def.name, type: 'checkbox', checked: def.value !== false });
    } else {
      input = h('input', {
        id: input_id, name: def.name, type: 'text',
        inputmode: def.type === 'number' ? 'numeric' : null, placeholder: def.placeholder || null,
        value: def.value ?? null, autocomplete: 'off', spellcheck: 'false',
      });
    }
    input.dataset.field = def.api || def.name;
    input.setAttribute('aria-describedby', def.help ? `${err_id} ${input_id}-help` : err_id);
    if (def.required) input.setAttribute('aria-required', 'true');
    const err = h('p', { id: err_id, class: 'field-error', hidden: true });
    const row = h('div', { class: `form-row form-row-${def.type || 'text'}` },
      h('div', { class: 'label-line' }, h('label', { for: input_id }, def.label),
        def.required ? h('span', { class: 'req', 'aria-hidden': 'true' }, '*') : null),
      input,
      def.help ? h('small', { id: `${input_id}-help`, class: 'help' }, def.help) : null,
      err);
    rows.set(def.name, { row, input, err, def });
    grid.append(row);
  }
  form.append(h('div', { class: 'form-actions' }, submit, ok_msg), form_err);

  const values = () => {
    const v = {};
    for (const [name, { input, def }] of rows) {
      if (def.type === 'checkbox') v[name] = input.checked;
      else if (def.type === 'multiselect') v[name] = [...input.selectedOptions].map((o) => o.value);
      else v[name] = input.value;
    }
    return v;
  };
  const update_visibility = () => {
    const v = values();
    for (const { row, def } of rows.values()) if (def.show_if) row.hidden = !def.show_if(v);
  };
  const clear_errors = () => {
    form_err.hidden = true;
    form_err.textContent = '';
    ok_msg.textContent = '';
    for (const { input, err } of rows.values()) {
      err.hidden = true;
      err.textContent = '';
      input.removeAttribute('aria-invalid');
    }
  };
  const show_error = (e) => {
    const field = e instanceof ApiError || e instanceof FormError ? e.field : '';
    const visible = [...rows.values()].filter((r) => !r.row.hidden);
    const name = field ? match_field(field, visible.map((r) => r.input.dataset.field)) : null;
    const text = e instanceof ApiError ? (e.detail ? `${e.title}: ${e.detail}` : e.title) : e.message;
    const target = name ? visible.find((r) => r.input.dataset.field === name) : null;
    if (target) {
      target.err.textContent = text;
      target.err.hidden = false;
      target.input.setAttribute('aria-invalid', 'true');
      target.input.focus();
    } else {
      form_err.textContent = e instanceof ApiError && e.status ? `${text} (HTTP ${e.status})` : text;
      form_err.hidden = false;
    }
  };

  form.addEventListener('change', update_visibility);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clear_errors();
    submit.disabled = true;
    try {
      const result = await on_submit(values());
      ok_msg.textContent = 'Done.';
      setTimeout(() => { ok_msg.textContent = ''; }, 4000);
      for (const { input, def } of rows.values()) {
        if (def.keep || def.type === 'select' || def.type === 'checkbox') continue;
        if (def.type === 'multiselect') [...input.options].forEach((o) => { o.selected = false; });
        else input.value = def.value ?? '';
      }
      if (on_done) await on_done(result);
    } catch (e) {
      if (!(e instanceof ApiError || e instanceof FormError)) throw e;
      show_error(e);
    } finally {
      submit.disabled = false;
    }
  });
  update_visibility();
  form.set_options = (name, options) => {
    const r = rows.get(name);
    if (!r) return;
    const keep = r.input.value;
    clear(r.input);
    for (const [value, label] of options) r.input.append(h('option', { value }, label));
    if (options.some(([v]) => v === keep)) r.input.value = keep;
    update_visibility();
  };
  return form;
}

// A delete button that asks once more before acting; errors (409 with the dependants, 403) appear beside it. The
// armed state is kept by `key` (the object's id) for 5 s, so a list redrawn between the two clicks keeps asking for the confirmation.
const armed_at = new Map();
const kArmMs = 5000;

export function delete_button(what, action, key = what) {
  const msg = h('span', { class: 'inline-error', role: 'alert' });
  const btn = h('button', { type: 'button', class: 'danger small' });
  let timer = null;
  const show = (armed) => {
    btn.textContent = armed ? 'Confirm' : 'Delete';
    btn.setAttribute('aria-label', `${armed ? 'Confirm delete' : 'Delete'} ${what}`);
  };
  const arm = (ms) => {
    show(true);
    clearTimeout(timer);
    timer = setTimeout(() => { armed_at.delete(key); show(false); }, ms);
  };
  const since = Date.now() - (armed_at.get(key) ?? -Infinity);
  if (since < kArmMs) arm(kArmMs - since); else show(false);
  btn.addEventListener('click', async () => {
    if (!armed_at.has(key) || Date.now() - armed_at.get(key) >= kArmMs) {
      msg.textContent = '';
      armed_at.set(key, Date.now());
      arm(kArmMs);
      return;
    }
    armed_at.delete(key);
    clearTimeout(timer);
    show(false);
    btn.disabled = true;
    try {
      await action();
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      msg.textContent = e.detail ? `${e.title}: ${e.detail}` : e.title;
    } finally {
      btn.disabled = false;
    }
  });
  return h('span', { class: 'delete-wrap' }, btn, msg);
}

// columns: [{title, cell: (row) => Node|string, cls}]
export function table(columns, rows, { empty = 'None yet.', caption = null, row_id = null } = {}) {
  if (rows.length === 0) return h('p', { class: 'empty' }, empty);
  return h('div', { class: 'table-wrap' },
    h('table', {},
      caption ? h('caption', {}, caption) : null,
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: c.cls || null }, c.title)))),
      h('tbody', {}, rows.map((r) => h('tr', { 'data-id': row_id ? row_id(r) : (r.id || null) },
        columns.map((c) => h('td', { class: c.cls || null, 'data-label': c.title }, c.cell(r))))))));
}

export function state_badge(state) {
  const st = state || 'unknown';
  return h('span', { class: `badge state-${st}` }, st);
}

export function section(title, ...children) {
  const id = `sec-${title.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
  return h('section', { class: 'card', 'aria-labelledby': id }, h('h2', { id }, title), ...children);
}

export function error_text(e) {
  if (e instanceof ApiError) return e.detail ? `${e.title}: ${e.detail}` : e.title;
  return String(e?.message || e);
}
