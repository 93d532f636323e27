package embedded_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/graph"
	"github.com/usekarma/karma/shared/graph/graphtest"
)

func TestGraphStoreConformance(t *testing.T) {
	graphtest.Run(t, func(t *testing.T) graph.Store {
		db, err := embedded.Open(filepath.Join(t.TempDir(), "karma.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		s, err := embedded.NewGraphStore(context.Background(), db)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// The graph a store last wrote, given again, is not written or hashed again while the file holds
// it; once another store wrote another graph there, it is written again in full.
func TestGraphStoreSameGraphAgain(t *testing.T) {
	ctx := context.Background()
	db, err := embedded.Open(filepath.Join(t.TempDir(), "karma.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	a, err := embedded.NewGraphStore(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	b, err := embedded.NewGraphStore(ctx, db) // another process, as far as a knows
	if err != nil {
		t.Fatal(err)
	}
	envs := []string{"dev", "prod"}
	g1 := graphtest.Sample(nil, nil)
	g2 := graphtest.Sample(func(cs []graph.Component) []graph.Component { return cs[:3] }, nil)
	first, err := a.Write(ctx, g1, envs)
	if err != nil || first.ComponentsWritten != 5 {
		t.Fatalf("first write = %+v, %v", first, err)
	}
	again, err := a.Write(ctx, g1, envs)
	if err != nil || again.ComponentsWritten+again.EdgesWritten+again.ComponentsDeleted+again.EdgesDeleted != 0 || again.Unchanged != 9 {
		t.Errorf("same graph again = %+v, %v; want nothing written, 9 unchanged", again, err)
	}
	if _, err := b.Write(ctx, g2, envs); err != nil {
		t.Fatal(err)
	}
	back, err := a.Write(ctx, g1, envs)
	if err != nil || back.ComponentsWritten != 2 {
		t.Errorf("g1 after another store wrote g2 = %+v, %v; want the 2 components g2 lacks written", back, err)
	}
	got, err := b.Read(ctx)
	if err != nil || len(got.Components) != 5 || len(got.Edges) != 4 {
		t.Errorf("read back: %v", err)
	}
}
