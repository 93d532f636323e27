package embedded

// AuditLog: audit.Log on the embedded SQLite file.
//
// Contract beyond audit.Log (checked by audittest plus audit_test.go):
//   - Append validates every record before writing any: MessageID and Chain non-empty,
//     OccurredAt set (and within the years 1678..2262, the range of unix nanoseconds), Body
//     empty or valid JSON. OccurredAt is stored, returned and hashed in UTC, so a record read
//     back hashes exactly as it did when appended.
//   - Append is one transaction: records whose MessageID is present (in the log or earlier in
//     the same call) are skipped; the others get Seq, PrevHash and Hash in argument order.
//   - Query's time range is half-open: Since <= OccurredAt < Until. Results are ordered by
//     OccurredAt, chain, Seq; Limit <= 0 means no limit.
//   - Verify walks the chain in Seq order and fails (matching audit.ErrTampered) at the first
//     record whose Seq is not the previous plus one, whose PrevHash is not the previous
//     record's Hash, or whose Hash is not ComputeHash(PrevHash) of its stored fields; the error
//     reads "... chain <chain>: seq <n>: <what>". A chain with no records verifies.

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/usekarma/karma/shared/audit"
)

var _ audit.Log = (*AuditLog)(nil)

// AuditLog is audit.Log on an embedded DB. Safe for concurrent use.
type AuditLog struct{ db *DB }

// NewAuditLog creates the audit table and its indexes if needed.
func NewAuditLog(ctx context.Context, db *DB) (*AuditLog, error) {
	if db == nil || db.SQL == nil {
		return nil, errors.New("embedded audit: NewAuditLog needs a DB")
	}
	err := db.migrate(ctx,
		`CREATE TABLE IF NOT EXISTS audit (
			message_id     TEXT PRIMARY KEY,
			chain          TEXT NOT NULL,
			seq            INTEGER NOT NULL,
			type           TEXT NOT NULL,
			version        INTEGER NOT NULL,
			env            TEXT NOT NULL,
			component      TEXT NOT NULL,
			deployment_id  TEXT NOT NULL,
			correlation_id TEXT NOT NULL,
			causation_id   TEXT NOT NULL,
			actor_kind     TEXT NOT NULL,
			actor          TEXT NOT NULL,
			occurred_at    INTEGER NOT NULL, -- unix nanoseconds
			body           BLOB NOT NULL,
			prev_hash      TEXT NOT NULL,
			hash           TEXT NOT NULL,
			UNIQUE (chain, seq))`,
		`CREATE INDEX IF NOT EXISTS audit_occurred ON audit(occurred_at)`,
		`CREATE INDEX IF NOT EXISTS audit_component ON audit(component, occurred_at)`,
		`CREATE INDEX IF NOT EXISTS audit_deployment ON audit(deployment_id, occurred_at)`,
		`CREATE INDEX IF NOT EXISTS audit_correlation ON audit(correlation_id, occurred_at)`,
		`CREATE INDEX IF NOT EXISTS audit_actor ON audit(actor, occurred_at)`,
	)
	if err != nil {
		return nil, err
	}
	return &AuditLog{db: db}, nil
}

const auditColumns = `message_id, chain, seq, type, version, env, component, deployment_id,
	correlation_id, causation_id, actor_kind, actor, occurred_at, body, prev_hash, hash`

// minTime and maxTime bound the times unix nanoseconds can hold.
var minTime, maxTime = time.Unix(0, math.MinInt64), time.Unix(0, math.MaxInt64)

func validateRecord(r audit.Record) error {
	switch {
	case r.MessageID == "":
		return errors.New("empty MessageID")
	case r.Chain == "":
		return errors.New("empty Chain")
	case r.OccurredAt.IsZero():
		return errors.New("OccurredAt not set")
	case r.OccurredAt.Before(minTime) || r.OccurredAt.After(maxTime):
		return fmt.Errorf("OccurredAt %v out of range", r.OccurredAt)
	case len(r.Body) > 0 && !json.Valid(r.Body):
		return errors.New("Body is not valid JSON")
	}
	return nil
}

// Append adds the records not yet present, chaining each within its chain. Returns how many
// were new.
func (l *AuditLog) Append(ctx context.Context, recs ...audit.Record) (int, error) {
	for i, r := range recs {
		if err := validateRecord(r); err != nil {
			return 0, fmt.Errorf("embedded audit: append: record %d (%q): %w", i, r.MessageID, err)
		}
	}
	if len(recs) == 0 {
		return 0, nil
	}
	added := 0
	err := l.db.lockedTx(ctx, func(tx *sql.Tx) error {
		added = 0
		type tip struct {
			seq  int64
			hash string
		}
		tips := map[string]tip{}
		for _, r := range recs {
			var dup bool
			if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM audit WHERE message_id = ?)`,
				r.MessageID).Scan(&dup); err != nil {
				return err
			} else if dup {
				continue
			}
			last, ok := tips[r.Chain]
			if !ok {
				err := tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit WHERE chain = ?
					ORDER BY seq DESC LIMIT 1`, r.Chain).Scan(&last.seq, &last.hash)
				if err != nil && !errors.Is(err, sql.ErrNoRows) {
					return err
				}
			}
			r.OccurredAt = r.OccurredAt.UTC()
			body := []byte(r.Body)
			if len(body) == 0 {
				r.Body, body = nil, []byte{} // hashed as null, stored as an empty blob
			}
			r.Seq, r.PrevHash = last.seq+1, last.hash
			r.Hash = r.ComputeHash(r.PrevHash)
			if _, err := tx.ExecContext(ctx, `INSERT INTO audit (`+auditColumns+`)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, r.MessageID, r.Chain, r.Seq, r.Type, r.Version, r.Env,
				r.Component, r.DeploymentID, r.CorrelationID, r.CausationID, r.ActorKind, r.Actor,
				r.OccurredAt.UnixNano(), body, r.PrevHash, r.Hash); err != nil {
				return err
			}
			tips[r.Chain] = tip{r.Seq, r.Hash}
			added++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("embedded audit: append: %w", err)
	}
	return added, nil
}

// Query returns the records matching every set field of q, by OccurredAt, chain, Seq.
func (l *AuditLog) Query(ctx context.Context, q audit.Query) ([]audit.Record, error) {
	var where []string
	var args []any
	for _, f := range []struct{ col, val string }{
		{"component", q.Component}, {"deployment_id", q.DeploymentID},
		{"correlation_id", q.Correlation}, {"actor", q.Actor},
	} {
		if f.val != "" {
			where = append(where, f.col+" = ?")
			args = append(args, f.val)
		}
	}
	if !q.Since.IsZero() {
		where = append(where, "occurred_at >= ?")
		args = append(args, clampNanos(q.Since))
	}
	if !q.Until.IsZero() {
		where = append(where, "occurred_at < ?")
		args = append(args, clampNanos(q.Until))
	}
	query := `SELECT ` + auditColumns + ` FROM audit`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	query += ` ORDER BY occurred_at, chain, seq`
	if q.Limit > 0 {
		query += ` LIMIT ?`
		args = append(args, q.Limit)
	}
	out := []audit.Record{}
	err := l.scan(ctx, query, args, func(r audit.Record) error {
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("embedded audit: query: %w", err)
	}
	return out, nil
}

// clampNanos is t in unix nanoseconds, saturated at the int64 range.
func clampNanos(t time.Time) int64 {
	switch {
	case t.Before(minTime):
		return math.MinInt64
	case t.After(maxTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// Verify recomputes chain's hashes in Seq order.
func (l *AuditLog) Verify(ctx context.Context, chain string) error {
	var prev audit.Record // Seq 0, Hash "": what the first record must follow
	err := l.scan(ctx, `SELECT `+auditColumns+` FROM audit WHERE chain = ? ORDER BY seq`, []any{chain},
		func(r audit.Record) error {
			var bad string
			switch {
			case r.Seq != prev.Seq+1:
				r.Seq, bad = prev.Seq+1, "missing"
			case r.PrevHash != prev.Hash:
				bad = "prev_hash is not the previous record's hash"
			case r.Hash != r.ComputeHash(prev.Hash):
				bad = "hash does not match the record's content"
			}
			if bad != "" {
				return fmt.Errorf("%w: chain %s: seq %d: %s", audit.ErrTampered, chain, r.Seq, bad)
			}
			prev = r
			return nil
		})
	if err != nil {
		return fmt.Errorf("embedded audit: verify: %w", err)
	}
	return nil
}

// Chains lists every chain name, sorted.
func (l *AuditLog) Chains(ctx context.Context) ([]string, error) {
	rows, err := l.db.SQL.QueryContext(ctx, `SELECT DISTINCT chain FROM audit ORDER BY chain`)
	if err != nil {
		return nil, fmt.Errorf("embedded audit: chains: %w", err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, fmt.Errorf("embedded audit: chains: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("embedded audit: chains: %w", err)
	}
	return out, nil
}

// scan runs a SELECT of auditColumns and calls fn per record; fn's error stops it.
func (l *AuditLog) scan(ctx context.Context, query string, args []any, fn func(audit.Record) error) error {
	rows, err := l.db.SQL.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var r audit.Record
		var nanos int64
		var body []byte
		if err := rows.Scan(&r.MessageID, &r.Chain, &r.Seq, &r.Type, &r.Version, &r.Env, &r.Component,
			&r.DeploymentID, &r.CorrelationID, &r.CausationID, &r.ActorKind, &r.Actor, &nanos, &body,
			&r.PrevHash, &r.Hash); err != nil {
			return err
		}
		r.OccurredAt = time.Unix(0, nanos).UTC()
		if len(body) > 0 {
			r.Body = body
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return rows.Err()
}
