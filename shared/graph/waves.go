package graph

import (
	"fmt"
	"sort"
	"strings"
)

// CycleError is returned by ordering queries on a graph that has cycles.
type CycleError struct{ Cycles []Cycle }

func (e *CycleError) Error() string {
	parts := make([]string, len(e.Cycles))
	for i, c := range e.Cycles {
		parts[i] = c.String()
	}
	return "graph: dependency cycle: " + strings.Join(parts, "; ")
}

// Waves returns the apply waves of the whole graph: wave 0 has no dependencies; every component
// comes after all of its dependencies. Ids are sorted within a wave.
func (g *Graph) Waves() ([][]int32, error) {
	all := make([]int32, len(g.Components))
	for i := range all {
		all[i] = int32(i)
	}
	return g.WavesOf(all)
}

// WavesOf orders a subset by the dependencies among its members only (edges leaving the subset
// are ignored: what is not in the set is taken as already in place). Linear in the subset and
// the edges touching it.
func (g *Graph) WavesOf(set []int32) ([][]int32, error) {
	member := make(map[int32]int32, len(set)) // component -> remaining dependencies in set
	for _, v := range set {
		member[v] = 0
	}
	for _, v := range set {
		n := int32(0)
		for _, e := range g.out[v] {
			if _, ok := member[g.Edges[e].To]; ok {
				n++
			}
		}
		member[v] = n
	}
	var current []int32
	for _, v := range set {
		if member[v] == 0 {
			current = append(current, v)
		}
	}
	var waves [][]int32
	done := 0
	for len(current) > 0 {
		g.sortByID(current)
		waves = append(waves, current)
		done += len(current)
		var next []int32
		for _, v := range current {
			for _, e := range g.in[v] {
				w := g.Edges[e].From
				if n, ok := member[w]; ok {
					member[w] = n - 1
					if n-1 == 0 {
						next = append(next, w)
					}
				}
			}
		}
		current = next
	}
	if done != len(set) {
		return waves, &CycleError{Cycles: g.Cycles()}
	}
	return waves, nil
}

// DestroyWaves is the reverse of WavesOf: dependents are destroyed before what they depend on.
func (g *Graph) DestroyWaves(set []int32) ([][]int32, error) {
	w, err := g.WavesOf(set)
	if err != nil {
		return nil, err
	}
	for i, j := 0, len(w)-1; i < j; i, j = i+1, j-1 {
		w[i], w[j] = w[j], w[i]
	}
	return w, nil
}

func (g *Graph) sortByID(s []int32) {
	sort.Slice(s, func(i, j int) bool { return g.Components[s[i]].ID < g.Components[s[j]].ID })
}

// IDs maps indexes to ids.
func (g *Graph) IDs(s []int32) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = g.Components[v].ID
	}
	return out
}

// Resolve maps ids to indexes, reporting every unknown id at once.
func (g *Graph) Resolve(ids []string) ([]int32, error) {
	var out []int32
	var missing []string
	for _, id := range ids {
		i, ok := g.byID[id]
		if !ok {
			missing = append(missing, id)
			continue
		}
		out = append(out, i)
	}
	if len(missing) > 0 {
		return out, fmt.Errorf("graph: unknown component(s): %s", strings.Join(missing, ", "))
	}
	return out, nil
}

// Isolated returns the components with no edges at all, sorted by id.
func (g *Graph) Isolated() []int32 {
	var out []int32
	for i := range g.Components {
		if len(g.out[i]) == 0 && len(g.in[i]) == 0 {
			out = append(out, int32(i))
		}
	}
	return out
}
