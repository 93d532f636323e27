package embedded

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/usekarma/karma/shared/changeset"
)

// ChangeSets keeps change sets as JSON documents. Create is one IMMEDIATE transaction; Update
// is a compare-and-swap on the document (see Update), so concurrent updates of one change set
// never lose one another. Next to the documents the store keeps an index of the unfinished
// change sets by environment and component (changesets_index.go), so that Unfinished reads only
// the change sets still in progress that touch the components asked about, and Finished reads
// only whether given change sets are done.
type ChangeSets struct {
	db   *DB
	docs *recentDocs // the documents last read or written here (changesets_docs.go)
}

var (
	_ changeset.Store              = (*ChangeSets)(nil)
	_ changeset.UnfinishedLister   = (*ChangeSets)(nil)
	_ changeset.FinishedLister     = (*ChangeSets)(nil)
	_ changeset.CommitLister       = (*ChangeSets)(nil)
	_ changeset.AppliedReader      = (*ChangeSets)(nil)
	_ changeset.AppliedBatchReader = (*ChangeSets)(nil)
	_ changeset.Serializer         = (*ChangeSets)(nil)
)

// Serialized reports whether ctx carries a transaction of the store's file (join.go): a joined
// stage's, begun IMMEDIATE, so no other writer commits until it ends.
func (s *ChangeSets) Serialized(ctx context.Context) bool { return s.db.joinedTx(ctx) != nil }

// NewChangeSets creates the tables when missing, and indexes change sets written by a version
// that kept no index.
func NewChangeSets(ctx context.Context, db *DB) (*ChangeSets, error) {
	err := db.migrate(ctx, `CREATE TABLE IF NOT EXISTS change_sets (
		id         TEXT PRIMARY KEY,
		created_at INTEGER NOT NULL,
		doc        TEXT NOT NULL)`)
	if err != nil {
		return nil, err
	}
	s := &ChangeSets{db: db, docs: newRecentDocs(docsBudget)}
	if err := s.migrateIndex(ctx); err != nil {
		return nil, err
	}
	if err := s.migrateApplied(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Create stores cs unless a change set with its id exists (then created is false).
func (s *ChangeSets) Create(ctx context.Context, cs *changeset.ChangeSet) (bool, error) {
	return s.create(ctx, cs, s.db.inTx)
}

// create is Create writing through inTx (the serialized wrapper's takes the file's write lock
// around the transaction, not around encoding the document: serialize.go).
func (s *ChangeSets) create(ctx context.Context, cs *changeset.ChangeSet, inTx func(context.Context, func(*sql.Tx) error) error) (bool, error) {
	b, err := json.Marshal(cs)
	if err != nil {
		return false, err
	}
	var created bool
	err = inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO change_sets (id, created_at, doc, env, done, indexed, applied_kept) VALUES (?, ?, ?, ?, ?, 1, 1) ON CONFLICT (id) DO NOTHING`,
			cs.ID, cs.CreatedAt.UnixNano(), string(b), cs.Env, cs.Done())
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		created = n == 1 // its node rows: the trigger change_set_nodes_created
		if !created {
			return nil
		}
		return pointApplied(ctx, tx, cs, cs.AppliedSince(nil))
	})
	if err != nil {
		return false, transient(fmt.Errorf("embedded: create change set %s: %w", cs.ID, err))
	}
	if created {
		s.docs.put(cs.ID, string(b))
	}
	return created, nil
}

// Get returns a change set.
func (s *ChangeSets) Get(ctx context.Context, id string) (*changeset.ChangeSet, error) {
	doc, err := readDoc(ctx, s.db.conn(ctx), id)
	if err != nil {
		return nil, err
	}
	s.docs.put(id, doc)
	return decodeChangeSet(id, doc)
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// readDoc reads change set id's document.
func readDoc(ctx context.Context, q queryer, id string) (string, error) {
	var doc string
	err := q.QueryRowContext(ctx, `SELECT doc FROM change_sets WHERE id = ?`, id).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("change set %s: %w", id, changeset.ErrNotFound)
	}
	if err != nil {
		return "", transient(fmt.Errorf("embedded: read change set %s: %w", id, err))
	}
	return doc, nil
}

func decodeChangeSet(id, doc string) (*changeset.ChangeSet, error) {
	var cs changeset.ChangeSet
	if err := json.Unmarshal([]byte(doc), &cs); err != nil {
		return nil, fmt.Errorf("embedded: change set %s: %w", id, err)
	}
	return &cs, nil
}

// Update applies fn to the stored change set and stores the result.
//
// It starts from the document this store last read or wrote for id (changesets_docs.go), or
// reads the committed one, without taking the write lock; runs fn on it and encodes the result.
// When that is byte for byte the committed document, fn changed nothing: nothing is written and
// no write transaction is begun (as if the update had run, and written the same bytes, the
// moment the document was read). Otherwise one transaction writes the document on condition
// that the stored one is still the one fn started from, and keeps the index (reindex). If it is
// not (another writer came in between, or the remembered document was stale), fn runs again
// inside that transaction, on the document as it is now, which nobody else can change before
// the commit. So fn may run twice, always deciding on fresh state, as the changeset.Store
// contract allows; it runs outside the transaction and the write lock except on that second
// run. A refusal by fn, or "nothing to change", is only ever decided on the committed document.
func (s *ChangeSets) Update(ctx context.Context, id string, fn func(*changeset.ChangeSet) error) (*changeset.ChangeSet, error) {
	return s.update(ctx, id, fn, s.db.inTx)
}

// update is Update writing through inTx (the serialized wrapper's takes the file's write lock
// around the transaction: serialize.go).
func (s *ChangeSets) update(ctx context.Context, id string, fn func(*changeset.ChangeSet) error, inTx func(context.Context, func(*sql.Tx) error) error) (*changeset.ChangeSet, error) {
	u, err := s.first(ctx, id, fn)
	if err != nil || !u.changed {
		return u.cs, err
	}
	err = inTx(ctx, func(tx *sql.Tx) error {
		swapped, err := u.write(ctx, tx)
		if err != nil || swapped {
			return err
		}
		// Not the stored document any more: again, on the document as it is now.
		doc, err := readDoc(ctx, tx, id)
		if err != nil {
			return err
		}
		if u, err = change(id, doc, fn); err != nil || !u.changed {
			return err
		}
		if swapped, err = u.write(ctx, tx); err == nil && !swapped {
			err = transient(fmt.Errorf("embedded: change set %s changed inside a write transaction", id))
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if u.changed {
		s.docs.put(id, u.after)
	} else {
		s.docs.put(id, u.doc)
	}
	return u.cs, nil
}

// first is fn's first run: on the remembered document when that changes it (the conditional
// write then finds out whether it was current); else on the committed document — read now,
// unless it is the remembered one, on which fn already ran.
func (s *ChangeSets) first(ctx context.Context, id string, fn func(*changeset.ChangeSet) error) (rewrite, error) {
	known, ok := s.docs.get(id)
	var u rewrite
	var err error
	if ok {
		if u, err = change(id, known, fn); err == nil && u.changed {
			return u, nil
		}
	}
	doc, rerr := readDoc(ctx, s.db.conn(ctx), id)
	if rerr != nil {
		return rewrite{}, rerr
	}
	s.docs.put(id, doc)
	if ok && doc == known {
		return u, err
	}
	return change(id, doc, fn)
}

// rewrite is fn's result on one document.
type rewrite struct {
	cs      *changeset.ChangeSet
	before  entry    // what the index held of the document read
	doc     string   // the document read
	after   string   // cs encoded
	changed bool     // after differs from doc
	applied []string // the components whose node got an outcome (changesets_applied.go)
}

// change decodes doc (change set id), runs fn on it and encodes the result.
func change(id, doc string, fn func(*changeset.ChangeSet) error) (rewrite, error) {
	cs, err := decodeChangeSet(id, doc)
	if err != nil {
		return rewrite{}, err
	}
	u := rewrite{cs: cs, before: indexEntry(cs), doc: doc}
	had := cs.Applied()
	if err := fn(cs); err != nil {
		return rewrite{}, err
	}
	b, err := json.Marshal(cs)
	if err != nil {
		return rewrite{}, fmt.Errorf("embedded: change set %s: %w", id, err)
	}
	u.after = string(b)
	u.changed = u.after != doc
	if u.changed {
		u.applied = cs.AppliedSince(had)
	}
	return u, nil
}

// write stores u's result if the stored document is still the one u was computed from, and
// keeps the index and the deployments applied last (changesets_applied.go); swapped reports whether it was. It sets env and done only when they change:
// SQLite rewrites the entries of every index on a column the statement sets, changed or not.
func (u *rewrite) write(ctx context.Context, tx *sql.Tx) (swapped bool, err error) {
	// applied_kept: this binary keeps change_set_applied itself (changesets_applied.go).
	query, args := `UPDATE change_sets SET doc = ?, applied_kept = applied_kept + 1`, []any{u.after}
	if done := u.cs.Done(); done != u.before.done {
		query, args = query+`, done = ?`, append(args, done)
	}
	if u.cs.Env != u.before.env {
		query, args = query+`, env = ?`, append(args, u.cs.Env)
	}
	res, err := tx.ExecContext(ctx, query+` WHERE id = ? AND doc = ?`, append(args, u.cs.ID, u.doc)...)
	if err != nil {
		return false, transient(fmt.Errorf("embedded: update change set %s: %w", u.cs.ID, err))
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return false, err
	}
	if err := reindex(ctx, tx, &u.before, u.cs); err != nil {
		return false, transient(fmt.Errorf("embedded: index change set %s: %w", u.cs.ID, err))
	}
	if err := pointApplied(ctx, tx, u.cs, u.applied); err != nil {
		return false, err
	}
	return true, nil
}

// List returns every change set, newest first.
func (s *ChangeSets) List(ctx context.Context) ([]*changeset.ChangeSet, error) {
	return s.list(ctx, `SELECT doc FROM change_sets ORDER BY created_at DESC, id`)
}

func (s *ChangeSets) list(ctx context.Context, query string, args ...any) ([]*changeset.ChangeSet, error) {
	sets, err := queryDocs[changeset.ChangeSet](ctx, s.db.conn(ctx), query, args...)
	if err != nil || len(sets) == 0 {
		return nil, err
	}
	out := make([]*changeset.ChangeSet, len(sets))
	for i := range sets {
		out[i] = &sets[i]
	}
	return out, nil
}
