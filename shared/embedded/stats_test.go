package embedded

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"
)

// Not parallel: the counters are process-wide.
func TestCountersCountStatementsAndWriteTransactions(t *testing.T) {
	ctx := context.Background()
	db, err := Open(filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.migrate(ctx, `CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v INTEGER)`); err != nil {
		t.Fatal(err)
	}
	before := Counters()
	// One transaction: two writes and a read.
	err = db.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO t (k, v) VALUES ('a', 1)`); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE t SET v = 2 WHERE k = 'a'`); err != nil {
			return err
		}
		var v int
		return tx.QueryRowContext(ctx, `SELECT v FROM t WHERE k = 'a'`).Scan(&v)
	})
	if err != nil {
		t.Fatal(err)
	}
	// A write outside a transaction is a transaction of its own; a read is not.
	if _, err := db.SQL.ExecContext(ctx, `INSERT INTO t (k, v) VALUES ('b', 1)`); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.SQL.QueryRowContext(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("count %d, %v", n, err)
	}
	// A prepared statement counts once prepared and at every run.
	st, err := db.SQL.PrepareContext(ctx, `INSERT INTO t (k, v) VALUES (?, 3)`)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, k := range []string{"c", "d"} {
		if _, err := st.ExecContext(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	got := Counters().Sub(before)
	got.LockHeld = 0 // (TestCountersTimeTheWriteLock)
	// Prepares: the explicit one, and each of the 5 other texts once (stmtcache.go).
	want := Stats{Execs: 5, Queries: 2, Prepares: 6, WriteTxs: 4}
	if got != want {
		t.Fatalf("counted %+v, want %+v", got, want)
	}
	if got.Statements() != 7 {
		t.Fatalf("statements %d, want 7", got.Statements())
	}
}

// Not parallel: the counters are process-wide.
func TestCountersTimeTheWriteLock(t *testing.T) {
	ctx := context.Background()
	db, err := Open(filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	before := Counters()
	const hold = 20 * time.Millisecond
	err = db.lockedTx(ctx, func(tx *sql.Tx) error {
		time.Sleep(hold)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := Counters().Sub(before).LockHeld; got < hold {
		t.Fatalf("write lock held %v by the counters, want at least %v", got, hold)
	}
}
