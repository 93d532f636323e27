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
	"github.com/usekarma/karma/shared/message"
)

func TestLineageConformance(t *testing.T) {
	lineagetest.Run(t, func(t *testing.T) lineage.Store {
		_, l := newLineage(t)
		return l
	})
}

// newLineage opens a new file and its lineage store.
func newLineage(t *testing.T) (*embedded.DB, *embedded.Lineage) {
	t.Helper()
	db, err := embedded.Open(filepath.Join(t.TempDir(), "karma.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	l, err := embedded.NewLineage(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	return db, l
}

// Not parallel: the counters are process-wide. Recording an outcome, a deployment (again) or a
// change is one statement each (no read first, the causes indexed by the file); the stored
// document is what json.Marshal would write, read back: an outcome without detail or keys
// leaves them out.
func TestLineageRecordsAreOneStatement(t *testing.T) {
	ctx := t.Context()
	db, l := newLineage(t)
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
	// A new deployment with its causes, and a change with its roots: one statement each, the
	// indexes of causes kept by the file (causesTrigger), also when a record is written again
	// with more causes.
	before = embedded.Counters()
	d2 := d
	d2.ID, d2.CausedBy = "dep-2", []message.Cause{{Kind: message.CauseCommit, ID: "sha-1"}, {Kind: message.CauseDeployment, ID: d.ID}}
	c := lineage.Change{ID: "cs-1", RootCauses: []message.Cause{{Kind: message.CauseCommit, ID: "sha-1"}}}
	if err := l.RecordDeployment(ctx, d2); err != nil {
		t.Fatal(err)
	}
	if err := l.RecordChange(ctx, c); err != nil {
		t.Fatal(err)
	}
	if got := embedded.Counters().Sub(before).Statements(); got != 2 {
		t.Errorf("a deployment and a change took %d statements, want 2", got)
	}
	d2.CausedBy = append(d2.CausedBy, message.Cause{Kind: message.CauseParameter, ID: "/iac/x@2"})
	c.RootCauses = append(c.RootCauses, message.Cause{Kind: message.CauseRequest, ID: "cr-1"})
	if err := l.RecordDeployment(ctx, d2); err != nil {
		t.Fatal(err)
	}
	if err := l.RecordChange(ctx, c); err != nil {
		t.Fatal(err)
	}
	for _, cause := range d2.CausedBy {
		if got, err := l.CausedBy(ctx, cause.Kind, cause.ID); err != nil || len(got) != 1 || got[0].ID != d2.ID {
			t.Errorf("CausedBy(%s %s) = %v, %v; want %s", cause.Kind, cause.ID, got, err, d2.ID)
		}
	}
	for _, root := range c.RootCauses {
		if got, err := l.ChangesByRoot(ctx, root.Kind, root.ID); err != nil || len(got) != 1 || got[0].ID != c.ID {
			t.Errorf("ChangesByRoot(%s %s) = %v, %v; want %s", root.Kind, root.ID, got, err, c.ID)
		}
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

// A deployment without causes and a change without roots ("caused_by": null) index nothing: no
// record is found by an empty cause.
func TestLineageRecordsWithoutCausesIndexNothing(t *testing.T) {
	ctx := t.Context()
	db, l := newLineage(t)
	if err := l.RecordDeployment(ctx, lineage.Deployment{ID: "dep-1", Component: "dev/app/api", Status: lineage.StatusScheduled}); err != nil {
		t.Fatal(err)
	}
	if err := l.RecordChange(ctx, lineage.Change{ID: "cs-1"}); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.SQL.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM lineage_causes) + (SELECT count(*) FROM lineage_change_roots)`).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d index rows for records without causes (%v), want 0", n, err)
	}
	if ds, err := l.CausedBy(ctx, "", ""); err != nil || len(ds) != 0 {
		t.Errorf("CausedBy of an empty cause: %d deployments, %v; want none", len(ds), err)
	}
	if cs, err := l.ChangesByRoot(ctx, "", ""); err != nil || len(cs) != 0 {
		t.Errorf("ChangesByRoot of an empty cause: %d changes, %v; want none", len(cs), err)
	}
}

// A file made before the indexes of causes were WITHOUT ROWID (rowid tables, each row written
// twice) is rebuilt when it is opened: every cause and root cause is still found, the
// triggers that index new documents work on the rebuilt tables, and a second start leaves the
// file as it is.
func TestLineageRebuildsOlderCauseTablesWithoutRowid(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "karma.db")
	db, err := embedded.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	l, err := embedded.NewLineage(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	d := lineage.Deployment{ID: "dep-1", ChangeSetID: "cs-1", Env: "prod", Component: "prod/a/b", Status: "applied",
		CausedBy: []message.Cause{{Kind: message.CauseCommit, ID: "sha-1"}, {Kind: message.CauseParameter, ID: "/iac/x@2"}}}
	c := lineage.Change{ID: "cs-1", Env: "prod", RootCauses: []message.Cause{{Kind: message.CauseCommit, ID: "sha-1"}}}
	if err := l.RecordDeployment(ctx, d); err != nil {
		t.Fatal(err)
	}
	if err := l.RecordChange(ctx, c); err != nil {
		t.Fatal(err)
	}
	// The file as the version before left it: both tables with a rowid, as it created them.
	var triggers []string
	rows, err := db.SQL.Query(`SELECT name FROM sqlite_schema WHERE type = 'trigger' AND name LIKE 'lineage_%'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		_ = rows.Scan(&n)
		triggers = append(triggers, n)
	}
	rows.Close()
	if len(triggers) != 4 {
		t.Fatalf("triggers %v, want 4", triggers)
	}
	stmts := []string{}
	for _, n := range triggers {
		stmts = append(stmts, `DROP TRIGGER `+n)
	}
	stmts = append(stmts,
		`CREATE TABLE roots_old (change_id TEXT NOT NULL, kind TEXT NOT NULL, root_id TEXT NOT NULL, PRIMARY KEY (change_id, kind, root_id))`,
		`INSERT INTO roots_old SELECT * FROM lineage_change_roots`, `DROP TABLE lineage_change_roots`,
		`ALTER TABLE roots_old RENAME TO lineage_change_roots`,
		`CREATE INDEX lineage_change_roots_root ON lineage_change_roots(kind, root_id)`,
		`CREATE TABLE causes_old (deployment_id TEXT NOT NULL, kind TEXT NOT NULL, cause_id TEXT NOT NULL, PRIMARY KEY (deployment_id, kind, cause_id))`,
		`INSERT INTO causes_old SELECT * FROM lineage_causes`, `DROP TABLE lineage_causes`,
		`ALTER TABLE causes_old RENAME TO lineage_causes`,
		`CREATE INDEX lineage_causes_cause ON lineage_causes(kind, cause_id)`)
	for _, s := range stmts {
		if _, err := db.SQL.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	if withoutRowid(t, db, "lineage_causes") || withoutRowid(t, db, "lineage_change_roots") {
		t.Fatal("the older file's tables are WITHOUT ROWID")
	}
	db.Close()

	for i := range 2 {
		db, err := embedded.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		l, err := embedded.NewLineage(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		for _, table := range []string{"lineage_causes", "lineage_change_roots"} {
			if !withoutRowid(t, db, table) {
				t.Errorf("start %d: %s is still a rowid table", i, table)
			}
		}
		for _, cause := range d.CausedBy {
			if got, err := l.CausedBy(ctx, cause.Kind, cause.ID); err != nil || len(got) != 1 || got[0].ID != d.ID {
				t.Errorf("start %d: CausedBy(%s) = %v, %v", i, cause.ID, got, err)
			}
		}
		if got, err := l.ChangesByRoot(ctx, message.CauseCommit, "sha-1"); err != nil || len(got) != 1 || got[0].ID != c.ID {
			t.Errorf("start %d: ChangesByRoot(sha-1) = %v, %v", i, got, err)
		}
		// New documents are indexed by the triggers put back.
		d2 := d
		d2.ID, d2.CausedBy = "dep-"+string(rune('2'+i)), []message.Cause{{Kind: message.CauseDeployment, ID: "dep-1"}}
		c2 := c
		c2.ID, c2.RootCauses = "cs-"+string(rune('2'+i)), []message.Cause{{Kind: message.CauseCommit, ID: "sha-2"}}
		if err := l.RecordDeployment(ctx, d2); err != nil {
			t.Fatal(err)
		}
		if err := l.RecordChange(ctx, c2); err != nil {
			t.Fatal(err)
		}
		if got, err := l.CausedBy(ctx, message.CauseDeployment, "dep-1"); err != nil || len(got) != i+1 {
			t.Errorf("start %d: CausedBy(dep-1) = %d deployments, %v; want %d", i, len(got), err, i+1)
		}
		if got, err := l.ChangesByRoot(ctx, message.CauseCommit, "sha-2"); err != nil || len(got) != i+1 {
			t.Errorf("start %d: ChangesByRoot(sha-2) = %d changes, %v; want %d", i, len(got), err, i+1)
		}
		db.Close()
	}
}
