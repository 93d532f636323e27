package embedded

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/pipeline"
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

// Seen is the embedded idempotency record (pipeline.Seen).
type Seen struct{ db *DB }

var (
	_ pipeline.Seen    = (*Seen)(nil)
	_ pipeline.Records = (*Seen)(nil)
)

// NewSeen creates the tables when missing.
func NewSeen(ctx context.Context, db *DB) (*Seen, error) {
	if err := db.migrate(ctx, `CREATE TABLE IF NOT EXISTS handled (key TEXT PRIMARY KEY)`,
		`CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, expires INTEGER NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS records (key TEXT PRIMARY KEY, value TEXT NOT NULL)`); err != nil {
		return nil, err
	}
	// The process holding a claim (leases.go).
	if err := db.addColumn(ctx, "claims", "holder", "TEXT NOT NULL DEFAULT ''"); err != nil {
		return nil, err
	}
	return &Seen{db: db}, nil
}

// Claim takes key unless a live claim holds it.
func (s *Seen) Claim(ctx context.Context, key string, lease time.Duration) (bool, error) {
	now := time.Now()
	res, err := s.db.SQL.ExecContext(ctx, `INSERT INTO claims (key, expires, holder) VALUES (?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET expires = excluded.expires, holder = excluded.holder WHERE claims.expires < ?`,
		key, now.Add(lease).UnixNano(), thisHolder(), now.UnixNano())
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// Release drops a claim.
func (s *Seen) Release(ctx context.Context, key string) error {
	_, err := s.db.SQL.ExecContext(ctx, `DELETE FROM claims WHERE key = ?`, key)
	return err
}

// Done reports whether key was marked.
func (s *Seen) Done(ctx context.Context, key string) (bool, error) {
	var one int
	err := s.db.SQL.QueryRowContext(ctx, `SELECT 1 FROM handled WHERE key = ?`, key).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// Mark records key as done and drops its claim, in one transaction.
func (s *Seen) Mark(ctx context.Context, key string) error {
	return s.db.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO handled (key) VALUES (?) ON CONFLICT DO NOTHING`, key); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM claims WHERE key = ?`, key)
		return err
	})
}

// RecordFirst stores value under key unless one is stored, and returns the stored value.
func (s *Seen) RecordFirst(ctx context.Context, key, value string) (string, error) {
	var stored string
	err := s.db.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO records (key, value) VALUES (?, ?) ON CONFLICT DO NOTHING`, key, value); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT value FROM records WHERE key = ?`, key).Scan(&stored)
	})
	return stored, err
}

// Recorded returns the value stored under key, "" when none.
func (s *Seen) Recorded(ctx context.Context, key string) (string, error) {
	var v string
	err := s.db.SQL.QueryRowContext(ctx, `SELECT value FROM records WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return v, err
}
