// The graph, drawn by Cytoscape.js and laid out by dependency: each wave (graph.Waves: a
// component's wave is one more than its deepest dependency's) is a row. The rows and the order
// within them are Cytoscape's breadthfirst layout, run over the edges that join consecutive
// waves only: from the wave-0 components, every component is then exactly its wave deep, and
// the layout orders each row by where its upstreams are. (Its `maximal` option would do the
// same from every edge, but costs more at thousands of components.) Every edge is drawn.
import cytoscape from 'cytoscape';

const BIG = 1500; // above this many components, the cheaper drawing options

// On a big graph, only highlighted components are labelled (text is what costs most to style
// and draw there).
const labels = (big) => ({ label: 'data(label)', 'font-size': 9, 'text-valign': 'bottom', 'text-margin-y': 3, color: '#1d2733', 'min-zoomed-font-size': 7,
  ...(big ? {} : { 'text-max-width': 120, 'text-wrap': 'ellipsis' }) });

const style = (big) => [
  { selector: 'node', style: { 'background-color': '#8a9bb0', width: 18, height: 18, ...(big ? {} : labels(big)) } },
  ...(big ? [{ selector: 'node.sel, node.up, node.down, node.br-root, node.br-redeploy, node.br-may, node.br-skip', style: labels(big) }] : []),
  { selector: 'node[status = "present"]', style: { 'background-color': '#3f8f5f' } },
  { selector: 'node[?broken]', style: { 'background-color': '#b3261e', shape: 'diamond' } },
  { selector: 'edge', style: big
      ? { 'curve-style': 'haystack', width: 0.5, 'line-color': '#c5ccd6', opacity: 0.6 }
      : { 'curve-style': 'bezier', width: 1, 'line-color': '#b3bcc8', 'target-arrow-shape': 'triangle', 'target-arrow-color': '#b3bcc8', 'arrow-scale': 0.7 } },
  // A selected component: what it consumes from (up) and what depends on it (down).
  { selector: 'node.sel', style: { 'background-color': '#1f5fbf', width: 28, height: 28, 'border-width': 3, 'border-color': '#0b2e66', 'z-index': 20 } },
  { selector: 'node.up', style: { 'background-color': '#7a4fc2', 'z-index': 10 } },
  { selector: 'node.down', style: { 'background-color': '#d9822b', 'z-index': 10 } },
  { selector: 'edge.up, edge.down', style: { 'curve-style': 'bezier', width: 2, 'line-color': '#47566b', 'target-arrow-shape': 'triangle',
      'target-arrow-color': '#47566b', opacity: 1, label: 'data(keys)', 'font-size': 8, 'text-rotation': 'autorotate', 'z-index': 10 } },
  // A proposal's blast radius.
  { selector: 'node.br-root', style: { 'background-color': '#b3261e', width: 30, height: 30, 'z-index': 30 } },
  { selector: 'node.br-redeploy', style: { 'background-color': '#e0561b', width: 24, height: 24, 'z-index': 25 } },
  { selector: 'node.br-may', style: { 'background-color': '#f2a541', 'z-index': 24 } },
  { selector: 'node.br-skip', style: { 'background-color': '#ffffff', 'border-width': 2, 'border-color': '#6b7785', 'border-style': 'dashed', 'z-index': 23 } },
  // Live states of a change being applied.
  { selector: 'node.st-applied', style: { 'background-color': '#2e7d32', 'border-width': 3, 'border-color': '#1b4d1e' } },
  { selector: 'node.st-busy', style: { 'background-color': '#1565c0', 'border-width': 3, 'border-color': '#0d3c73' } },
  { selector: 'node.st-skipped', style: { 'background-color': '#ffffff', 'border-width': 2, 'border-color': '#6b7785' } },
  { selector: 'node.st-failed', style: { 'background-color': '#b3261e' } },
  { selector: '.hidden', style: { display: 'none' } },
];

export class GraphView {
  constructor(container, onSelect) {
    this.container = container;
    this.onSelect = onSelect;
    this.marked = {}; // class -> collection currently holding it
  }

  // load draws a karma.graph.v1 document and resolves once it is on screen.
  load(doc) {
    const wave = new Map();
    (doc.waves || []).forEach((ids, w) => ids.forEach((id) => wave.set(id, w)));
    const els = [];
    for (const c of doc.components) {
      els.push({ group: 'nodes', data: { id: c.id, label: c.type + '/' + c.nickname, env: c.env, type: c.type, status: c.runtime_status, broken: !!c.broken } });
    }
    doc.edges.forEach((e, i) => {
      // An edge points from the dependency to its dependent: the direction a change travels.
      els.push({ group: 'edges', data: { id: 'e' + i, source: e.to, target: e.from, keys: (e.consumes || []).join(', ') } });
    });
    const big = doc.components.length > BIG;
    if (this.cy) this.cy.destroy();
    const t0 = performance.now();
    const cy = (this.cy = cytoscape({
      container: this.container, elements: els, style: style(big), wheelSensitivity: 0.3, minZoom: 0.02, maxZoom: 4,
      hideEdgesOnViewport: big, textureOnViewport: big, pixelRatio: big ? 1 : 'auto', boxSelectionEnabled: false,
    }));
    const t1 = performance.now();
    this.marked = {};
    const layered = cy.edges().filter((e) => wave.has(e.source().id()) && wave.get(e.target().id()) === wave.get(e.source().id()) + 1);
    const roots = cy.nodes().filter((n) => wave.get(n.id()) === 0);
    cy.nodes().union(layered).layout({
      name: 'breadthfirst', directed: true, roots: roots.length ? roots : undefined, animate: false,
      spacingFactor: big ? 0.6 : 1.1, avoidOverlap: !big, nodeDimensionsIncludeLabels: !big,
    }).run();
    const t2 = performance.now();
    cy.fit(undefined, 20);
    window.karmaPerf && Object.assign(window.karmaPerf, { init: t1 - t0, layout: t2 - t1 });
    cy.on('tap', 'node', (ev) => this.onSelect(ev.target.id(), ev.originalEvent ? ev.originalEvent.timeStamp : performance.now()));
    return this.painted();
  }

  // painted resolves after the next frame Cytoscape draws.
  painted() {
    return new Promise((resolve) => {
      this.cy.one('render', () => requestAnimationFrame(() => resolve(performance.now())));
      this.cy.forceRender ? this.cy.forceRender() : null;
    });
  }

  has(id) {
    return this.cy && this.cy.getElementById(id).length > 0;
  }

  // mark gives cls to exactly the elements eles (removing it from those that had it).
  mark(cls, eles) {
    const prev = this.marked[cls];
    if (prev) prev.removeClass(cls);
    this.marked[cls] = eles;
    if (eles) eles.addClass(cls);
  }

  // select highlights a component, what it depends on and what depends on it, and centres it.
  select(id) {
    const cy = this.cy;
    const n = cy.getElementById(id);
    cy.batch(() => {
      this.mark('sel', n);
      this.mark('up', n.incomers());
      this.mark('down', n.outgoers());
    });
    if (n.length) {
      // Brought into view: zoomed in enough to read it on a large graph, else only centred
      // when it is off screen.
      const e = cy.extent();
      const p = n.position();
      if (cy.zoom() < 0.5) cy.zoom({ level: 0.8, position: p });
      if (cy.zoom() < 0.5 || p.x < e.x1 || p.x > e.x2 || p.y < e.y1 || p.y > e.y2) cy.center(n);
    }
    return this.painted();
  }

  // blast shows a proposal's predicted impact: root, first hop, further down, skipped.
  blast(p) {
    const cy = this.cy;
    const ids = (list) => cy.collection(list.map((id) => cy.getElementById(id)).filter((x) => x.length));
    const first = new Set();
    const may = [];
    for (const a of p ? p.redeploy.affected : []) {
      if (a.depth === 1) first.add(a.id);
      else if (a.depth > 1) may.push(a.id);
    }
    cy.batch(() => {
      this.mark('br-root', p ? ids([p.component]) : null);
      this.mark('br-redeploy', ids([...first]));
      this.mark('br-may', ids(may));
      this.mark('br-skip', ids(p ? p.skipped.map((s) => s.id) : []));
    });
    return this.painted();
  }

  // states colours the components of a change by where their deployment is.
  states(deployments) {
    const cy = this.cy;
    const by = { 'st-applied': [], 'st-busy': [], 'st-skipped': [], 'st-failed': [] };
    for (const d of deployments || []) {
      const cls = { applied: 'st-applied', skipped: 'st-skipped', blocked: 'st-skipped', failed: 'st-failed' }[d.state] || (d.state === 'pending' ? null : 'st-busy');
      if (cls) by[cls].push(cy.getElementById(d.component));
    }
    cy.batch(() => Object.entries(by).forEach(([cls, list]) => this.mark(cls, cy.collection(list))));
  }

  // filter hides the components not matching env and type ("" = any) and fits what is left.
  filter(env, type) {
    const cy = this.cy;
    cy.batch(() => {
      cy.nodes().forEach((n) => {
        const show = (!env || n.data('env') === env) && (!type || n.data('type') === type);
        show ? n.removeClass('hidden') : n.addClass('hidden');
      });
    });
    cy.fit(cy.nodes(':visible'), 20);
  }

  resize() {
    this.cy && this.cy.resize();
  }
}
