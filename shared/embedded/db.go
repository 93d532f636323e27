// Package embedded holds Karma's single-file local backend: one SQLite file (pure-Go driver
// modernc.org/sqlite, no cgo) that stands in for the AWS services Karma talks to. Every store
// in this package (parameters today; queue, graph store and audit log later) shares one *DB
// and creates its own tables through migrate.
//
// Contract of Open:
//   - The parent directories of path are created (0o755) when missing.
//   - The file runs in WAL mode with busy_timeout=5000 ms, so readers never block the writer.
//   - Every transaction begins IMMEDIATE (_txlock=immediate): a writer takes the write lock at
//     BEGIN instead of upgrading a read lock later, so two concurrent read-then-write
//     transactions (in this process or another one) wait for each other instead of failing
//     with SQLITE_BUSY deadlocks. Code in this package must therefore do its read-modify-write
//     inside one db.SQL.BeginTx.
//   - Foreign keys are enforced.
//   - Temporary files (savepoint journals, sorts) are kept in memory (temp_store=MEMORY).
package embedded

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// BusyTimeoutMillis is how long a connection waits for a lock before SQLITE_BUSY.
const BusyTimeoutMillis = 5000

// DB is one open embedded database file. SQL is safe for concurrent use; stores in this
// package wrap it and never close it: the owner of the DB calls Close.
type DB struct {
	SQL  *sql.DB
	Path string

	paramsOnce sync.Once // CreateParamTables
	paramsErr  error
}

// Open opens (creating if needed) the SQLite file at path and checks that it is usable.
func Open(path string) (*DB, error) {
	if path == "" {
		return nil, errors.New("embedded: open: empty path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("embedded: open %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
		return nil, fmt.Errorf("embedded: open %s: create parent directory: %w", abs, err)
	}
	sqlDB, err := sql.Open(driverName, dsn(abs))
	if err != nil {
		return nil, fmt.Errorf("embedded: open %s: %w", abs, err)
	}
	db := &DB{SQL: sqlDB, Path: abs}
	if err := db.check(context.Background()); err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("embedded: open %s: %w", abs, err)
	}
	return db, nil
}

// dsn builds a file: URI so that paths containing '?', '#' or '%' stay intact. The _pragma
// values run on every new connection of the pool (busy_timeout first, by the driver's rule).
func dsn(abs string) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", BusyTimeoutMillis))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(1)")
	// Savepoints (join.go) journal the pages they change in temporary files: keep those in
	// memory, not on disk.
	q.Add("_pragma", "temp_store(MEMORY)")
	// Copy the write-ahead log into the file every 10,000 pages (~40 MiB) instead of SQLite's
	// 1,000: the pipeline rewrites the same pages (queue, heads, change sets) many times over,
	// and a page is copied once per checkpoint however often it changed — 4 % less CPU per
	// change event (docs/performance.md), for a larger -wal file between checkpoints.
	q.Add("_pragma", "wal_autocheckpoint(10000)")
	q.Set("_txlock", "immediate")
	return "file:" + (&url.URL{Path: filepath.ToSlash(abs)}).EscapedPath() + "?" + q.Encode()
}

// check opens one connection (which applies the pragmas) and verifies WAL took effect.
func (db *DB) check(ctx context.Context) error {
	var mode string
	if err := db.SQL.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return err
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal_mode is %q, want wal", mode)
	}
	return nil
}

// Close closes the underlying pool. It is safe to call on a nil *DB and more than once.
func (db *DB) Close() error {
	if db == nil || db.SQL == nil {
		return nil
	}
	return db.SQL.Close()
}

// migrate runs schema statements in one transaction. Statements must be idempotent
// (CREATE TABLE IF NOT EXISTS, CREATE INDEX IF NOT EXISTS): every store calls migrate from its
// constructor on every start.
func (db *DB) migrate(ctx context.Context, stmts ...string) error {
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		for _, s := range stmts {
			if _, err := tx.ExecContext(ctx, s); err != nil {
				return fmt.Errorf("%w\n%s", err, strings.TrimSpace(s))
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("embedded: migrate: %w", err)
	}
	return nil
}

// inTx runs fn in one transaction (BEGIN IMMEDIATE, see the package comment), committing when
// fn returns nil and rolling back otherwise. fn's error is returned unwrapped. When ctx carries
// an open transaction of db's file (join.go), fn runs in a savepoint of it instead.
func (db *DB) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	if j := db.joinedTx(ctx); j != nil {
		return j.stepErr(ctx, fn)
	}
	tx, err := db.SQL.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// addColumn adds column (with its declaration, e.g. "TEXT NOT NULL DEFAULT ”") to table unless
// the table has it: the migration of a file created by an older version.
func (db *DB) addColumn(ctx context.Context, table, column, decl string) error {
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info(?) WHERE name = ?`, table, column).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		_, err := tx.ExecContext(ctx, `ALTER TABLE `+table+` ADD COLUMN `+column+` `+decl)
		return err
	})
	if err != nil {
		return fmt.Errorf("embedded: migrate: add %s.%s: %w", table, column, err)
	}
	return nil
}

// keyTable is a table of keys (a primary key and a few small columns) that a file made before
// it was declared WITHOUT ROWID holds as a rowid table: a table B-tree of rows and a second
// B-tree, the primary key's index, holding each key again. Every insert and delete then
// writes a page of each to the write-ahead log; WITHOUT ROWID keeps the rows in the key's
// B-tree alone (docs/performance.md, step 34).
type keyTable struct {
	name    string
	create  string   // its CREATE TABLE statement, %s for the table's name, WITHOUT ROWID
	columns string   // its columns, in every file's table
	key     string   // its primary key's columns: rows are copied in its order
	keep    string   // the rows copied: those whose key the new table accepts (NOT NULL)
	drop    []string // triggers to drop first: those on other tables that write to it
	after   []string // then run (its indexes and triggers, each IF NOT EXISTS)
}

// withoutRowid rebuilds t as a WITHOUT ROWID table, rows and all, in one transaction, unless
// it is one already (a file made by this version, or rebuilt before). Statements and binaries
// of every version read and write both forms alike.
func (db *DB) withoutRowid(ctx context.Context, t keyTable) error {
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		var wr int
		if err := tx.QueryRowContext(ctx, `SELECT wr FROM pragma_table_list WHERE schema = 'main' AND name = ?`, t.name).Scan(&wr); err != nil {
			return err
		}
		if wr == 1 {
			return nil
		}
		tmp := t.name + "_without_rowid"
		var stmts []string
		for _, trigger := range t.drop {
			stmts = append(stmts, `DROP TRIGGER IF EXISTS `+trigger)
		}
		stmts = append(stmts, `DROP TABLE IF EXISTS `+tmp, fmt.Sprintf(t.create, tmp),
			`INSERT INTO `+tmp+` (`+t.columns+`) SELECT `+t.columns+` FROM `+t.name+` WHERE `+t.keep+` ORDER BY `+t.key,
			`DROP TABLE `+t.name, `ALTER TABLE `+tmp+` RENAME TO `+t.name)
		for _, s := range append(stmts, t.after...) {
			if _, err := tx.ExecContext(ctx, s); err != nil {
				return fmt.Errorf("%w\n%s", err, strings.TrimSpace(s))
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("embedded: migrate: %s without rowid: %w", t.name, err)
	}
	return nil
}

// affected is whether a statement changed any row.
func affected(res sql.Result, err error) (bool, error) {
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}
