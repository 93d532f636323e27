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

// Not parallel: the statement profile is process-wide.
func TestProfileStatementsTimesEachText(t *testing.T) {
	ctx := context.Background()
	db, err := Open(filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.migrate(ctx, `CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v INTEGER)`); err != nil {
		t.Fatal(err)
	}
	const (
		insert = `INSERT INTO t (k, v) VALUES (?, ?)`
		scan   = `SELECT k, v FROM t ORDER BY k`
		stmt   = `UPDATE t SET v = v + 1 WHERE k = ?`
	)
	if _, err := db.SQL.ExecContext(ctx, insert, "before", 0); err != nil { // not profiled
		t.Fatal(err)
	}
	stop := ProfileStatements()
	err = db.inTx(ctx, func(tx *sql.Tx) error {
		for i, k := range []string{"a", "b", "c"} {
			if _, err := tx.ExecContext(ctx, insert, k, i); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	rows, err := db.SQL.QueryContext(ctx, scan)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		n++
	}
	if err := rows.Close(); err != nil || n != 4 {
		t.Fatalf("%d rows, %v", n, err)
	}
	st, err := db.SQL.PrepareContext(ctx, stmt)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, k := range []string{"a", "b"} {
		if _, err := st.ExecContext(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	got := stop()
	if _, err := db.SQL.ExecContext(ctx, insert, "after", 0); err != nil { // not profiled
		t.Fatal(err)
	}
	by := map[string]StatementTime{}
	for i, s := range got {
		by[s.SQL] = s
		if i > 0 && s.Time > got[i-1].Time {
			t.Errorf("not the longest first: %v after %v", s, got[i-1])
		}
	}
	for _, want := range []StatementTime{{SQL: insert, Runs: 3}, {SQL: scan, Runs: 1, Rows: 4}, {SQL: stmt, Runs: 2}} {
		g := by[want.SQL]
		if g.Runs != want.Runs || g.Rows != want.Rows || g.Time <= 0 {
			t.Errorf("%s: got %d runs, %d rows, %s; want %d runs, %d rows, some time", want.SQL, g.Runs, g.Rows, g.Time, want.Runs, want.Rows)
		}
	}
	if c := by[commitText]; c.Runs != 1 {
		t.Errorf("COMMIT: got %d runs, want 1 (the transaction's)", c.Runs)
	}
	if len(by) != 4 {
		t.Errorf("profiled %d texts, want 4 (insert, scan, update, COMMIT): %v", len(by), got)
	}
}
