package embedded

// Reading the audit log: Query, Horizon, QueryAppended, Chains, Heads, RecordAt, Verify.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/usekarma/karma/shared/audit"
)

// Query returns the records matching every set field of q, by OccurredAt, chain, Seq.
func (l *AuditLog) Query(ctx context.Context, q audit.Query) ([]audit.Record, error) {
	where, args := queryWhere(q)
	if q.AppendedUpTo != 0 {
		where = append(where, "(appended <= ? OR appended = 0)")
		args = append(args, q.AppendedUpTo)
	}
	return l.query(ctx, where, args, "occurred_at, chain, seq", q.Limit)
}

// Horizon is the append order of the last record appended: every record up to it is stored.
func (l *AuditLog) Horizon(ctx context.Context) (int64, error) {
	var h int64
	if err := l.db.conn(ctx).QueryRowContext(ctx, `SELECT COALESCE(MAX(appended), 0) FROM audit`).Scan(&h); err != nil {
		return 0, fmt.Errorf("embedded audit: horizon: %w", err)
	}
	return h, nil
}

// QueryAppended returns the records matching q appended after `after`, up to upTo, in append
// order (which no two records share).
func (l *AuditLog) QueryAppended(ctx context.Context, q audit.Query, after audit.AppendPos, upTo int64) ([]audit.Record, error) {
	where, args := queryWhere(q)
	if after.Through {
		where = append(where, "appended > ?")
		args = append(args, after.Appended)
	} else {
		where = append(where, "(appended > ? OR (appended = ? AND (chain > ? OR (chain = ? AND seq > ?))))")
		args = append(args, after.Appended, after.Appended, after.Chain, after.Chain, after.Seq)
	}
	where = append(where, "appended <= ?")
	args = append(args, upTo)
	return l.query(ctx, where, args, "appended, chain, seq", q.Limit)
}

// queryWhere is the WHERE terms of q's fields and time range.
func queryWhere(q audit.Query) ([]string, []any) {
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
	return where, args
}

func (l *AuditLog) query(ctx context.Context, where []string, args []any, order string, limit int) ([]audit.Record, error) {
	query := `SELECT ` + auditColumns + ` FROM audit`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	query += ` ORDER BY ` + order
	if limit > 0 {
		query += ` LIMIT ?`
		args = append(args, limit)
	}
	out := []audit.Record{}
	err := scanAudit(ctx, l.db.conn(ctx), query, args, func(r audit.Record) error {
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

// Verify checks chain's records in seq order, then its stored head (audit.ChainCheck), in one
// read transaction: a consistent snapshot, whatever is appended meanwhile.
func (l *AuditLog) Verify(ctx context.Context, chain string) error {
	tx, err := l.db.SQL.BeginTx(ctx, &sql.TxOptions{ReadOnly: true}) // a deferred BEGIN: no write lock
	if err != nil {
		return fmt.Errorf("embedded audit: verify: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	check := audit.NewChainCheck(chain)
	err = scanAudit(ctx, tx, `SELECT `+auditColumns+` FROM audit WHERE chain = ? ORDER BY seq`, []any{chain},
		func(r audit.Record) error { return check.Next(r.Seq, r) })
	if err == nil {
		var h audit.Head
		switch err = tx.QueryRowContext(ctx, `SELECT chain, seq, hash FROM audit_heads WHERE chain = ?`, chain).
			Scan(&h.Chain, &h.Seq, &h.Hash); {
		case errors.Is(err, sql.ErrNoRows):
			err = check.End(nil)
		case err == nil:
			err = check.End(&h)
		}
	}
	if err != nil {
		return fmt.Errorf("embedded audit: verify: %w", err)
	}
	return nil
}

// headsQuery lists every chain with a head or a record, with its stored head (NULL if none).
const headsQuery = `SELECT c.chain, h.seq, h.hash FROM
	(SELECT chain FROM audit_heads UNION SELECT DISTINCT chain FROM audit) c
	LEFT JOIN audit_heads h ON h.chain = c.chain ORDER BY c.chain`

// Heads lists the stored head of every chain, sorted by chain (Seq 0 where the head is missing).
func (l *AuditLog) Heads(ctx context.Context) ([]audit.Head, error) {
	rows, err := l.db.conn(ctx).QueryContext(ctx, headsQuery)
	if err != nil {
		return nil, fmt.Errorf("embedded audit: heads: %w", err)
	}
	defer rows.Close()
	out := []audit.Head{}
	for rows.Next() {
		var h audit.Head
		var seq sql.NullInt64
		var hash sql.NullString
		if err := rows.Scan(&h.Chain, &seq, &hash); err != nil {
			return nil, fmt.Errorf("embedded audit: heads: %w", err)
		}
		h.Seq, h.Hash = seq.Int64, hash.String
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("embedded audit: heads: %w", err)
	}
	return out, nil
}

// Chains lists every chain name, sorted.
func (l *AuditLog) Chains(ctx context.Context) ([]string, error) {
	heads, err := l.Heads(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(heads))
	for i, h := range heads {
		out[i] = h.Chain
	}
	return out, nil
}

// RecordAt returns the record stored at seq of chain.
func (l *AuditLog) RecordAt(ctx context.Context, chain string, seq int64) (audit.Record, error) {
	var out *audit.Record
	err := scanAudit(ctx, l.db.conn(ctx), `SELECT `+auditColumns+` FROM audit WHERE chain = ? AND seq = ?`, []any{chain, seq},
		func(r audit.Record) error { out = &r; return nil })
	switch {
	case err != nil:
		return audit.Record{}, fmt.Errorf("embedded audit: record %s seq %d: %w", chain, seq, err)
	case out == nil:
		return audit.Record{}, fmt.Errorf("embedded audit: record %s seq %d: %w", chain, seq, audit.ErrNotFound)
	}
	return *out, nil
}

// scanAudit runs a SELECT of auditColumns and calls fn per record; fn's error stops it.
func scanAudit(ctx context.Context, db querier, query string, args []any, fn func(audit.Record) error) error {
	rows, err := db.QueryContext(ctx, query, args...)
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
			&r.PrevHash, &r.Hash, &r.Appended); err != nil {
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
