package embedded

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
)

func oneConnDB(t *testing.T) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	db.SQL.SetMaxOpenConns(1)
	if err := db.migrate(context.Background(), `CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v TEXT)`); err != nil {
		t.Fatal(err)
	}
	return db
}

// Not parallel: the counters are process-wide.
func TestStatementsPreparedOncePerConnection(t *testing.T) {
	ctx := context.Background()
	db := oneConnDB(t)
	before := Counters()
	for i := range 50 {
		if _, err := db.SQL.ExecContext(ctx, `INSERT INTO t (k, v) VALUES (?, ?)`, i, "v"); err != nil {
			t.Fatal(err)
		}
		var v string
		if err := db.SQL.QueryRowContext(ctx, `SELECT v FROM t WHERE k = ?`, i).Scan(&v); err != nil || v != "v" {
			t.Fatalf("read back %d: %q, %v", i, v, err)
		}
	}
	// In transactions too: the same connection's statements.
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		for i := range 50 {
			if _, err := tx.ExecContext(ctx, `INSERT INTO t (k, v) VALUES (?, ?)`, 100+i, "w"); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got := Counters().Sub(before)
	if got.Prepares != 2 || got.Statements() != 150 {
		t.Fatalf("%d statements, %d prepared: want 150, 2", got.Statements(), got.Prepares)
	}
	var n int
	if err := db.SQL.QueryRowContext(ctx, `SELECT count(*) FROM t WHERE v = 'w'`).Scan(&n); err != nil || n != 50 {
		t.Fatalf("%d rows written in the transaction, %v", n, err)
	}
}

// A query whose rows are open while the same text runs again gets a statement of its own.
func TestPreparedStatementReentered(t *testing.T) {
	ctx := context.Background()
	db := oneConnDB(t)
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		for i := range 3 {
			if _, err := tx.ExecContext(ctx, `INSERT INTO t (k, v) VALUES (?, ?)`, i, "v"); err != nil {
				return err
			}
		}
		const q = `SELECT k FROM t WHERE k >= ? ORDER BY k`
		rows, err := tx.QueryContext(ctx, q, 0)
		if err != nil {
			return err
		}
		defer rows.Close()
		var outer, inner []int
		for rows.Next() {
			var k int
			if err := rows.Scan(&k); err != nil {
				return err
			}
			outer = append(outer, k)
			in, err := tx.QueryContext(ctx, q, k)
			if err != nil {
				return err
			}
			for in.Next() {
				var j int
				if err := in.Scan(&j); err != nil {
					return err
				}
				inner = append(inner, j)
			}
			if err := in.Close(); err != nil {
				return err
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(outer) != 3 || len(inner) != 6 { // 0 1 2 | 1 2 | 2
			t.Errorf("outer %v, inner %v", outer, inner)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A text holding two statements runs both, unprepared.
func TestScriptRunsEveryStatement(t *testing.T) {
	ctx := context.Background()
	db := oneConnDB(t)
	for range 2 {
		if _, err := db.SQL.ExecContext(ctx, `INSERT OR REPLACE INTO t (k, v) VALUES (1, 'a'); INSERT OR REPLACE INTO t (k, v) VALUES (2, 'b');`); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := db.SQL.QueryRowContext(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("%d rows, %v", n, err)
	}
}
