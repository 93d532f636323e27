// Package graphtest is the conformance suite every graph.Store implementation passes (embedded
// SQLite, Neptune over Gremlin).
package graphtest

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/graph"
)

// Sample builds a small two-environment graph; mutate lets a test change it before Graph().
func Sample(mutate func(cs []graph.Component) []graph.Component, edges [][2]string) *graph.Graph {
	cs := []graph.Component{}
	for _, id := range []string{"dev/app/api", "dev/vpc/core", "prod/app/api", "prod/db/main", "prod/vpc/core"} {
		parts := strings.SplitN(id, "/", 3)
		env, typ, nick := parts[0], parts[1], parts[2]
		cs = append(cs, graph.Component{ID: id, Env: env, Type: typ, Nickname: nick, ConfigPath: "/iac/" + typ + "/" + nick + "/config",
			RuntimePath: "/iac/" + typ + "/" + nick + "/runtime", Files: []string{"iac/" + id + "/config.json"}, ConfigHash: "h-" + id, RuntimeStatus: graph.RuntimeMissing})
	}
	if mutate != nil {
		cs = mutate(cs)
	}
	if edges == nil {
		edges = [][2]string{{"dev/app/api", "dev/vpc/core"}, {"prod/app/api", "prod/db/main"}, {"prod/app/api", "prod/vpc/core"}, {"prod/db/main", "prod/vpc/core"}}
	}
	b := graph.NewBuilder(len(cs))
	for _, c := range cs {
		b.AddComponent(c)
	}
	for _, e := range edges {
		f, ok1 := b.Lookup(e[0])
		t, ok2 := b.Lookup(e[1])
		if ok1 && ok2 {
			b.AddEdge(f, t, graph.Source{Kind: "inferred", Pointer: "/x_nickname", Rule: "x_nickname", Keys: []string{graph.AllKeys}})
		}
	}
	return b.Graph()
}

func docJSON(t *testing.T, g *graph.Graph) string {
	t.Helper()
	d := g.Document()
	d.Waves = nil
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Run checks the graph.Store contract. newStore must return an empty store.
func Run(t *testing.T, newStore func(t *testing.T) graph.Store) {
	ctx := context.Background()
	envs := []string{"dev", "prod"}

	t.Run("write then read returns the same graph", func(t *testing.T) {
		s := newStore(t)
		g := Sample(nil, nil)
		st, err := s.Write(ctx, g, envs)
		if err != nil {
			t.Fatal(err)
		}
		if st.ComponentsWritten != 5 || st.EdgesWritten != 4 {
			t.Errorf("first write: %+v", st)
		}
		got, err := s.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if docJSON(t, got) != docJSON(t, g) {
			t.Errorf("read differs:\n got %s\nwant %s", docJSON(t, got), docJSON(t, g))
		}
	})

	t.Run("a rewrite with no change writes nothing", func(t *testing.T) {
		s := newStore(t)
		s.Write(ctx, Sample(nil, nil), envs)
		st, err := s.Write(ctx, Sample(nil, nil), envs)
		if err != nil {
			t.Fatal(err)
		}
		if st.ComponentsWritten+st.EdgesWritten+st.ComponentsDeleted+st.EdgesDeleted != 0 || st.Unchanged != 9 {
			t.Errorf("no-change rewrite: %+v", st)
		}
	})

	t.Run("delta: one changed, one removed, one edge gone", func(t *testing.T) {
		s := newStore(t)
		s.Write(ctx, Sample(nil, nil), envs)
		g := Sample(func(cs []graph.Component) []graph.Component {
			cs[4].ConfigHash = "changed" // prod/vpc/core
			return append(cs[:3], cs[4]) // drop prod/db/main
		}, nil)
		st, err := s.Write(ctx, g, envs)
		if err != nil {
			t.Fatal(err)
		}
		if st.ComponentsWritten != 1 || st.ComponentsDeleted != 1 || st.EdgesDeleted != 2 || st.EdgesWritten != 0 {
			t.Errorf("delta: %+v", st)
		}
		got, _ := s.Read(ctx)
		if docJSON(t, got) != docJSON(t, g) {
			t.Errorf("after delta:\n got %s\nwant %s", docJSON(t, got), docJSON(t, g))
		}
	})

	t.Run("writing one environment leaves the others alone", func(t *testing.T) {
		s := newStore(t)
		s.Write(ctx, Sample(nil, nil), envs)
		devOnly := Sample(func(cs []graph.Component) []graph.Component { return cs[:2] }, nil)
		st, err := s.Write(ctx, devOnly, []string{"dev"})
		if err != nil {
			t.Fatal(err)
		}
		if st.ComponentsDeleted != 0 || st.EdgesDeleted != 0 {
			t.Errorf("dev-only write deleted prod: %+v", st)
		}
		got, _ := s.Read(ctx)
		if got.Len() != 5 || len(got.Edges) != 4 {
			t.Errorf("components %d edges %d, want 5 and 4", got.Len(), len(got.Edges))
		}
	})

	t.Run("per-sub-object runtimes, the sources reading one and edges redeploying on any apply round-trip", func(t *testing.T) {
		s := newStore(t)
		g := Sample(func(cs []graph.Component) []graph.Component {
			cs[3].SubRuntimePaths = []string{"/iac/db/main-replica/runtime"} // prod/db/main
			return cs
		}, [][2]string{})
		b := graph.NewBuilder(g.Len())
		for _, c := range g.Components {
			b.AddComponent(c)
		}
		api, _ := b.Lookup("prod/app/api")
		db, _ := b.Lookup("prod/db/main")
		b.AddEdge(api, db, graph.Source{Kind: "runtime-path", Pointer: "/replica_runtime_path", Rule: "runtime-path",
			Keys: []string{graph.AllKeys}, Runtime: "/iac/db/main-replica/runtime"})
		vpc, _ := b.Lookup("prod/vpc/core")
		b.AddEdge(db, vpc, graph.Source{Kind: "explicit", Pointer: "/karma/depends_on/0", Rule: "depends_on",
			Keys: []string{}, Redeploy: graph.RedeployOnAnyApply})
		g = b.Graph()
		if _, err := s.Write(ctx, g, envs); err != nil {
			t.Fatal(err)
		}
		got, err := s.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if docJSON(t, got) != docJSON(t, g) {
			t.Errorf("read differs:\n got %s\nwant %s", docJSON(t, got), docJSON(t, g))
		}
		if e := got.Edges[len(got.Edges)-1]; !e.OnAnyApply() || e.Sources[0].Redeploy != graph.RedeployOnAnyApply {
			t.Errorf("an edge redeploying on any apply read back as %+v", e)
		}
		if i, ok := got.SubRuntimeWriter("prod", "/iac/db/main-replica/runtime"); !ok || got.Components[i].ID != "prod/db/main" {
			t.Errorf("the graph read back does not know who writes /iac/db/main-replica/runtime (%v)", ok)
		}
	})

	t.Run("WriteAt records the commit of one environment's graph", func(t *testing.T) {
		s := newStore(t)
		commit := func(env, want string) {
			t.Helper()
			if got, err := s.Commit(ctx, env); err != nil || got != want {
				t.Errorf("Commit(%s) = %q, %v; want %q", env, got, err, want)
			}
		}
		commit("dev", "")
		g := Sample(nil, nil)
		if _, err := s.WriteAt(ctx, g, "dev", "c1"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.WriteAt(ctx, g, "prod", "c1"); err != nil {
			t.Fatal(err)
		}
		commit("dev", "c1")
		// The same graph at another commit (a commit changing nothing here): the commit moves.
		st, err := s.WriteAt(ctx, g, "dev", "c2")
		if err != nil {
			t.Fatal(err)
		}
		if st.ComponentsWritten+st.EdgesWritten+st.ComponentsDeleted+st.EdgesDeleted != 0 {
			t.Errorf("same graph at another commit wrote %+v", st)
		}
		commit("dev", "c2")
		commit("prod", "c1")
		// A Write changing nothing keeps the commits; one changing dev forgets dev's only.
		if _, err := s.Write(ctx, Sample(nil, nil), envs); err != nil {
			t.Fatal(err)
		}
		commit("dev", "c2")
		devChanged := Sample(func(cs []graph.Component) []graph.Component {
			cs[0].ConfigHash = "edited"
			return cs
		}, nil)
		if _, err := s.Write(ctx, devChanged, envs); err != nil {
			t.Fatal(err)
		}
		commit("dev", "")
		commit("prod", "c1")
		got, err := s.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if docJSON(t, got) != docJSON(t, devChanged) {
			t.Errorf("read differs:\n got %s\nwant %s", docJSON(t, got), docJSON(t, devChanged))
		}
	})

	t.Run("empty store reads as an empty graph", func(t *testing.T) {
		s := newStore(t)
		g, err := s.Read(ctx)
		if err != nil || g.Len() != 0 {
			t.Errorf("empty read: %v %v", g, err)
		}
	})
}
