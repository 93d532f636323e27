package model

import (
	"context"
	"maps"
	"slices"
	"sort"
)

// snapshot is what LoadFS resolved, kept on the Repo so that a load with overrides can be
// derived from it (Repo.Derive): every component before linkRules, with its problems and the
// files its resolution read. Nothing in it is modified once built; a derived repository copies
// what it changes.
type snapshot struct {
	head      Diagnostics            // accounts, layout and duplicates: independent of the files' contents
	base      []*source              // the base layers as read, in discovery order
	baseDiags []*Diagnostic          // the problem reading each, nil when none
	baseIdx   map[string]int         // file -> index in base
	units     []unit                 // sorted by component id, as Repo.Components
	unitIdx   map[string]int         // "<env>/<type>/<nickname>" -> index in units
	readers   map[string][]int       // file -> the units whose resolution read it
	templates map[string]Diagnostics // problems of the base-only templates resolved, by env/ref
	env       string                 // LoadOptions.Env
}

// unit is one environment component as resolution left it, before linkRules.
type unit struct {
	src       source      // as discovered (duplicate flag included), without its layer
	pos       int         // index in discovery order
	comp      Component   // pending rules kept; References before linkRules adds its own
	diags     Diagnostics // its problems: reading, karma block, extends, references, schema
	deps      []string    // every file its resolution read: its layers and its parents'
	templates []string    // the base-only templates its resolution resolved ("<env>/<type>/<nickname>")
}

// newSnapshot sorts what resolution left by component id; with derivable, it indexes it for
// Derive too (otherwise the snapshot only serves this load's assemble, and is dropped).
func newSnapshot(env string, head Diagnostics, base []*source, baseDiags []*Diagnostic, srcs []*source, res resolved, derivable bool) *snapshot {
	sn := &snapshot{env: env, head: slices.Clone(head), base: base, baseDiags: baseDiags, templates: res.templates}
	if derivable {
		sn.baseIdx, sn.unitIdx, sn.readers = make(map[string]int, len(base)), make(map[string]int, len(srcs)), make(map[string][]int, len(srcs))
	}
	for i, s := range base {
		if derivable {
			sn.baseIdx[s.file] = i
		}
	}
	ids := make([]string, len(srcs))
	order := make([]int, len(srcs))
	for i, s := range srcs {
		ids[i], order[i] = s.env+"/"+s.typ+"/"+s.nickname, i
	}
	sort.Slice(order, func(a, b int) bool { return ids[order[a]] < ids[order[b]] })
	// The units are put in that order where they are (a second array of them would double the
	// load's peak memory at 100,000 components): position k takes the unit at order[k].
	sn.units = res.units
	permute(sn.units, order)
	for k, i := range order {
		u := &sn.units[k]
		u.src, u.pos = *srcs[i], i
		u.src.layer = nil
		if !derivable {
			continue
		}
		sn.unitIdx[ids[i]] = k
		for j, f := range u.deps {
			if !slices.Contains(u.deps[:j], f) {
				sn.readers[f] = append(sn.readers[f], k)
			}
		}
	}
	return sn
}

// permute reorders units in place so that units[k] becomes what was at units[order[k]] (order
// is a permutation), moving each unit once, cycle by cycle.
func permute(units []unit, order []int) {
	done := make([]bool, len(units))
	for k := range units {
		if done[k] || order[k] == k {
			continue
		}
		tmp := units[k]
		j := k
		for {
			done[j] = true
			next := order[j]
			if next == k {
				units[j] = tmp
				break
			}
			units[j] = units[next]
			j = next
		}
	}
}

// fixed is the problems that are not a component's: the snapshot's head, and reading the base
// layers (baseDiags, parallel to sn.base).
func (sn *snapshot) fixed(baseDiags []*Diagnostic) Diagnostics {
	out := slices.Clone(sn.head)
	for _, d := range baseDiags {
		if d != nil {
			out = append(out, *d)
		}
	}
	return out
}

// assemble sets r's components and diagnostics from units (sorted by id; repl replaces some, by
// index), then links the rules. Unless own, the units are not modified: each component is a
// copy, and its references are appended to only past the unit's (the slice is full). With own
// (units nobody keeps) the components are the units' own, and the rest of each unit is dropped.
func (r *Repo) assemble(units []unit, repl map[int]*unit, fixed Diagnostics, fresh, cached map[string]Diagnostics, own bool) {
	var comps []Component
	if !own {
		comps = make([]Component, len(units))
	}
	r.Components = make([]*Component, len(units))
	seen := map[string]bool{}
	diags := fixed
	for i := range units {
		u := &units[i]
		if nu, ok := repl[i]; ok {
			u = nu
		}
		var c *Component
		if own {
			c = &u.comp
		} else {
			c = &comps[i]
			*c = u.comp
			c.References = slices.Clip(c.References)
		}
		r.Components[i] = c
		diags = append(diags, u.diags...)
		if own {
			u.diags, u.deps = nil, nil
		}
		for _, t := range u.templates {
			if seen[t] {
				continue
			}
			seen[t] = true
			d, ok := fresh[t]
			if !ok {
				d = cached[t]
			}
			diags = append(diags, d...)
		}
	}
	r.Diagnostics = diags
	r.linkRules()
	r.Diagnostics.Sort()
}

// Derive returns the repository LoadFS would load with r's options and these overrides, taking
// from r every component whose resolution reads no overridden file and reading and resolving
// again only the others: the overridden components, those merging an overridden base layer and
// those extending any of these (at any depth). The rules' links (attributes, same_nickname,
// per-sub-object runtimes) are made again over every component. r is not modified, and may be
// shared: the result copies what it changes.
//
// ok is false when r cannot derive it: r was itself loaded with overrides (or derived), its
// extends have a cycle (or the overrides make one), or an override is not a config file r read
// (karma.json, a component r does not have). The caller loads in full then.
func (r *Repo) Derive(overrides map[string][]byte) (*Repo, bool) {
	sn := r.snap
	if sn == nil {
		return nil, false
	}
	if len(overrides) == 0 {
		return r, true
	}
	affected := map[int]bool{}
	var baseOver []int
	for file := range overrides {
		readers, read := sn.readers[file]
		for _, i := range readers {
			affected[i] = true
		}
		bi, isBase := sn.baseIdx[file]
		if isBase {
			baseOver = append(baseOver, bi)
		}
		if !read && !isBase {
			return nil, false
		}
	}
	rd := &reader{fsys: r.fsys, overrides: overrides}
	d := &Repo{Root: r.Root, Settings: r.Settings, Accounts: r.Accounts, Environments: r.Environments,
		fsys: r.fsys, base: r.base, schemas: r.schemas, rules: r.rules}
	baseDiags := sn.baseDiags
	if len(baseOver) > 0 {
		d.base = maps.Clone(r.base)
		baseDiags = slices.Clone(baseDiags)
		p := newParser()
		for _, bi := range baseOver {
			b := sn.base[bi]
			s := &source{env: b.env, typ: b.typ, nickname: b.nickname, file: b.file}
			baseDiags[bi] = rd.read(p, s)
			d.base[s.typ+"/"+s.nickname] = s
		}
	}
	// The affected components are resolved in discovery order, as LoadFS resolves them.
	idx := make([]int, 0, len(affected))
	for i := range affected {
		idx = append(idx, i)
	}
	sort.Slice(idx, func(a, b int) bool { return sn.units[idx[a]].pos < sn.units[idx[b]].pos })
	srcs := make([]*source, len(idx))
	for j, i := range idx {
		s := sn.units[i].src
		srcs[j] = &s
	}
	other := func(id string) *source {
		i, ok := sn.unitIdx[id]
		if !ok {
			return nil
		}
		s := sn.units[i].src
		return &s
	}
	res := d.resolveSet(srcs, rd, other)
	if res.cycles || len(res.misc) > 0 {
		return nil, false
	}
	repl := make(map[int]*unit, len(idx))
	for j, i := range idx {
		u := &res.units[j]
		u.src, u.pos = sn.units[i].src, sn.units[i].pos
		repl[i] = u
	}
	d.assemble(sn.units, repl, sn.fixed(baseDiags), res.templates, sn.templates, false)
	return d, true
}

// BuildDerived is BuildFS with opts.Overrides for a repository base that LoadFS loaded with the
// same options, no overrides: the repository is derived from base (Repo.Derive), or loaded in
// full when it cannot be. The parameter store is read as by BuildFS, each time.
func BuildDerived(ctx context.Context, base *Repo, opts BuildOptions) (*Result, error) {
	repo, ok := (*Repo)(nil), false
	if base.snap != nil && base.snap.env == opts.Env {
		repo, ok = base.Derive(opts.Overrides)
	}
	if !ok {
		var err error
		if repo, err = LoadFS(base.fsys, base.Root, opts.LoadOptions); err != nil {
			return nil, err
		}
	}
	return build(ctx, repo, opts)
}
