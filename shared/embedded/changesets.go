package embedded

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/usekarma/karma/shared/changeset"
)

// ChangeSets keeps change sets as JSON documents; Update is one IMMEDIATE transaction, so
// concurrent updates of one change set serialise.
type ChangeSets struct{ db *DB }

var _ changeset.Store = (*ChangeSets)(nil)

// NewChangeSets creates the table when missing.
func NewChangeSets(ctx context.Context, db *DB) (*ChangeSets, error) {
	err := db.migrate(ctx, `CREATE TABLE IF NOT EXISTS change_sets (
		id         TEXT PRIMARY KEY,
		created_at INTEGER NOT NULL,
		doc        TEXT NOT NULL)`)
	if err != nil {
		return nil, err
	}
	return &ChangeSets{db: db}, nil
}

// Create stores cs unless a change set with its id exists (then created is false).
func (s *ChangeSets) Create(ctx context.Context, cs *changeset.ChangeSet) (bool, error) {
	b, err := json.Marshal(cs)
	if err != nil {
		return false, err
	}
	res, err := s.db.SQL.ExecContext(ctx, `INSERT INTO change_sets (id, created_at, doc) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING`,
		cs.ID, cs.CreatedAt.UnixNano(), string(b))
	if err != nil {
		return false, transient(fmt.Errorf("embedded: create change set %s: %w", cs.ID, err))
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// Get returns a change set.
func (s *ChangeSets) Get(ctx context.Context, id string) (*changeset.ChangeSet, error) {
	return getChangeSet(ctx, s.db.SQL, id)
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
		if err := fn(cs); err != nil {
			return err
		}
		b, err := json.Marshal(cs)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE change_sets SET doc = ? WHERE id = ?`, string(b), id); err != nil {
			return transient(err)
		}
		out = cs
		return nil
	})
	return out, err
}

// List returns every change set, newest first.
func (s *ChangeSets) List(ctx context.Context) ([]*changeset.ChangeSet, error) {
	rows, err := s.db.SQL.QueryContext(ctx, `SELECT doc FROM change_sets ORDER BY created_at DESC, id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*changeset.ChangeSet
	for rows.Next() {
		var doc string
		if err := rows.Scan(&doc); err != nil {
			return nil, err
		}
		var cs changeset.ChangeSet
		if err := json.Unmarshal([]byte(doc), &cs); err != nil {
			return nil, err
		}
		out = append(out, &cs)
	}
	return out, rows.Err()
}
