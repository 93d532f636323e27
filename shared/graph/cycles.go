package graph

import (
	"sort"
	"strings"
)

// Cycle is one dependency cycle, as component ids: a -> b -> ... -> a (the first id repeated
// at the end is implied).
type Cycle []string

func (c Cycle) String() string {
	if len(c) == 0 {
		return ""
	}
	return strings.Join(append(append([]string{}, c...), c[0]), " -> ")
}

// Cycles returns one cycle per strongly connected component that has one (Tarjan's algorithm,
// iterative so deep graphs cannot overflow the stack), each rotated to start at its smallest id,
// sorted.
func (g *Graph) Cycles() []Cycle {
	n := len(g.Components)
	index := make([]int32, n)
	low := make([]int32, n)
	onStack := make([]bool, n)
	for i := range index {
		index[i] = -1
	}
	var stack []int32
	var next int32
	var out []Cycle
	type frame struct {
		v    int32
		edge int
	}
	for root := int32(0); root < int32(n); root++ {
		if index[root] >= 0 {
			continue
		}
		call := []frame{{v: root}}
		index[root], low[root] = next, next
		next++
		stack = append(stack, root)
		onStack[root] = true
		for len(call) > 0 {
			f := &call[len(call)-1]
			v := f.v
			if f.edge < len(g.out[v]) {
				w := g.Edges[g.out[v][f.edge]].To
				f.edge++
				if index[w] < 0 {
					index[w], low[w] = next, next
					next++
					stack = append(stack, w)
					onStack[w] = true
					call = append(call, frame{v: w})
				} else if onStack[w] && index[w] < low[v] {
					low[v] = index[w]
				}
				continue
			}
			call = call[:len(call)-1]
			if len(call) > 0 {
				u := call[len(call)-1].v
				if low[v] < low[u] {
					low[u] = low[v]
				}
			}
			if low[v] != index[v] {
				continue
			}
			var scc []int32
			for {
				w := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				onStack[w] = false
				scc = append(scc, w)
				if w == v {
					break
				}
			}
			if c := g.cycleIn(scc); c != nil {
				out = append(out, c)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}

// cycleIn extracts one concrete cycle from a strongly connected component: a breadth-first
// search inside it from its smallest member back to that member gives the shortest such cycle.
func (g *Graph) cycleIn(scc []int32) Cycle {
	if len(scc) == 1 {
		v := scc[0]
		for _, e := range g.out[v] {
			if g.Edges[e].To == v {
				return Cycle{g.Components[v].ID}
			}
		}
		return nil
	}
	in := make(map[int32]bool, len(scc))
	start := scc[0]
	for _, v := range scc {
		in[v] = true
		if g.Components[v].ID < g.Components[start].ID {
			start = v
		}
	}
	prev := map[int32]int32{}
	queue := []int32{start}
	for len(queue) > 0 {
		v := queue[0]
		queue = queue[1:]
		for _, e := range g.out[v] {
			w := g.Edges[e].To
			if !in[w] {
				continue
			}
			if w == start {
				var path []int32
				for x := v; x != start; x = prev[x] {
					path = append(path, x)
				}
				path = append(path, start)
				c := make(Cycle, len(path))
				for i, x := range path {
					c[len(path)-1-i] = g.Components[x].ID
				}
				return c
			}
			if _, seen := prev[w]; !seen {
				prev[w] = v
				queue = append(queue, w)
			}
		}
	}
	return nil
}
