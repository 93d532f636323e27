package embedded

// Statements prepared once per connection. SQLite parses and plans a statement's text every
// time it is prepared; the stores of this package run the same few dozen statements over and
// over (the queue's receive, claim, acknowledge and mark, the audit append...), and parsing them
// again was about a sixth of the pipeline's CPU, most of it under the write lock. So the driver
// wrapper (stats.go) keeps, per connection, the statements it has run: ExecContext and
// QueryContext look the text up and run the connection's prepared statement (the driver keeps
// the compiled SQLite statement and resets it after each run), preparing it the first time.
// Every store benefits without holding *sql.Stmt values of its own, inside transactions too
// (a transaction runs on one connection).
//
// A statement whose rows are still open (a query iterated while the same text runs again on the
// connection) is not shared: the second run prepares a statement of its own, as without the
// cache. Texts holding several statements are not cached (the driver cannot keep those), nor are
// texts beyond maxCachedStatements per connection (statements built with a variable number of
// placeholders each count once per shape).

import (
	"context"
	"database/sql/driver"
	"reflect"
)

// maxCachedStatements bounds the statements one connection keeps prepared.
const maxCachedStatements = 256

type cachedStmt struct {
	s    driver.Stmt
	busy bool // its rows are open
}

// prepared returns the connection's prepared statement for query, preparing it the first
// time, or nil when it is not to be shared now (busy, full, or a multi-statement text).
func (c *countingConn) prepared(ctx context.Context, query string) (*cachedStmt, error) {
	if cs, ok := c.stmts[query]; ok {
		if cs == nil || cs.busy {
			return nil, nil
		}
		return cs, nil
	}
	if len(c.stmts) >= maxCachedStatements {
		return nil, nil
	}
	if c.stmts == nil {
		c.stmts = map[string]*cachedStmt{}
	}
	if hasTail(query) {
		c.stmts[query] = nil // a script: run unprepared, as the driver does
		return nil, nil
	}
	s, err := c.conn()
	if err != nil {
		return nil, err
	}
	st, err := s.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	counts.prepares.Add(1)
	_, canExec := st.(driver.StmtExecContext)
	_, canQuery := st.(driver.StmtQueryContext)
	if !canExec || !canQuery {
		_ = st.Close()
		c.stmts[query] = nil
		return nil, nil
	}
	cs := &cachedStmt{s: st}
	c.stmts[query] = cs
	return cs, nil
}

// hasTail reports whether query holds more than one statement: a ';' followed by anything but
// blanks (migrations may pass scripts). Literals holding ';' only make this conservative.
func hasTail(query string) bool {
	for i := 0; i < len(query); i++ {
		if query[i] != ';' {
			continue
		}
		for _, r := range query[i+1:] {
			if r != ' ' && r != '\t' && r != '\n' && r != '\r' {
				return true
			}
		}
		return false
	}
	return false
}

// closeStatements closes the connection's prepared statements (the connection is closing).
func (c *countingConn) closeStatements() {
	for _, cs := range c.stmts {
		if cs != nil {
			_ = cs.s.Close()
		}
	}
	c.stmts = nil
}

func (c *countingConn) execPrepared(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, bool, error) {
	cs, err := c.prepared(ctx, query)
	if err != nil || cs == nil {
		return nil, false, err
	}
	res, err := cs.s.(driver.StmtExecContext).ExecContext(ctx, args)
	return res, true, err
}

func (c *countingConn) queryPrepared(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, bool, error) {
	cs, err := c.prepared(ctx, query)
	if err != nil || cs == nil {
		return nil, false, err
	}
	rows, err := cs.s.(driver.StmtQueryContext).QueryContext(ctx, args)
	if err != nil {
		return nil, true, err
	}
	cs.busy = true
	return &cachedRows{Rows: rows, cs: cs}, true, nil
}

// cachedRows frees its statement for the next run when closed.
type cachedRows struct {
	driver.Rows
	cs *cachedStmt
	// profiled is the statement's text while the statement profile times it (stmtprofile.go).
	profiled string
}

func (r *cachedRows) Next(dest []driver.Value) error {
	if r.profiled == "" {
		return r.Rows.Next(dest)
	}
	start, _ := profiling()
	err := r.Rows.Next(dest)
	var rows int64
	if err == nil {
		rows = 1
	}
	profiled(r.profiled, start, 0, rows)
	return err
}

func (r *cachedRows) Close() error {
	err := r.Rows.Close()
	r.cs.busy = false
	return err
}

func (r *cachedRows) ColumnTypeDatabaseTypeName(i int) string {
	if t, ok := r.Rows.(driver.RowsColumnTypeDatabaseTypeName); ok {
		return t.ColumnTypeDatabaseTypeName(i)
	}
	return ""
}

func (r *cachedRows) ColumnTypeScanType(i int) reflect.Type {
	if t, ok := r.Rows.(driver.RowsColumnTypeScanType); ok {
		return t.ColumnTypeScanType(i)
	}
	return reflect.TypeFor[any]()
}
