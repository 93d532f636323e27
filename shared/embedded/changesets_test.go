package embedded_test

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/changeset/changesettest"
	"github.com/usekarma/karma/shared/embedded"
)

func TestChangeSetsConformance(t *testing.T) {
	changesettest.Run(t, func(t *testing.T) changeset.Store {
		s, err := embedded.NewChangeSets(t.Context(), queueTestDB(t, ""))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// All subtests on one file, as the suite allows.
func TestChangeSetsConformanceSharedFile(t *testing.T) {
	db := queueTestDB(t, "")
	var once sync.Once
	var s *embedded.ChangeSets
	changesettest.Run(t, func(t *testing.T) changeset.Store {
		once.Do(func() {
			var err error
			if s, err = embedded.NewChangeSets(t.Context(), db); err != nil {
				t.Fatal(err)
			}
		})
		return s
	})
}

func TestChangeSetsUnfinished(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "karma.db")
	db := queueTestDB(t, path)
	s, err := embedded.NewChangeSets(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	node := func(state string, components ...string) map[string]*changeset.Node {
		nodes := map[string]*changeset.Node{"prod/a/b": {Component: "prod/a/b", State: state}}
		for _, c := range components {
			nodes[c] = &changeset.Node{Component: c, State: changeset.Applied}
		}
		return nodes
	}
	for i, c := range []struct {
		id, env, state string
		more           []string
	}{{"cs-1", "prod", changeset.Pending, []string{"prod/x/y"}}, {"cs-2", "prod", changeset.Applied, nil},
		{"cs-3", "dev", changeset.Pending, nil}, {"cs-4", "prod", changeset.Scheduled, []string{"prod/x/z"}}} {
		cs := &changeset.ChangeSet{ID: c.id, Env: c.env, CreatedAt: t0.Add(time.Duration(i) * time.Minute), Nodes: node(c.state, c.more...)}
		if c.id == "cs-4" {
			cs.QueuedBehind = []string{"cs-1", "cs-2"}
		}
		if _, err := s.Create(ctx, cs); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(env string, components ...string) string {
		t.Helper()
		list, err := s.Unfinished(ctx, env, components)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, cs := range list {
			out = append(out, cs.ID)
		}
		return strings.Join(out, " ")
	}
	if got := ids("prod"); got != "cs-4 cs-1" {
		t.Fatalf("unfinished in prod: %q, want newest first %q", got, "cs-4 cs-1")
	}
	// Of each, what the ordering reads: when it was created, what it is queued behind.
	list, err := s.Unfinished(ctx, "prod", []string{"prod/a/b"})
	if err != nil || len(list) != 2 {
		t.Fatalf("unfinished in prod touching prod/a/b: %+v, %v", list, err)
	}
	if q := list[0]; !q.CreatedAt.Equal(t0.Add(3*time.Minute)) || !slices.Equal(q.QueuedBehind, []string{"cs-1", "cs-2"}) {
		t.Errorf("cs-4 listed as %+v; want created at %v, queued behind [cs-1 cs-2]", q, t0.Add(3*time.Minute))
	}
	if q := list[1]; !q.CreatedAt.Equal(t0) || q.QueuedBehind != nil {
		t.Errorf("cs-1 listed as %+v; want created at %v, queued behind nothing", q, t0)
	}
	for _, c := range []struct {
		components []string
		want       string
	}{
		{[]string{"prod/a/b"}, "cs-4 cs-1"},
		{[]string{"prod/x/y"}, "cs-1"},
		{[]string{"prod/x/z", "prod/x/y"}, "cs-4 cs-1"},
		{[]string{"prod/nothing"}, ""},
	} {
		if got := ids("prod", c.components...); got != c.want {
			t.Fatalf("unfinished in prod touching %v: %q, want %q", c.components, got, c.want)
		}
	}
	// With each, which of the components asked about it has a node for.
	list, err = s.Unfinished(ctx, "prod", []string{"prod/x/z", "prod/x/y", "prod/a/b"})
	if err != nil || len(list) != 2 || !slices.Equal(list[0].Components, []string{"prod/a/b", "prod/x/z"}) ||
		!slices.Equal(list[1].Components, []string{"prod/a/b", "prod/x/y"}) {
		t.Fatalf("the components of the unfinished change sets: %+v, %v", list, err)
	}
	if list, err := s.Unfinished(ctx, "prod", nil); err != nil || len(list) != 2 || list[0].Components != nil {
		t.Fatalf("every unfinished change set: %+v, %v; want no components", list, err)
	}
	if list, err := s.Unfinished(ctx, "prod", []string{}); err != nil || len(list) != 0 {
		t.Fatalf("touching no component: %v, %v", list, err)
	}
	if got := ids("dev", "prod/x/y"); got != "" {
		t.Fatalf("unfinished in dev touching prod/x/y: %q", got)
	}
	// Finishing one takes it out; a change set that starts again (a node back to pending) is back.
	if _, err := s.Update(ctx, "cs-4", func(cs *changeset.ChangeSet) error { cs.Nodes["prod/a/b"].State = changeset.Applied; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, "cs-2", func(cs *changeset.ChangeSet) error { cs.Nodes["prod/a/b"].State = changeset.Pending; return nil }); err != nil {
		t.Fatal(err)
	}
	if got := ids("prod"); got != "cs-2 cs-1" {
		t.Fatalf("unfinished in prod after updates: %q, want %q", got, "cs-2 cs-1")
	}
	if got := ids("prod", "prod/a/b"); got != "cs-2 cs-1" {
		t.Fatalf("unfinished in prod touching prod/a/b after updates: %q, want %q", got, "cs-2 cs-1")
	}
	if got := ids("prod", "prod/x/z"); got != "" {
		t.Fatalf("finished cs-4 still indexed: %q", got)
	}
	if got := ids("dev"); got != "cs-3" {
		t.Fatalf("unfinished in dev: %q", got)
	}
	// The node rows themselves follow (triggers on change_sets): none left for the finished
	// cs-4, one again for cs-2.
	for id, want := range map[string]int{"cs-1": 2, "cs-2": 1, "cs-3": 1, "cs-4": 0} {
		var n int
		if err := db.SQL.QueryRowContext(ctx, `SELECT count(*) FROM change_set_nodes WHERE cs_id = ?`, id).Scan(&n); err != nil || n != want {
			t.Errorf("%s has %d node rows (%v), want %d", id, n, err, want)
		}
	}
	// Rows written by a version without the index are indexed when the store opens.
	if _, err := db.SQL.ExecContext(ctx, `UPDATE change_sets SET env = '', done = 1, indexed = 0`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SQL.ExecContext(ctx, `DELETE FROM change_set_nodes`); err != nil {
		t.Fatal(err)
	}
	if s, err = embedded.NewChangeSets(ctx, db); err != nil {
		t.Fatal(err)
	}
	if got := ids("prod"); got != "cs-2 cs-1" {
		t.Fatalf("unfinished in prod after re-indexing: %q, want %q", got, "cs-2 cs-1")
	}
	if got := ids("prod", "prod/x/y"); got != "cs-1" {
		t.Fatalf("unfinished in prod touching prod/x/y after re-indexing: %q, want cs-1", got)
	}
	// The serialized wrapper the stages use reads through the index too.
	wrapped := db.SerializeChangeSets(s)
	list, err = changeset.Unfinished(ctx, wrapped, "dev", []string{"prod/a/b"})
	if err != nil || len(list) != 1 || list[0].ID != "cs-3" {
		t.Fatalf("through the wrapper: %v, %v", list, err)
	}
	// And finds what a component runs now from the file, not by listing every change set.
	if _, ok := wrapped.(changeset.AppliedReader); !ok {
		t.Errorf("the serialized wrapper (%T) does not read a component's last applied deployment through the store", wrapped)
	}
}

// A create is one statement. An update that changes nothing writes nothing: no statement that
// writes, no write transaction; one that changes the document writes it in one transaction. Both through the
// store and through the serialized wrapper the stages use. (Not parallel: the counters are the
// process's.)
func TestChangeSetsUpdateUnchangedWritesNothing(t *testing.T) {
	ctx := t.Context()
	db := queueTestDB(t, "")
	s, err := embedded.NewChangeSets(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	for name, store := range map[string]changeset.Store{"store": s, "serialized": db.SerializeChangeSets(s)} {
		cs := changesettest.Sample("unchanged-"+name, 3)
		cs.QueuedBehind = []string{"earlier"}
		before := embedded.Counters()
		if _, err := store.Create(ctx, cs); err != nil {
			t.Fatal(err)
		}
		if d := embedded.Counters().Sub(before); d.Statements() != 1 || d.WriteTxs != 1 {
			t.Errorf("%s: Create ran %+v; want one statement (the node rows: a trigger) in one write transaction", name, d)
		}
		before = embedded.Counters()
		got, err := store.Update(ctx, cs.ID, func(cs *changeset.ChangeSet) error {
			cs.Release() // nothing finished
			return nil
		})
		if err != nil || len(got.QueuedBehind) != 1 {
			t.Fatalf("%s: Update changing nothing = %+v, %v", name, got, err)
		}
		if d := embedded.Counters().Sub(before); d.Execs != 0 || d.WriteTxs != 0 || d.Queries != 1 {
			t.Errorf("%s: Update changing nothing ran %+v; want the one read, nothing written", name, d)
		}
		before = embedded.Counters()
		if _, err := store.Update(ctx, cs.ID, func(cs *changeset.ChangeSet) error {
			cs.Release("earlier")
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if d := embedded.Counters().Sub(before); d.WriteTxs != 1 || d.Execs == 0 {
			t.Errorf("%s: Update releasing it ran %+v; want one write transaction", name, d)
		}
		if got, err := store.Get(ctx, cs.ID); err != nil || !got.Started || len(got.QueuedBehind) != 0 {
			t.Errorf("%s: after releasing: %+v, %v", name, got, err)
		}
	}
}

// A writer that changes the document between Update's read and its write does not lose its
// change: Update runs fn again on the document as it is then, and stores both.
func TestChangeSetsUpdateRunsAgainAfterALostRace(t *testing.T) {
	ctx := t.Context()
	db := queueTestDB(t, "")
	s, err := embedded.NewChangeSets(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	for name, store := range map[string]changeset.Store{"store": s, "serialized": db.SerializeChangeSets(s)} {
		cs := changesettest.Sample("race-"+name, 3)
		if _, err := store.Create(ctx, cs); err != nil {
			t.Fatal(err)
		}
		var seen []string
		got, err := store.Update(ctx, cs.ID, func(cs *changeset.ChangeSet) error {
			seen = append(seen, cs.ApprovedBy)
			if len(seen) == 1 { // another writer, after this read and before this write
				if _, err := store.Update(ctx, cs.ID, func(cs *changeset.ChangeSet) error {
					cs.Approved, cs.ApprovedBy = true, "other"
					return nil
				}); err != nil {
					return err
				}
			}
			cs.Rejected = "mine"
			return nil
		})
		if err != nil {
			t.Fatalf("%s: Update: %v", name, err)
		}
		if want := []string{"", "other"}; !slices.Equal(seen, want) {
			t.Errorf("%s: fn saw ApprovedBy %q; want %q (run again on the other writer's document)", name, seen, want)
		}
		stored, err := store.Get(ctx, cs.ID)
		if err != nil {
			t.Fatal(err)
		}
		for what, c := range map[string]*changeset.ChangeSet{"returned": got, "stored": stored} {
			if c.ApprovedBy != "other" || !c.Approved || c.Rejected != "mine" {
				t.Errorf("%s: %s change set: approved %v by %q, rejected %q; want both writes", name, what, c.Approved, c.ApprovedBy, c.Rejected)
			}
		}
	}
}

func TestChangeSetsFinishedReadsNoDocument(t *testing.T) {
	ctx := t.Context()
	db := queueTestDB(t, "")
	s, err := embedded.NewChangeSets(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	running, done := changesettest.Sample("running", 2), changesettest.Sample("done", 2)
	for _, n := range done.Nodes {
		n.State = changeset.Applied
	}
	for _, cs := range []*changeset.ChangeSet{running, done} {
		if _, err := s.Create(ctx, cs); err != nil {
			t.Fatal(err)
		}
	}
	before := embedded.Counters()
	got, err := changeset.Finished(ctx, db.SerializeChangeSets(s), []string{"done", "running", "missing"})
	if err != nil || !slices.Equal(got, []string{"done", "missing"}) {
		t.Fatalf("Finished = %v, %v; want [done missing]", got, err)
	}
	if d := embedded.Counters().Sub(before); d.Statements() != 1 {
		t.Errorf("Finished ran %d statements; want one query", d.Statements())
	}
}

// Update starts from the document the store last read or wrote; when another store on the file
// (another process) wrote since, nothing is lost and nothing is decided on the stale document:
// a change is written only onto the document it was made on, and a refusal or "nothing to
// change" is decided on the committed document.
func TestChangeSetsUpdateFromAStaleDocument(t *testing.T) {
	ctx := t.Context()
	db := queueTestDB(t, "")
	mine, err := embedded.NewChangeSets(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	other, err := embedded.NewChangeSets(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	set := func(s changeset.Store, id string, fn func(*changeset.ChangeSet)) {
		t.Helper()
		if _, err := s.Update(ctx, id, func(cs *changeset.ChangeSet) error { fn(cs); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	stored := func(id string) *changeset.ChangeSet {
		t.Helper()
		cs, err := other.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return cs
	}
	for name, store := range map[string]changeset.Store{"store": mine, "serialized": db.SerializeChangeSets(mine)} {
		// A change made on a stale document is made again on the current one.
		cs := changesettest.Sample("stale-change-"+name, 2)
		if _, err := store.Create(ctx, cs); err != nil {
			t.Fatal(err)
		}
		set(other, cs.ID, func(cs *changeset.ChangeSet) { cs.ApprovedBy = "other" })
		runs := 0
		set(store, cs.ID, func(cs *changeset.ChangeSet) { runs++; cs.Rejected = "mine" })
		if got := stored(cs.ID); got.ApprovedBy != "other" || got.Rejected != "mine" || runs != 2 {
			t.Errorf("%s: after a change on a stale document: approved by %q, rejected %q (fn ran %d times); want both writes", name, got.ApprovedBy, got.Rejected, runs)
		}
		// Nothing to change on the stale document, something on the current one.
		cs = changesettest.Sample("stale-noop-"+name, 2)
		if _, err := store.Create(ctx, cs); err != nil {
			t.Fatal(err)
		}
		set(other, cs.ID, func(cs *changeset.ChangeSet) { cs.Rejected = "other" })
		set(store, cs.ID, func(cs *changeset.ChangeSet) { cs.Rejected = "" })
		if got := stored(cs.ID); got.Rejected != "" {
			t.Errorf("%s: an update that changes only the current document was not written: rejected %q", name, got.Rejected)
		}
		// Refused on the stale document, allowed on the current one.
		cs = changesettest.Sample("stale-refusal-"+name, 2)
		if _, err := store.Create(ctx, cs); err != nil {
			t.Fatal(err)
		}
		set(other, cs.ID, func(cs *changeset.ChangeSet) { cs.Approved = true })
		if _, err := store.Update(ctx, cs.ID, func(cs *changeset.ChangeSet) error {
			if !cs.Approved {
				return errors.New("not approved")
			}
			cs.ApprovedBy = "mine"
			return nil
		}); err != nil {
			t.Errorf("%s: refused on a stale document: %v", name, err)
		}
		if got := stored(cs.ID); got.ApprovedBy != "mine" {
			t.Errorf("%s: approved by %q after the update; want mine", name, got.ApprovedBy)
		}
	}
}

// Commits pages through an environment's change sets newest first, one query a page, reading
// only their commits.
func TestChangeSetsCommits(t *testing.T) {
	ctx := t.Context()
	db := queueTestDB(t, "")
	s, err := embedded.NewChangeSets(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, c := range []struct{ id, env, commit string }{{"a", "prod", "c1"}, {"b", "dev", "d1"}, {"c", "prod", ""}, {"d", "prod", "c3"}} {
		cs := changesettest.Sample(c.id, 1)
		cs.Env, cs.Commit, cs.CreatedAt = c.env, c.commit, t0.Add(time.Duration(i)*time.Minute)
		if _, err := s.Create(ctx, cs); err != nil {
			t.Fatal(err)
		}
	}
	for _, store := range []changeset.Store{s, db.SerializeChangeSets(s)} {
		lister := store.(changeset.CommitLister)
		for _, c := range []struct {
			offset, limit int
			want          []string
		}{{0, 10, []string{"c3", "", "c1"}}, {0, 2, []string{"c3", ""}}, {2, 2, []string{"c1"}}, {3, 2, nil}} {
			before := embedded.Counters()
			got, err := lister.Commits(ctx, "prod", c.offset, c.limit)
			if err != nil || !slices.Equal(got, c.want) {
				t.Errorf("%T: Commits(prod, %d, %d) = %q, %v; want %q", store, c.offset, c.limit, got, err, c.want)
			}
			if d := embedded.Counters().Sub(before); d.Statements() != 1 {
				t.Errorf("%T: Commits ran %d statements; want one query", store, d.Statements())
			}
		}
	}
}

// What Unfinished reads of each change set (when it was created, what it is queued behind) is
// kept by the file from the document, whoever writes it: the store, a binary that writes the
// document alone, or one from before the table (whose unfinished change sets are taken over
// when the store opens).
func TestChangeSetsQueueRowsFollowTheDocument(t *testing.T) {
	ctx := t.Context()
	db := queueTestDB(t, "")
	s, err := embedded.NewChangeSets(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, c := range []struct {
		id     string
		behind []string
	}{{"cs-a", nil}, {"cs-b", []string{"cs-a"}}, {"cs-c", []string{"cs-b"}}} {
		cs := &changeset.ChangeSet{ID: c.id, Env: "prod", CreatedAt: t0.Add(time.Duration(i) * time.Minute), QueuedBehind: c.behind,
			Nodes: map[string]*changeset.Node{"prod/a/b": {Component: "prod/a/b", State: changeset.Pending}}}
		if _, err := s.Create(ctx, cs); err != nil {
			t.Fatal(err)
		}
	}
	queued := func(when string) string {
		t.Helper()
		list, err := s.Unfinished(ctx, "prod", []string{"prod/a/b"})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, q := range list {
			out = append(out, fmt.Sprintf("%s@%d%v", q.ID, q.CreatedAt.Sub(t0)/time.Minute, q.QueuedBehind))
		}
		got := strings.Join(out, " ")
		// The same as read from the documents.
		var docs []string
		rows, err := db.SQL.QueryContext(ctx, `SELECT id, created_at, json_extract(doc, '$.queued_behind') FROM change_sets WHERE done = 0 ORDER BY created_at DESC, id`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			var created int64
			var behind sql.NullString
			if err := rows.Scan(&id, &created, &behind); err != nil {
				t.Fatal(err)
			}
			var ids []string
			if behind.Valid {
				_ = json.Unmarshal([]byte(behind.String), &ids)
			}
			docs = append(docs, fmt.Sprintf("%s@%d%v", id, time.Unix(0, created).UTC().Sub(t0)/time.Minute, ids))
		}
		if want := strings.Join(docs, " "); got != want {
			t.Fatalf("%s: Unfinished lists %q; the documents say %q", when, got, want)
		}
		return got
	}
	if got, want := queued("created"), "cs-c@2[cs-b] cs-b@1[cs-a] cs-a@0[]"; got != want {
		t.Fatalf("created: %q, want %q", got, want)
	}
	// Through the store: cs-a finishes, cs-b is released.
	if _, err := s.Update(ctx, "cs-a", func(cs *changeset.ChangeSet) error { cs.Nodes["prod/a/b"].State = changeset.Applied; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, "cs-b", func(cs *changeset.ChangeSet) error { cs.Release("cs-a"); return nil }); err != nil {
		t.Fatal(err)
	}
	if got, want := queued("released"), "cs-c@2[cs-b] cs-b@1[]"; got != want {
		t.Fatalf("released: %q, want %q", got, want)
	}
	// A writer of the document alone (a binary that knows nothing of the table).
	doc := func(id string) map[string]any {
		var d map[string]any
		var raw string
		if err := db.SQL.QueryRowContext(ctx, `SELECT doc FROM change_sets WHERE id = ?`, id).Scan(&raw); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(raw), &d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	d := doc("cs-c")
	d["queued_behind"] = []string{"cs-a", "cs-b"}
	b, _ := json.Marshal(d)
	if _, err := db.SQL.ExecContext(ctx, `UPDATE change_sets SET doc = ? WHERE id = ?`, string(b), "cs-c"); err != nil {
		t.Fatal(err)
	}
	if got, want := queued("written by another binary"), "cs-c@2[cs-a cs-b] cs-b@1[]"; got != want {
		t.Fatalf("written by another binary: %q, want %q", got, want)
	}
	// A file from before the table: its unfinished change sets are taken over on opening.
	for _, st := range []string{`DROP TRIGGER change_set_queue_created`, `DROP TRIGGER change_set_queue_started`,
		`DROP TRIGGER change_set_queue_changed`, `DROP TRIGGER change_set_queue_finished`, `DROP TABLE change_set_queue`} {
		if _, err := db.SQL.ExecContext(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	d["queued_behind"] = []string{"cs-b"}
	b, _ = json.Marshal(d)
	if _, err := db.SQL.ExecContext(ctx, `UPDATE change_sets SET doc = ? WHERE id = ?`, string(b), "cs-c"); err != nil {
		t.Fatal(err)
	}
	if s, err = embedded.NewChangeSets(ctx, db); err != nil {
		t.Fatal(err)
	}
	if got, want := queued("opened again"), "cs-c@2[cs-b] cs-b@1[]"; got != want {
		t.Fatalf("opened again: %q, want %q", got, want)
	}
	// Finished change sets keep no row.
	for _, id := range []string{"cs-b", "cs-c"} {
		if _, err := s.Update(ctx, id, func(cs *changeset.ChangeSet) error { cs.Nodes["prod/a/b"].State = changeset.Applied; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := db.SQL.QueryRowContext(ctx, `SELECT count(*) FROM change_set_queue`).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d rows left (%v) after every change set finished", n, err)
	}
}

// A file written before change_set_applied: the table is filled from its documents when the
// store opens it.
func TestChangeSetsLastAppliedUpgrade(t *testing.T) {
	changesettest.RunUpgrade(t, func(t *testing.T) (changeset.Store, func(t *testing.T) changeset.Store) {
		db := queueTestDB(t, "")
		s, err := embedded.NewChangeSets(t.Context(), db)
		if err != nil {
			t.Fatal(err)
		}
		return s, func(t *testing.T) changeset.Store {
			if _, err := db.SQL.ExecContext(t.Context(), `DROP TABLE change_set_applied`); err != nil {
				t.Fatal(err)
			}
			s, err := embedded.NewChangeSets(t.Context(), db)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
	})
}

// LastApplied reads the document of the change set that applied the component last and no
// other: the environment's later documents, which name the component without applying it, and
// its earlier ones are unreadable here, and it still answers (it read each of them, newest
// first, up to the one that applied it: every document of the environment for a component
// never applied, on every policy check).
func TestChangeSetsLastAppliedReadsOneDocument(t *testing.T) {
	ctx := t.Context()
	db := queueTestDB(t, "")
	s, err := embedded.NewChangeSets(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	const comp, never = "dev/service/component-0000", "dev/service/component-0001"
	var ids []string
	for i := range 5 {
		cs := changesettest.Sample(fmt.Sprintf("one-doc-%d", i), 2)
		cs.CreatedAt = cs.CreatedAt.Add(time.Duration(i) * time.Hour)
		if i == 1 {
			cs.Nodes[comp].Outcome = &changeset.Outcome{RuntimeVersion: 7, Config: json.RawMessage(`{"applied":1}`)}
		}
		if _, err := s.Create(ctx, cs); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, cs.ID)
	}
	for i, id := range ids {
		if i == 1 {
			continue
		}
		// Not JSON, yet holding both components' keys, as the documents do (done and
		// applied_kept, as this binary writes: the triggers would read it otherwise).
		if _, err := db.SQL.ExecContext(ctx, `UPDATE change_sets SET done = 1, applied_kept = applied_kept + 1, doc = ? WHERE id = ?`,
			`{"nodes":{"`+comp+`":{"outcome":`+`,"`+never+`":`, id); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.LastApplied(ctx, "dev", comp)
	if err != nil || got == nil || got.Outcome.RuntimeVersion != 7 {
		t.Errorf("LastApplied(%s) = %+v, %v; want the node of %s", comp, got, err, ids[1])
	}
	if got, err := s.LastApplied(ctx, "dev", never); err != nil || got != nil {
		t.Errorf("LastApplied of a component never applied = %+v, %v; want none, read from no document", got, err)
	}
}

// The components of a change set asked at once (resolve's policy check): their rows in one
// query and each change set they name read once, not a query (and a parse of that document)
// per component. Not parallel: it counts the process's statements.
func TestChangeSetsLastAppliedOfMany(t *testing.T) {
	ctx := t.Context()
	s, err := embedded.NewChangeSets(ctx, queueTestDB(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	cs := changesettest.Sample("batch", 60)
	for _, n := range cs.Nodes {
		n.Outcome = &changeset.Outcome{RuntimeVersion: 4}
	}
	if _, err := s.Create(ctx, cs); err != nil {
		t.Fatal(err)
	}
	comps := append(slices.Sorted(maps.Keys(cs.Nodes)), "dev/service/never")
	before := embedded.Counters()
	got, err := changeset.LastApplied(ctx, s, "dev", comps)
	if err != nil || len(got) != 60 {
		t.Fatalf("LastApplied of %d components: %d found, %v; want 60", len(comps), len(got), err)
	}
	if n := embedded.Counters().Sub(before).Statements(); n > 2 {
		t.Errorf("LastApplied of 61 components, 60 applied by one change set: %d statements, want 2 (the rows, the document)", n)
	}
}

// A binary from before change_set_applied, writing the same file: the outcomes it records (an
// update of the document alone) and the change sets it creates with outcomes are pointed at by
// the file itself, the newest still winning.
func TestChangeSetsLastAppliedWrittenByAnotherBinary(t *testing.T) {
	ctx := t.Context()
	db := queueTestDB(t, "")
	s, err := embedded.NewChangeSets(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	const a, b = "dev/service/component-0000", "dev/service/component-0001"
	older, newer := changesettest.Sample("other-older", 2), changesettest.Sample("other-newer", 2)
	newer.CreatedAt = newer.CreatedAt.Add(time.Hour)
	older.Nodes[a].Outcome = &changeset.Outcome{RuntimeVersion: 1}
	if _, err := s.Create(ctx, older); err != nil {
		t.Fatal(err)
	}
	// Its update of newer's document: an outcome for a.
	newer.Nodes[a].Outcome = &changeset.Outcome{RuntimeVersion: 2}
	doc, _ := json.Marshal(newer)
	newer.Nodes[a].Outcome = nil
	if _, err := s.Create(ctx, newer); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SQL.ExecContext(ctx, `UPDATE change_sets SET doc = ? WHERE id = ?`, string(doc), newer.ID); err != nil {
		t.Fatal(err)
	}
	// Its creation of a change set applying b, older than the one this binary records after.
	made := changesettest.Sample("other-made", 2)
	made.CreatedAt = made.CreatedAt.Add(30 * time.Minute)
	made.Nodes[b].Outcome = &changeset.Outcome{RuntimeVersion: 3}
	doc, _ = json.Marshal(made)
	if _, err := db.SQL.ExecContext(ctx, `INSERT INTO change_sets (id, created_at, doc, env, done, indexed) VALUES (?, ?, ?, ?, 0, 1)`,
		made.ID, made.CreatedAt.UnixNano(), string(doc), made.Env); err != nil {
		t.Fatal(err)
	}
	got, err := changeset.LastApplied(ctx, s, "dev", []string{a, b})
	if err != nil || got[a] == nil || got[a].Outcome.RuntimeVersion != 2 || got[b] == nil || got[b].Outcome.RuntimeVersion != 3 {
		t.Fatalf("LastApplied = %+v, %v; want %s of other-newer, %s of other-made", got, err, a, b)
	}
}
