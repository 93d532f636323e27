package embedded

// AuditLog: audit.Log on the embedded SQLite file.
//
// Tables: audit (one row per record, UNIQUE (chain, seq)) and audit_heads (one row per chain:
// the seq and hash of its last record), written in the same transaction.
//
// Contract beyond audit.Log (checked by audittest plus audit_test.go):
//   - Append validates every record before writing any: MessageID and Chain non-empty,
//     OccurredAt set (and within the years 1678..2262, the range of unix nanoseconds), Body
//     empty or valid JSON. OccurredAt is stored, returned and hashed in UTC, so a record read
//     back hashes exactly as it did when appended. AppendSealed takes records sealed beforehand
//     (audit.Seal: in that form, their content encoded), so that the transaction only hashes.
//   - Append is one transaction: records whose MessageID is present (in the log or earlier in
//     the same call) are skipped; the others get Seq, PrevHash and Hash in argument order,
//     after the chain's stored head. A chain whose head is missing while it has records, or
//     names an earlier seq than its last record, was altered: Append refuses it with a
//     *audit.TamperError (as the DynamoDB log's conditional head write does) instead of
//     writing over the evidence.
//   - Query's time range is half-open: Since <= OccurredAt < Until. Results are ordered by
//     OccurredAt, chain, Seq; Limit <= 0 means no limit.
//   - Append numbers records in the order it appends them (column appended: 1, 2, ..., under
//     the file's write lock, so a reader's snapshot holds every record up to its last):
//     Horizon is the last, QueryAppended reads in that order. A file written before the
//     column existed numbers its records in rowid order, once.
//   - Verify runs audit.ChainCheck over the chain's rows in seq order and its audit_heads row.
//   - Chains and Heads list every chain that has a head or a record.
//   - A file written before audit_heads existed gets its heads from its records, once, when
//     the table is created.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/usekarma/karma/shared/audit"
)

var _ audit.Log = (*AuditLog)(nil)

// AuditLog is audit.Log on an embedded DB. Safe for concurrent use.
type AuditLog struct{ db *DB }

// NewAuditLog creates the audit tables and indexes if needed.
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
			appended       INTEGER NOT NULL DEFAULT 0, -- append order: 1, 2, ... (audit.Record.Appended)
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
	if err := db.inTx(ctx, createHeads); err != nil {
		return nil, fmt.Errorf("embedded audit: create audit_heads: %w", err)
	}
	if err := db.inTx(ctx, addAppended); err != nil {
		return nil, fmt.Errorf("embedded audit: add the append order: %w", err)
	}
	return &AuditLog{db: db}, nil
}

// createHeads creates audit_heads and, only when it creates it, fills it from the records: a
// head deleted later must stay missing (Verify reports it), not be rebuilt on the next start.
func createHeads(tx *sql.Tx) error {
	var exists bool
	err := tx.QueryRow(`SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_heads')`).Scan(&exists)
	if err != nil || exists {
		return err
	}
	if _, err := tx.Exec(`CREATE TABLE audit_heads (
			chain TEXT PRIMARY KEY,
			seq   INTEGER NOT NULL,
			hash  TEXT NOT NULL) WITHOUT ROWID`); err != nil {
		return err
	}
	_, err = tx.Exec(`INSERT INTO audit_heads (chain, seq, hash)
		SELECT chain, seq, hash FROM audit a WHERE seq = (SELECT MAX(seq) FROM audit WHERE chain = a.chain)`)
	return err
}

// addAppended gives a file written before the append order was kept its column, numbering its
// records in the order SQLite stored them (rowid), once; and the column's index.
func addAppended(tx *sql.Tx) error {
	var has bool
	if err := tx.QueryRow(`SELECT EXISTS (SELECT 1 FROM pragma_table_info('audit') WHERE name = 'appended')`).Scan(&has); err != nil {
		return err
	}
	if !has {
		if _, err := tx.Exec(`ALTER TABLE audit ADD COLUMN appended INTEGER NOT NULL DEFAULT 0`); err != nil {
			return err
		}
		if _, err := tx.Exec(`UPDATE audit SET appended = rowid`); err != nil {
			return err
		}
	}
	_, err := tx.Exec(`CREATE INDEX IF NOT EXISTS audit_appended ON audit(appended)`)
	return err
}

const auditColumns = `message_id, chain, seq, type, version, env, component, deployment_id,
	correlation_id, causation_id, actor_kind, actor, occurred_at, body, prev_hash, hash, appended`

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
	}
	return nil
}

// Append adds the records not yet present, chaining each within its chain. Returns how many
// were new. Whatever the number of records, it runs a fixed handful of statements per chunk of
// appendChunk records: one to find those present, one to read the heads of their chains (and,
// only for chains without a head, one to check they have no records), one multi-row insert and
// one multi-row write of the heads.
func (l *AuditLog) Append(ctx context.Context, recs ...audit.Record) (int, error) {
	sealed := make([]audit.Sealed, len(recs))
	for i, r := range recs {
		if err := validateRecord(r); err != nil {
			return 0, fmt.Errorf("embedded audit: append: record %d (%q): %w", i, r.MessageID, err)
		}
		s, err := audit.Seal(r) // (fails on a Body that is not JSON)
		if err != nil {
			return 0, fmt.Errorf("embedded audit: append: record %d: %w", i, err)
		}
		sealed[i] = s
	}
	return l.AppendSealed(ctx, sealed...)
}

// AppendSealed is Append of records sealed beforehand (audit.Seal): under the file's write lock
// it hashes only what depends on each chain's head. The audit stage seals its records before
// the transaction that appends them.
func (l *AuditLog) AppendSealed(ctx context.Context, recs ...audit.Sealed) (int, error) {
	for i, s := range recs {
		if err := validateRecord(s.Record()); err != nil {
			return 0, fmt.Errorf("embedded audit: append: record %d (%q): %w", i, s.Record().MessageID, err)
		}
	}
	if len(recs) == 0 {
		return 0, nil
	}
	added := 0
	err := l.db.lockedTx(ctx, func(tx *sql.Tx) error {
		added = 0
		for chunk := range slices.Chunk(recs, appendChunk) {
			n, err := appendChunkTx(ctx, tx, chunk)
			if err != nil {
				return err
			}
			added += n
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("embedded audit: append: %w", err)
	}
	return added, nil
}

// appendChunk bounds the records of one multi-row INSERT (17 variables each, SQLite allows
// 32766).
const appendChunk = 500

// appendChunkTx appends recs (at most appendChunk) in tx; see Append.
func appendChunkTx(ctx context.Context, tx *sql.Tx, sealed []audit.Sealed) (int, error) {
	ids := make([]any, len(sealed))
	for i, s := range sealed {
		ids[i] = s.Record().MessageID
	}
	stored, err := presentIDs(ctx, tx, ids)
	if err != nil {
		return 0, err
	}
	// The records to add, in argument order: neither stored nor given earlier in this call.
	todo := make([]audit.Record, 0, len(sealed))
	hashes := make([]audit.Sealed, 0, len(sealed))
	var chains []any
	heads := map[string]audit.Head{}
	for _, s := range sealed {
		r := s.Record()
		if stored[r.MessageID] {
			continue
		}
		stored[r.MessageID] = true
		todo, hashes = append(todo, r), append(hashes, s)
		if _, ok := heads[r.Chain]; !ok {
			heads[r.Chain] = audit.Head{Chain: r.Chain}
			chains = append(chains, r.Chain)
		}
	}
	if len(todo) == 0 {
		return 0, nil
	}
	if err := readHeads(ctx, tx, chains, heads); err != nil {
		return 0, err
	}
	var last int64 // the append order goes on from the last record appended
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(appended), 0) FROM audit`).Scan(&last); err != nil {
		return 0, err
	}
	args := make([]any, 0, 17*len(todo))
	for i := range todo {
		r := &todo[i]
		h := heads[r.Chain]
		body := []byte(r.Body) // sealed: in UTC, and an empty Body is none
		if body == nil {
			body = []byte{} // hashed as null, stored as an empty blob
		}
		r.Seq, r.PrevHash = h.Seq+1, h.Hash
		r.Hash = hashes[i].Hash(r.PrevHash)
		heads[r.Chain] = audit.Head{Chain: r.Chain, Seq: r.Seq, Hash: r.Hash}
		r.Appended = last + int64(i) + 1
		args = append(args, r.MessageID, r.Chain, r.Seq, r.Type, r.Version, r.Env, r.Component, r.DeploymentID,
			r.CorrelationID, r.CausationID, r.ActorKind, r.Actor, r.OccurredAt.UnixNano(), body, r.PrevHash, r.Hash, r.Appended)
	}
	row := "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
	if _, err := tx.ExecContext(ctx, `INSERT INTO audit (`+auditColumns+`) VALUES `+row+strings.Repeat(", "+row, len(todo)-1), args...); err != nil {
		// A failed statement leaves the transaction usable: ask why it failed. A record already
		// stored at a seq given out means a head was rolled back behind its chain's records.
		for _, r := range todo {
			var taken bool
			if tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM audit WHERE chain = ? AND seq = ?)`, r.Chain, r.Seq).Scan(&taken) == nil && taken {
				return 0, &audit.TamperError{Chain: r.Chain, Seq: r.Seq, What: fmt.Sprintf("beyond the chain's head (seq %d); not appending until it is restored", r.Seq-1)}
			}
		}
		return 0, err
	}
	args = args[:0]
	for _, c := range chains {
		h := heads[c.(string)]
		args = append(args, h.Chain, h.Seq, h.Hash)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO audit_heads (chain, seq, hash) VALUES (?, ?, ?)`+strings.Repeat(", (?, ?, ?)", len(chains)-1)+`
		ON CONFLICT (chain) DO UPDATE SET seq = excluded.seq, hash = excluded.hash`, args...); err != nil {
		return 0, err
	}
	return len(todo), nil
}

// presentIDs is which of ids are stored.
func presentIDs(ctx context.Context, tx *sql.Tx, ids []any) (map[string]bool, error) {
	rows, err := tx.QueryContext(ctx, `SELECT message_id FROM audit WHERE message_id IN (`+strings.Repeat(",?", len(ids))[1:]+`)`, ids...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	stored := make(map[string]bool, len(ids))
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		stored[id] = true
	}
	return stored, rows.Err()
}

// readHeads sets heads[chain] to the stored head of each of chains. A chain without one must
// have no records either (see the contract).
func readHeads(ctx context.Context, tx *sql.Tx, chains []any, heads map[string]audit.Head) error {
	list := strings.Repeat(",?", len(chains))[1:]
	rows, err := tx.QueryContext(ctx, `SELECT chain, seq, hash FROM audit_heads WHERE chain IN (`+list+`)`, chains...)
	if err != nil {
		return err
	}
	found := 0
	for rows.Next() {
		var h audit.Head
		if err := rows.Scan(&h.Chain, &h.Seq, &h.Hash); err != nil {
			rows.Close()
			return err
		}
		heads[h.Chain] = h
		found++
	}
	if err := rows.Close(); err != nil {
		return err
	}
	if found == len(chains) {
		return nil
	}
	var headless []any
	for _, c := range chains {
		if heads[c.(string)].Seq == 0 {
			headless = append(headless, c)
		}
	}
	rows, err = tx.QueryContext(ctx, `SELECT chain, MAX(seq) FROM audit WHERE chain IN (`+strings.Repeat(",?", len(headless))[1:]+`) GROUP BY chain`, headless...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var chain string
		var last int64
		if err := rows.Scan(&chain, &last); err != nil {
			return err
		}
		return &audit.TamperError{Chain: chain, Seq: last, What: "the chain's head is missing; not appending until it is restored"}
	}
	return rows.Err()
}
