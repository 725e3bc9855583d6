// DOM helpers for the vpcd dashboard: build elements from data without innerHTML, so that no text from the API is ever
// parsed as markup (the CSP forbids inline script and style anyway). Runs on the browser's main thread only.

const kSvgNs = 'http://www.w3.org/2000/svg';

function append_children(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

function apply_attrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2), v);
    } else if (k === 'dataset') {
      Object.assign(el.dataset, v);
    } else if (k === 'text') {
      el.textContent = String(v);
    } else if (v === true) {
      el.setAttribute(k, '');
    } else {
      el.setAttribute(k, String(v));
    }
  }
}

// h('button', {class: 'x', onclick: f}, 'text', child, [more]) -> HTMLElement
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  apply_attrs(el, attrs);
  append_children(el, children);
  return el;
}

// Same as h() for SVG elements.
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(kSvgNs, tag);
  apply_attrs(el, attrs);
  append_children(el, children);
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}
