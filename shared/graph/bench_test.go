package graph_test

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/usekarma/karma/shared/graph"
)

// Benchmarks of the graph queries on graphs built directly (no files). Targets (see
// docs/performance.md): the impact of one component affecting 1,000 of 100,000 under 10 ms and
// linear in the affected set; no blow-up filtering deep layered graphs. Timings are never
// asserted: run `make bench`.

var benchTypes = []string{"vpc", "s3-bucket", "ecs-cluster", "lambda", "ecs-service", "serverless-api"}

var benchAllKeys = []string{graph.AllKeys}

// benchLayered builds n components in `layers` layers, each depending on `refs` distinct components of
// earlier layers (one of the layer just before). When affected > 0, component 0 is a hub that
// exactly `affected` components reach (transitively); the rest never reach it.
func benchLayered(n, layers, refs, affected int) (*graph.Graph, int32) {
	rng := rand.New(rand.NewPCG(1, 2))
	b := graph.NewBuilder(n)
	group := make([]bool, n)           // the hub and what reaches it
	first := (n + layers - 1) / layers // the first index of layer 1
	if affected > 0 {
		group[0] = true
		for k := 0; k < affected; k++ {
			group[first+k*(n-first)/affected] = true
		}
	}
	var done, prev, cur [2][]int32
	layer := 0
	for i := 0; i < n; i++ {
		if l := i * layers / n; l != layer {
			for g := range 2 {
				done[g] = append(done[g], cur[g]...)
				prev[g], cur[g] = cur[g], nil
			}
			layer = l
		}
		typ := benchTypes[layer*len(benchTypes)/layers]
		if _, err := b.AddComponent(graph.Component{ID: fmt.Sprintf("prod/%s/c%06d", typ, i), Env: "prod", Type: typ,
			Nickname: fmt.Sprintf("c%06d", i)}); err != nil {
			panic(err)
		}
		g := 0
		if group[i] {
			g = 1
		}
		cur[g] = append(cur[g], int32(i))
		if layer == 0 || len(done[g]) == 0 {
			continue
		}
		from := prev[g]
		if len(from) == 0 {
			from = done[g]
		}
		deps := []int32{from[rng.IntN(len(from))]}
		for tries := 0; len(deps) < refs && tries < 4*refs; tries++ {
			d := done[g][rng.IntN(len(done[g]))]
			if g == 1 && len(done[0]) > 0 && rng.IntN(2) == 0 {
				d = done[0][rng.IntN(len(done[0]))] // what reaches the hub may also depend on others
			}
			if !benchContains(deps, d) {
				deps = append(deps, d)
			}
		}
		for _, d := range deps {
			b.AddEdge(int32(i), d, graph.Source{Kind: "inferred", Pointer: "/dep_nickname", Rule: "dep_nickname", Keys: benchAllKeys})
		}
	}
	return b.Graph(), 0
}

// benchDense builds `layers` layers of `width` components, each depending on every component of the
// layer before: the worst case for anything that enumerates paths (width^layers of them).
func benchDense(layers, width int) *graph.Graph {
	b := graph.NewBuilder(layers * width)
	for l := 0; l < layers; l++ {
		typ := benchTypes[l%len(benchTypes)]
		for w := 0; w < width; w++ {
			i, err := b.AddComponent(graph.Component{ID: fmt.Sprintf("prod/%s/l%02d-%03d", typ, l, w), Env: "prod", Type: typ})
			if err != nil {
				panic(err)
			}
			for p := 0; l > 0 && p < width; p++ {
				b.AddEdge(i, int32((l-1)*width+p), graph.Source{Kind: "explicit", Pointer: "/karma/depends_on/0", Keys: benchAllKeys})
			}
		}
	}
	return b.Graph()
}

func benchContains(s []int32, v int32) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func BenchmarkDownstream1000of100k(b *testing.B) {
	g, hub := benchLayered(100_000, 20, 3, 1000)
	var imp *graph.Impact
	for b.Loop() {
		var err error
		if imp, err = g.Downstream([]int32{hub}, graph.ImpactOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(imp.Affected)-1), "affected")
}

// BenchmarkDownstreamScaling shows the cost per affected component stays flat as the affected set
// grows (linear), on the same 100,000-component graph size.
func BenchmarkDownstreamScaling(b *testing.B) {
	for _, affected := range []int{100, 1000, 10_000, 50_000} {
		b.Run(fmt.Sprintf("affected=%d", affected), func(b *testing.B) {
			g, hub := benchLayered(100_000, 20, 3, affected)
			var imp *graph.Impact
			for b.Loop() {
				imp, _ = g.Downstream([]int32{hub}, graph.ImpactOptions{})
			}
			b.ReportMetric(float64(len(imp.Affected)-1), "affected")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(imp.Affected)), "ns/affected")
		})
	}
}

// BenchmarkDownstreamDeepFiltered filters the impact by type on dense layered graphs: Terramate's
// case (80 stacks in 8 layers) and deeper ones (80 layers).
func BenchmarkDownstreamDeepFiltered(b *testing.B) {
	for _, c := range []struct{ layers, width int }{{8, 10}, {80, 10}, {80, 100}} {
		b.Run(fmt.Sprintf("layers=%d/width=%d", c.layers, c.width), func(b *testing.B) {
			g := benchDense(c.layers, c.width)
			seed, _ := g.Index("prod/vpc/l00-000")
			keep := func(c *graph.Component) bool { return c.Type == "lambda" }
			var imp *graph.Impact
			for b.Loop() {
				var err error
				if imp, err = g.Downstream([]int32{seed}, graph.ImpactOptions{Filter: keep}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(imp.Affected)), "kept")
			b.ReportMetric(float64(len(g.Edges)), "edges")
		})
	}
}

func BenchmarkWaves100k(b *testing.B) {
	g, _ := benchLayered(100_000, 20, 3, 0)
	var waves [][]int32
	for b.Loop() {
		var err error
		if waves, err = g.Waves(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(waves)), "waves")
	b.ReportMetric(float64(g.Len()), "components")
}

// BenchmarkWaves1k is the size of Terramate's run-order measurement (1,000 stacks).
func BenchmarkWaves1k(b *testing.B) {
	g, _ := benchLayered(1000, 10, 3, 0)
	for b.Loop() {
		if _, err := g.Waves(); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDownstreamLinear checks the generated impact shapes the benchmarks rely on: the hub reaches
// exactly the chosen set, each component once, each with a valid shortest reason chain.
func TestDownstreamLinear(t *testing.T) {
	for _, affected := range []int{1, 10, 300} {
		g, hub := benchLayered(5000, 10, 3, affected)
		imp, err := g.Downstream([]int32{hub}, graph.ImpactOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := len(imp.Affected) - 1; got != affected {
			t.Fatalf("affected=%d: got %d", affected, got)
		}
		seen := map[int32]bool{}
		for _, a := range imp.Affected {
			if seen[a.Index] {
				t.Fatalf("%s listed twice", g.Components[a.Index].ID)
			}
			seen[a.Index] = true
			chain := imp.Chain(a.Index)
			if len(chain) != a.Depth {
				t.Fatalf("%s: chain of %d for depth %d", g.Components[a.Index].ID, len(chain), a.Depth)
			}
			for i, step := range chain {
				e := g.Edges[step.Edge]
				if e.From != step.Index || e.To != step.Via || (i == 0 && step.Via != hub) {
					t.Fatalf("%s: bad chain step %+v (edge %d->%d)", g.Components[a.Index].ID, step, e.From, e.To)
				}
			}
		}
		// a wave never holds a dependency of an earlier wave's member
		wave := map[int32]int{}
		for w, vs := range imp.Waves {
			for _, v := range vs {
				wave[v] = w
			}
		}
		for v, w := range wave {
			for _, ei := range g.Dependencies(v) {
				if dw, ok := wave[g.Edges[ei].To]; ok && dw >= w {
					t.Fatalf("%s in wave %d depends on %s in wave %d", g.Components[v].ID, w, g.Components[g.Edges[ei].To].ID, dw)
				}
			}
		}
	}
}

// TestDownstreamDeepFiltered checks filtering on a dense 80-layer graph (10^79 paths) keeps exactly
// the matching components and still orders them.
func TestDownstreamDeepFiltered(t *testing.T) {
	g := benchDense(80, 10)
	seed, _ := g.Index("prod/vpc/l00-000")
	imp, err := g.Downstream([]int32{seed}, graph.ImpactOptions{Filter: func(c *graph.Component) bool { return c.Type == "lambda" }})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, a := range imp.Affected {
		if g.Components[a.Index].Type != "lambda" {
			t.Fatalf("filter kept %s", g.Components[a.Index].ID)
		}
		ids = append(ids, g.Components[a.Index].ID)
	}
	// lambda is every 6th layer starting at 3: layers 3, 9, ..., 75 = 13 layers of 10
	if len(ids) != 130 {
		t.Fatalf("kept %d, want 130", len(ids))
	}
	if !sort.StringsAreSorted(ids) {
		t.Errorf("breadth-first order should follow the layers here: %v", ids[:5])
	}
	nonEmpty := 0
	for _, w := range imp.Waves {
		if len(w) > 0 {
			nonEmpty++
		}
	}
	if len(imp.Waves) != 80 || nonEmpty != 13 {
		t.Errorf("waves: %d (%d non-empty), want 80 (13 non-empty)", len(imp.Waves), nonEmpty)
	}
}
