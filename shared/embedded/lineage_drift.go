package embedded

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/usekarma/karma/shared/lineage"
)

// Drift events: one row each, keyed by drift id and indexed by component (newest first).

func driftTables(ctx context.Context, db *DB) error {
	return db.migrate(ctx,
		`CREATE TABLE IF NOT EXISTS lineage_drifts (id TEXT PRIMARY KEY, component TEXT NOT NULL, at INTEGER NOT NULL, doc TEXT NOT NULL)`,
		`CREATE INDEX IF NOT EXISTS lineage_drifts_component ON lineage_drifts(component, at)`)
}

// RecordDrift upserts a drift event.
func (l *Lineage) RecordDrift(ctx context.Context, d lineage.Drift) error {
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	_, err = l.db.conn(ctx).ExecContext(ctx, `INSERT INTO lineage_drifts (id, component, at, doc) VALUES (?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET component = excluded.component, at = excluded.at, doc = excluded.doc`,
		d.ID, d.Component, d.At.UnixNano(), string(b))
	return err
}

// Drift returns one drift event.
func (l *Lineage) Drift(ctx context.Context, id string) (lineage.Drift, error) {
	var d lineage.Drift
	var doc string
	err := l.db.conn(ctx).QueryRowContext(ctx, `SELECT doc FROM lineage_drifts WHERE id = ?`, id).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return d, fmt.Errorf("drift %s: %w", id, lineage.ErrNotFound)
	}
	if err != nil {
		return d, err
	}
	return d, json.Unmarshal([]byte(doc), &d)
}

// Drifts lists a component's drift events, newest first.
func (l *Lineage) Drifts(ctx context.Context, component string) ([]lineage.Drift, error) {
	return queryDocs[lineage.Drift](ctx, l.db.conn(ctx), `SELECT doc FROM lineage_drifts WHERE component = ? ORDER BY at DESC, id`, component)
}
