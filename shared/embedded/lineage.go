package embedded

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/usekarma/karma/shared/lineage"
)

// Lineage keeps the causal record in four tables: changes and their root causes, deployments
// and their causes (indexed both ways, so "what caused this" and "what did this cause" are one
// indexed lookup each); and the drift events in a fifth (lineage_drift.go).
type Lineage struct{ db *DB }

var _ lineage.Store = (*Lineage)(nil)

// NewLineage creates the tables when missing.
func NewLineage(ctx context.Context, db *DB) (*Lineage, error) {
	err := db.migrate(ctx,
		`CREATE TABLE IF NOT EXISTS lineage_changes (id TEXT PRIMARY KEY, at INTEGER NOT NULL, doc TEXT NOT NULL)`,
		fmt.Sprintf(changeRootsTable, "IF NOT EXISTS lineage_change_roots"),
		`CREATE INDEX IF NOT EXISTS lineage_change_roots_root ON lineage_change_roots(kind, root_id)`,
		`CREATE TABLE IF NOT EXISTS lineage_deployments (id TEXT PRIMARY KEY, component TEXT NOT NULL, at INTEGER NOT NULL, doc TEXT NOT NULL)`,
		`CREATE INDEX IF NOT EXISTS lineage_deployments_component ON lineage_deployments(component, at)`,
		fmt.Sprintf(causesTable, "IF NOT EXISTS lineage_causes"),
		`CREATE INDEX IF NOT EXISTS lineage_causes_cause ON lineage_causes(kind, cause_id)`,
	)
	if err != nil {
		return nil, err
	}
	// The two indexes of causes are kept from the documents by the file itself, so that recording
	// a change or a deployment is one statement: each root cause and each cause of a document
	// written (or rewritten with other causes) is a row. A binary from before these triggers
	// wrote the same rows itself, after the document: they are there already, and it writes
	// nothing more (ON CONFLICT DO NOTHING).
	rootsTriggers := []string{
		causesTrigger("lineage_change_roots_insert", "AFTER INSERT ON lineage_changes",
			"lineage_change_roots (change_id, kind, root_id)", "$.root_causes"),
		causesTrigger("lineage_change_roots_update", "AFTER UPDATE OF doc ON lineage_changes",
			"lineage_change_roots (change_id, kind, root_id)", "$.root_causes"),
	}
	causesTriggers := []string{
		causesTrigger("lineage_causes_insert", "AFTER INSERT ON lineage_deployments",
			"lineage_causes (deployment_id, kind, cause_id)", "$.caused_by"),
		causesTrigger("lineage_causes_update", "AFTER UPDATE OF doc ON lineage_deployments",
			"lineage_causes (deployment_id, kind, cause_id)", "$.caused_by"),
	}
	// Files from before the two indexes of causes were WITHOUT ROWID hold them as rowid tables
	// (each row written twice: the row and its primary key's index). Their rebuilds drop the
	// triggers that write to them and put them back, with the tables' other index.
	if err := db.withoutRowid(ctx, keyTable{name: "lineage_change_roots", create: changeRootsTable, columns: "change_id, kind, root_id", key: "change_id, kind, root_id",
		keep: "1", drop: []string{"lineage_change_roots_insert", "lineage_change_roots_update"},
		after: append([]string{`CREATE INDEX IF NOT EXISTS lineage_change_roots_root ON lineage_change_roots(kind, root_id)`}, rootsTriggers...)}); err != nil {
		return nil, err
	}
	if err := db.withoutRowid(ctx, keyTable{name: "lineage_causes", create: causesTable, columns: "deployment_id, kind, cause_id", key: "deployment_id, kind, cause_id",
		keep: "1", drop: []string{"lineage_causes_insert", "lineage_causes_update"},
		after: append([]string{`CREATE INDEX IF NOT EXISTS lineage_causes_cause ON lineage_causes(kind, cause_id)`}, causesTriggers...)}); err != nil {
		return nil, err
	}
	if err := db.migrate(ctx, append(rootsTriggers, causesTriggers...)...); err != nil {
		return nil, err
	}
	if err := driftTables(ctx, db); err != nil {
		return nil, err
	}
	return &Lineage{db: db}, nil
}

// The two indexes of causes, %s their names: WITHOUT ROWID, so that each row is written once,
// in its primary key's B-tree (NewLineage rebuilds the tables of older files).
const (
	changeRootsTable = `CREATE TABLE %s (change_id TEXT NOT NULL, kind TEXT NOT NULL, root_id TEXT NOT NULL,
		PRIMARY KEY (change_id, kind, root_id)) WITHOUT ROWID`
	causesTable = `CREATE TABLE %s (deployment_id TEXT NOT NULL, kind TEXT NOT NULL, cause_id TEXT NOT NULL,
		PRIMARY KEY (deployment_id, kind, cause_id)) WITHOUT ROWID`
)

// causesTrigger is the trigger named name that, on event, adds a row to table (id, kind, cause)
// for every cause (an object) in the array at path in the new document, unless it is there
// already; none for a null or absent array. An update adds them only when the causes changed
// (not when an outcome is set), or when the document it replaces was not JSON.
func causesTrigger(name, event, table, path string) string {
	when := ""
	if strings.HasPrefix(event, "AFTER UPDATE") {
		when = `WHEN CASE WHEN json_valid(OLD.doc) THEN (NEW.doc -> '` + path + `') IS NOT (OLD.doc -> '` + path + `') ELSE 1 END`
	}
	return `CREATE TRIGGER IF NOT EXISTS ` + name + ` ` + event + ` ` + when + ` BEGIN
		INSERT INTO ` + table + ` SELECT NEW.id, coalesce(c.value ->> 'kind', ''), coalesce(c.value ->> 'id', '')
			FROM json_each(NEW.doc, '` + path + `') AS c WHERE c.type = 'object' ON CONFLICT DO NOTHING;
	END`
}

// RecordChange upserts a change set; its roots follow (causesTrigger).
func (l *Lineage) RecordChange(ctx context.Context, c lineage.Change) error {
	b, _ := json.Marshal(c)
	_, err := l.db.conn(ctx).ExecContext(ctx, `INSERT INTO lineage_changes (id, at, doc) VALUES (?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET doc = excluded.doc`, c.ID, c.At.UnixNano(), string(b))
	return err
}

// RecordDeployment upserts a deployment, in one statement; its causes follow (causesTrigger).
// A record already there that is no longer scheduled keeps its status, detail and changed keys
// (a merge patch, in which an absent key removes it).
func (l *Lineage) RecordDeployment(ctx context.Context, d lineage.Deployment) error {
	b, _ := json.Marshal(d)
	_, err := l.db.conn(ctx).ExecContext(ctx, `INSERT INTO lineage_deployments (id, component, at, doc) VALUES (?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET doc = CASE
			WHEN json_valid(lineage_deployments.doc) AND (lineage_deployments.doc ->> '$.status') IS NOT ?5
			THEN json_patch(excluded.doc, json_object('status', lineage_deployments.doc -> '$.status',
				'detail', lineage_deployments.doc -> '$.detail', 'changed_keys', lineage_deployments.doc -> '$.changed_keys'))
			ELSE excluded.doc END`, d.ID, d.Component, d.At.UnixNano(), string(b), lineage.StatusScheduled)
	return err
}

// SetOutcome records how a deployment ended, in one statement: the status, detail and changed
// keys set in the stored document (an empty detail and no keys are left out, as json.Marshal
// leaves them out).
func (l *Lineage) SetOutcome(ctx context.Context, id, status, detail string, keys []string, at time.Time) error {
	doc := "json_set(doc, '$.status', ?1, '$.detail', ?2, '$.changed_keys', json(?3))"
	var absent []string
	if detail == "" {
		absent = append(absent, "'$.detail'")
	}
	if len(keys) == 0 {
		absent = append(absent, "'$.changed_keys'")
	}
	if len(absent) > 0 {
		doc = "json_remove(" + doc + ", " + strings.Join(absent, ", ") + ")"
	}
	k, _ := json.Marshal(keys)
	ok, err := affected(l.db.conn(ctx).ExecContext(ctx, `UPDATE lineage_deployments SET doc = `+doc+` WHERE id = ?4`,
		status, detail, string(k), id))
	if err == nil && !ok {
		err = fmt.Errorf("deployment %s: %w", id, lineage.ErrNotFound)
	}
	return err
}

func getDeployment(ctx context.Context, q queryer, id string) (lineage.Deployment, error) {
	var d lineage.Deployment
	var doc string
	err := q.QueryRowContext(ctx, `SELECT doc FROM lineage_deployments WHERE id = ?`, id).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return d, fmt.Errorf("deployment %s: %w", id, lineage.ErrNotFound)
	}
	if err != nil {
		return d, err
	}
	return d, json.Unmarshal([]byte(doc), &d)
}

// Change returns a change set.
func (l *Lineage) Change(ctx context.Context, id string) (lineage.Change, error) {
	var c lineage.Change
	var doc string
	err := l.db.conn(ctx).QueryRowContext(ctx, `SELECT doc FROM lineage_changes WHERE id = ?`, id).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("change %s: %w", id, lineage.ErrNotFound)
	}
	if err != nil {
		return c, err
	}
	return c, json.Unmarshal([]byte(doc), &c)
}

// Deployment returns one deployment.
func (l *Lineage) Deployment(ctx context.Context, id string) (lineage.Deployment, error) {
	return getDeployment(ctx, l.db.conn(ctx), id)
}

// Deployments lists a component's deployments, newest first.
func (l *Lineage) Deployments(ctx context.Context, component string) ([]lineage.Deployment, error) {
	return l.deployments(ctx, `SELECT doc FROM lineage_deployments WHERE component = ? ORDER BY at DESC, id`, component)
}

// CausedBy lists deployments caused by (kind, id), oldest first.
func (l *Lineage) CausedBy(ctx context.Context, kind, id string) ([]lineage.Deployment, error) {
	return l.deployments(ctx, `SELECT d.doc FROM lineage_causes c JOIN lineage_deployments d ON d.id = c.deployment_id
		WHERE c.kind = ? AND c.cause_id = ? ORDER BY d.at, d.id`, kind, id)
}

func (l *Lineage) deployments(ctx context.Context, q string, args ...any) ([]lineage.Deployment, error) {
	return queryDocs[lineage.Deployment](ctx, l.db.conn(ctx), q, args...)
}

// ChangesByRoot lists change sets whose root is (kind, id), oldest first.
func (l *Lineage) ChangesByRoot(ctx context.Context, kind, id string) ([]lineage.Change, error) {
	rows, err := l.db.conn(ctx).QueryContext(ctx, `SELECT c.doc FROM lineage_change_roots r JOIN lineage_changes c ON c.id = r.change_id
		WHERE r.kind = ? AND r.root_id = ? ORDER BY c.at, c.id`, kind, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []lineage.Change
	for rows.Next() {
		var doc string
		var c lineage.Change
		if err := rows.Scan(&doc); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(doc), &c); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}
