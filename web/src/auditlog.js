// The audit log, a page at a time, with the filters of GET /log.
import { get, Problem } from './api.js';
import { h, link, when, short, pretty, enc, problem } from './dom.js';

const FILTERS = [['component', 'Component', 'prod/vpc/core'], ['deployment', 'Deployment', 'dep-…'], ['correlation', 'Correlation', ''],
  ['actor', 'Actor', ''], ['since', 'Since', '2026-01-01T00:00:00Z'], ['until', 'Until', '']];

export async function logView(params) {
  const q = new URLSearchParams();
  for (const [k] of FILTERS) if (params.get(k)) q.set(k, params.get(k));
  if (params.get('cursor')) q.set('cursor', params.get('cursor'));
  q.set('limit', '100');
  // A refused filter keeps the form, holding what was typed, above the problem naming it.
  let page;
  let refused = null;
  try {
    page = await get('/log?' + q);
  } catch (e) {
    if (!(e instanceof Problem) || e.status === 0) throw e;
    refused = e;
  }
  const form = h('form', { class: 'filters', 'aria-label': 'Filters', onsubmit: (ev) => {
    ev.preventDefault();
    const f = new URLSearchParams();
    for (const [k] of FILTERS) if (form.elements[k].value.trim()) f.set(k, form.elements[k].value.trim());
    location.hash = '#/log?' + f;
  } }, FILTERS.map(([k, label, ph]) => h('label', {}, label, ' ', h('input', { name: k, type: 'text', value: params.get(k) || '', placeholder: ph }))),
  h('button', { type: 'submit' }, 'Filter'));
  if (refused) return [h('h2', {}, 'Audit log'), form, problem(refused, 'Error ' + refused.status)];
  const next = new URLSearchParams(q);
  next.delete('limit');
  next.set('cursor', page.next_cursor || '');
  // The last page gives resume_cursor: followed later, it reads only what was recorded since,
  // however early it occurred (a late record is not skipped).
  const resume = new URLSearchParams(next);
  resume.set('cursor', page.resume_cursor || '');
  return [h('h2', {}, 'Audit log'), form,
    h('table', { class: 'grid log', id: 'audit-log' },
      h('thead', {}, h('tr', {}, ['when', 'type', 'component', 'actor', 'chain', 'record'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, page.records.map((r) => h('tr', {},
        h('td', {}, when(r.occurred_at)), h('td', {}, r.type),
        h('td', {}, r.component ? link('/c/' + r.component, r.component) : ''),
        h('td', {}, r.actor_kind, ': ', r.actor),
        h('td', {}, r.chain, ' #', r.seq),
        h('td', {}, h('details', {}, h('summary', {}, 'hash ', short(r.hash, 10)),
          h('p', {}, 'message ', h('code', {}, r.message_id), r.deployment_id ? [' · ', link('/deployments/' + enc(r.deployment_id), 'lineage')] : ''),
          h('pre', { class: 'json' }, pretty(r.body)))))))),
    page.records.length ? null : h('p', {}, 'No record matches.'),
    page.next_cursor ? link('/log?' + next, 'Next page')
      : page.resume_cursor ? h('p', { id: 'log-resume' }, 'This is the last page. ', link('/log?' + resume, 'Records recorded since'),
        ' (follow it later: it shows only what was recorded after this page, even records of earlier times).') : null];
}
