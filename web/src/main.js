// Karma's web page: the graph (graph.js) beside a panel showing the route — a component
// (component.js, propose.js), the changes (changes.js), a lineage (lineage.js), the audit log
// (auditlog.js). Everything comes from the API (api.js). Routes are the URL's fragment.
import { get, token, events, Problem } from './api.js';
import { h, replace, when, problem } from './dom.js';
import { GraphView } from './graph.js';
import { componentView } from './component.js';
import { changesView, changeView } from './changes.js';
import { lineageView } from './lineage.js';
import { logView } from './auditlog.js';

// perf holds the page's own measurements (ms since navigation), read by the browser test.
const perf = (window.karmaPerf = { selects: [] });

const app = {
  me: null,
  graph: null,
  doc: null,
  readAt: null, // when the graph drawn was read
  perf,
  eventsState: 'connecting',
  watchers: new Set(),
  // watch calls fn with each pipeline event while the current route is shown.
  watch(fn) {
    this.watchers.add(fn);
  },
  leaving: [],
  // onLeave calls fn when the current route is left (a view's timers stopped).
  onLeave(fn) {
    this.leaving.push(fn);
  },
};

const $ = (sel) => document.querySelector(sel);

// What the browser tests read of the graph: the highlight classes of a component's node; how
// many dependencies a big graph's canvas layer drew last.
window.karmaGraph = {
  classes: (id) => (app.graph && app.graph.has(id) ? app.graph.classes(id) : []),
  status: (id) => (app.graph ? app.graph.status(id) : ''),
  lines: () => (app.graph ? app.graph.drawnLines() : null),
};

async function boot() {
  const graph = get('/graph'); // asked for at once, beside /me: it is most of the wait
  graph.catch(() => {}); // a refusal is /me's to report
  try {
    app.me = await get('/me');
  } catch (e) {
    if (e instanceof Problem && e.status === 401) return login(e.doc.detail);
    throw e;
  }
  $('#who').textContent = app.me.name + ' (' + app.me.scopes.join(', ') + ')';
  app.graph = new GraphView($('#graph'), (id, t0) => select(id, t0));
  const doc = (app.doc = await graph);
  app.readAt = new Date();
  perf.graphFetched = performance.now();
  fillFilters(doc);
  perf.firstRender = await app.graph.load(doc);
  perf.components = doc.components.length;
  perf.edges = doc.edges.length;
  graphStatus(doc, '');
  // After a drop, the events missed meanwhile may be gone (the server restarted, or kept fewer):
  // the view watching is told to read again what it shows.
  let wasLive = false;
  events((ev) => {
    if (MOVES_GRAPH.has(ev.type)) refreshGraph();
    app.watchers.forEach((fn) => fn(ev));
  }, (s) => {
    if (s === 'live' && wasLive) {
      refreshGraph();
      app.watchers.forEach((fn) => fn({ type: 'reconnected' }));
    }
    if (s === 'live') wasLive = true;
    app.eventsState = 'events: ' + s;
    const el = $('#live-state');
    if (el) el.textContent = app.eventsState;
  });
  window.addEventListener('hashchange', route);
  window.addEventListener('resize', () => app.graph.resize());
  await route();
  document.body.dataset.ready = 'true';
}

// graphStatus says what the graph shows and when it was last read (app.readAt, in UTC): a
// reading that failed leaves the time of the one drawn, not the time it failed.
function graphStatus(doc, note) {
  $('#graph-status').textContent = doc.components.length + ' components, ' + doc.edges.length + ' dependencies, ' + (doc.waves || []).length +
    ' waves · as of ' + when(app.readAt.toISOString()) + note;
}

// The events after which the components' runtimes may have moved: the graph is read again
// (GET /graph revalidates with its ETag) and its colours follow, at most once a second.
const MOVES_GRAPH = new Set(['deployment.applied', 'deployment.failed']);
let graphTimer = 0;
function refreshGraph() {
  clearTimeout(graphTimer);
  graphTimer = setTimeout(async () => {
    try {
      const doc = await get('/graph');
      app.readAt = new Date(); // the runtimes drawn are this reading's (refresh gives them either way)
      if (app.graph.refresh(doc)) {
        app.doc = doc;
        graphStatus(doc, '');
      } else {
        graphStatus(app.doc, ' — the repository changed since: reload the page to see its graph');
      }
    } catch (e) {
      if (!(e instanceof Problem)) throw e;
      graphStatus(app.doc, ' — could not read it again: ' + e.message);
    }
  }, 1000);
}

function login(detail) {
  const input = h('input', { id: 'token', type: 'password', autocomplete: 'off', required: true });
  const dlg = h('form', { class: 'login', onsubmit: (ev) => {
    ev.preventDefault();
    token.set(input.value.trim());
    location.reload();
  } }, h('h2', {}, 'Sign in'), h('p', {}, detail || 'This Karma needs a token.'),
  h('label', { for: 'token' }, 'API token'), input, h('button', { type: 'submit' }, 'Sign in'),
  h('p', { class: 'muted' }, 'The token is kept in this tab only (sessionStorage).'));
  replace($('#panel'), dlg);
  input.focus();
}

function fillFilters(doc) {
  const envs = [...new Set(doc.components.map((c) => c.env))].sort();
  const types = [...new Set(doc.components.map((c) => c.type))].sort();
  replace($('#env'), h('option', { value: '' }, 'every environment'), envs.map((e) => h('option', { value: e }, e)));
  replace($('#type'), h('option', { value: '' }, 'every type'), types.map((t) => h('option', { value: t }, t)));
  const apply = () => app.graph.filter($('#env').value, $('#type').value);
  $('#env').addEventListener('change', apply);
  $('#type').addEventListener('change', apply);
}

// select highlights a component at once and shows its panel; t0 is when the person asked.
async function select(id, t0) {
  const painted = await app.graph.select(id);
  perf.selects.push({ id, ms: painted - t0 });
  if (location.hash !== '#/c/' + id) location.hash = '#/c/' + id;
}

// search: type-ahead over component ids; Up/Down move, Enter selects.
function setupSearch() {
  const input = $('#search');
  const list = $('#search-results');
  let matches = [];
  let active = -1;
  const show = () => {
    const q = input.value.trim().toLowerCase();
    const env = $('#env').value;
    const type = $('#type').value;
    matches = !q || !app.doc ? [] : app.doc.components.filter((c) => c.id.toLowerCase().includes(q) && (!env || c.env === env) && (!type || c.type === type)).slice(0, 12);
    active = matches.length ? 0 : -1;
    input.setAttribute('aria-expanded', matches.length ? 'true' : 'false');
    replace(list, matches.map((c, i) => h('li', { id: 'result-' + i, role: 'option', 'aria-selected': i === active ? 'true' : 'false',
      onmousedown: (ev) => { ev.preventDefault(); pick(i, ev.timeStamp); } }, c.id)));
    input.setAttribute('aria-activedescendant', active >= 0 ? 'result-' + active : '');
  };
  const pick = (i, t0) => {
    const c = matches[i];
    if (!c) return;
    input.value = c.id;
    replace(list);
    input.setAttribute('aria-expanded', 'false');
    select(c.id, t0);
  };
  input.addEventListener('input', show);
  input.addEventListener('keydown', (ev) => {
    if (ev.key === 'ArrowDown' || ev.key === 'ArrowUp') {
      ev.preventDefault();
      if (!matches.length) return;
      active = (active + (ev.key === 'ArrowDown' ? 1 : matches.length - 1)) % matches.length;
      [...list.children].forEach((li, i) => li.setAttribute('aria-selected', i === active ? 'true' : 'false'));
      input.setAttribute('aria-activedescendant', 'result-' + active);
    } else if (ev.key === 'Enter') {
      ev.preventDefault();
      pick(active, ev.timeStamp);
    } else if (ev.key === 'Escape') {
      replace(list);
    }
  });
}

// route shows the panel of the URL's fragment. A view whose route was left while it was read
// (a slow answer, a quicker click) is dropped: shown, it replaced the view of the URL.
let routes = 0;
async function route() {
  const mine = ++routes;
  try {
    await show(() => mine === routes);
  } finally {
    perf.routed = (perf.routed || 0) + 1; // routes finished, shown or dropped (read by the browser tests)
  }
}

async function show(current) {
  app.watchers.clear();
  app.leaving.splice(0).forEach((fn) => fn());
  // What a view drew on the graph (a change's deployment states, a proposal's blast radius) is
  // that view's: left on the graph, a change's old states read as the components' present.
  if (app.graph) {
    app.graph.states(null);
    app.graph.blast(null);
  }
  // The path is decoded (a change set id's escaped slash, %2F, joins its parts again); the query
  // is left as written for URLSearchParams, which decodes each value once: decoding it first
  // made a filter's '+' (a time's offset) a space and its '&' a new parameter.
  const hash = location.hash.slice(1) || '/';
  const q = hash.indexOf('?');
  const path = decodeURIComponent(q < 0 ? hash : hash.slice(0, q));
  const query = q < 0 ? '' : hash.slice(q + 1);
  const parts = path.split('/').filter(Boolean);
  const panel = $('#panel');
  panel.classList.toggle('wide', parts[0] === 'log');
  document.querySelectorAll('#nav a').forEach((a) => a.setAttribute('aria-current', a.getAttribute('href') === '#/' + (parts[0] || '') ? 'page' : 'false'));
  replace(panel, h('p', { class: 'muted' }, 'Loading…'));
  try {
    let view;
    if (parts[0] === 'c' && parts.length >= 4) {
      const id = parts.slice(1, 4).join('/');
      if (app.graph.has(id) && app.graph.selected() !== id) app.graph.select(id);
      view = await componentView(app, id, parts[4]);
    } else if (parts[0] === 'changes' && parts[1]) view = await changeView(app, parts.slice(1).join('/'));
    else if (parts[0] === 'changes') view = await changesView(new URLSearchParams(query));
    else if (parts[0] === 'deployments' && parts[1]) view = await lineageView(parts[1]);
    else if (parts[0] === 'log') view = await logView(new URLSearchParams(query || ''));
    else view = home();
    if (!current()) return;
    replace(panel, view);
    const heading = panel.querySelector('h2');
    if (heading && document.activeElement !== $('#search')) { // not while someone types a search
      heading.tabIndex = -1;
      heading.focus({ preventScroll: true });
    }
  } catch (e) {
    if (!(e instanceof Problem)) throw e;
    if (!current()) return;
    replace(panel, problem(e, e.status ? 'Error ' + e.status : 'No answer from Karma'));
  }
}

function home() {
  return [h('h2', {}, 'Karma'),
    h('p', {}, 'Each row of the graph is a wave: a component is deployed after everything it consumes from. Search for a component, or click one, to see its config, runtime, what it consumes from whom, its dependents and its deployments, and to propose a change.'),
    h('ul', {}, h('li', {}, h('span', { class: 'swatch up' }), ' what the selected component consumes from'),
      h('li', {}, h('span', { class: 'swatch down' }), ' what depends on it'),
      h('li', {}, h('span', { class: 'swatch br-root' }), ' a proposed change; ', h('span', { class: 'swatch br-redeploy' }), ' would redeploy; ',
        h('span', { class: 'swatch br-may' }), ' may redeploy; ', h('span', { class: 'swatch br-skip' }), ' would be skipped'))];
}

window.addEventListener('error', (e) => console.error('karma:', e.message));
setupSearch();
boot().catch((e) => {
  console.error('karma: the page failed to start:', e);
  replace($('#panel'), h('p', { class: 'error', role: 'alert' }, 'The page failed to start: ', String(e.message || e)));
});
