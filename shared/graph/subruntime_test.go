package graph_test

import (
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/graph"
)

// TestConsumesAnyFrom: a source reading one sub-object's runtime counts only for a change of
// that parameter; a source without Runtime reads any runtime of its dependency.
func TestConsumesAnyFrom(t *testing.T) {
	t.Parallel()
	const own, echo, tm = "/iac/lambda/tools/runtime", "/iac/lambda/echo/runtime", "/iac/lambda/time/runtime"
	e := graph.Edge{Sources: []graph.Source{
		{Kind: "runtime-path", Keys: []string{graph.AllKeys}, Runtime: echo},
		{Kind: "same-nickname", Keys: []string{"arn"}},
	}}
	cases := []struct {
		path    string
		changed []string
		want    bool
	}{
		{echo, []string{"function_name"}, true}, // the echo source reads every key
		{tm, []string{"function_name"}, false},  // only the arn of other runtimes is read
		{tm, []string{"arn"}, true},
		{own, []string{"arn", "name"}, true},
		{own, []string{"name"}, false},
		{own, []string{graph.AllKeys}, true},
		{"", []string{"function_name"}, true}, // any runtime of the dependency: every source counts
		{"", []string{"name"}, true},
	}
	for _, c := range cases {
		if got := e.ConsumesAnyFrom(c.path, c.changed); got != c.want {
			t.Errorf("change of %v in %s: %v, want %v", c.changed, c.path, got, c.want)
		}
	}
}

func TestSubRuntimeWriter(t *testing.T) {
	t.Parallel()
	b := graph.NewBuilder(2)
	b.AddComponent(graph.Component{ID: "prod/lambda/tools", Env: "prod", SubRuntimePaths: []string{"/iac/lambda/echo/runtime"}})
	b.AddComponent(graph.Component{ID: "dev/lambda/tools", Env: "dev"})
	g := b.Graph()
	if i, ok := g.SubRuntimeWriter("prod", "/iac/lambda/echo/runtime"); !ok || g.Components[i].ID != "prod/lambda/tools" {
		t.Errorf("prod writer: %d %v", i, ok)
	}
	for _, q := range [][2]string{{"dev", "/iac/lambda/echo/runtime"}, {"prod", "/iac/lambda/tools/runtime"}} {
		if _, ok := g.SubRuntimeWriter(q[0], q[1]); ok {
			t.Errorf("SubRuntimeWriter(%s, %s) found a writer; a component's own runtime is found by Index", q[0], q[1])
		}
	}
}

// TestDownstreamOfOneSubRuntime: the impact of a change of one function's runtime reaches, in
// the first hop, only the dependents reading that runtime or any runtime of the lambda.
func TestDownstreamOfOneSubRuntime(t *testing.T) {
	t.Parallel()
	const echo, tm = "/iac/lambda/echo/runtime", "/iac/lambda/time/runtime"
	b := graph.NewBuilder(5)
	for _, id := range []string{"prod/lambda/tools", "prod/app/a", "prod/app/b", "prod/app/c", "prod/app/d"} {
		b.AddComponent(graph.Component{ID: id, Env: "prod"})
	}
	idx := func(id string) int32 { i, _ := b.Lookup(id); return i }
	lambda := idx("prod/lambda/tools")
	b.AddEdge(idx("prod/app/a"), lambda, graph.Source{Keys: []string{graph.AllKeys}, Runtime: echo})
	b.AddEdge(idx("prod/app/b"), lambda, graph.Source{Keys: []string{graph.AllKeys}, Runtime: tm})
	b.AddEdge(idx("prod/app/c"), lambda, graph.Source{Keys: []string{"arn"}})
	b.AddEdge(idx("prod/app/d"), idx("prod/app/b"), graph.Source{Keys: []string{graph.AllKeys}})
	g := b.Graph()
	cases := []struct {
		opts graph.ImpactOptions
		want string
	}{
		{graph.ImpactOptions{}, "prod/lambda/tools,prod/app/a,prod/app/b,prod/app/c,prod/app/d"},
		{graph.ImpactOptions{ChangedRuntime: echo}, "prod/lambda/tools,prod/app/a,prod/app/c"},
		{graph.ImpactOptions{ChangedRuntime: echo, ChangedKeys: []string{"function_name"}}, "prod/lambda/tools,prod/app/a"},
		{graph.ImpactOptions{ChangedRuntime: tm}, "prod/lambda/tools,prod/app/b,prod/app/c,prod/app/d"},
		{graph.ImpactOptions{ChangedKeys: []string{"name"}}, "prod/lambda/tools,prod/app/a,prod/app/b,prod/app/d"},
	}
	for _, c := range cases {
		imp, err := g.Downstream([]int32{lambda}, c.opts)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, a := range imp.Affected {
			got = append(got, g.Components[a.Index].ID)
		}
		if strings.Join(got, ",") != c.want {
			t.Errorf("%+v: affected %v, want %s", c.opts, got, c.want)
		}
	}
}
