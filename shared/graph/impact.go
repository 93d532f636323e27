package graph

// Affected is one component reached by an impact (or upstream) query.
type Affected struct {
	Index int32
	Depth int   // 0 for a seed
	Via   int32 // the component it was reached from (-1 for a seed)
	Edge  int32 // the edge it was reached by (-1 for a seed)
}

// ImpactOptions narrow a downstream query.
type ImpactOptions struct {
	// ChangedKeys, when non-nil, are the runtime keys that changed on the seeds (by their apply):
	// only dependents whose edge consumes one of them, or redeploys on any apply, are affected in
	// the first hop (deeper hops are affected if their upstream is redeployed, since its new
	// outputs are not known yet).
	ChangedKeys []string
	// ChangedRuntime, when set, is the one runtime parameter of the seeds that changed, one of
	// their SubRuntimePaths (a lambda's function): the first hop then counts only the sources
	// that read it or any runtime of the seed (Edge.ConsumesAnyFrom).
	ChangedRuntime string
	// Filter, when non-nil, keeps only matching components in the result; the traversal itself
	// still passes through filtered-out components, so filtering never changes what is reached
	// and costs nothing extra.
	Filter func(*Component) bool
}

// Impact is the result of a downstream query.
type Impact struct {
	Seeds    []int32
	Affected []Affected    // seeds first, then breadth-first order (shortest reason chains)
	Waves    [][]int32     // apply waves of the affected set (seeds included)
	pos      map[int32]int // component -> position in all
	all      []Affected    // the unfiltered traversal, for reason chains
}

// Downstream returns everything that depends on the seeds, transitively — the blast radius —
// with the reason each one is affected. Breadth-first, so each component's reason chain is a
// shortest one; linear in the affected set and the edges into it.
func (g *Graph) Downstream(seeds []int32, opts ImpactOptions) (*Impact, error) {
	first := func(e *Edge) bool { return true }
	if opts.ChangedKeys != nil || opts.ChangedRuntime != "" {
		changed := opts.ChangedKeys
		if changed == nil {
			changed = []string{AllKeys}
		}
		// A runtime changed outside Karma (ChangedRuntime) is no apply: on-any-apply edges do not count.
		applied := opts.ChangedRuntime == ""
		first = func(e *Edge) bool {
			return e.ConsumesAnyFrom(opts.ChangedRuntime, changed) || (applied && e.OnAnyApply())
		}
	}
	res := g.traverse(seeds, g.in, func(e *Edge) int32 { return e.From }, first)
	waves, err := g.WavesOf(indexes(res.Affected))
	if err != nil {
		return nil, err
	}
	res.Waves = waves
	res.filter(g, opts.Filter)
	return res, nil
}

// Upstream returns everything the seeds depend on, transitively.
func (g *Graph) Upstream(seeds []int32, filter func(*Component) bool) *Impact {
	res := g.traverse(seeds, g.out, func(e *Edge) int32 { return e.To }, func(*Edge) bool { return true })
	waves, _ := g.WavesOf(indexes(res.Affected)) // a cycle upstream still lists the components
	res.Waves = waves
	res.filter(g, filter)
	return res
}

// traverse is a breadth-first search from the seeds along adj; firstHop says which edges out of
// the seeds are followed (deeper edges always are).
func (g *Graph) traverse(seeds []int32, adj [][]int32, other func(*Edge) int32, firstHop func(*Edge) bool) *Impact {
	res := &Impact{Seeds: seeds, pos: make(map[int32]int, len(seeds)*4)}
	for _, s := range seeds {
		if _, dup := res.pos[s]; dup {
			continue
		}
		res.pos[s] = len(res.Affected)
		res.Affected = append(res.Affected, Affected{Index: s, Via: -1, Edge: -1})
	}
	for head := 0; head < len(res.Affected); head++ {
		a := res.Affected[head]
		for _, ei := range adj[a.Index] {
			e := &g.Edges[ei]
			if a.Depth == 0 && !firstHop(e) {
				continue
			}
			w := other(e)
			if _, seen := res.pos[w]; seen {
				continue
			}
			res.pos[w] = len(res.Affected)
			res.Affected = append(res.Affected, Affected{Index: w, Depth: a.Depth + 1, Via: a.Index, Edge: ei})
		}
	}
	res.all = res.Affected
	return res
}

func (r *Impact) filter(g *Graph, keep func(*Component) bool) {
	if keep == nil {
		return
	}
	out := r.Affected[:0:0]
	for _, a := range r.Affected {
		if keep(&g.Components[a.Index]) {
			out = append(out, a)
		}
	}
	r.Affected = out
	for i, w := range r.Waves {
		var kept []int32
		for _, v := range w {
			if keep(&g.Components[v]) {
				kept = append(kept, v)
			}
		}
		r.Waves[i] = kept
	}
}

// Chain returns the reason chain of an affected component: the edges from a seed to it, seed
// first. The result is nil for a seed or a component not in the result.
func (r *Impact) Chain(v int32) []Affected {
	var chain []Affected
	for {
		p, ok := r.pos[v]
		if !ok {
			return nil
		}
		a := r.full(p)
		if a.Via < 0 {
			break
		}
		chain = append(chain, a)
		v = a.Via
	}
	for i, j := 0, len(chain)-1; i < j; i, j = i+1, j-1 {
		chain[i], chain[j] = chain[j], chain[i]
	}
	return chain
}

// full looks an entry up by its traversal position (stable even after filtering).
func (r *Impact) full(p int) Affected { return r.all[p] }

func indexes(as []Affected) []int32 {
	out := make([]int32, len(as))
	for i, a := range as {
		out[i] = a.Index
	}
	return out
}
