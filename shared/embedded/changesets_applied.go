package embedded

// The deployment of a component applied last (changeset.AppliedReader). change_set_applied
// holds, for each environment and component some change set applied, the change set applied
// it last: the newest by created_at whose node of it has an outcome, of equal times the
// smallest id (the first List gives, as changeset.LastApplied decides from List). Create and
// the Update that records an outcome (a node's outcome going from none to one) write its rows
// in the transaction writing the document, each only when it names a newer change set than the
// row there; nothing else writes them, so an update recording no outcome costs nothing more.
// An outcome taken away again (a failed deployment retried: cmd/karma/retryplan.go) leaves its
// row, which names the newest change set that ever applied the component: LastApplied, finding
// no outcome on that node, asks the documents instead (newest first), which is then the answer.
// A file from before the table is filled from its documents in the transaction creating it; a
// binary from before it, writing the file since, is followed by triggers (migrateApplied).

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/usekarma/karma/shared/changeset"
)

// upsertApplied writes the rows of the components in the JSON array ?2, applied by change set
// ?4 of env ?1 created at ?3, where no row is or the row's change set is older (ties: the
// smaller id wins).
const upsertApplied = `INSERT INTO change_set_applied (env, component, created_at, cs_id)
	SELECT ?1, value, ?3, ?4 FROM json_each(?2) WHERE true ` + newerApplied

// newerApplied ends an INSERT of change_set_applied rows: a row replaces the one there only
// when its change set is newer (of equal times, the smaller id).
const newerApplied = `ON CONFLICT (env, component) DO UPDATE SET created_at = excluded.created_at, cs_id = excluded.cs_id
	WHERE excluded.created_at > change_set_applied.created_at
		OR (excluded.created_at = change_set_applied.created_at AND excluded.cs_id < change_set_applied.cs_id)`

// migrateApplied creates change_set_applied and, in the same transaction, fills it from the
// documents of a file made before it: the table's existence is the mark that it is complete.
func (s *ChangeSets) migrateApplied(ctx context.Context) error {
	err := s.db.inTx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'change_set_applied'`).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `CREATE TABLE change_set_applied (
			env        TEXT NOT NULL,
			component  TEXT NOT NULL,
			created_at INTEGER NOT NULL,
			cs_id      TEXT NOT NULL,
			PRIMARY KEY (env, component)) WITHOUT ROWID`); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO change_set_applied (env, component, created_at, cs_id)
			SELECT c.env, n.key, c.created_at, c.id FROM change_sets AS c, json_each(c.doc, '$.nodes') AS n
			WHERE json_extract(n.value, '$.outcome') IS NOT NULL
			`+newerApplied)
		return err
	})
	if err != nil {
		return fmt.Errorf("embedded: migrate: the deployments applied last: %w", err)
	}
	// A binary from before the table writes documents without its rows: the file keeps them
	// for it. This binary changes applied_kept with every document it writes (and writes the
	// rows itself); a write leaving it as it was is another binary's, and the triggers point
	// the table at the outcomes of its document (parsing it, which this binary's writes avoid).
	if err := s.db.addColumn(ctx, "change_sets", "applied_kept", "INTEGER NOT NULL DEFAULT 0"); err != nil {
		return err
	}
	return s.db.migrate(ctx,
		`CREATE TRIGGER IF NOT EXISTS change_set_applied_created AFTER INSERT ON change_sets
			WHEN NEW.applied_kept = 0 BEGIN
			`+appliedOfDoc+`;
		END`,
		`CREATE TRIGGER IF NOT EXISTS change_set_applied_changed AFTER UPDATE OF doc ON change_sets
			WHEN NEW.applied_kept IS OLD.applied_kept BEGIN
			`+appliedOfDoc+`;
		END`)
}

// appliedOfDoc, in a trigger on change_sets, points change_set_applied at the nodes of the new
// document that have an outcome, where no newer change set holds them.
const appliedOfDoc = `INSERT INTO change_set_applied (env, component, created_at, cs_id)
	SELECT json_extract(NEW.doc, '$.env'), n.key, NEW.created_at, NEW.id FROM json_each(NEW.doc, '$.nodes') AS n
	WHERE json_extract(n.value, '$.outcome') IS NOT NULL ` + newerApplied

// pointApplied writes, in tx, the rows of components applied by cs (upsertApplied).
func pointApplied(ctx context.Context, tx *sql.Tx, cs *changeset.ChangeSet, components []string) error {
	if len(components) == 0 {
		return nil
	}
	list, err := json.Marshal(components)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, upsertApplied, cs.Env, string(list), cs.CreatedAt.UnixNano(), cs.ID); err != nil {
		return transient(fmt.Errorf("embedded: change set %s: record the deployments it applied: %w", cs.ID, err))
	}
	return nil
}

// LastApplied returns the node of component in env's latest change set that applied it (its
// outcome recorded); nil when none did (changeset.AppliedReader). It reads the component's row
// of change_set_applied and that change set's node; only when that node's outcome was taken
// away since does it read env's documents, newest first.
func (s *ChangeSets) LastApplied(ctx context.Context, env, component string) (*changeset.Node, error) {
	var value sql.NullString
	var outcome sql.NullInt64
	err := s.db.conn(ctx).QueryRowContext(ctx, `SELECT n.value, json_extract(n.value, '$.outcome') IS NOT NULL
		FROM change_set_applied AS a JOIN change_sets AS c ON c.id = a.cs_id, json_each(c.doc, '$.nodes') AS n
		WHERE a.env = ? AND a.component = ? AND n.key = a.component`, env, component).Scan(&value, &outcome)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, nil // no change set applied it
	case err != nil:
		return nil, transient(fmt.Errorf("embedded: the deployment of %s applied last: %w", component, err))
	case outcome.Int64 != 0:
		return decodeNode(component, value.String)
	}
	return s.lastAppliedFromDocs(ctx, env, component)
}

// lastAppliedFromDocs is LastApplied from env's documents, newest first, up to the first whose
// node of component has an outcome: the answer once the newest one's was taken away.
func (s *ChangeSets) lastAppliedFromDocs(ctx context.Context, env, component string) (*changeset.Node, error) {
	// Only the documents holding the component's key are decoded (instr, a plain search).
	key, err := json.Marshal(component)
	if err != nil {
		return nil, err
	}
	var doc string
	err = s.db.conn(ctx).QueryRowContext(ctx, `SELECT n.value FROM change_sets AS c, json_each(c.doc, '$.nodes') AS n
		WHERE c.env = ? AND instr(c.doc, ?) > 0 AND n.key = ? AND json_extract(n.value, '$.outcome') IS NOT NULL
		ORDER BY c.created_at DESC, c.id LIMIT 1`, env, string(key)+":", component).Scan(&doc)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, transient(fmt.Errorf("embedded: the deployment of %s applied last: %w", component, err))
	}
	return decodeNode(component, doc)
}

func decodeNode(component, doc string) (*changeset.Node, error) {
	var n changeset.Node
	if err := json.Unmarshal([]byte(doc), &n); err != nil {
		return nil, fmt.Errorf("embedded: the deployment of %s applied last: %w", component, err)
	}
	return &n, nil
}

// LastAppliedOf is LastApplied of each of components (changeset.AppliedBatchReader): one query
// of their rows, then each change set they name read and decoded once, however many of the
// components it applied.
func (s *ChangeSets) LastAppliedOf(ctx context.Context, env string, components []string) (map[string]*changeset.Node, error) {
	out := map[string]*changeset.Node{}
	list, err := json.Marshal(components)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.conn(ctx).QueryContext(ctx, `SELECT component, cs_id FROM change_set_applied
		WHERE env = ? AND component IN (SELECT value FROM json_each(?))`, env, string(list))
	if err != nil {
		return nil, transient(fmt.Errorf("embedded: the deployments of %s applied last: %w", env, err))
	}
	by := map[string][]string{} // change set id -> the components it applied last
	for rows.Next() {
		var comp, id string
		if err := rows.Scan(&comp, &id); err != nil {
			rows.Close()
			return nil, transient(fmt.Errorf("embedded: the deployments of %s applied last: %w", env, err))
		}
		by[id] = append(by[id], comp)
	}
	if err := rows.Close(); err != nil {
		return nil, transient(fmt.Errorf("embedded: the deployments of %s applied last: %w", env, err))
	}
	var stale []string
	for id, comps := range by {
		doc, err := readDoc(ctx, s.db.conn(ctx), id)
		if err != nil {
			return nil, err
		}
		cs, err := decodeChangeSet(id, doc)
		if err != nil {
			return nil, err
		}
		for _, c := range comps {
			if n := cs.Nodes[c]; n != nil && n.Outcome != nil {
				out[c] = n
			} else {
				stale = append(stale, c) // its outcome taken away since (a retry)
			}
		}
	}
	for _, c := range stale {
		n, err := s.lastAppliedFromDocs(ctx, env, c)
		if err != nil {
			return nil, err
		}
		if n != nil {
			out[c] = n
		}
	}
	return out, nil
}
