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
