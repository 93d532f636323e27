// The graph, drawn by Cytoscape.js and laid out by dependency: each wave (graph.Waves: a
// component's wave is one more than its deepest dependency's) is a row.
//
// Two Cytoscape instances are stacked in the graph's box. The lower one holds every component
// and is drawn once: nothing on it changes when something is selected, so Cytoscape keeps
// reusing its cached drawing (redrawing the whole graph on a CPU-rendered canvas is what made
// selecting slow). The upper one, transparent and letting the pointer through, holds copies of
// only what is highlighted — the selected component and its neighbours with their edges, a
// proposal's blast radius, a change's live states — and follows the lower one's pan and zoom.
//
// Up to BIG components, every dependency is a Cytoscape edge (curved, with its arrow), and the
// rows and the order within them are Cytoscape's breadthfirst layout, run over the edges that
// join consecutive waves only: from the wave-0 components every component is then exactly its
// wave deep, and the layout orders each row by where its upstreams are. Above BIG, that layout
// costs about a second and each of thousands of Cytoscape edges costs its creation, styling and
// drawing, so: Cytoscape's preset layout places each component in its wave's row, in the order
// graph.Waves lists them (by id, so by type), and the dependencies are drawn as one path of
// straight lines on a canvas layer under the components (cytoscape-layers), redrawn with the
// pan and zoom; only highlighted components are labelled.
import cytoscape from 'cytoscape';
import layers from 'cytoscape-layers';

cytoscape.use(layers);

const BIG = 1500; // above this many components: the preset rows, the dependencies on a canvas layer

const labels = (wrap) => ({ label: 'data(label)', 'font-size': 9, 'text-valign': 'bottom', 'text-margin-y': 3, color: '#1d2733', 'min-zoomed-font-size': 7,
  ...(wrap ? { 'text-max-width': 120, 'text-wrap': 'ellipsis' } : {}) });

const nodeColours = [
  { selector: 'node[status = "present"]', style: { 'background-color': '#3f8f5f' } },
  { selector: 'node[?broken]', style: { 'background-color': '#b3261e', shape: 'diamond' } },
];

// The lower instance: every component (and, up to BIG, every dependency). On a big graph, no
// labels: text is what costs most to style and draw there.
const baseStyle = (big) => [
  { selector: 'node', style: { 'background-color': '#8a9bb0', width: 18, height: 18, ...(big ? {} : labels(true)) } },
  ...nodeColours,
  ...(big ? [] : [
    { selector: 'edge', style: { 'curve-style': 'bezier', width: 1, 'line-color': '#b3bcc8', 'target-arrow-shape': 'triangle', 'target-arrow-color': '#b3bcc8', 'arrow-scale': 0.7 } },
    { selector: 'node.lit', style: { label: '' } }, // its copy above is labelled
  ]),
  { selector: '.hidden', style: { display: 'none' } },
];

// The dependencies of a big graph on the canvas layer (model units, scaled with the zoom).
const LINE_WIDTH = 0.5;
const LINE_COLOUR = '#cdd3db';

// The upper instance: the highlighted components, labelled, and their edges.
const topStyle = (big) => [
  { selector: 'node', style: { 'background-color': '#8a9bb0', width: 18, height: 18, ...labels(!big) } },
  ...nodeColours,
  { selector: 'edge', style: { 'curve-style': 'bezier', width: 1, 'line-color': '#b3bcc8', 'target-arrow-shape': 'triangle', 'target-arrow-color': '#b3bcc8', 'arrow-scale': 0.7 } },
  // A selected component: what it consumes from (up) and what depends on it (down).
  { selector: 'node.sel', style: { 'background-color': '#1f5fbf', width: 28, height: 28, 'border-width': 3, 'border-color': '#0b2e66', 'z-index': 20 } },
  { selector: 'node.up', style: { 'background-color': '#7a4fc2', 'z-index': 10 } },
  { selector: 'node.down', style: { 'background-color': '#d9822b', 'z-index': 10 } },
  { selector: 'edge.up, edge.down', style: { width: 2, 'line-color': '#47566b', 'target-arrow-color': '#47566b', label: 'data(keys)', 'font-size': 8,
      'text-rotation': 'autorotate', 'z-index': 10 } },
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
  // Not deployed because an upstream failed: not the same as skipped (nothing to do).
  { selector: 'node.st-blocked', style: { 'background-color': '#ffffff', 'border-width': 3, 'border-color': '#b3261e', 'border-style': 'dashed' } },
  // A plan held for review: nothing moves until it is approved.
  { selector: 'node.st-held', style: { 'background-color': '#f2a541', 'border-width': 3, 'border-color': '#8a5a00' } },
  { selector: '.hidden', style: { display: 'none' } },
];

// The preset rows of a big graph, in model units (the view is then fitted to them).
const ROW_WIDTH = 1000;
const ROW_GAP = 80;

// shape is what a drawing of doc is made of: its components, and its dependencies with the keys
// each consumes (shown on a selected component's edges). Two readings of the same shape differ
// only in what refresh gives the drawn graph in place.
function shape(doc) {
  const edges = doc.edges.map((e) => e.from + '\n' + e.to + '\n' + (e.consumes || []).join(',')).sort();
  return doc.components.map((c) => c.id).sort().join('\n') + '\n\n' + edges.join('\n');
}

export class GraphView {
  constructor(container, onSelect) {
    this.container = container;
    this.onSelect = onSelect;
    this.marks = {}; // class -> the ids (components and edges) holding it
  }

  // load draws a karma.graph.v1 document and resolves once it is on screen.
  load(doc) {
    const t0 = performance.now();
    this.shape = shape(doc);
    const big = (this.big = doc.components.length > BIG);
    const waves = doc.waves || [];
    const at = new Map(); // id -> preset position (big graphs)
    const wave = new Map();
    waves.forEach((ids, w) => ids.forEach((id, i) => {
      wave.set(id, w);
      if (big) at.set(id, { x: ((i + 0.5) / ids.length) * ROW_WIDTH, y: w * ROW_GAP });
    }));
    const els = [];
    let unplaced = 0;
    for (const c of doc.components) {
      const el = { group: 'nodes', data: { id: c.id, label: c.type + '/' + c.nickname, env: c.env, type: c.type, status: c.runtime_status, broken: !!c.broken } };
      if (big) {
        if (!at.has(c.id)) at.set(c.id, { x: (unplaced++ % 100) * (ROW_WIDTH / 100), y: waves.length * ROW_GAP }); // in no wave: a last row
        el.position = at.get(c.id);
      }
      els.push(el);
    }
    // Every dependency, pointing from the dependency to its dependent (the direction a change
    // travels), with each component's incoming and outgoing ones.
    this.edges = new Map();
    this.incoming = new Map();
    this.outgoing = new Map();
    const push = (m, k, v) => (m.get(k) || m.set(k, []).get(k)).push(v);
    doc.edges.forEach((e, i) => {
      const edge = { id: 'e' + i, source: e.to, target: e.from, keys: (e.consumes || []).join(', ') };
      this.edges.set(edge.id, edge);
      push(this.outgoing, edge.source, edge);
      push(this.incoming, edge.target, edge);
      if (!big) els.push({ group: 'edges', data: edge });
    });
    // The big graph's lines: each edge's two ends, and whether the filter hides it.
    this.lines = null;
    if (big) {
      const xy = new Float64Array(doc.edges.length * 4);
      let k = 0;
      for (const e of this.edges.values()) {
        const a = at.get(e.source);
        const b = at.get(e.target);
        if (!a || !b) continue; // an edge to an unknown component: not drawn
        xy.set([a.x, a.y, b.x, b.y], k);
        k += 4;
      }
      this.lines = { xy: xy.subarray(0, k), ends: [...this.edges.values()].filter((e) => at.has(e.source) && at.has(e.target)), hidden: null };
    }
    if (this.cy) this.cy.destroy();
    if (this.top) this.top.destroy();
    this.container.replaceChildren();
    const layer = (cls) => this.container.appendChild(Object.assign(document.createElement('div'), { className: cls }));
    const baseBox = layer('graph-layer');
    const topBox = layer('graph-layer graph-top');
    const t1 = performance.now();
    const cy = (this.cy = cytoscape({
      container: baseBox, elements: els, style: baseStyle(big), layout: { name: 'preset', positions: {}, fit: false }, // placed already
      wheelSensitivity: 0.3, minZoom: 0.02, maxZoom: 4, boxSelectionEnabled: false, autounselectify: true, autoungrabify: big,
      textureOnViewport: big, pixelRatio: big ? 1 : 'auto',
    }));
    if (big) this.drawLines(cy);
    this.top = cytoscape({
      container: topBox, style: topStyle(big), layout: { name: 'preset', fit: false }, minZoom: 0.02, maxZoom: 4,
      userZoomingEnabled: false, userPanningEnabled: false, boxSelectionEnabled: false, autoungrabify: true, autounselectify: true,
      pixelRatio: big ? 1 : 'auto',
    });
    const t2 = performance.now();
    if (!big) {
      const layered = cy.edges().filter((e) => wave.has(e.source().id()) && wave.get(e.target().id()) === wave.get(e.source().id()) + 1);
      const roots = cy.nodes().filter((n) => wave.get(n.id()) === 0);
      cy.nodes().union(layered).layout({
        name: 'breadthfirst', directed: true, roots: roots.length ? roots : undefined, animate: false, fit: false,
        spacingFactor: 1.1, avoidOverlap: true, nodeDimensionsIncludeLabels: true,
      }).run();
      cy.fit(undefined, 20);
    } else {
      // The rows' extent, known without measuring every element.
      const h = Math.max(waves.length - (unplaced ? 0 : 1), 0) * ROW_GAP;
      cy.fit({ x1: -20, y1: -20, x2: ROW_WIDTH + 20, y2: h + 20 }, 20);
    }
    const t3 = performance.now();
    this.marks = {};
    this.follow();
    cy.on('viewport', () => this.follow());
    cy.on('position', 'node', (ev) => { // a component dragged (small graphs): its highlight follows
      const copy = this.top.getElementById(ev.target.id());
      if (copy.length) copy.position(ev.target.position());
    });
    cy.on('tap', 'node', (ev) => this.onSelect(ev.target.id(), ev.originalEvent ? ev.originalEvent.timeStamp : performance.now()));
    window.karmaPerf && Object.assign(window.karmaPerf, { elements: t1 - t0, init: t2 - t1, layout: t3 - t2 });
    return this.painted(cy);
  }

  // drawLines draws a big graph's dependencies as one path on a canvas layer under the
  // components, redrawn (once a frame at most) when the view pans or zooms or the filter changes.
  drawLines(cy) {
    const layer = cy.layers().nodeLayer.insertBefore('canvas', { pixelRatio: 1 });
    const draw = layer.update;
    let queued = false;
    layer.update = () => {
      if (queued) return;
      queued = true;
      requestAnimationFrame(() => {
        queued = false;
        if (!cy.destroyed()) draw();
      });
    };
    layer.callback((ctx) => {
      const { xy, hidden } = this.lines;
      let drawn = 0;
      ctx.beginPath();
      for (let i = 0; i < xy.length; i += 4) {
        if (hidden && hidden[i / 4]) continue;
        ctx.moveTo(xy[i], xy[i + 1]);
        ctx.lineTo(xy[i + 2], xy[i + 3]);
        drawn++;
      }
      this.lines.drawn = drawn;
      ctx.lineWidth = LINE_WIDTH;
      ctx.strokeStyle = LINE_COLOUR;
      ctx.stroke();
    });
    this.lines.layer = layer;
  }

  // drawnLines is how many dependencies the canvas layer drew last (null below BIG).
  drawnLines() {
    return this.lines ? this.lines.drawn ?? 0 : null;
  }

  // follow gives the upper instance the lower one's pan and zoom.
  follow() {
    this.top.viewport({ zoom: this.cy.zoom(), pan: this.cy.pan() });
  }

  // painted resolves after the next frame the instance draws.
  painted(cy) {
    return new Promise((resolve) => {
      cy.one('render', () => requestAnimationFrame(() => resolve(performance.now())));
      cy.forceRender();
    });
  }

  has(id) {
    return !!this.cy && this.cy.getElementById(id).length > 0;
  }

  // status is a component's runtime status as drawn ('' when it is not in the graph).
  status(id) {
    return this.has(id) ? this.cy.getElementById(id).data('status') : '';
  }

  // refresh gives the drawn components the runtime status and brokenness of a newer reading of
  // the graph, in place (no new layout). It returns false when the components or dependencies
  // are not those drawn (the repository changed): drawing that needs a new layout.
  refresh(doc) {
    const cy = this.cy;
    const same = shape(doc) === this.shape;
    cy.batch(() => {
      for (const c of doc.components) {
        const n = cy.getElementById(c.id);
        if (n.length && (n.data('status') !== c.runtime_status || n.data('broken') !== !!c.broken)) {
          n.data({ status: c.runtime_status, broken: !!c.broken });
          this.top.getElementById(c.id).data({ status: c.runtime_status, broken: !!c.broken });
        }
      }
    });
    return same;
  }

  // classes are the highlight classes a component or edge holds.
  classes(id) {
    return Object.keys(this.marks).filter((cls) => this.marks[cls].includes(id));
  }

  // selected is the selected component's id, if any.
  selected() {
    return this.marks.sel?.[0];
  }

  // mark gives cls to exactly the components and edges ids (removing it from the rest), and
  // updates the upper instance.
  mark(classes) {
    Object.assign(this.marks, classes);
    this.redraw();
  }

  // redraw makes the upper instance hold a copy of every marked element (and of the two ends of
  // each marked edge) with its classes, hidden where the filter hides its component.
  redraw() {
    const cy = this.cy;
    const top = this.top;
    const want = new Map(); // id -> classes
    for (const [cls, ids] of Object.entries(this.marks)) {
      for (const id of ids || []) {
        if (!want.has(id)) want.set(id, []);
        want.get(id).push(cls);
      }
    }
    for (const id of [...want.keys()]) {
      const e = this.edges.get(id);
      if (e) [e.source, e.target].forEach((n) => want.has(n) || want.set(n, []));
      else if (!cy.getElementById(id).length) want.delete(id);
    }
    if (!this.big) { // small graphs: the labels of the copies replace the ones below
      cy.batch(() => {
        cy.nodes('.lit').removeClass('lit');
        cy.collection([...want.keys()].map((id) => cy.getElementById(id))).nodes().addClass('lit');
      });
    }
    top.batch(() => {
      top.elements().filter((el) => !want.has(el.id())).remove();
      const add = [];
      for (const [id, classes] of want) {
        const e = this.edges.get(id);
        const n = e ? null : cy.getElementById(id);
        const cls = n && n.hasClass('hidden') ? [...classes, 'hidden'] : classes;
        const copy = top.getElementById(id);
        if (copy.length) copy.classes(cls);
        else if (e) add.push({ group: 'edges', data: { ...e }, classes: cls });
        else add.push({ group: 'nodes', data: { ...n.data() }, classes: cls, position: { ...n.position() } });
      }
      top.add(add.sort((a, b) => (a.group === b.group ? 0 : a.group === 'nodes' ? -1 : 1)));
    });
  }

  // select highlights a component, what it depends on and what depends on it, and brings it
  // into view.
  select(id) {
    const cy = this.cy;
    const n = cy.getElementById(id);
    const ends = (edges, end) => (n.length ? (edges.get(id) || []).flatMap((e) => [e.id, e[end]]) : []);
    this.mark({ sel: n.length ? [id] : [], up: ends(this.incoming, 'source'), down: ends(this.outgoing, 'target') });
    if (n.length) {
      // Brought into view: zoomed in enough to read it on a large graph, else only centred
      // when it is off screen.
      const e = cy.extent();
      const p = n.position();
      if (cy.zoom() < 0.5) cy.zoom({ level: 0.8, position: p });
      if (cy.zoom() < 0.5 || p.x < e.x1 || p.x > e.x2 || p.y < e.y1 || p.y > e.y2) cy.center(n);
    }
    return this.painted(this.top);
  }

  // blast shows a proposal's predicted impact: root, first hop, further down, skipped.
  blast(p) {
    const first = [];
    const may = [];
    for (const a of p ? p.redeploy.affected : []) {
      if (a.depth === 1) first.push(a.id);
      else if (a.depth > 1) may.push(a.id);
    }
    this.mark({ 'br-root': p ? [p.component] : [], 'br-redeploy': first, 'br-may': may, 'br-skip': p ? p.skipped.map((s) => s.id) : [] });
    return this.painted(this.top);
  }

  // states colours the components of a change by where their deployment is.
  states(deployments) {
    const by = { 'st-applied': [], 'st-busy': [], 'st-held': [], 'st-skipped': [], 'st-blocked': [], 'st-failed': [] };
    for (const d of deployments || []) {
      const cls = { applied: 'st-applied', skipped: 'st-skipped', blocked: 'st-blocked', failed: 'st-failed', planned: 'st-held' }[d.state] || (d.state === 'pending' ? null : 'st-busy');
      if (cls) by[cls].push(d.component);
    }
    this.mark(by);
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
    if (this.lines) {
      const shown = (id) => !cy.getElementById(id).hasClass('hidden');
      this.lines.hidden = env || type ? this.lines.ends.map((e) => !(shown(e.source) && shown(e.target))) : null;
      this.lines.layer.update();
    }
    this.redraw();
    cy.fit(cy.nodes(':visible'), 20);
  }

  resize() {
    if (!this.cy) return;
    this.cy.resize();
    this.top.resize();
    this.follow();
  }
}
