// The component panel: resolved config (secrets redacted by the API), runtime, what it consumes
// from whom (keys), its dependents, its deployments; and the proposal editor.
import { get, Problem } from './api.js';
import { h, link, replace, pretty, when, short, enc } from './dom.js';
import { proposeView } from './propose.js';

const path = (id) => '/components/' + id.split('/').map(enc).join('/');

// HISTORY is how many of its latest deployments the component's history shows; one more is
// asked for, to tell whether older ones exist.
const HISTORY = 20;

// componentView shows the component as read, and when: its deployments move it (a runtime
// published, a deployment added to its history), so an event of the component, or the event
// stream coming back after a drop, reads it again — except in the proposal editor, whose edits
// are kept, where the page says it changed instead.
export async function componentView(app, id, tab) {
  tab = tab || 'config';
  const read = async () => {
    const v = await get(path(id) + '?deployments=' + (HISTORY + 1));
    return { v, at: new Date() };
  };
  const root = h('div', { class: 'component' });
  let left = false;
  let timer = 0;
  app.onLeave(() => {
    left = true;
    clearTimeout(timer);
  });
  const first = await read();
  if (left) return root;
  replace(root, view(app, id, tab, first.v, first.at));
  app.watch((ev) => {
    if (ev.type !== 'reconnected' && ev.component !== id) return;
    if (tab === 'propose') {
      const notice = h('p', { class: 'error', role: 'alert', id: 'component-moved' }, ev.type === 'reconnected'
        ? 'The event stream dropped: this component may have been deployed since it was read (' + when(first.at.toISOString()) + '). Reopen it to see it as it is.'
        : ev.type + ' of this component at ' + when(ev.at) + ': the file shown was read before. Reopen it to see it as it is.');
      const old = root.querySelector('#component-moved');
      old ? old.replaceWith(notice) : root.querySelector('h2').after(notice);
      return;
    }
    clearTimeout(timer);
    timer = setTimeout(async () => {
      try {
        const again = await read();
        if (!left) replace(root, view(app, id, tab, again.v, again.at));
      } catch (e) {
        if (!(e instanceof Problem)) throw e;
        if (left) return;
        const notice = h('p', { class: 'error', role: 'alert', id: 'component-moved' }, 'Could not read this component again (', e.message, '): what is shown is as of its reading above.');
        const old = root.querySelector('#component-moved');
        old ? old.replaceWith(notice) : root.querySelector('h2').after(notice);
      }
    }, 150);
  });
  return root;
}

function view(app, id, tab, v, at) {
  const older = v.deployments.length > HISTORY;
  if (older) v.deployments = v.deployments.slice(0, HISTORY);
  const tabs = [['config', 'Config'], ['runtime', 'Runtime'], ['consumes', 'Consumes (' + v.dependencies.length + ')'],
    ['dependents', 'Dependents (' + v.dependents.length + ')'], ['history', 'History (' + v.deployments.length + (older ? '+' : '') + ')'], ['propose', 'Propose a change']];
  const nav = h('nav', { class: 'tabs', 'aria-label': 'Component sections' },
    tabs.map(([t, label]) => link('/c/' + id + '/' + t, label, { 'aria-current': t === tab ? 'page' : null, id: 'tab-' + t })));
  const body = h('div', { class: 'tab-body', role: 'region', 'aria-labelledby': 'tab-' + tab });
  const render = {
    config: () => [h('p', { class: 'muted' }, 'Resolved from ', (v.files || []).join(' + '), ' — secret-named values redacted, ${…} references as written.'),
      h('pre', { class: 'json', tabindex: 0, 'aria-label': 'Resolved config' }, pretty(v.config))],
    runtime: () => v.runtime
      ? [h('p', { class: 'muted' }, v.runtime.parameter, ' v', v.runtime.version, ', ', when(v.runtime.last_modified), v.runtime.last_modified_user ? ' by ' + v.runtime.last_modified_user : ''),
        h('pre', { class: 'json', tabindex: 0, 'aria-label': 'Runtime' }, pretty(v.runtime.value))]
      : [h('p', {}, 'No runtime published (', v.runtime_status, ').')],
    consumes: () => links(v.dependencies, 'It consumes nothing from other components.', 'from'),
    dependents: () => links(v.dependents, 'Nothing depends on it.', 'by'),
    history: () => [history(v.deployments), older ? h('p', { id: 'history-older' }, 'The latest ' + HISTORY + ' deployments are shown; older ones exist: ',
      link('/log?component=' + enc(id), 'its audit records'), ' list them.') : null],
    propose: () => proposeView(app, v),
  }[tab] || (() => 'No such section.');
  replace(body, render());
  const diag = (v.diagnostics || []).length
    ? h('ul', { class: 'diagnostics', 'aria-label': 'Diagnostics' }, v.diagnostics.map((d) => h('li', { class: d.severity }, d.severity, ': ', d.message)))
    : null;
  return [h('h2', {}, id), h('p', { class: 'muted', id: 'component-status' }, 'runtime ', v.runtime_status, v.broken ? ' · broken' : '', ' · as of ', when(at.toISOString())),
    diag, nav, body];
}

function links(list, none, dir) {
  if (!list.length) return h('p', {}, none);
  return h('table', { class: 'grid' },
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'component'), h('th', { scope: 'col' }, dir === 'from' ? 'keys it consumes' : 'keys they consume'), h('th', { scope: 'col' }, 'where'))),
    h('tbody', {}, list.map((l) => h('tr', {},
      h('td', {}, link('/c/' + l.component, l.component)),
      h('td', {}, (l.consumes || []).join(', ')),
      h('td', { class: 'muted' }, (l.sources || []).map((s) => s.kind + ' ' + s.pointer).join('; '))))));
}

function history(deps) {
  if (!deps.length) return h('p', {}, 'Never deployed.');
  return h('table', { class: 'grid' },
    h('thead', {}, h('tr', {}, ['deployment', 'status', 'wave', 'when', 'changed keys'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, deps.map((d) => h('tr', {},
      h('td', {}, link('/deployments/' + d.id, short(d.id, 20))),
      h('td', {}, h('span', { class: 'state ' + d.status }, d.status)),
      h('td', {}, d.wave), h('td', {}, when(d.at)), h('td', {}, (d.changed_keys || []).join(', '))))));
}
