// Proposing a change: the environment file in an editor, checked as you type (POST /impact, a
// dry run): schema errors shown with their line, or the predicted blast radius — what would
// redeploy, in which wave and why, and what would be skipped — highlighted on the graph; then
// submitted (POST /request-change).
import { post, Problem } from './api.js';
import { h, replace, pretty } from './dom.js';

export function proposeView(app, v) {
  if (!v.source) return h('p', {}, 'This component has no environment file to change.');
  const id = v.id;
  const editor = h('textarea', { id: 'proposal', class: 'editor', spellcheck: 'false', rows: 16, 'aria-describedby': 'proposal-help proposal-result' });
  editor.value = pretty(v.source.content) + '\n';
  const result = h('div', { id: 'proposal-result', 'aria-live': 'polite' });
  const by = h('input', { id: 'requested-by', type: 'text', autocomplete: 'name', placeholder: 'Name <email>', value: app.me ? app.me.name : '' });
  const submit = h('button', { type: 'submit', id: 'submit-change', disabled: true }, 'Submit the change');
  let checked = null;
  let timer = 0;
  let seq = 0;

  const check = async () => {
    const mine = ++seq;
    checked = null;
    submit.disabled = true;
    let doc;
    try {
      doc = JSON.parse(editor.value);
    } catch (e) {
      editor.setAttribute('aria-invalid', 'true');
      replace(result, h('p', { class: 'error', role: 'alert' }, 'Not JSON: ', e.message));
      return;
    }
    try {
      const p = await post('/impact', { component: id, proposed_change: doc });
      if (mine !== seq) return;
      editor.removeAttribute('aria-invalid');
      checked = doc;
      submit.disabled = !(app.me && app.me.scopes.includes('write'));
      replace(result, impact(p));
      await app.graph.blast(p);
      app.perf.blast = performance.now();
    } catch (e) {
      if (mine !== seq) return;
      if (!(e instanceof Problem)) throw e;
      editor.setAttribute('aria-invalid', 'true');
      app.graph.blast(null);
      replace(result, errors(e, editor));
    }
  };
  app.onLeave(() => { // a check under way or due does not paint its blast radius on another view
    clearTimeout(timer);
    seq++;
  });
  editor.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(check, 400);
  });
  const form = h('form', { class: 'propose', onsubmit: async (ev) => {
    ev.preventDefault();
    if (!checked) return;
    submit.disabled = true;
    try {
      const c = await post('/request-change', { component: id, proposed_change: checked, requested_by: by.value });
      app.graph.blast(null);
      location.hash = '#/changes/' + encodeURIComponent(c.change_id);
    } catch (e) {
      if (!(e instanceof Problem)) throw e;
      replace(result, errors(e, editor));
      submit.disabled = false;
    }
  } },
  h('label', { for: 'proposal' }, 'Environment file ', h('code', {}, v.source.path)),
  h('p', { id: 'proposal-help', class: 'muted' }, 'Edit the JSON: it is checked against the schema and the rest of the repository as you type, and its blast radius shown on the graph.',
    v.source.redacted ? ' Some values were redacted here: put them back before submitting.' : ''),
  editor,
  h('div', { class: 'row' }, h('button', { type: 'button', id: 'check-change', onclick: check }, 'Check'),
    h('label', { for: 'requested-by' }, 'Requested by'), by, submit),
  app.me && !app.me.scopes.includes('write') ? h('p', { class: 'muted' }, 'Submitting needs the write scope; you hold ', app.me.scopes.join(', '), '.') : null,
  result);
  return form;
}

// errors lists a refusal's problems, each with its JSON pointer and the line it points at.
function errors(e, editor) {
  const list = (e.doc.errors || []).map((fe) => {
    const ptr = fe.pointer.replace(/^\/proposed_change/, '') || '/';
    const line = lineOf(editor.value, ptr);
    return h('li', {}, h('button', { type: 'button', class: 'linkish', onclick: () => goLine(editor, line) },
      h('code', {}, ptr), line ? ' (line ' + line + ')' : ''), ': ', fe.detail);
  });
  return h('div', { class: 'error', role: 'alert' }, h('p', {}, e.doc.detail || e.message), list.length ? h('ul', { class: 'errors' }, list) : null);
}

// lineOf finds the line of the member a JSON pointer names, following its keys in order.
export function lineOf(text, ptr) {
  let at = 0;
  for (const raw of ptr.split('/').slice(1)) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    const i = /^\d+$/.test(key) ? text.indexOf('[', at) : text.indexOf(JSON.stringify(key), at);
    if (i < 0) return 0;
    at = i + 1;
  }
  return at ? text.slice(0, at).split('\n').length : 0;
}

function goLine(editor, line) {
  const lines = editor.value.split('\n');
  const start = lines.slice(0, line - 1).join('\n').length + (line > 1 ? 1 : 0);
  editor.focus();
  editor.setSelectionRange(start, start + (lines[line - 1] || '').length);
}

// impact describes a prediction: keys, waves with reasons, skips.
function impact(p) {
  const byWave = new Map();
  for (const a of p.redeploy.affected) {
    if (!byWave.has(a.wave)) byWave.set(a.wave, []);
    byWave.get(a.wave).push(a);
  }
  const why = (a) => {
    if (a.depth === 0) return 'the component you change';
    const last = a.reason[a.reason.length - 1] || {};
    const first = a.reason[0] || {};
    return a.depth === 1
      ? 'consumes ' + (first.consumes || []).join(', ') + ' of ' + first.to
      : 'may redeploy: consumes ' + (last.consumes || []).join(', ') + ' of ' + last.to + ', if its outputs change';
  };
  const keys = p.changed_keys == null
    ? h('p', {}, 'Which runtime keys change cannot be told (', p.unknown, '): every dependent may redeploy.')
    : h('ul', { class: 'keys', 'aria-label': 'Runtime keys' }, p.keys.map((k) => h('li', { class: k.changes ? 'changes' : 'same' },
      h('code', {}, k.key), k.changes ? ' changes' + (k.because && k.because.length ? ' (from ' + k.because.join(', ') + ')' : k.unknown ? ' (' + k.unknown + ')' : '') : ' unchanged')));
  return h('section', { class: 'impact', 'aria-label': 'Blast radius' },
    h('h3', {}, 'Blast radius'),
    h('p', {}, 'Changes ', p.changed_config.map((c) => h('code', {}, c || '/')), ' of the resolved config.'),
    keys,
    h('ol', { class: 'waves', id: 'blast-waves' }, [...byWave.keys()].sort((a, b) => a - b).map((w) => h('li', {},
      h('strong', {}, 'Wave ' + w),
      h('ul', {}, byWave.get(w).map((a) => h('li', { class: a.depth === 0 ? 'br-root' : a.depth === 1 ? 'br-redeploy' : 'br-may', 'data-id': a.id },
        h('a', { href: '#/c/' + a.id }, a.id), ' — ', why(a))))))),
    p.skipped.length ? h('div', { id: 'blast-skipped' }, h('h4', {}, 'Would be skipped'),
      h('ul', {}, p.skipped.map((s) => h('li', { class: 'br-skip', 'data-id': s.id }, h('a', { href: '#/c/' + s.id }, s.id), ' (wave ' + s.wave + ') — ', s.reason, ': ', s.detail)))) : null);
}
