package neptune

import (
	"context"
	"fmt"
	"sort"
	"testing"

	"github.com/usekarma/karma/shared/graph"
)

// benchGraph is n components in four environments, each depending on the three before it in
// its environment (about 3n edges), with realistic field sizes.
func benchGraph(n int, mutate func(i int, c *graph.Component)) *graph.Graph {
	envs := []string{"dev", "prod", "qa", "stage"}
	types := []string{"vpc", "subnet", "ecs-cluster", "ecs-service", "rds", "s3", "iam-role", "sg", "alb", "lambda"}
	var cs []graph.Component
	for i := 0; i < n; i++ {
		env, typ, nick := envs[i%len(envs)], types[(i/len(envs))%len(types)], fmt.Sprintf("c%05d", i)
		c := graph.Component{ID: env + "/" + typ + "/" + nick, Env: env, Type: typ, Nickname: nick,
			ConfigPath: "/iac/" + typ + "/" + nick + "/config", RuntimePath: "/iac/" + typ + "/" + nick + "/runtime",
			Files:      []string{"iac/_base/" + typ + "/" + nick + "/config.json", "iac/" + env + "/" + typ + "/" + nick + "/config.json"},
			ConfigHash: fmt.Sprintf("%064x", i), RuntimeHash: fmt.Sprintf("%064x", i+1), RuntimeStatus: graph.RuntimePresent,
			RuntimeKeys: []string{"arn", "id", "name"}}
		if mutate != nil {
			mutate(i, &c)
		}
		cs = append(cs, c)
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].ID < cs[j].ID })
	b := graph.NewBuilder(len(cs))
	byEnv := map[string][]int32{}
	for _, c := range cs {
		i, _ := b.AddComponent(c)
		byEnv[c.Env] = append(byEnv[c.Env], i)
	}
	for _, idx := range byEnv {
		for k := 3; k < len(idx); k++ {
			for d := 1; d <= 3; d++ {
				b.AddEdge(idx[k], idx[k-d], graph.Source{Kind: "interpolation", Pointer: fmt.Sprintf("/dep%d", d),
					Rule: "${x.runtime.id}", Keys: []string{"id", "arn"}})
			}
		}
	}
	return b.Graph()
}

var benchEnvs = []string{"dev", "prod", "qa", "stage"}

// BenchmarkGraphWrite10k writes a 10,000-component graph (about 30,000 depends_on edges, and as
// many emits_runtime_to) into an empty namespace.
func BenchmarkGraphWrite10k(b *testing.B) {
	ctx := context.Background()
	c := testClient(b)
	g := benchGraph(10000, nil)
	var st graph.WriteStats
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		ns := testNamespace(b, c)
		s := NewGraphStore(c, StoreOptions{Namespace: ns})
		b.StartTimer()
		var err error
		st, err = s.Write(ctx, g, benchEnvs)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if st.ComponentsWritten != 10000 || st.EdgesWritten != len(g.Edges) {
			b.Fatalf("stats %+v", st)
		}
		dropNamespace(b, c, ns)
		b.StartTimer()
	}
	b.ReportMetric(float64(st.RoundTrips), "round_trips/op")
	b.ReportMetric(float64(len(g.Edges)), "edges")
}

// BenchmarkGraphRewriteNoChange10k writes the same graph again: one request, nothing written.
func BenchmarkGraphRewriteNoChange10k(b *testing.B) {
	ctx := context.Background()
	c := testClient(b)
	g := benchGraph(10000, nil)
	s := NewGraphStore(c, StoreOptions{Namespace: testNamespace(b, c)})
	if _, err := s.Write(ctx, g, benchEnvs); err != nil {
		b.Fatal(err)
	}
	var st graph.WriteStats
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var err error
		st, err = s.Write(ctx, g, benchEnvs)
		if err != nil {
			b.Fatal(err)
		}
		if st.ComponentsWritten+st.EdgesWritten+st.ComponentsDeleted+st.EdgesDeleted != 0 {
			b.Fatalf("no-change rewrite wrote: %+v", st)
		}
	}
	b.ReportMetric(float64(st.RoundTrips), "round_trips/op")
}

// BenchmarkGraphWriteDelta10k changes 1% of the components of a stored 10,000-component graph
// (alternately there and back, so every iteration writes the same amount).
func BenchmarkGraphWriteDelta10k(b *testing.B) {
	ctx := context.Background()
	c := testClient(b)
	graphs := []*graph.Graph{
		benchGraph(10000, nil),
		benchGraph(10000, func(i int, c *graph.Component) {
			if i%100 == 0 {
				c.ConfigHash = "changed"
			}
		}),
	}
	s := NewGraphStore(c, StoreOptions{Namespace: testNamespace(b, c)})
	if _, err := s.Write(ctx, graphs[0], benchEnvs); err != nil {
		b.Fatal(err)
	}
	var st graph.WriteStats
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var err error
		st, err = s.Write(ctx, graphs[(i+1)%2], benchEnvs)
		if err != nil {
			b.Fatal(err)
		}
		if st.ComponentsWritten != 100 {
			b.Fatalf("delta: %+v", st)
		}
	}
	b.ReportMetric(float64(st.RoundTrips), "round_trips/op")
}
