package embedded

// The index of unfinished change sets. Each change_sets row keeps its environment and whether
// the change set is done, and change_set_nodes holds (environment, component, change set) for
// every node of every unfinished change set; a change set's rows go when it is done. Create and
// Update keep both in the statement that writes the document (the node rows follow the done
// column by triggers; migrateIndex), so the index never disagrees with the documents.
// change_set_queue holds, for every unfinished change set, what the ordering reads of it — its
// creation time and what it is queued behind — kept from the document by triggers too.
// Unfinished answers from these two: the change sets of an environment still in progress that
// touch given components, the question the resolve stage asks for every change set it creates
// and every one that finishes (changeset.UnfinishedLister), reading no document. Finished answers
// from the done column alone: which of given change sets are done (changeset.FinishedLister),
// the question resolve asks again after creating a change set queued behind others. Commits
// reads an environment's change sets newest first through change_sets_env, of each only its
// commit: what resolve compares a pushed commit with (changeset.CommitLister). What the policies
// diff a change against, the deployment of a component applied last, has a table of its own
// (changesets_applied.go).

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/usekarma/karma/shared/changeset"
)

func (s *ChangeSets) migrateIndex(ctx context.Context) error {
	for _, c := range [][2]string{
		{"env", "TEXT NOT NULL DEFAULT ''"},
		{"done", "INTEGER NOT NULL DEFAULT 0"},
		{"indexed", "INTEGER NOT NULL DEFAULT 0"}, // env, done and the node rows are set
	} {
		if err := s.db.addColumn(ctx, "change_sets", c[0], c[1]); err != nil {
			return err
		}
	}
	err := s.db.migrate(ctx,
		`CREATE INDEX IF NOT EXISTS change_sets_unfinished ON change_sets(env, created_at) WHERE done = 0`,
		`CREATE TABLE IF NOT EXISTS change_set_nodes (
			env       TEXT NOT NULL,
			component TEXT NOT NULL,
			cs_id     TEXT NOT NULL,
			PRIMARY KEY (env, component, cs_id)) WITHOUT ROWID`,
		`CREATE INDEX IF NOT EXISTS change_set_nodes_cs ON change_set_nodes(cs_id)`,
		`CREATE INDEX IF NOT EXISTS change_sets_env ON change_sets(env, created_at DESC, id)`,
		// The node rows follow the done column, kept by the file: a change set created
		// unfinished, or started again, gets a row per node of its document; one that finishes
		// loses them. Create and the update that finishes a change set are then one statement
		// each; what a trigger cannot see (another environment or other nodes for an unfinished
		// change set, which no update makes today) reindex writes. A binary from before these
		// triggers wrote the same rows itself (INSERT OR IGNORE, DELETE): nothing is left over.
		`CREATE TRIGGER IF NOT EXISTS change_set_nodes_created AFTER INSERT ON change_sets WHEN NEW.done = 0 BEGIN
			`+insertNodes+`;
		END`,
		`CREATE TRIGGER IF NOT EXISTS change_set_nodes_started AFTER UPDATE OF done ON change_sets
			WHEN NEW.done = 0 AND OLD.done != 0 BEGIN
			`+insertNodes+`;
		END`,
		`CREATE TRIGGER IF NOT EXISTS change_set_nodes_finished AFTER UPDATE OF done ON change_sets
			WHEN NEW.done != 0 AND OLD.done = 0 BEGIN
			DELETE FROM change_set_nodes WHERE cs_id = NEW.id;
		END`,
		// What the ordering reads of each unfinished change set, in a narrow table of its own:
		// when it was created and what it is queued behind, kept by the file from the document
		// (whichever binary writes it) for as long as the change set is unfinished. Unfinished
		// reads these rows, not the documents: SQLite parses the whole document for one
		// field, and a document takes most of a page to itself.
		`CREATE TABLE IF NOT EXISTS change_set_queue (
			cs_id      TEXT PRIMARY KEY,
			created_at INTEGER NOT NULL,
			behind     TEXT) WITHOUT ROWID`,
		`CREATE TRIGGER IF NOT EXISTS change_set_queue_created AFTER INSERT ON change_sets WHEN NEW.done = 0 BEGIN
			`+insertQueue+`;
		END`,
		`CREATE TRIGGER IF NOT EXISTS change_set_queue_started AFTER UPDATE OF done ON change_sets
			WHEN NEW.done = 0 AND OLD.done != 0 BEGIN
			`+insertQueue+`;
		END`,
		`CREATE TRIGGER IF NOT EXISTS change_set_queue_changed AFTER UPDATE OF doc, created_at ON change_sets
			WHEN NEW.done = 0 AND OLD.done = 0 BEGIN
			UPDATE change_set_queue SET created_at = NEW.created_at, behind = json_extract(NEW.doc, '$.queued_behind')
			WHERE cs_id = NEW.id AND (created_at != NEW.created_at OR behind IS NOT json_extract(NEW.doc, '$.queued_behind'));
		END`,
		`CREATE TRIGGER IF NOT EXISTS change_set_queue_finished AFTER UPDATE OF done ON change_sets
			WHEN NEW.done != 0 AND OLD.done = 0 BEGIN
			DELETE FROM change_set_queue WHERE cs_id = NEW.id;
		END`,
		// The unfinished change sets of a file written before the table.
		`INSERT OR IGNORE INTO change_set_queue (cs_id, created_at, behind)
			SELECT id, created_at, json_extract(doc, '$.queued_behind') FROM change_sets WHERE done = 0`)
	if err != nil {
		return err
	}
	if err := s.indexOld(ctx); err != nil {
		return fmt.Errorf("embedded: migrate: index change sets: %w", err)
	}
	return nil
}

// indexOld indexes the rows written by a version without the index.
func (s *ChangeSets) indexOld(ctx context.Context) error {
	return s.db.lockedTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT id, doc FROM change_sets WHERE indexed = 0`)
		if err != nil {
			return err
		}
		var todo []*changeset.ChangeSet
		for rows.Next() {
			var id, doc string
			if err := rows.Scan(&id, &doc); err != nil {
				rows.Close()
				return err
			}
			var cs changeset.ChangeSet
			if err := json.Unmarshal([]byte(doc), &cs); err != nil {
				rows.Close()
				return fmt.Errorf("change set %s: %w", id, err)
			}
			cs.ID = id
			todo = append(todo, &cs)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		for _, cs := range todo {
			if _, err := tx.ExecContext(ctx, `UPDATE change_sets SET env = ?, done = ?, indexed = 1 WHERE id = ?`, cs.Env, cs.Done(), cs.ID); err != nil {
				return err
			}
			if err := indexAgain(ctx, tx, cs.ID, indexEntry(cs)); err != nil {
				return err
			}
		}
		return nil
	})
}

// entry is what the index holds of a change set.
type entry struct {
	env        string
	done       bool
	components []string // sorted
}

func indexEntry(cs *changeset.ChangeSet) entry {
	return entry{env: cs.Env, done: cs.Done(), components: slices.Sorted(maps.Keys(cs.Nodes))}
}

// insertQueue, in a trigger on change_sets, adds the change_set_queue row of the new document.
const insertQueue = `INSERT OR REPLACE INTO change_set_queue (cs_id, created_at, behind)
	VALUES (NEW.id, NEW.created_at, json_extract(NEW.doc, '$.queued_behind'))`

// insertNodes, in a trigger on change_sets, adds a row per node of the new document.
const insertNodes = `INSERT OR IGNORE INTO change_set_nodes (env, component, cs_id)
	SELECT NEW.env, key, NEW.id FROM json_each(NEW.doc, '$.nodes')`

// reindex brings change_set_nodes from before (nil: no rows) to cs's state, for what the
// triggers above do not: they follow the done column (and a change set's creation), which the
// statement writing the document sets; a change set that stays unfinished with another
// environment or other nodes (fixed once it is created, today) is indexed again here.
func reindex(ctx context.Context, tx *sql.Tx, before *entry, cs *changeset.ChangeSet) error {
	after := indexEntry(cs)
	if before == nil || before.done || after.done || before.env == after.env && slices.Equal(before.components, after.components) {
		return nil
	}
	return indexAgain(ctx, tx, cs.ID, after)
}

// indexAgain replaces the node rows of change set id by e's.
func indexAgain(ctx context.Context, tx *sql.Tx, id string, e entry) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM change_set_nodes WHERE cs_id = ?`, id); err != nil {
		return err
	}
	if e.done || len(e.components) == 0 {
		return nil
	}
	list, err := json.Marshal(e.components)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT OR IGNORE INTO change_set_nodes (env, component, cs_id) SELECT ?, value, ? FROM json_each(?)`,
		e.env, id, string(list))
	return err
}

// Unfinished returns env's change sets that are not done and have a node for one of components
// (every unfinished one of env when components is nil), newest first, from the index: with
// components, from the node rows and change_set_queue alone, with which of components each
// change set has a node for; without, from the documents' queued_behind (SQLite's json_extract).
func (s *ChangeSets) Unfinished(ctx context.Context, env string, components []string) ([]changeset.Queued, error) {
	if components == nil {
		return s.queued(ctx, `SELECT id, created_at, json_extract(doc, '$.queued_behind'), NULL FROM change_sets
			WHERE env = ? AND done = 0 ORDER BY created_at DESC, id`, env)
	}
	list, err := json.Marshal(components)
	if err != nil {
		return nil, err
	}
	return s.queued(ctx, `SELECT q.cs_id, q.created_at, q.behind, json_group_array(n.component)
		FROM change_set_nodes n JOIN change_set_queue q ON q.cs_id = n.cs_id
		WHERE n.env = ? AND n.component IN (SELECT value FROM json_each(?))
		GROUP BY q.cs_id ORDER BY q.created_at DESC, q.cs_id`, env, string(list))
}

// queued runs a query of id, created_at, the queued_behind array (NULL when absent) and the
// array of components asked about (NULL when none were).
func (s *ChangeSets) queued(ctx context.Context, query string, args ...any) ([]changeset.Queued, error) {
	rows, err := s.db.conn(ctx).QueryContext(ctx, query, args...)
	if err != nil {
		return nil, transient(fmt.Errorf("embedded: list unfinished change sets: %w", err))
	}
	defer rows.Close()
	var out []changeset.Queued
	for rows.Next() {
		var q changeset.Queued
		var created int64
		var behind, comps sql.NullString
		if err := rows.Scan(&q.ID, &created, &behind, &comps); err != nil {
			return nil, transient(fmt.Errorf("embedded: list unfinished change sets: %w", err))
		}
		q.CreatedAt = time.Unix(0, created).UTC()
		if behind.Valid {
			if err := json.Unmarshal([]byte(behind.String), &q.QueuedBehind); err != nil {
				return nil, fmt.Errorf("embedded: change set %s: queued_behind: %w", q.ID, err)
			}
		}
		if comps.Valid {
			if err := json.Unmarshal([]byte(comps.String), &q.Components); err != nil {
				return nil, fmt.Errorf("embedded: change set %s: its components: %w", q.ID, err)
			}
			slices.Sort(q.Components)
		}
		out = append(out, q)
	}
	if err := rows.Err(); err != nil {
		return nil, transient(fmt.Errorf("embedded: list unfinished change sets: %w", err))
	}
	return out, nil
}

// Finished returns those of ids that are done or not stored, in the order of ids, reading only
// the done column of their rows.
func (s *ChangeSets) Finished(ctx context.Context, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	list, err := json.Marshal(ids)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.conn(ctx).QueryContext(ctx, `SELECT id FROM change_sets WHERE done = 0 AND id IN (SELECT value FROM json_each(?))`, string(list))
	if err != nil {
		return nil, transient(fmt.Errorf("embedded: read whether change sets are done: %w", err))
	}
	defer rows.Close()
	unfinished := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, transient(fmt.Errorf("embedded: read whether change sets are done: %w", err))
		}
		unfinished[id] = true
	}
	if err := rows.Err(); err != nil {
		return nil, transient(fmt.Errorf("embedded: read whether change sets are done: %w", err))
	}
	var out []string
	for _, id := range ids {
		if !unfinished[id] {
			out = append(out, id)
		}
	}
	return out, nil
}

// Commits returns the commits of env's change sets ("" for one without), newest first as List
// orders them, skipping the first offset, at most limit; of each document it reads only the
// commit (SQLite's json_extract).
func (s *ChangeSets) Commits(ctx context.Context, env string, offset, limit int) ([]string, error) {
	rows, err := s.db.conn(ctx).QueryContext(ctx, `SELECT COALESCE(json_extract(doc, '$.commit'), '') FROM change_sets
		WHERE env = ? ORDER BY created_at DESC, id LIMIT ? OFFSET ?`, env, limit, offset)
	if err != nil {
		return nil, transient(fmt.Errorf("embedded: list the commits of %s's change sets: %w", env, err))
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var commit string
		if err := rows.Scan(&commit); err != nil {
			return nil, transient(fmt.Errorf("embedded: list the commits of %s's change sets: %w", env, err))
		}
		out = append(out, commit)
	}
	if err := rows.Err(); err != nil {
		return nil, transient(fmt.Errorf("embedded: list the commits of %s's change sets: %w", env, err))
	}
	return out, nil
}
