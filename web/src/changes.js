// Change review: the change sets; one change set's waves, each deployment's state and why, each
// plan as a per-resource diff; approve or reject it (the approve scope); its progress live from
// GET /events.
import { get, post, Problem } from './api.js';
import { h, link, replace, when, short, pretty, enc } from './dom.js';

const PAGE = 50;

// changesView lists the change sets, newest first, a page of 50 at a time (params: the route's
// query, its cursor GET /changes's next_cursor); when there are older ones it says so and links
// to them.
export async function changesView(params) {
  const cursor = (params && params.get('cursor')) || '';
  const list = await get('/changes?limit=' + PAGE + (cursor ? '&cursor=' + enc(cursor) : ''));
  const pages = h('p', { class: 'row', id: 'changes-pages' },
    list.next_cursor ? [(cursor ? 'More' : 'The ' + PAGE + ' newest are shown; older') + ' changes exist: ', link('/changes?cursor=' + enc(list.next_cursor), 'Older changes')] : null,
    cursor ? [list.next_cursor ? ' · ' : '', link('/changes', 'Newest changes')] : null);
  if (!list.changes.length) return [h('h2', {}, 'Changes'), h('p', {}, cursor ? 'No older change.' : 'No change yet.'), pages];
  return [h('h2', {}, 'Changes'), h('table', { class: 'grid', id: 'changes' },
    h('thead', {}, h('tr', {}, ['change', 'env', 'state', 'roots', 'by', 'created'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, list.changes.map((c) => h('tr', {},
      h('td', {}, link('/changes/' + enc(c.id), short(c.id, 13))), h('td', {}, c.env),
      h('td', {}, h('span', { class: 'state ' + c.state }, c.state)), h('td', {}, c.roots.join(', ')),
      h('td', {}, c.actor.name), h('td', {}, when(c.created_at)))))), pages];
}

export async function changeView(app, id) {
  const root = h('div', { class: 'change' });
  const live = h('ol', { class: 'live', id: 'live-events', 'aria-live': 'polite', 'aria-label': 'Live progress' });
  let pending = 0;
  let left = false;
  app.onLeave(() => { // no later reading paints this change's states on the graph of another view
    left = true;
    clearTimeout(pending);
  });
  const note = { text: '' }; // the answer to the caller's last decision, kept across refreshes
  // A change just requested is resolved into its change set asynchronously: until then GET
  // /changes/{id} answers 404. Say so and look again (its first events refresh it too), for a
  // minute; after that the 404 is the answer.
  const started = Date.now();
  const refresh = async () => {
    let c;
    try {
      c = await get('/changes/' + enc(id));
    } catch (e) {
      if (!(e instanceof Problem) || e.status !== 404 || Date.now() - started > 60000) throw e;
      replace(root, [h('h2', {}, 'Change ', h('code', {}, short(id, 13))),
        h('p', { class: 'muted', id: 'change-state' }, 'queued: Karma has not resolved this change yet')]);
      if (left) return null;
      clearTimeout(pending);
      pending = setTimeout(() => refresh().catch((err) => replace(root, h('p', { class: 'error', role: 'alert' }, err.message))), 500);
      return null;
    }
    if (left) return null;
    replace(root, detail(app, c, () => again(), note));
    app.graph.states(c.deployments);
    return c;
  };
  // A later refresh that fails leaves the change as last read: say so, and since when.
  let shownAt = new Date();
  const stale = (e) => {
    if (!(e instanceof Problem)) throw e;
    const old = root.querySelector('#change-stale');
    const notice = h('p', { class: 'error', role: 'alert', id: 'change-stale' }, 'Could not refresh this change (', e.message,
      '): what is shown is as of ', when(shownAt.toISOString()), '.');
    old ? old.replaceWith(notice) : root.prepend(notice);
  };
  const again = () => refresh().then((c) => { if (c) shownAt = new Date(); }, stale);
  await refresh();
  if (!left) app.watch((ev) => {
    if (ev.type === 'reconnected') { // events may have been missed: read the change again
      clearTimeout(pending);
      pending = setTimeout(again, 150);
      return;
    }
    if (ev.change_id !== id && ev.correlation_id !== id) return;
    live.prepend(h('li', {}, when(ev.at), ' ', h('strong', {}, ev.type), ev.component ? ' ' + ev.component : '', ev.reason ? ' (' + ev.reason + ')' : '',
      ' ', link('/log?correlation=' + enc(ev.correlation_id), 'audit')));
    clearTimeout(pending);
    pending = setTimeout(again, 150);
  });
  return [root, h('h3', {}, 'Live'), h('p', { class: 'muted', id: 'live-state' }, app.eventsState), live];
}

function detail(app, c, refresh, note) {
  const canApprove = app.me && app.me.scopes.includes('approve');
  const reason = h('input', { id: 'reject-reason', type: 'text', placeholder: 'why' });
  const msg = h('p', { id: 'decision-result', 'aria-live': 'polite' }, note.text);
  const decide = (what) => async () => {
    try {
      // An approval names the held plans this page shows: one made again since (a stale plan,
      // a retry) is refused (409) rather than approved unread.
      const seen = Object.fromEntries(c.plans.filter((p) => p.held).map((p) => [p.component, p.plan_hash]));
      const d = await post('/changes/' + enc(c.id) + '/' + what, what === 'reject' ? { reason: reason.value } : { plans: seen });
      // An environment may need several approvals: until the last, the change still waits.
      note.text = what === 'reject' ? 'Rejected.'
        : d && d.pending > 0 ? 'Your approval is recorded; ' + d.pending + ' more needed before it applies.' : 'Approved.';
    } catch (e) {
      if (!(e instanceof Problem)) throw e;
      note.text = e.message;
    }
    msg.textContent = note.text;
    await refresh();
  };
  const open = c.state === 'awaiting-approval' || c.state === 'in-progress' || c.state === 'queued';
  const decisions = canApprove
    ? h('div', { class: 'row decisions' },
      h('button', { type: 'button', id: 'approve', onclick: decide('approve'), disabled: c.state !== 'awaiting-approval' }, 'Approve'),
      h('label', { for: 'reject-reason' }, 'Reason'), reason,
      h('button', { type: 'button', id: 'reject', class: 'danger', onclick: decide('reject'), disabled: !open }, 'Reject'))
    : h('p', { class: 'muted' }, 'Approving or rejecting needs the approve scope; you hold ', app.me ? app.me.scopes.join(', ') : 'none', '.');
  return [
    h('h2', {}, 'Change ', h('code', {}, short(c.id, 13))),
    h('p', {}, h('span', { class: 'state ' + c.state, id: 'change-state' }, c.state), ' · ', c.env, ' · ', c.source, ' by ', c.actor.name, ' · ', when(c.created_at),
      c.commit ? [' · commit ', h('code', {}, short(c.commit))] : '', c.approved_by ? ' · approved by ' + c.approved_by : '',
      c.rejected_by ? ' · rejected by ' + c.rejected_by + ': ' + c.reject_reason : '', c.invalid ? ' · invalid: ' + c.invalid : ''),
    why(c),
    !c.approved && (c.approvals_required > 1 || (c.approvals || []).length)
      ? h('p', { id: 'change-approvals' }, 'approvals ', (c.approvals || []).length, ' of ', c.approvals_required,
        (c.approvals || []).length ? ' (' + c.approvals.map((a) => a.by).join(', ') + ')' : '', c.expires_at ? ' · expires ' + when(c.expires_at) : '')
      : null,
    decisions, msg,
    h('h3', {}, 'Waves'),
    h('ol', { class: 'waves', start: 0, id: 'change-waves' }, c.waves.map((ids, w) => h('li', {}, h('strong', {}, 'Wave ' + w),
      h('ul', {}, c.deployments.filter((d) => d.wave === w).map((d) => h('li', { 'data-id': d.component, 'data-state': d.state },
        link('/c/' + d.component, d.component), ' ', h('span', { class: 'state ' + d.state }, d.state),
        d.reason ? ' — ' + d.reason : '', d.detail ? ': ' + d.detail : '',
        d.changed_keys && d.changed_keys.length ? ' · changed ' + d.changed_keys.join(', ') : '',
        ' ', link('/deployments/' + d.deployment_id, 'lineage'))))))),
    h('h3', {}, 'Plans'),
    unreadable(c.unreadable_records || []),
    c.plans.length ? c.plans.map(plan) : h('p', { class: 'muted' }, (c.unreadable_records || []).length ? 'No plan could be read.' : 'No plan yet.'),
  ];
}

// why says what holds a change back or ended it beside its state: the change set that superseded
// it, those it is queued behind, when it expired unapproved, why its auto-approve was refused,
// why a promotion was held and which change set tries it again.
function why(c) {
  const changes = (ids) => ids.map((id, i) => [i ? ', ' : '', link('/changes/' + enc(id), short(id, 13))]);
  const lines = [
    c.superseded_by ? ['superseded by ', changes([c.superseded_by]), ': that change deploys what this one left'] : null,
    (c.queued_behind || []).length ? ['queued behind ', changes(c.queued_behind), ': it starts when they settle'] : null,
    c.expired_at ? ['expired unapproved at ', when(c.expired_at)] : null,
    c.auto_approve_refused ? ['auto-approve refused: ', c.auto_approve_refused] : null,
    // A held promotion deploys nothing; it is tried again, as another change set, once the
    // environments it waits for move.
    c.held ? ['held: ', c.held, c.held_retried_as ? ['; tried again as ', changes([c.held_retried_as])]
      : '; it is tried again when the environments it waits for move'] : null,
  ].filter(Boolean);
  return lines.length ? h('ul', { id: 'change-why' }, lines.map((l) => h('li', {}, l))) : null;
}

// unreadable names the change's audit records the API could not read (GET /changes/{id}'s
// unreadable_records): a plan they hold may be missing below, and the page says so rather than
// show fewer plans as if they were all.
function unreadable(recs) {
  if (!recs.length) return null;
  return h('div', { class: 'error', role: 'alert', id: 'change-unreadable' },
    h('p', {}, recs.length + (recs.length === 1 ? ' audit record' : ' audit records') + ' of this change could not be read: a plan may be missing here.'),
    h('ul', {}, recs.map((r) => h('li', {}, r.type, ' ', h('code', {}, r.message_id), ' (', r.chain, ' #', r.seq, ')',
      r.deployment_id ? [' of ', link('/log?deployment=' + enc(r.deployment_id), r.deployment_id)] : '', ': ', r.error))));
}

// plan shows one saved plan: its summary and each resource's change, attribute by attribute.
function plan(p) {
  const s = p.plan || {};
  return h('details', { class: 'plan', open: true },
    h('summary', {}, p.component, p.held ? ' — held for review' : '', ': +', s.add || 0, ' ~', s.change || 0, ' -', s.destroy || 0),
    (p.resources || []).map((r) => h('div', { class: 'resource' },
      h('p', {}, h('code', {}, r.address), ' ', h('span', { class: 'actions' }, (r.actions || []).join(', ')), r.values_omitted ? ' (values omitted: too large)' : ''),
      diffTable(r.before, r.after))),
    p.resources && p.resources.length ? null : h('p', { class: 'muted' }, 'No resource changes listed.'));
}

function diffTable(before, after) {
  const keys = [...new Set([...Object.keys(before || {}), ...Object.keys(after || {})])].sort();
  if (!keys.length) return null;
  const cell = (v) => (v === undefined ? h('span', { class: 'muted' }, '—') : h('code', {}, typeof v === 'string' ? v : pretty(v)));
  return h('table', { class: 'grid diff' },
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'attribute'), h('th', { scope: 'col' }, 'before'), h('th', { scope: 'col' }, 'after'))),
    h('tbody', {}, keys.map((k) => h('tr', {}, h('th', { scope: 'row' }, k), h('td', { class: 'before' }, cell((before || {})[k])), h('td', { class: 'after' }, cell((after || {})[k]))))));
}
