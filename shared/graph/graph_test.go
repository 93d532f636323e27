package graph_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/graph"
)

var update = flag.Bool("update", false, "rewrite golden files")

// newGraph builds a graph from "a->b[:keys][!]" edge specs (a depends on b, consuming keys; "!":
// redeployed on any apply of b); ids are env/type/nick.
func newGraph(t *testing.T, ids []string, edges ...string) *graph.Graph {
	t.Helper()
	b := graph.NewBuilder(len(ids))
	for _, id := range ids {
		p := strings.Split(id, "/")
		if _, err := b.AddComponent(graph.Component{ID: id, Env: p[0], Type: p[1], Nickname: p[2], RuntimeStatus: graph.RuntimeUnknown}); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range edges {
		e, anyApply := strings.CutSuffix(e, "!")
		spec, keys, _ := strings.Cut(e, ":")
		from, to, _ := strings.Cut(spec, "->")
		f, ok1 := b.Lookup(from)
		tt, ok2 := b.Lookup(to)
		if !ok1 || !ok2 {
			t.Fatalf("bad edge %s", e)
		}
		k := []string{graph.AllKeys}
		if keys != "" {
			k = strings.Split(keys, ",")
		}
		src := graph.Source{Kind: "explicit", Pointer: "/karma/depends_on/0", Rule: "depends_on", Keys: k}
		if anyApply {
			src.Redeploy = graph.RedeployOnAnyApply
		}
		b.AddEdge(f, tt, src)
	}
	return b.Graph()
}

var ids = []string{"d/app/api", "d/db/main", "d/dns/zone", "d/lb/front", "d/vpc/core", "d/cdn/site"}

func layered(t *testing.T) *graph.Graph {
	return newGraph(t, ids,
		"d/db/main->d/vpc/core:vpc_id,subnets",
		"d/lb/front->d/vpc/core:vpc_id",
		"d/lb/front->d/dns/zone",
		"d/app/api->d/db/main:endpoint",
		"d/app/api->d/lb/front:arn",
		"d/cdn/site->d/dns/zone:zone_id!")
}

func TestWaves(t *testing.T) {
	t.Parallel()
	g := layered(t)
	w, err := g.Waves()
	if err != nil {
		t.Fatal(err)
	}
	got := [][]string{}
	for _, x := range w {
		got = append(got, g.IDs(x))
	}
	want := [][]string{{"d/dns/zone", "d/vpc/core"}, {"d/cdn/site", "d/db/main", "d/lb/front"}, {"d/app/api"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("waves = %v, want %v", got, want)
	}
	all, _ := g.Resolve(ids)
	d, _ := g.DestroyWaves(all)
	if g.IDs(d[0])[0] != "d/app/api" {
		t.Errorf("destroy must start with dependents: %v", g.IDs(d[0]))
	}
}

func TestDownstreamWithReasonsAndKeys(t *testing.T) {
	t.Parallel()
	g := layered(t)
	vpc, _ := g.Index("d/vpc/core")
	imp, err := g.Downstream([]int32{vpc}, graph.ImpactOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(g.IDs(indexes(imp.Affected)), ","); got != "d/vpc/core,d/db/main,d/lb/front,d/app/api" {
		t.Errorf("affected = %s", got)
	}
	api, _ := g.Index("d/app/api")
	chain := imp.Chain(api)
	if len(chain) != 2 || g.Components[chain[0].Index].ID != "d/db/main" || g.Components[chain[1].Index].ID != "d/app/api" {
		t.Errorf("reason chain of api = %+v", chain)
	}
	// Only subnets changed: lb/front consumes vpc_id only and is not affected; db is, and so is
	// app/api below it.
	imp, _ = g.Downstream([]int32{vpc}, graph.ImpactOptions{ChangedKeys: []string{"subnets"}})
	if got := strings.Join(g.IDs(indexes(imp.Affected)), ","); got != "d/vpc/core,d/db/main,d/app/api" {
		t.Errorf("affected by subnets = %s", got)
	}
	imp, _ = g.Downstream([]int32{vpc}, graph.ImpactOptions{ChangedKeys: []string{"flow_logs"}})
	if len(imp.Affected) != 1 {
		t.Errorf("a key nobody consumes must affect nobody: %v", g.IDs(indexes(imp.Affected)))
	}
	// cdn/site's edge to dns/zone redeploys on any apply: an apply of the zone changing a key
	// nobody else names still reaches it; a change of the zone's runtime outside Karma does not
	// (lb/front reads every key of the zone: affected either way).
	zone, _ := g.Index("d/dns/zone")
	imp, _ = g.Downstream([]int32{zone}, graph.ImpactOptions{ChangedKeys: []string{"name_servers"}})
	if got := strings.Join(g.IDs(indexes(imp.Affected)), ","); got != "d/dns/zone,d/lb/front,d/cdn/site,d/app/api" {
		t.Errorf("an apply of the zone changing name_servers affects %s", got)
	}
	imp, _ = g.Downstream([]int32{zone}, graph.ImpactOptions{ChangedKeys: []string{"name_servers"}, ChangedRuntime: "/iac/dns/zone/runtime"})
	if got := strings.Join(g.IDs(indexes(imp.Affected)), ","); got != "d/dns/zone,d/lb/front,d/app/api" {
		t.Errorf("a runtime changed outside Karma is no apply: %v", got)
	}
	// A filter keeps the traversal: app/api is reached through db (filtered out).
	imp, _ = g.Downstream([]int32{vpc}, graph.ImpactOptions{Filter: func(c *graph.Component) bool { return c.Type == "app" }})
	if got := strings.Join(g.IDs(indexes(imp.Affected)), ","); got != "d/app/api" {
		t.Errorf("filtered = %s", got)
	}
	if len(imp.Chain(api)) != 2 {
		t.Error("reason chain must survive filtering")
	}
}

func TestUpstream(t *testing.T) {
	t.Parallel()
	g := layered(t)
	api, _ := g.Index("d/app/api")
	imp := g.Upstream([]int32{api}, nil)
	if len(imp.Affected) != 5 || g.IDs(imp.Waves[0])[0] != "d/dns/zone" {
		t.Errorf("upstream = %v waves %v", g.IDs(indexes(imp.Affected)), imp.Waves)
	}
}

func TestCycles(t *testing.T) {
	t.Parallel()
	g := newGraph(t, []string{"e/a/a", "e/b/b", "e/c/c", "e/d/d", "e/s/self"},
		"e/a/a->e/b/b", "e/b/b->e/c/c", "e/c/c->e/a/a", "e/d/d->e/a/a", "e/s/self->e/s/self")
	cs := g.Cycles()
	var got []string
	for _, c := range cs {
		got = append(got, c.String())
	}
	want := []string{"e/a/a -> e/b/b -> e/c/c -> e/a/a", "e/s/self -> e/s/self"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("cycles = %q, want %q", got, want)
	}
	_, err := g.Waves()
	var ce *graph.CycleError
	if !errors.As(err, &ce) || len(ce.Cycles) != 2 {
		t.Errorf("Waves on a cyclic graph: %v", err)
	}
}

func TestDeepChainNoRecursionLimit(t *testing.T) {
	t.Parallel()
	n := 200000
	b := graph.NewBuilder(n)
	for i := 0; i < n; i++ {
		b.AddComponent(graph.Component{ID: "e/t/" + strconv.Itoa(i), Env: "e", Type: "t"})
	}
	for i := 1; i < n; i++ {
		b.AddEdge(int32(i), int32(i-1), graph.Source{Kind: "explicit", Keys: []string{"*"}})
	}
	g := b.Graph()
	if len(g.Cycles()) != 0 {
		t.Fatal("chain has no cycle")
	}
	imp, err := g.Downstream([]int32{0}, graph.ImpactOptions{})
	if err != nil || len(imp.Affected) != n || len(imp.Waves) != n {
		t.Fatalf("affected %d waves %d err %v", len(imp.Affected), len(imp.Waves), err)
	}
}

func TestExportGolden(t *testing.T) {
	t.Parallel()
	g := layered(t)
	for _, f := range []struct {
		name  string
		write func(*graph.Graph, *bytes.Buffer) error
	}{
		{"graph.json", func(g *graph.Graph, b *bytes.Buffer) error { return g.WriteJSON(b) }},
		{"graph.dot", func(g *graph.Graph, b *bytes.Buffer) error { return g.WriteDOT(b) }},
		{"graph.mmd", func(g *graph.Graph, b *bytes.Buffer) error { return g.WriteMermaid(b) }},
	} {
		var buf bytes.Buffer
		if err := f.write(g, &buf); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("testdata", f.name)
		if *update {
			os.WriteFile(path, buf.Bytes(), 0o644)
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -update once)", err)
		}
		if buf.String() != string(want) {
			t.Errorf("%s differs from golden:\n%s", f.name, buf.String())
		}
	}
}

func TestDocumentRoundTrip(t *testing.T) {
	t.Parallel()
	g := layered(t)
	b, _ := json.Marshal(g.Document())
	var d graph.Document
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	g2, err := graph.FromDocument(d)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := json.Marshal(g2.Document())
	if string(b) != string(b2) {
		t.Errorf("round trip differs:\n%s\n%s", b, b2)
	}
	d.Format = "karma.graph.v0"
	if _, err := graph.FromDocument(d); err == nil {
		t.Error("unknown format accepted")
	}
}

func indexes(as []graph.Affected) []int32 {
	out := make([]int32, len(as))
	for i, a := range as {
		out[i] = a.Index
	}
	return out
}
