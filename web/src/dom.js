// A small element builder: h('button', {onclick, class: 'x'}, 'text', child).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c == null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// replace empties el and appends the children.
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// link is an anchor to a route of the page.
export const link = (route, text, attrs = {}) => h('a', { href: '#' + route, ...attrs }, text);

export const short = (s, n = 12) => (s && s.length > n ? s.slice(0, n) : s || '');

export function when(t) {
  if (!t) return '';
  const d = new Date(t);
  return isNaN(d) ? t : d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

// pretty prints JSON for a <pre>.
export const pretty = (v) => JSON.stringify(v, null, 2);

// enc escapes one segment of a route or a path.
export const enc = encodeURIComponent;

// problem shows a refusal (api.js's Problem): its detail, and each of its errors (RFC 9457
// errors member: the input it names, JSON pointer, and what is wrong with it).
export function problem(e, title) {
  const errs = (e.doc && Array.isArray(e.doc.errors) ? e.doc.errors : []).filter((fe) => fe && typeof fe === 'object');
  return h('div', { class: 'error', role: 'alert' }, title ? h('h2', {}, title) : null, h('p', {}, e.message),
    errs.length ? h('ul', { class: 'errors' }, errs.map((fe) => h('li', {}, h('code', {}, String(fe.pointer || '')), ': ', String(fe.detail || '')))) : null);
}
