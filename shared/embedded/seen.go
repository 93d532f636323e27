package embedded

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/usekarma/karma/shared/pipeline"
)

// Seen is the embedded idempotency record (pipeline.Seen).
//
// A claim taken by Claim carries a token of its own, which the Seen remembers for its key until
// it releases or marks it: Release and Renew act only on the claim this Seen took. A claim that
// ran out while its handler still worked (renewals failed or came late) and that another process
// took over is that process's: the first holder's Release leaves it, so no third worker can claim
// the key while the second still works, and its Renew reports the claim lost rather than
// extending the other's. A claim taken otherwise (ClaimAll, an exchange) has no token; Release
// and Renew without a remembered token act only on such a claim. Two claimants in one process
// share the Seen, and so what it remembers of a key: the latest claim's token.
type Seen struct {
	db     *DB
	tokens pipeline.ClaimTokens
}

var (
	_ pipeline.Seen      = (*Seen)(nil)
	_ pipeline.Records   = (*Seen)(nil)
	_ pipeline.BatchSeen = (*Seen)(nil)
	_ pipeline.KeyStater = (*Seen)(nil)
)

// NewSeen creates the tables when missing.
func NewSeen(ctx context.Context, db *DB) (*Seen, error) {
	if err := db.migrate(ctx, fmt.Sprintf(handledTable, "IF NOT EXISTS handled"), fmt.Sprintf(claimsTable, "IF NOT EXISTS claims"),
		`CREATE TABLE IF NOT EXISTS records (key TEXT PRIMARY KEY, value TEXT NOT NULL)`); err != nil {
		return nil, err
	}
	// The process holding a claim (leases.go), in a file from before the column.
	if err := db.addColumn(ctx, "claims", "holder", "TEXT NOT NULL DEFAULT ''"); err != nil {
		return nil, err
	}
	// The claim's own token (Seen): '' for one taken by ClaimAll or an exchange.
	if err := db.addColumn(ctx, "claims", "token", "TEXT NOT NULL DEFAULT ''"); err != nil {
		return nil, err
	}
	// Files from before handled and claims were WITHOUT ROWID hold them as rowid tables: each
	// key marked or claimed was written twice (the row and the key's index), in pages of both.
	// The claims' rebuild drops the trigger that deletes from them, and puts it back.
	if err := db.withoutRowid(ctx, keyTable{name: "claims", create: claimsTable, columns: "key, expires, holder, token", key: "key",
		keep: "key IS NOT NULL", drop: []string{"handled_drops_claim"}, after: []string{handledDropsClaim}}); err != nil {
		return nil, err
	}
	if err := db.withoutRowid(ctx, keyTable{name: "handled", create: handledTable, columns: "key", key: "key",
		keep: "key IS NOT NULL", after: []string{handledDropsClaim}}); err != nil {
		return nil, err
	}
	// A key marked done drops its claim in the same statement (an exchange marks a batch's keys
	// in one: queue_settle.go). A binary from before the trigger drops it itself: no row left.
	if err := db.migrate(ctx, handledDropsClaim); err != nil {
		return nil, err
	}
	return &Seen{db: db}, nil
}

// The keys marked done and the claims, %s their names: WITHOUT ROWID, so that a key is written
// once, in its primary key's B-tree (NewSeen rebuilds the tables of older files).
const (
	handledTable = `CREATE TABLE %s (key TEXT PRIMARY KEY) WITHOUT ROWID`
	claimsTable  = `CREATE TABLE %s (key TEXT PRIMARY KEY, expires INTEGER NOT NULL,
		holder TEXT NOT NULL DEFAULT '', token TEXT NOT NULL DEFAULT '') WITHOUT ROWID`
	handledDropsClaim = `CREATE TRIGGER IF NOT EXISTS handled_drops_claim AFTER INSERT ON handled BEGIN
		DELETE FROM claims WHERE key = NEW.key;
	END`
)

// Claim takes key unless a live claim holds it.
func (s *Seen) Claim(ctx context.Context, key string, lease time.Duration) (bool, error) {
	now := time.Now()
	token := pipeline.NewClaimToken()
	res, err := s.db.conn(ctx).ExecContext(ctx, `INSERT INTO claims (key, expires, holder, token) VALUES (?, ?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET expires = excluded.expires, holder = excluded.holder, token = excluded.token WHERE claims.expires < ?`,
		key, now.Add(lease).UnixNano(), thisHolder(), token, now.UnixNano())
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	if err == nil && n == 1 {
		s.tokens.Keep(key, token)
	}
	return n == 1, err
}

// Renew moves the expiry of key's live claim to lease from now (pipeline.Renewer).
func (s *Seen) Renew(ctx context.Context, key string, lease time.Duration) (bool, error) {
	now := time.Now()
	res, err := s.db.conn(ctx).ExecContext(ctx, `UPDATE claims SET expires = ? WHERE key = ? AND expires >= ? AND token = ?`,
		now.Add(lease).UnixNano(), key, now.UnixNano(), s.tokens.Of(key))
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// Release drops the claim this Seen took of key; another's claim stays.
func (s *Seen) Release(ctx context.Context, key string) error {
	token := s.tokens.Of(key)
	_, err := s.db.conn(ctx).ExecContext(ctx, `DELETE FROM claims WHERE key = ? AND token = ?`, key, token)
	if err == nil {
		s.tokens.Forget(key, token)
	}
	return err
}

// Done reports whether key was marked.
func (s *Seen) Done(ctx context.Context, key string) (bool, error) {
	var one int
	err := s.db.conn(ctx).QueryRowContext(ctx, `SELECT 1 FROM handled WHERE key = ?`, key).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// Mark records key as done and drops its claim, in one transaction.
func (s *Seen) Mark(ctx context.Context, key string) error {
	token := s.tokens.Of(key)
	err := s.db.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO handled (key) VALUES (?) ON CONFLICT DO NOTHING`, key); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM claims WHERE key = ?`, key)
		return err
	})
	if err == nil {
		s.tokens.Forget(key, token) // not before: a Mark that failed is followed by a Release
	}
	return err
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
	err := s.db.conn(ctx).QueryRowContext(ctx, `SELECT value FROM records WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return v, err
}

// KeyStates returns which of keys were marked done and which a live claim holds, in one
// statement per insertChunk keys.
func (s *Seen) KeyStates(ctx context.Context, keys []string) (done, held map[string]bool, err error) {
	done, held = map[string]bool{}, map[string]bool{}
	now := time.Now().UnixNano()
	for len(keys) > 0 {
		n := min(len(keys), insertChunk)
		list := strings.Repeat(",?", n)[1:]
		args := append(append(strArgs(keys[:n]), strArgs(keys[:n])...), now)
		rows, err := s.db.conn(ctx).QueryContext(ctx, `SELECT key, 1 FROM handled WHERE key IN (`+list+`)
			UNION ALL SELECT key, 0 FROM claims WHERE key IN (`+list+`) AND expires > ?`, args...)
		if err != nil {
			return nil, nil, err
		}
		for rows.Next() {
			var k string
			var isDone bool
			if err := rows.Scan(&k, &isDone); err != nil {
				rows.Close()
				return nil, nil, err
			}
			if isDone {
				done[k] = true
			} else {
				held[k] = true
			}
		}
		if err := rows.Close(); err != nil {
			return nil, nil, err
		}
		if err := rows.Err(); err != nil {
			return nil, nil, err
		}
		keys = keys[n:]
	}
	return done, held, nil
}

// ClaimAll looks up and claims keys in one transaction: each key is ClaimDone if marked,
// ClaimTaken if claimed now (no live claim held it), else ClaimHeld; a key given twice is
// taken at most once.
func (s *Seen) ClaimAll(ctx context.Context, keys []string, lease time.Duration) ([]pipeline.ClaimState, error) {
	if len(keys) == 0 {
		return []pipeline.ClaimState{}, nil
	}
	var out []pipeline.ClaimState
	err := s.db.lockedTx(ctx, func(tx *sql.Tx) (err error) {
		out, err = claimTx(ctx, tx, keys, lease, time.Now())
		return err
	})
	return out, err
}

// claimTx is ClaimAll's work inside tx.
func claimTx(ctx context.Context, tx *sql.Tx, keys []string, lease time.Duration, now time.Time) ([]pipeline.ClaimState, error) {
	out := make([]pipeline.ClaimState, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	var uniq []string
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		if !seen[k] {
			seen[k] = true
			uniq = append(uniq, k)
		}
	}
	// One statement per insertChunk keys in the common case: a claim is taken for every key
	// not marked and not held by a live claim, and the keys taken are returned; only the keys
	// not taken are looked up again, to tell which are marked.
	taken := map[string]bool{}
	for rest := uniq; len(rest) > 0; {
		n := min(len(rest), insertChunk)
		args := append([]any{now.Add(lease).UnixNano(), thisHolder(), now.UnixNano()}, strArgs(rest[:n])...)
		err := scanKeys(taken)(tx.QueryContext(ctx, `INSERT INTO claims (key, expires, holder)
			SELECT column1, ?1, ?2 FROM (VALUES `+numbered(4, n)+`)
			WHERE NOT EXISTS (SELECT 1 FROM handled WHERE key = column1)
			ON CONFLICT (key) DO UPDATE SET expires = excluded.expires, holder = excluded.holder, token = '' WHERE claims.expires < ?3
			RETURNING key`, args...))
		if err != nil {
			return nil, err
		}
		rest = rest[n:]
	}
	var missed []string
	for _, k := range uniq {
		if !taken[k] {
			missed = append(missed, k)
		}
	}
	done := map[string]bool{}
	for len(missed) > 0 {
		n := min(len(missed), insertChunk)
		err := scanKeys(done)(tx.QueryContext(ctx, `SELECT key FROM handled WHERE key IN (`+strings.Repeat(",?", n)[1:]+`)`,
			strArgs(missed[:n])...))
		if err != nil {
			return nil, err
		}
		missed = missed[n:]
	}
	for i, k := range keys {
		switch {
		case done[k]:
			out[i] = pipeline.ClaimDone
		case taken[k]:
			out[i] = pipeline.ClaimTaken
			delete(taken, k) // a second copy of the key in keys is held by the first
		default:
			out[i] = pipeline.ClaimHeld
		}
	}
	return out, nil
}

// scanKeys returns a function that adds the keys of rows (one column) to set.
func scanKeys(set map[string]bool) func(*sql.Rows, error) error {
	return func(rows *sql.Rows, err error) error {
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var k string
			if err := rows.Scan(&k); err != nil {
				return err
			}
			set[k] = true
		}
		return rows.Err()
	}
}

// numbered is n rows of one numbered parameter each, from ?first: "(?4),(?5)".
func numbered(first, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "(?%d)", first+i)
	}
	return b.String()
}
