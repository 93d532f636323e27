package embedded

// Statement and transaction counters: every DB of this package opens its file through a thin
// wrapper of the SQLite driver (driverName) that counts what reaches SQLite, so that benchmarks
// can report statements and write transactions per event (Counters), and that runs each
// statement through the connection's prepared statement (stmtcache.go), and that times each
// statement while a benchmark profiles them (stmtprofile.go). Otherwise each method forwards to
// the driver's.

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"strings"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
)

// driverName is the counting wrapper of modernc.org/sqlite's driver.
const driverName = "karma-sqlite"

func init() { sql.Register(driverName, countingDriver{&sqlite.Driver{}}) }

// Stats are counts since the process started, over every embedded DB of the process.
type Stats struct {
	// Execs are statements run for their effect (INSERT, UPDATE, DELETE, DDL, PRAGMA writes).
	Execs int64
	// Queries are statements run for rows (SELECT, and INSERT ... RETURNING).
	Queries int64
	// Prepares are statements prepared explicitly (database/sql Prepare, once per connection).
	Prepares int64
	// WriteTxs are write transactions: every BEGIN (IMMEDIATE, see db.go) plus every Exec
	// outside a transaction, which SQLite runs as a transaction of its own.
	WriteTxs int64
	// Savepoints are transactions nested in another (SAVEPOINT ... RELEASE, join.go): counted
	// here, not as statements, as BEGIN and COMMIT are not.
	Savepoints int64
	// LockHeld is how long this process held the files' write locks (writelock.go): the work
	// no two writers of a file do at once, which bounds the pipeline's throughput however many
	// cores it has (1 / LockHeld per event).
	LockHeld time.Duration
}

// Statements is Execs + Queries.
func (s Stats) Statements() int64 { return s.Execs + s.Queries }

// Sub is s - o, the counts between two snapshots.
func (s Stats) Sub(o Stats) Stats {
	return Stats{Execs: s.Execs - o.Execs, Queries: s.Queries - o.Queries, Prepares: s.Prepares - o.Prepares, WriteTxs: s.WriteTxs - o.WriteTxs,
		Savepoints: s.Savepoints - o.Savepoints, LockHeld: s.LockHeld - o.LockHeld}
}

var counts struct{ execs, queries, prepares, writeTxs, savepoints, lockHeld atomic.Int64 }

// Counters returns the counts so far; take two snapshots and Sub them.
func Counters() Stats {
	return Stats{Execs: counts.execs.Load(), Queries: counts.queries.Load(), Prepares: counts.prepares.Load(), WriteTxs: counts.writeTxs.Load(),
		Savepoints: counts.savepoints.Load(), LockHeld: time.Duration(counts.lockHeld.Load())}
}

type countingDriver struct{ d *sqlite.Driver }

func (d countingDriver) Open(name string) (driver.Conn, error) {
	c, err := d.d.Open(name)
	if err != nil {
		return nil, err
	}
	return &countingConn{c: c}, nil
}

// The interfaces modernc.org/sqlite's connection implements, which database/sql looks for.
type sqliteConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

type countingConn struct {
	c     driver.Conn
	inTx  bool                   // database/sql uses a connection from one goroutine at a time
	stmts map[string]*cachedStmt // prepared once per connection (stmtcache.go)
}

var (
	_ sqliteConn              = (*countingConn)(nil)
	_ driver.StmtExecContext  = (*countingStmt)(nil)
	_ driver.StmtQueryContext = (*countingStmt)(nil)
)

var errUnsupportedByDriverConn = errors.New("embedded: the SQLite connection lacks a method the wrapper forwards")

func (c *countingConn) conn() (sqliteConn, error) {
	s, ok := c.c.(sqliteConn)
	if !ok {
		return nil, errUnsupportedByDriverConn
	}
	return s, nil
}

func (c *countingConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *countingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	s, err := c.conn()
	if err != nil {
		return nil, err
	}
	st, err := s.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	counts.prepares.Add(1)
	return &countingStmt{s: st, c: c, query: query, write: isWrite(query)}, nil
}

func (c *countingConn) Close() error {
	c.closeStatements()
	return c.c.Close()
}

func (c *countingConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *countingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	s, err := c.conn()
	if err != nil {
		return nil, err
	}
	tx, err := s.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	counts.writeTxs.Add(1)
	c.inTx = true
	return &countingTx{tx: tx, c: c}, nil
}

func (c *countingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	s, err := c.conn()
	if err != nil {
		return nil, err
	}
	if isSavepoint(query) {
		if strings.HasPrefix(query, "SAVEPOINT") {
			counts.savepoints.Add(1)
		}
	} else {
		c.count(false, true)
	}
	if start, on := profiling(); on {
		defer profiled(query, start, 1, 0)
	}
	if res, ok, err := c.execPrepared(ctx, query, args); ok || err != nil {
		return res, err
	}
	return s.ExecContext(ctx, query, args)
}

func (c *countingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	s, err := c.conn()
	if err != nil {
		return nil, err
	}
	c.count(true, isWrite(query))
	start, on := profiling()
	if on {
		// The run; each row is timed as it is read (not when the statement is, rarely, run
		// unprepared: only cached statements' rows are wrapped).
		defer profiled(query, start, 1, 0)
	}
	rows, ok, err := c.queryPrepared(ctx, query, args)
	if !ok && err == nil {
		return s.QueryContext(ctx, query, args)
	}
	if cr, isCached := rows.(*cachedRows); isCached && on {
		cr.profiled = query
	}
	return rows, err
}

// count counts one statement; write: it changes the file, so outside a transaction it is one.
func (c *countingConn) count(query, write bool) {
	if query {
		counts.queries.Add(1)
	} else {
		counts.execs.Add(1)
	}
	if write && !c.inTx {
		counts.writeTxs.Add(1)
	}
}

func (c *countingConn) Ping(ctx context.Context) error {
	s, err := c.conn()
	if err != nil {
		return err
	}
	return s.Ping(ctx)
}

func (c *countingConn) ResetSession(ctx context.Context) error {
	s, err := c.conn()
	if err != nil {
		return err
	}
	return s.ResetSession(ctx)
}

func (c *countingConn) IsValid() bool {
	s, err := c.conn()
	return err == nil && s.IsValid()
}

// isSavepoint is whether a statement is one of join.go's SAVEPOINT, RELEASE and ROLLBACK TO.
func isSavepoint(query string) bool {
	return strings.HasPrefix(query, "SAVEPOINT ") || strings.HasPrefix(query, "RELEASE ") || strings.HasPrefix(query, "ROLLBACK TO ")
}

// isWrite is whether a statement's text starts with a keyword that changes the file.
func isWrite(query string) bool {
	q := strings.TrimSpace(query)
	for _, kw := range []string{"INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER"} {
		if len(q) >= len(kw) && strings.EqualFold(q[:len(kw)], kw) {
			return true
		}
	}
	return false
}

type countingTx struct {
	tx driver.Tx
	c  *countingConn
}

func (t *countingTx) Commit() error {
	t.c.inTx = false
	if start, on := profiling(); on {
		defer profiled(commitText, start, 1, 0)
	}
	return t.tx.Commit()
}

func (t *countingTx) Rollback() error {
	t.c.inTx = false
	if start, on := profiling(); on {
		defer profiled("ROLLBACK", start, 1, 0)
	}
	return t.tx.Rollback()
}

type countingStmt struct {
	s     driver.Stmt
	c     *countingConn
	query string
	write bool
}

func (s *countingStmt) Close() error  { return s.s.Close() }
func (s *countingStmt) NumInput() int { return s.s.NumInput() }

func (s *countingStmt) Exec(args []driver.Value) (driver.Result, error) {
	s.c.count(false, true)
	return s.s.Exec(args) //nolint:staticcheck // the driver's deprecated form, for completeness
}

func (s *countingStmt) Query(args []driver.Value) (driver.Rows, error) {
	s.c.count(true, s.write)
	return s.s.Query(args) //nolint:staticcheck // as Exec
}

func (s *countingStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	e, ok := s.s.(driver.StmtExecContext)
	if !ok {
		return nil, errUnsupportedByDriverConn
	}
	s.c.count(false, true)
	if start, on := profiling(); on {
		defer profiled(s.query, start, 1, 0)
	}
	return e.ExecContext(ctx, args)
}

func (s *countingStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	q, ok := s.s.(driver.StmtQueryContext)
	if !ok {
		return nil, errUnsupportedByDriverConn
	}
	s.c.count(true, s.write)
	if start, on := profiling(); on {
		defer profiled(s.query, start, 1, 0) // the run until its first row; its rows are not timed
	}
	return q.QueryContext(ctx, args)
}
