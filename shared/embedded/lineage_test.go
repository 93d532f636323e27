package embedded_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
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

// Not parallel: the counters are process-wide. Recording an outcome, and a deployment again, is
// one statement each (no read first); the stored document is what json.Marshal would write,
// read back: an outcome without detail or keys leaves them out.
func TestLineageOutcomeIsOneStatement(t *testing.T) {
	ctx := t.Context()
	db, err := embedded.Open(filepath.Join(t.TempDir(), "karma.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l, err := embedded.NewLineage(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	d := lineage.Deployment{ID: "dep-1", ChangeSetID: "cs-1", Env: "dev", Component: "dev/app/api", Status: lineage.StatusScheduled}
	if err := l.RecordDeployment(ctx, d); err != nil {
		t.Fatal(err)
	}
	before := embedded.Counters()
	if err := l.SetOutcome(ctx, d.ID, lineage.StatusApplied, "1 <changed>", []string{"url", "id"}, d.At); err != nil {
		t.Fatal(err)
	}
	if err := l.RecordDeployment(ctx, d); err != nil { // a late redelivery keeps the outcome
		t.Fatal(err)
	}
	if got := embedded.Counters().Sub(before).Statements(); got != 2 {
		t.Errorf("an outcome and a deployment recorded again took %d statements, want 2", got)
	}
	got, err := l.Deployment(ctx, d.ID)
	if err != nil || got.Status != lineage.StatusApplied || got.Detail != "1 <changed>" || len(got.ChangedKeys) != 2 || got.ChangedKeys[1] != "id" {
		t.Fatalf("after the outcome: %+v, %v", got, err)
	}
	if err := l.SetOutcome(ctx, d.ID, lineage.StatusSkipped, "", nil, d.At); err != nil {
		t.Fatal(err)
	}
	var doc string
	if err := db.SQL.QueryRowContext(ctx, `SELECT doc FROM lineage_deployments WHERE id = ?`, d.ID).Scan(&doc); err != nil {
		t.Fatal(err)
	}
	got, err = l.Deployment(ctx, d.ID)
	if err != nil || got.Status != lineage.StatusSkipped || got.Detail != "" || got.ChangedKeys != nil ||
		strings.Contains(doc, `"detail"`) || strings.Contains(doc, `"changed_keys"`) {
		t.Fatalf("after an outcome without detail or keys: %+v, %v; stored %s", got, err, doc)
	}
	if err := l.SetOutcome(ctx, "dep-none", lineage.StatusApplied, "", nil, d.At); !errors.Is(err, lineage.ErrNotFound) {
		t.Errorf("SetOutcome of an unknown deployment: %v, want lineage.ErrNotFound", err)
	}
}
