package model

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
)

// karmaBlock is the reserved `karma` object of a config.
type karmaBlock struct {
	extends   string
	dependsOn []Reference
}

// ownLayers merges the base layer and the env file of one component (layers 2 and 3).
type own struct {
	src    *source
	files  []string
	layers []*Layer       // raw layers, lowest first (base, env file)
	data   map[string]any // layers merged, to read the karma block
	karma  karmaBlock     // of data, parsed once
	kdiags Diagnostics    // its problems, reported when the component is resolved
	err    bool
	// released: resolved, and its parsed layers dropped (resolveSet)
	released bool
	// template is "<env>/<type>/<nickname>" for a base-only template built for env.
	template string

	once     sync.Once
	ran      bool        // resolution started
	odiags   Diagnostics // the problems resolution found (kdiags included)
	parent   *own        // the parent resolved, if one was found
	resolved map[string]any
	rfiles   []string
}

// resolveSet reads, parses and resolves the components of srcs (environment files, in discovery
// order; base layers are read already), in two passes so that no more than a few parsed configs
// are alive at once:
//
//  1. in parallel, each file is read and parsed, merged with its base layer, and — when it
//     extends nothing, as nearly every component — resolved, walked for its references and
//     encoded there and then; its parsed layers are released at once (only the canonical JSON,
//     the references and the karma block are kept);
//  2. the components that extend a parent are resolved once every karma block is known (extends
//     cycles are found first). A parent released in pass 1 is read and parsed again, once per
//     environment: rare (templates in the base layer, which are kept, are the usual parents),
//     and cheaper than keeping every config parsed in case it is extended.
//
// It returns one unit per source (its component before linkRules, its problems and the files
// its resolution read) and the problems of the base-only templates resolved, by
// "<env>/<type>/<nickname>". other, when not nil, gives a copy of an environment component not
// in srcs, read when one of srcs extends it (its problems are its own unit's, not reported).
func (r *Repo) resolveSet(srcs []*source, rd *reader, other func(id string) *source) resolved {
	owns := make([]*own, len(srcs))
	units := make([]unit, len(srcs))
	// Each unit is written here first, in one pass, not by the workers as they come to it: a
	// large array fresh from the OS is read by the collector's scan before the workers have
	// written most of it, which maps its pages to the kernel's zero page, and then every first
	// write is a copy-on-write fault that flushes the other cores' TLBs (about half of a build's
	// page-fault time on a 2-core VM, docs/performance.md).
	for i := range units {
		units[i].pos = i
	}
	parallel(len(srcs), 2*runtime.GOMAXPROCS(0), func(w *worker, i int) {
		s, u := srcs[i], &units[i]
		if d := rd.read(w.parser, s); d != nil {
			u.diags = append(u.diags, *d)
		}
		if s.duplicate {
			s.layer = nil
		}
		o := r.ownOf(s)
		owns[i] = o
		if o.err || o.karma.extends == "" {
			u.comp = r.component(o, nil, &w.walker, &u.diags)
			o.release()
		}
	})

	byID := make(map[string]*own, len(srcs)) // "<env>/<type>/<nickname>"
	for _, o := range owns {
		byID[o.src.env+"/"+o.src.typ+"/"+o.src.nickname] = o
	}
	// Base-only templates can be extended from any environment; they are built lazily per env,
	// as are released parents, read again, and the components other gives.
	built := map[string]*own{}
	var out resolved
	var bmu sync.Mutex // guards built and out.misc
	// find is the parent named ref in env, as pass 1 left it (enough for its karma block).
	find := func(env, ref string) *own {
		if o, ok := byID[env+"/"+ref]; ok {
			return o
		}
		bmu.Lock()
		defer bmu.Unlock()
		if o, ok := built[env+"/"+ref]; ok {
			return o
		}
		if other != nil {
			if s := other(env + "/" + ref); s != nil {
				rd.read(newParser(), s) // its problems are reported with its own unit
				if s.duplicate {
					s.layer = nil
				}
				o := r.ownOf(s)
				o.kdiags = nil
				built[env+"/"+ref] = o
				return o
			}
		}
		b, ok := r.base[ref]
		if !ok {
			return nil
		}
		t := &source{env: env, typ: b.typ, nickname: b.nickname, file: b.file, layer: b.layer}
		o := r.ownOf(t)
		o.template = env + "/" + ref
		built[env+"/"+ref] = o
		return o
	}
	// lookup is find with released parents read again (their problems were reported already).
	lookup := func(env, ref string) *own {
		o := find(env, ref)
		if o == nil || !o.released {
			return o
		}
		bmu.Lock()
		defer bmu.Unlock()
		key := "\x00" + env + "/" + ref
		if again, ok := built[key]; ok {
			return again
		}
		t := &source{env: o.src.env, typ: o.src.typ, nickname: o.src.nickname, file: o.src.file}
		if d := rd.read(newParser(), t); d != nil {
			out.misc = append(out.misc, *d) // the file changed since pass 1
		}
		again := r.ownOf(t)
		again.kdiags = nil
		built[key] = again
		return again
	}
	// extends cycles are found before the parallel resolution (which would otherwise wait on
	// itself); a component on a cycle is broken.
	var extending []int
	for i, o := range owns {
		if o.err || o.karma.extends == "" {
			continue // resolved in pass 1
		}
		if d := r.checkExtends(o, find); d != nil {
			units[i].diags = append(units[i].diags, *d)
			out.cycles = true
		}
		extending = append(extending, i)
	}
	parallel(len(extending), runtime.GOMAXPROCS(0), func(w *worker, j int) {
		i := extending[j]
		units[i].comp = r.component(owns[i], lookup, &w.walker, &units[i].diags)
	})
	// What each component's resolution read: its layers and those of every parent resolved.
	for i, o := range owns {
		u := &units[i]
		u.deps = append(u.deps, o.files...)
		for p, n := o.parent, 0; p != nil && n < len(owns)+len(built); p, n = p.parent, n+1 {
			u.deps = append(u.deps, p.files...)
			if p.template != "" {
				u.templates = append(u.templates, p.template)
			}
		}
	}
	out.units = units
	out.templates = map[string]Diagnostics{}
	for _, o := range built {
		if o.template != "" && o.ran {
			out.templates[o.template] = o.odiags
		}
	}
	return out
}

// resolved is what resolveSet returns.
type resolved struct {
	units     []unit
	templates map[string]Diagnostics // problems of the base-only templates resolved, by env/ref
	misc      Diagnostics            // files read again that changed meanwhile
	cycles    bool                   // an extends cycle was found
}

// release drops a resolved component's parsed layers: what is left (files, karma block) is what
// checkExtends needs of a parent; lookup reads a released parent again.
func (o *own) release() {
	if o.err {
		return
	}
	o.layers, o.data, o.resolved, o.src.layer = nil, nil, nil, nil
	o.released = true
}

// ownOf merges the base layer (if any) with the component's own file.
func (r *Repo) ownOf(s *source) *own {
	o := &own{src: s}
	if s.layer == nil {
		o.err = true
		o.files = []string{s.file}
		return o
	}
	if b, ok := r.base[s.typ+"/"+s.nickname]; ok && s.env != BaseEnv && b.file != s.file {
		if b.layer == nil {
			o.err = true
			o.files = []string{b.file, s.file}
			return o
		}
		o.files = append(o.files, b.file)
		o.layers = append(o.layers, b.layer)
	}
	o.files = append(o.files, s.file)
	o.layers = append(o.layers, s.layer)
	// The layers merged onto nothing, as resolve merges them onto the parent: a null deletes
	// what a lower layer set, or is dropped — "depends_on": null in a child's file removes the
	// parent's depends_on and is no malformed depends_on.
	var data any = map[string]any{}
	for _, l := range o.layers {
		if t := data.(map[string]any); len(t) == 0 && l.NoNulls {
			data = l.Data
			continue
		}
		data = MergePatch(data, l.Data)
	}
	o.data = data.(map[string]any)
	o.karma, o.kdiags = parseKarmaBlock(o.data)
	return o
}

// checkExtends follows o's extends chain: on a cycle o is broken, and the problem returned.
func (r *Repo) checkExtends(o *own, lookup func(env, ref string) *own) *Diagnostic {
	seen := map[*own]bool{}
	var path []string
	for cur := o; cur != nil && !cur.err; {
		if seen[cur] {
			o.err = true
			return &Diagnostic{Severity: SevError, Code: CodeExtends, File: o.src.file,
				Message: "extends cycle: " + strings.Join(append(path, cur.src.typ+"/"+cur.src.nickname), " -> ")}
		}
		seen[cur] = true
		path = append(path, cur.src.typ+"/"+cur.src.nickname)
		if cur.karma.extends == "" {
			return nil
		}
		cur = lookup(o.src.env, cur.karma.extends)
	}
	return nil
}

// resolve returns the merged config (karma block still in it) with parents applied. The
// problems found are kept in o.odiags, for whoever reports o's (its component, or the
// template's environment) — not in the caller's, which may be a child resolving its parent.
func (o *own) resolve(lookup func(env, ref string) *own) (map[string]any, []string, bool) {
	// o.err may be set before resolution starts (unreadable file, extends cycle) or inside the
	// Once; it is only read inside the Once or after it, so concurrent callers never race.
	o.once.Do(func() {
		o.ran = true
		if o.err {
			return
		}
		kb := o.karma
		diags := &o.odiags
		for _, e := range o.kdiags {
			e.File = o.src.file
			*diags = append(*diags, e)
		}
		var base any = map[string]any{}
		var baseFiles []string
		if kb.extends != "" {
			parent := lookup(o.src.env, kb.extends)
			if parent == nil {
				*diags = append(*diags, Diagnostic{Severity: SevError, Code: CodeExtends, File: o.src.file, Pointer: "/karma/extends",
					Message: fmt.Sprintf("extends %q: no such component in %s or in the base layer", kb.extends, o.src.env)})
				o.err = true
				return
			}
			o.parent = parent
			pdata, pfiles, ok := parent.resolve(lookup)
			if !ok {
				*diags = append(*diags, Diagnostic{Severity: SevError, Code: CodeExtends, File: o.src.file, Pointer: "/karma/extends",
					Message: fmt.Sprintf("extends %q: the parent cannot be resolved (see its own errors)", kb.extends)})
				o.err = true
				return
			}
			base, baseFiles = withoutKarmaExtends(pdata), pfiles
		}
		// Each layer is applied in turn on top of the parent (or of {}), so that a null in any
		// layer deletes what any lower layer set, and a null with nothing below is dropped too.
		for _, l := range o.layers {
			if t, ok := base.(map[string]any); ok && len(t) == 0 && l.NoNulls {
				base = l.Data // what MergePatch gives, without its walk for nulls
				continue
			}
			base = MergePatch(base, l.Data)
		}
		o.resolved = base.(map[string]any)
		o.rfiles = append(append([]string{}, baseFiles...), o.files...)
	})
	if o.err {
		return nil, o.files, false
	}
	return o.resolved, o.rfiles, !o.err && o.resolved != nil
}

// withoutKarmaExtends drops the parent's own extends so it is not inherited as the child's.
func withoutKarmaExtends(m map[string]any) map[string]any {
	kb, ok := m["karma"].(map[string]any)
	if !ok {
		return m
	}
	if _, has := kb["extends"]; !has {
		return m
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	nk := make(map[string]any, len(kb))
	for k, v := range kb {
		if k != "extends" {
			nk[k] = v
		}
	}
	out["karma"] = nk
	return out
}

// component resolves o into its component, before linkRules; its problems are added to diags.
func (r *Repo) component(o *own, lookup func(env, ref string) *own, w *refWalker, diags *Diagnostics) Component {
	c := Component{Env: o.src.env, Type: o.src.typ, Nickname: o.src.nickname}
	data, files, ok := o.resolve(lookup)
	*diags = append(*diags, o.odiags...)
	c.Files = files
	if !ok {
		c.Broken = true
		return c
	}
	// Without a parent the merged layers' karma block is the one already parsed (they differ
	// only by null members, which it ignores); a parent's depends_on is inherited, so parse again.
	kb := o.karma
	if kb.extends != "" {
		kb, _ = parseKarmaBlock(data)
	}
	// One walk of the resolved config (data less its karma block): references and canonical JSON.
	w.reset()
	w.rules, w.encode = r.rules, true
	w.walk(data, true)
	c.References = make([]Reference, 0, len(kb.dependsOn)+len(w.refs))
	c.References = append(append(c.References, kb.dependsOn...), w.refs...)
	if attrs := r.rules.indexValues(c.Type, data); len(w.lookups)+len(attrs) > 0 {
		c.pending = &pendingRules{lookups: w.lookups, attrs: attrs}
	}
	subs, subErrs := r.rules.subRuntimes(c.Type, data)
	c.SubRuntimes = subs
	for _, e := range append(w.diags, subErrs...) {
		e.File = c.File()
		e.Component = c.ID()
		*diags = append(*diags, e)
	}
	if errs := r.validateSchema(c.Type, data); len(errs) > 0 {
		for _, e := range errs {
			e.File = c.File()
			e.Component = c.ID()
			*diags = append(*diags, e)
		}
	}
	if w.odd {
		c.Resolved, c.Hash = Canonical(withoutKarma(data))
	} else {
		c.Resolved, c.Hash = hashed(append(make([]byte, 0, len(w.out)), w.out...))
	}
	return c
}

// withoutKarma is a component's merged layers less the reserved karma block: its resolved
// config.
func withoutKarma(data map[string]any) map[string]any {
	if _, ok := data["karma"]; !ok {
		return data
	}
	cfg := make(map[string]any, len(data))
	for k, v := range data {
		if k != "karma" {
			cfg[k] = v
		}
	}
	return cfg
}
