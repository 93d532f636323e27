package embedded_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/lineage"
	"github.com/usekarma/karma/shared/lineage/lineagetest"
)

func TestLineageConformance(t *testing.T) {
	lineagetest.Run(t, func(t *testing.T) lineage.Store {
		db, err := embedded.Open(filepath.Join(t.TempDir(), "karma.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		l, err := embedded.NewLineage(context.Background(), db)
		if err != nil {
			t.Fatal(err)
		}
		return l
	})
}
