// A deployment's lineage as a timeline back to its root cause: the deployment, the upstream
// deployments whose changed keys reached it, and the commit, parameter version or request
// behind them, with who asked; each step linked to its audit records.
import { get, Problem } from './api.js';
import { h, link, when, short, enc } from './dom.js';

export async function lineageView(id) {
  const step = await get('/deployments/' + enc(id) + '/lineage');
  const requesters = await requestersOf(step);
  const items = [];
  const walk = (s, via, child) => {
    const d = s.deployment;
    items.push(h('li', { class: 'step deployment', 'data-id': d.id },
      h('p', {}, h('strong', {}, d.component), ' ', h('span', { class: 'state ' + d.status }, d.status), ' · wave ', d.wave, ' · ', when(d.at)),
      via ? h('p', { class: 'muted via' }, how(via, child)) : null,
      d.detail ? h('p', {}, d.detail) : null,
      d.changed_keys && d.changed_keys.length ? h('p', {}, 'changed ', d.changed_keys.join(', ')) : null,
      h('p', {}, h('code', {}, d.id), ' · ', link('/log?deployment=' + enc(d.id), 'audit records'), ' · ', link('/changes/' + enc(d.change_set_id), 'change'))));
    for (const c of s.causes) {
      if (c.upstream) walk(c.upstream, c, d);
      else if (c.repeated || c.truncated) items.push(notFollowed(c, d));
      else items.push(root(c, d, requesters));
    }
  };
  walk(step, null, null);
  return [h('h2', {}, 'Lineage of ', h('code', {}, short(id, 20))),
    h('p', { class: 'muted' }, 'From this deployment back to what caused it.'),
    h('ol', { class: 'timeline', id: 'lineage' }, items)];
}

// how says how an upstream step caused the deployment it leads to (child), which it names: the
// timeline lists a deployment's causes one after the other, so "the step above" may be another.
// A retry or a rollback is no upstream whose keys reached it (karma lineage says the same).
function how(c, child) {
  const to = [h('strong', {}, child.component), ' (', h('code', {}, short(child.id, 20)), ')'];
  const by = [child.actor ? child.actor.name : '?', child.actor && child.actor.kind ? ' (' + child.actor.kind + ')' : ''];
  switch (c.cause.kind) {
    case 'retry':
      return ['this failed deployment was run again as ', to, ', a retry by ', by];
    case 'rollback':
      return [to, ' rolled back to this deployment: its config and module deployed again, by ', by, '; it rolled back from ',
        c.replaces ? [h('code', {}, c.replaces.id), ' (change ', c.replaces.change_set_id, ')'] : 'nothing Karma applied'];
    case 'deployment':
      if (c.cause.trigger === 'on-any-apply') return ['applied: ', to, ' redeploys on any apply of it (no key it consumes changed)'];
      return ['its changed keys ', (c.cause.keys || []).join(', ') || 'none', ' reached ', to];
  }
  return [c.cause.kind, ' ', h('code', {}, c.cause.id), ' of ', to];
}

// notFollowed is a deployment cause the answer does not follow here: its lineage is above (a
// deployment reached along two paths), or goes on beyond the depth the lineage stops at.
function notFollowed(c, d) {
  const dep = link('/deployments/' + enc(c.cause.id), short(c.cause.id, 20));
  return h('li', { class: 'step deployment not-followed', 'data-id': c.cause.id },
    c.repeated
      ? h('p', {}, dep, ', a cause of ', h('strong', {}, d.component), ': its lineage is shown above.')
      : h('p', {}, dep, ', a cause of ', h('strong', {}, d.component), ': not followed, the lineage stops 100 deployments deep; its own lineage goes on.'));
}

// requestersOf finds, in the audit log, who asked for each root change: the author of the
// commit that change.detected names (a change request's requested_by). A search the API refuses
// is kept as its problem (out[corr].problem): the lineage, read already, is shown with it.
async function requestersOf(step) {
  const corrs = new Set();
  const walk = (s) => s.causes.forEach((c) => (c.upstream ? walk(c.upstream) : c.change && corrs.add(c.change.correlation_id)));
  walk(step);
  const out = {};
  for (const corr of corrs) {
    let page;
    try {
      page = await get('/log?limit=20&correlation=' + enc(corr));
    } catch (e) {
      if (!(e instanceof Problem)) throw e;
      out[corr] = { problem: e };
      continue;
    }
    const detected = page.records.find((r) => r.type === 'change.detected');
    const commit = detected && detected.body && detected.body.payload && detected.body.payload.commit;
    if (commit) out[corr] = commit;
  }
  return out;
}

// requester says who requested a root change, or why that could not be read.
function requester(r) {
  if (!r) return null;
  if (r.problem) return h('p', { class: 'error requester', role: 'alert' }, 'Who requested it could not be read from the audit log: ', r.problem.message);
  return h('p', { class: 'requester' }, 'requested by ', r.author, r.message ? [' — ', h('q', {}, r.message.split('\n')[0])] : '');
}

function root(c, d, requesters) {
  const ch = c.change;
  const what = {
    commit: () => ['commit ', h('code', {}, short(c.cause.id))],
    parameter: () => ['parameter version ', h('code', {}, c.cause.id)],
    request: () => ['change request ', h('code', {}, c.cause.id)],
    retry: () => ['a retry of ', link('/deployments/' + c.cause.id, c.cause.id)],
    promotion: () => ['promoted from change set ', h('code', {}, c.cause.id), ch ? ' [' + ch.env + ']' : ''],
  }[c.cause.kind] || (() => [c.cause.kind + ' ', h('code', {}, c.cause.id)]);
  return h('li', { class: 'step root' },
    h('p', {}, h('strong', {}, 'Root cause: '), what()),
    ch ? h('p', {}, ch.source, ' by ', ch.actor.name, ' (', ch.actor.kind, ') · ', when(ch.at), ch.commit ? [' · tree of ', h('code', {}, short(ch.commit))] : '') : null,
    ch ? requester(requesters[ch.correlation_id]) : null,
    ch ? h('p', {}, link('/log?correlation=' + enc(ch.correlation_id), 'audit records of the change')) : h('p', {}, link('/log?deployment=' + enc(d.id), 'audit records')));
}
