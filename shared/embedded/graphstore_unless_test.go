package embedded_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/graph"
	"github.com/usekarma/karma/shared/graph/graphtest"
)

// conditional is what graph-write asks of the embedded graph store (workers/graphwrite).
type conditional interface {
	graph.Store
	WriteAtUnless(ctx context.Context, g *graph.Graph, env, commit string, skip func(stored string) (bool, error)) (graph.WriteStats, error)
	KnownCommit(env string) (string, bool)
}

// WriteAtUnless shows skip the commit the file holds for the environment, written by this store
// or another; a skip writes nothing; the same graph at the same commit again writes nothing.
// KnownCommit is what the store last saw, without asking the file. The same through the
// write-lock wrapper the stages use (SerializeGraph).
func TestGraphStoreWriteAtUnless(t *testing.T) {
	ctx := context.Background()
	for _, wrapped := range []bool{false, true} {
		db, err := embedded.Open(filepath.Join(t.TempDir(), "karma.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		open := func() conditional {
			s, err := embedded.NewGraphStore(ctx, db)
			if err != nil {
				t.Fatal(err)
			}
			if wrapped {
				return db.SerializeGraph(s).(conditional)
			}
			return s
		}
		a, b := open(), open() // b: another process, as far as a knows
		g1 := graphtest.Sample(nil, nil)
		g2 := graphtest.Sample(func(cs []graph.Component) []graph.Component { return cs[:4] }, nil)
		if c, ok := a.KnownCommit("prod"); ok {
			t.Errorf("wrapped=%v: KnownCommit of a fresh store = %q, want none", wrapped, c)
		}
		var shown []string
		write := func(s conditional, g *graph.Graph, commit string, skip bool) graph.WriteStats {
			t.Helper()
			st, err := s.WriteAtUnless(ctx, g, "prod", commit, func(stored string) (bool, error) {
				shown = append(shown, stored)
				return skip, nil
			})
			if err != nil {
				t.Fatalf("wrapped=%v: WriteAtUnless(%s): %v", wrapped, commit, err)
			}
			return st
		}
		if st := write(a, g1, "c1", false); st.ComponentsWritten != 3 {
			t.Errorf("wrapped=%v: first write = %+v, want prod's 3 components written", wrapped, st)
		}
		if c, ok := a.KnownCommit("prod"); !ok || c != "c1" {
			t.Errorf("wrapped=%v: KnownCommit after writing c1 = %q, %v", wrapped, c, ok)
		}
		if st := write(a, g1, "c1", false); st.ComponentsWritten+st.EdgesWritten != 0 || st.Unchanged == 0 {
			t.Errorf("wrapped=%v: the same graph at the same commit again = %+v, want nothing written", wrapped, st)
		}
		write(b, g2, "c2", false) // another process writes a later commit's graph
		if c, _ := a.KnownCommit("prod"); c != "c1" {
			t.Errorf("wrapped=%v: KnownCommit asked the file: %q", wrapped, c)
		}
		if st := write(a, g1, "c0", true); st != (graph.WriteStats{}) {
			t.Errorf("wrapped=%v: a skipped write = %+v, want nothing", wrapped, st)
		}
		if c, ok := a.KnownCommit("prod"); !ok || c != "c2" {
			t.Errorf("wrapped=%v: KnownCommit after reading c2 = %q, %v", wrapped, c, ok)
		}
		if want := []string{"", "c1", "c1", "c2"}; len(shown) != len(want) || shown[0] != want[0] || shown[1] != want[1] || shown[2] != want[2] || shown[3] != want[3] {
			t.Errorf("wrapped=%v: skip was shown %q, want %q", wrapped, shown, want)
		}
		if c, err := a.Commit(ctx, "prod"); err != nil || c != "c2" {
			t.Errorf("wrapped=%v: stored commit = %q, %v; want c2 (the skipped write wrote nothing)", wrapped, c, err)
		}
		got, err := a.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := got.Index("prod/vpc/core"); ok {
			t.Errorf("wrapped=%v: the skipped graph was written: prod/vpc/core is back", wrapped)
		}
	}
}
