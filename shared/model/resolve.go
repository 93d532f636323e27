package model

import (
	"fmt"
	"runtime"
	"sort"
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
	layers []map[string]any // raw layers, lowest first (base, env file)
	data   map[string]any   // layers merged, to read the karma block
	karma  karmaBlock       // of data, parsed once
	kdiags Diagnostics      // its problems, reported when the component is resolved
	err    bool

	once     sync.Once
	resolved map[string]any
	rfiles   []string
}

func (r *Repo) resolveAll(srcs []*source) {
	r.rules = compileRules(r.Settings)
	owns := make(map[string]*own, len(srcs)) // "<env>/<type>/<nickname>"
	for _, s := range srcs {
		owns[s.env+"/"+s.typ+"/"+s.nickname] = r.ownOf(s)
	}
	// Base-only templates can be extended from any environment; they are built lazily per env.
	templates := map[string]*own{}
	var tmu sync.Mutex
	lookup := func(env, ref string) *own {
		if o, ok := owns[env+"/"+ref]; ok {
			return o
		}
		tmu.Lock()
		defer tmu.Unlock()
		if o, ok := templates[env+"/"+ref]; ok {
			return o
		}
		b, ok := r.base[ref]
		if !ok {
			return nil
		}
		t := &source{env: env, typ: b.typ, nickname: b.nickname, file: b.file, layer: b.layer}
		o := r.ownOf(t)
		templates[env+"/"+ref] = o
		return o
	}
	// extends cycles are found before the parallel resolution (which would otherwise wait on
	// itself); a component on a cycle is broken.
	for _, s := range srcs {
		r.checkExtends(owns[s.env+"/"+s.typ+"/"+s.nickname], lookup)
	}
	comps := make([]*Component, len(srcs))
	var wg sync.WaitGroup
	var dmu sync.Mutex
	jobs := make(chan int)
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local Diagnostics
			var w refWalker
			for i := range jobs {
				s := srcs[i]
				comps[i] = r.component(owns[s.env+"/"+s.typ+"/"+s.nickname], lookup, &w, &local)
			}
			dmu.Lock()
			r.Diagnostics = append(r.Diagnostics, local...)
			dmu.Unlock()
		}()
	}
	for i := range srcs {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	sort.Slice(comps, func(i, j int) bool { return comps[i].ID() < comps[j].ID() })
	r.Components = comps
	r.linkRules()
}

// ownOf merges the base layer (if any) with the component's own file.
func (r *Repo) ownOf(s *source) *own {
	o := &own{src: s}
	if s.layer == nil {
		o.err = true
		o.files = []string{s.file}
		return o
	}
	data := s.layer.Data
	if b, ok := r.base[s.typ+"/"+s.nickname]; ok && s.env != BaseEnv && b.file != s.file {
		if b.layer == nil {
			o.err = true
			o.files = []string{b.file, s.file}
			return o
		}
		data = MergePatch(b.layer.Data, data).(map[string]any)
		o.files = append(o.files, b.file)
		o.layers = append(o.layers, b.layer.Data)
	}
	o.files = append(o.files, s.file)
	o.layers = append(o.layers, s.layer.Data)
	o.data = data
	o.karma, o.kdiags = parseKarmaBlock(data)
	return o
}

func (r *Repo) checkExtends(o *own, lookup func(env, ref string) *own) {
	seen := map[*own]bool{}
	var path []string
	for cur := o; cur != nil && !cur.err; {
		if seen[cur] {
			r.Diagnostics = append(r.Diagnostics, Diagnostic{Severity: SevError, Code: CodeExtends, File: o.src.file,
				Message: "extends cycle: " + strings.Join(append(path, cur.src.typ+"/"+cur.src.nickname), " -> ")})
			o.err = true
			return
		}
		seen[cur] = true
		path = append(path, cur.src.typ+"/"+cur.src.nickname)
		if cur.karma.extends == "" {
			return
		}
		cur = lookup(o.src.env, cur.karma.extends)
	}
}

// resolve returns the merged config (karma block still in it) with parents applied.
func (o *own) resolve(lookup func(env, ref string) *own, diags *Diagnostics) (map[string]any, []string, bool) {
	// o.err may be set before resolution starts (unreadable file, extends cycle) or inside the
	// Once; it is only read inside the Once or after it, so concurrent callers never race.
	o.once.Do(func() {
		if o.err {
			return
		}
		kb := o.karma
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
			pdata, pfiles, ok := parent.resolve(lookup, diags)
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
			base = MergePatch(base, l)
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

func (r *Repo) component(o *own, lookup func(env, ref string) *own, w *refWalker, diags *Diagnostics) *Component {
	c := &Component{Env: o.src.env, Type: o.src.typ, Nickname: o.src.nickname}
	data, files, ok := o.resolve(lookup, diags)
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
