// Package graph is Karma's component dependency graph and the queries the CLI, the pipeline and
// the API ask of it. It is a plain in-memory structure: vertices in a slice, edges in a slice,
// adjacency as index lists, so that 100,000 components fit in a few hundred MB and every query is
// linear in what it visits.
//
// Direction: an edge goes From the dependent To its dependency (depends_on). "Downstream" of a
// component are the components that depend on it, transitively: its blast radius. The runtime
// views are the same edges read the other way: the dependency emits_runtime_to the dependent, the
// dependent consumes_runtime_from the dependency, carrying the runtime keys consumed.
//
// Ordering: waves are topological levels. A component's apply wave is one more than the highest
// wave of its dependencies (0 when it has none), so every dependency is applied in an earlier wave;
// destroy waves are the same levels reversed. Within a wave, components are sorted by id, so the
// order is deterministic. Cycles are found by Tarjan's algorithm and reported with their path.
package graph

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
)

// Runtime status of a component, from the parameter store.
const (
	RuntimePresent     = "present"
	RuntimeMissing     = "missing"
	RuntimePlaceholder = "placeholder"
	RuntimeMalformed   = "malformed"
	RuntimeUnknown     = "unknown" // the parameter store was not read
)

// Reference kinds, as in model.
const AllKeys = "*"

// RedeployOnAnyApply on a source (and its edge) redeploys the dependent after every apply of the
// dependency, not only when a runtime key it consumes changed (karma.depends_on "redeploy").
const RedeployOnAnyApply = "on-any-apply"

// Component is a vertex.
type Component struct {
	ID            string   `json:"id"` // "<env>/<type>/<nickname>"
	Env           string   `json:"env"`
	Type          string   `json:"type"`
	Nickname      string   `json:"nickname"`
	ConfigPath    string   `json:"config_path"`  // parameter name of the resolved config
	RuntimePath   string   `json:"runtime_path"` // parameter name of the Terraform outputs
	Files         []string `json:"files"`        // layers, lowest first
	ConfigHash    string   `json:"config_hash"`  // sha256 of the resolved config (canonical JSON)
	RuntimeHash   string   `json:"runtime_hash,omitempty"`
	RuntimeStatus string   `json:"runtime_status"`
	RuntimeKeys   []string `json:"runtime_keys,omitempty"` // keys present in the runtime document
	Broken        bool     `json:"broken,omitempty"`       // its config could not be resolved
	// SubRuntimePaths are the runtime parameters it writes per sub-object besides RuntimePath
	// (a lambda's /iac/lambda/<function>/runtime); its runtime status, hash and keys cover them.
	SubRuntimePaths []string `json:"sub_runtime_paths,omitempty"`
}

// Source says where an edge came from.
type Source struct {
	Kind    string   `json:"kind"`    // explicit | inferred | interpolation
	Pointer string   `json:"pointer"` // JSON pointer in the dependent's resolved config
	Rule    string   `json:"rule,omitempty"`
	Keys    []string `json:"keys"`
	// Runtime is the one runtime parameter the dependent reads when it is one of the
	// dependency's SubRuntimePaths; "" means any runtime the dependency writes.
	Runtime string `json:"runtime,omitempty"`
	// Redeploy is RedeployOnAnyApply when the reference asks for the dependent to be redeployed
	// after every apply of the dependency; "" = only when a consumed key changed.
	Redeploy string `json:"redeploy,omitempty"`
}

// Edge is one depends_on edge; several references between the same pair merge into one edge with
// several Sources.
type Edge struct {
	From     int32    `json:"-"`
	To       int32    `json:"-"`
	Sources  []Source `json:"sources"`
	Consumes []string `json:"consumes"` // union of the sources' keys; ["*"] = any key
	// Redeploy is RedeployOnAnyApply when any source says so, else "".
	Redeploy string `json:"redeploy,omitempty"`
}

// OnAnyApply reports whether the dependent is redeployed after every apply of the dependency.
func (e *Edge) OnAnyApply() bool { return e.Redeploy == RedeployOnAnyApply }

// Graph is the component graph. Build it with a Builder; it is read-only afterwards and safe for
// concurrent readers.
type Graph struct {
	Components []Component
	Edges      []Edge
	byID       map[string]int32
	bySubPath  map[string]int32 // "<env>\x00<sub-runtime path>" -> the component writing it
	out        [][]int32        // edge indexes by From (dependencies)
	in         [][]int32        // edge indexes by To (dependents)
}

// Len is the number of components.
func (g *Graph) Len() int { return len(g.Components) }

// Index returns the index of a component id.
func (g *Graph) Index(id string) (int32, bool) {
	i, ok := g.byID[id]
	return i, ok
}

// SubRuntimeWriter returns the component of env that writes the runtime parameter path as one
// of its SubRuntimePaths.
func (g *Graph) SubRuntimeWriter(env, path string) (int32, bool) {
	i, ok := g.bySubPath[env+"\x00"+path]
	return i, ok
}

// Dependencies returns the edges from component i to what it depends on.
func (g *Graph) Dependencies(i int32) []int32 { return g.out[i] }

// Dependents returns the edges into component i from what depends on it.
func (g *Graph) Dependents(i int32) []int32 { return g.in[i] }

// Builder assembles a Graph.
type Builder struct {
	g     *Graph
	pairs map[[2]int32]int32
}

// NewBuilder starts an empty graph with room for n components.
func NewBuilder(n int) *Builder {
	return &Builder{g: &Graph{Components: make([]Component, 0, n), byID: make(map[string]int32, n)}, pairs: map[[2]int32]int32{}}
}

// AddComponent adds a vertex; ids must be unique.
func (b *Builder) AddComponent(c Component) (int32, error) {
	if _, dup := b.g.byID[c.ID]; dup {
		return 0, fmt.Errorf("graph: component %s added twice", c.ID)
	}
	i := int32(len(b.g.Components))
	b.g.Components = append(b.g.Components, c)
	b.g.byID[c.ID] = i
	return i, nil
}

// ReserveEdges makes room for n more edges (references, before repeated pairs merge), so that
// adding them does not grow the builder step by step.
func (b *Builder) ReserveEdges(n int) {
	b.g.Edges = slices.Grow(b.g.Edges, n)
	if len(b.pairs) == 0 {
		b.pairs = make(map[[2]int32]int32, n)
	}
}

// AddEdge records that from depends on to, for the given reason. Repeated pairs merge.
func (b *Builder) AddEdge(from, to int32, s Source) {
	k := [2]int32{from, to}
	if e, ok := b.pairs[k]; ok {
		b.g.Edges[e].Sources = append(b.g.Edges[e].Sources, s)
		return
	}
	b.pairs[k] = int32(len(b.g.Edges))
	b.g.Edges = append(b.g.Edges, Edge{From: from, To: to, Sources: []Source{s}})
}

// Graph finishes the graph: consumes sets, adjacency, edges ordered by (From, To) index, which is
// deterministic when components were added in a deterministic order (model adds them by id).
func (b *Builder) Graph() *Graph {
	g := b.g
	byPair := func(a, c Edge) int {
		if a.From != c.From {
			return cmp.Compare(a.From, c.From)
		}
		return cmp.Compare(a.To, c.To)
	}
	if !slices.IsSortedFunc(g.Edges, byPair) {
		slices.SortFunc(g.Edges, byPair)
	}
	g.bySubPath = map[string]int32{}
	for i, c := range g.Components {
		for _, p := range c.SubRuntimePaths {
			g.bySubPath[c.Env+"\x00"+p] = int32(i)
		}
	}
	// adjacency: every list carved from one array (counted first), not grown one by one
	outDeg := make([]int32, len(g.Components)+1)
	inDeg := make([]int32, len(g.Components)+1)
	for i := range g.Edges {
		e := &g.Edges[i]
		e.Consumes = unionKeys(e.Sources)
		e.Redeploy = redeployOf(e.Sources)
		outDeg[e.From]++
		inDeg[e.To]++
	}
	g.out = carve(outDeg, len(g.Edges))
	g.in = carve(inDeg, len(g.Edges))
	for i := range g.Edges {
		e := &g.Edges[i]
		g.out[e.From] = append(g.out[e.From], int32(i))
		g.in[e.To] = append(g.in[e.To], int32(i))
	}
	b.g = nil
	return g
}

// carve returns one empty list per vertex, list v with room for deg[v] elements, all in one
// array of total elements (each list's capacity is exact: appending beyond it copies).
func carve(deg []int32, total int) [][]int32 {
	all := make([]int32, total)
	lists := make([][]int32, len(deg)-1)
	at := 0
	for v := range lists {
		n := int(deg[v])
		lists[v] = all[at : at : at+n]
		at += n
	}
	return lists
}

// anyKey is the consumes set of an edge reading any key: shared (length and capacity 1).
var anyKey = []string{AllKeys}

func unionKeys(ss []Source) []string {
	if len(ss) == 1 { // the common case: the one source's keys, sorted and unique
		ks := ss[0].Keys
		if slices.Contains(ks, AllKeys) {
			return anyKey[:1:1]
		}
		out := append(make([]string, 0, len(ks)), ks...)
		slices.Sort(out)
		return slices.Compact(out)
	}
	set := map[string]bool{}
	for _, s := range ss {
		for _, k := range s.Keys {
			if k == AllKeys {
				return anyKey[:1:1]
			}
			set[k] = true
		}
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func redeployOf(ss []Source) string {
	for _, s := range ss {
		if s.Redeploy == RedeployOnAnyApply {
			return RedeployOnAnyApply
		}
	}
	return ""
}

// ConsumesAny reports whether edge e consumes at least one of the changed runtime keys.
func (e *Edge) ConsumesAny(changed []string) bool { return consumesAny(e.Consumes, changed) }

func consumesAny(consumes, changed []string) bool {
	for _, c := range consumes {
		if c == AllKeys {
			return true
		}
		for _, k := range changed {
			if k == c || k == AllKeys {
				return true
			}
		}
	}
	return false
}

// ConsumesAnyFrom reports whether e consumes one of the changed keys of the runtime parameter
// path written by its dependency: a source reading one sub-object's runtime (Source.Runtime)
// counts only when that is the parameter that changed; the others read any of its runtimes.
// An empty path means any of the dependency's runtimes changed: every source counts.
func (e *Edge) ConsumesAnyFrom(path string, changed []string) bool {
	for _, s := range e.Sources {
		if path != "" && s.Runtime != "" && s.Runtime != path {
			continue
		}
		if consumesAny(s.Keys, changed) {
			return true
		}
	}
	return false
}

// Lookup finds a component added so far.
func (b *Builder) Lookup(id string) (int32, bool) {
	i, ok := b.g.byID[id]
	return i, ok
}
