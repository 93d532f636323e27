package embedded

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/usekarma/karma/shared/changeset"
)

// ChangeSets keeps change sets as JSON documents; Create and Update are each one IMMEDIATE
// transaction, so concurrent updates of one change set serialise. Next to the documents the store
// keeps an index of the unfinished change sets by environment and component
// (changesets_index.go), so that Unfinished reads only the change sets still in progress that
// touch the components asked about.
type ChangeSets struct{ db *DB }

var (
	_ changeset.Store            = (*ChangeSets)(nil)
	_ changeset.UnfinishedLister = (*ChangeSets)(nil)
)

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
	s := &ChangeSets{db: db}
	if err := s.migrateIndex(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Create stores cs unless a change set with its id exists (then created is false).
func (s *ChangeSets) Create(ctx context.Context, cs *changeset.ChangeSet) (bool, error) {
	b, err := json.Marshal(cs)
	if err != nil {
		return false, err
	}
	var created bool
	err = s.db.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO change_sets (id, created_at, doc, env, done, indexed) VALUES (?, ?, ?, ?, ?, 1) ON CONFLICT (id) DO NOTHING`,
			cs.ID, cs.CreatedAt.UnixNano(), string(b), cs.Env, cs.Done())
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		if created = n == 1; !created {
			return nil
		}
		return reindex(ctx, tx, nil, cs)
	})
	if err != nil {
		return false, transient(fmt.Errorf("embedded: create change set %s: %w", cs.ID, err))
	}
	return created, nil
}

// Get returns a change set.
func (s *ChangeSets) Get(ctx context.Context, id string) (*changeset.ChangeSet, error) {
	return getChangeSet(ctx, s.db.conn(ctx), id)
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func getChangeSet(ctx context.Context, q queryer, id string) (*changeset.ChangeSet, error) {
	var doc string
	err := q.QueryRowContext(ctx, `SELECT doc FROM change_sets WHERE id = ?`, id).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("change set %s: %w", id, changeset.ErrNotFound)
	}
	if err != nil {
		return nil, transient(fmt.Errorf("embedded: read change set %s: %w", id, err))
	}
	var cs changeset.ChangeSet
	if err := json.Unmarshal([]byte(doc), &cs); err != nil {
		return nil, fmt.Errorf("embedded: change set %s: %w", id, err)
	}
	return &cs, nil
}

// Update applies fn to the stored change set in one transaction.
func (s *ChangeSets) Update(ctx context.Context, id string, fn func(*changeset.ChangeSet) error) (*changeset.ChangeSet, error) {
	var out *changeset.ChangeSet
	err := s.db.inTx(ctx, func(tx *sql.Tx) error {
		cs, err := getChangeSet(ctx, tx, id)
		if err != nil {
			return err
		}
		before := indexEntry(cs)
		if err := fn(cs); err != nil {
			return err
		}
		b, err := json.Marshal(cs)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE change_sets SET doc = ?, env = ?, done = ?, indexed = 1 WHERE id = ?`, string(b), cs.Env, cs.Done(), id); err != nil {
			return transient(err)
		}
		if err := reindex(ctx, tx, &before, cs); err != nil {
			return transient(err)
		}
		out = cs
		return nil
	})
	return out, err
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
