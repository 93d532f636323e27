package graph_test

import (
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
