package neptune

import (
	"context"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/graph"
	"github.com/usekarma/karma/shared/graph/graphtest"
	"github.com/usekarma/karma/shared/lineage"
	"github.com/usekarma/karma/shared/message"
)

func TestGraphStoreConformance(t *testing.T) {
	c := testClient(t)
	graphtest.Run(t, func(t *testing.T) graph.Store {
		return NewGraphStore(c, StoreOptions{Namespace: testNamespace(t, c)})
	})
}

func TestGraphStoreRoundTrips(t *testing.T) {
	ctx := context.Background()
	c := testClient(t)
	s := NewGraphStore(c, StoreOptions{Namespace: testNamespace(t, c), BatchSize: 2})
	envs := []string{"dev", "prod"}
	st, err := s.Write(ctx, graphtest.Sample(nil, nil), envs)
	if err != nil {
		t.Fatal(err)
	}
	// 1 state read + 3 component batches (5 rows) + 2 edge batches (4 rows) + forgetting the
	// changed environments' commits.
	if st.RoundTrips != 7 || st.ComponentsWritten != 5 || st.EdgesWritten != 4 {
		t.Errorf("first write: %+v", st)
	}
	st, err = s.Write(ctx, graphtest.Sample(nil, nil), envs)
	if err != nil {
		t.Fatal(err)
	}
	if st != (graph.WriteStats{Unchanged: 9, RoundTrips: 1}) {
		t.Errorf("no-change write: %+v, want only the state read", st)
	}
}

// WriteAt records the commit in one more request, also when the graph is unchanged.
func TestGraphStoreWriteAtRoundTrips(t *testing.T) {
	ctx := context.Background()
	c := testClient(t)
	s := NewGraphStore(c, StoreOptions{Namespace: testNamespace(t, c)})
	if _, err := s.WriteAt(ctx, graphtest.Sample(nil, nil), "prod", "c1"); err != nil {
		t.Fatal(err)
	}
	st, err := s.WriteAt(ctx, graphtest.Sample(nil, nil), "prod", "c2")
	if err != nil {
		t.Fatal(err)
	}
	if st != (graph.WriteStats{Unchanged: 6, RoundTrips: 2}) {
		t.Errorf("no-change WriteAt: %+v, want the state read and the commit", st)
	}
	if got, err := s.Commit(ctx, "prod"); err != nil || got != "c2" {
		t.Errorf("Commit(prod) = %q, %v", got, err)
	}
}

// Replacing a value must leave one value: the server's default cardinality is set (as
// Neptune's), so a property written without single cardinality would accumulate values.
func TestGraphStoreSingleValues(t *testing.T) {
	ctx := context.Background()
	c := testClient(t)
	s := NewGraphStore(c, StoreOptions{Namespace: testNamespace(t, c)})
	envs := []string{"dev", "prod"}
	if _, err := s.Write(ctx, graphtest.Sample(nil, nil), envs); err != nil {
		t.Fatal(err)
	}
	changed := graphtest.Sample(func(cs []graph.Component) []graph.Component {
		cs[0].ConfigHash, cs[0].Files = "h2", []string{"a.json", "b.json"}
		return cs
	}, nil)
	if _, err := s.Write(ctx, changed, envs); err != nil {
		t.Fatal(err)
	}
	res, err := c.Run(ctx, "count values", func(g *Source) *Traversal {
		return g.V(s.n.id("dev/app/api")).Properties().Key().GroupCount()
	})
	if err != nil {
		t.Fatal(err)
	}
	for k, n := range stringKeys(res[0]) {
		if toInt(n) != 1 {
			t.Errorf("property %s has %v values", k, n)
		}
	}
	got, err := s.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c := got.Components[0]; c.ConfigHash != "h2" || len(c.Files) != 2 {
		t.Errorf("read back %+v", c)
	}
}

// A component removed from the graph that a deployment points at keeps its vertex (lineage
// survives) but leaves the graph.
func TestGraphStoreKeepsComponentsLineageNames(t *testing.T) {
	ctx := context.Background()
	c := testClient(t)
	ns := testNamespace(t, c)
	s := NewGraphStore(c, StoreOptions{Namespace: ns})
	l := NewLineageStore(c, StoreOptions{Namespace: ns})
	envs := []string{"dev", "prod"}
	if _, err := s.Write(ctx, graphtest.Sample(nil, nil), envs); err != nil {
		t.Fatal(err)
	}
	d := lineageDeployment("dep-1", "prod/db/main")
	if err := l.RecordDeployment(ctx, d); err != nil {
		t.Fatal(err)
	}
	without := graphtest.Sample(func(cs []graph.Component) []graph.Component { return append(cs[:3:3], cs[4]) }, nil)
	st, err := s.Write(ctx, without, envs)
	if err != nil {
		t.Fatal(err)
	}
	if st.ComponentsDeleted != 1 || st.EdgesDeleted != 2 {
		t.Errorf("stats %+v", st)
	}
	got, err := s.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.Len() != 4 || len(got.Edges) != 2 {
		t.Errorf("read %d components, %d edges; want 4 and 2", got.Len(), len(got.Edges))
	}
	ds, err := l.Deployments(ctx, "prod/db/main")
	if err != nil || len(ds) != 1 {
		t.Errorf("deployments of the removed component: %v %v", ds, err)
	}
	// Back in the graph: written again, whole.
	st, err = s.Write(ctx, graphtest.Sample(nil, nil), envs)
	if err != nil {
		t.Fatal(err)
	}
	if st.ComponentsWritten != 1 || st.EdgesWritten != 2 {
		t.Errorf("re-add: %+v", st)
	}
}

// A component removed from the graph that only drift events point at (drift found on a component
// Karma never deployed, e.g. its /config missing, then the component removed from Git) keeps its
// vertex too: dropping it would drop the drifted edges, and karma lineage <component> would no
// longer find the drift events recorded for it.
func TestGraphStoreKeepsComponentsDriftNames(t *testing.T) {
	ctx := context.Background()
	c := testClient(t)
	ns := testNamespace(t, c)
	s := NewGraphStore(c, StoreOptions{Namespace: ns})
	l := NewLineageStore(c, StoreOptions{Namespace: ns})
	envs := []string{"dev", "prod"}
	if _, err := s.Write(ctx, graphtest.Sample(nil, nil), envs); err != nil {
		t.Fatal(err)
	}
	d := lineage.Drift{ID: "drift-0000000000000001", Env: "prod", Component: "prod/db/main", Kind: message.DriftConfig,
		Reason: message.DriftMissing, Action: message.DriftReport, At: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	if err := l.RecordDrift(ctx, d); err != nil {
		t.Fatal(err)
	}
	without := graphtest.Sample(func(cs []graph.Component) []graph.Component { return append(cs[:3:3], cs[4]) }, nil)
	if _, err := s.Write(ctx, without, envs); err != nil {
		t.Fatal(err)
	}
	got, err := s.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.Len() != 4 {
		t.Errorf("read %d components, want 4: the removed one leaves the graph", got.Len())
	}
	ds, err := l.Drifts(ctx, "prod/db/main")
	if err != nil || len(ds) != 1 || ds[0].ID != d.ID {
		t.Errorf("drift events of the removed component: %v %v, want %s", ds, err, d.ID)
	}
}

// Many changes at once: the stale elements are found by reading every (id, hash) pair rather
// than looking hundreds of hashes up by value.
func TestGraphStoreLargeDelta(t *testing.T) {
	ctx := context.Background()
	c := testClient(t)
	s := NewGraphStore(c, StoreOptions{Namespace: testNamespace(t, c)})
	g1 := benchGraph(600, nil)
	if _, err := s.Write(ctx, g1, benchEnvs); err != nil {
		t.Fatal(err)
	}
	g2 := benchGraph(560, func(i int, c *graph.Component) { c.ConfigHash = "changed" }) // 40 gone, 560 changed
	st, err := s.Write(ctx, g2, benchEnvs)
	if err != nil {
		t.Fatal(err)
	}
	edges := func(g *graph.Graph, whole bool) map[string]bool {
		out := map[string]bool{}
		for i := range g.Edges {
			e := g.EdgeDoc(int32(i))
			if whole {
				out[jsonString(e)] = true
			} else {
				out[e.From+" "+e.To] = true
			}
		}
		return out
	}
	d1, d2, p1, p2 := edges(g1, true), edges(g2, true), edges(g1, false), edges(g2, false)
	added, removed := 0, 0
	for d := range d2 {
		if !d1[d] {
			added++ // new, or the same pair with other sources
		}
	}
	for p := range p1 {
		if !p2[p] {
			removed++
		}
	}
	// Requests: hashes, ids (all pairs: > lookupLimit stale), edge drops, 2 component batches,
	// edge batch, component drops, forgetting the environments' commits.
	want := graph.WriteStats{ComponentsWritten: 560, ComponentsDeleted: 40, EdgesWritten: added, EdgesDeleted: removed,
		Unchanged: len(g2.Edges) - added, RoundTrips: 8}
	if st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}
	got, err := s.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if docJSON(got) != docJSON(g2) {
		t.Error("read differs from what was written")
	}
}

func docJSON(g *graph.Graph) string {
	d := g.Document()
	d.Waves = nil
	return jsonString(d)
}
