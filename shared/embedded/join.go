package embedded

// Joined transactions: a stage's own writes take part in the transaction that settles its
// messages (pipeline.Joinable; the exchange side is in queue_outbox.go and queue_settle.go).
//
// While an exchange runs a stage's handler, the handler's context carries the exchange's open
// transaction (withJoined). Every store of this package on the same file then runs its
// statements in that transaction instead of on the pool (db.conn), and its transactions become
// savepoints in it (db.inTx, db.locked): the stage's writes, the outputs it sends, the marks of
// its idempotency keys and the acknowledgement of its messages commit together or not at all.
//
// Rules for code in this package: a store runs every statement through db.conn(ctx) or inside
// db.inTx / db.lockedTx, never on db.SQL directly while it may be called by a stage; otherwise a
// write would wait for the exchange's own write lock (until busy_timeout) and a read would miss
// the stage's uncommitted writes.

import (
	"context"
	"database/sql"
	"strconv"
)

type joinKey struct{}

// joined is the open transaction of one file that a context carries.
type joined struct {
	path  string
	tx    *sql.Tx
	depth int // savepoints open now (names them: a name is reused once released)
}

// withJoined returns ctx carrying tx, the open transaction of the file at path.
func withJoined(ctx context.Context, path string, tx *sql.Tx) (context.Context, *joined) {
	j := &joined{path: path, tx: tx}
	return context.WithValue(ctx, joinKey{}, j), j
}

// joinedTx is the transaction of db's file that ctx carries, nil when none.
func (db *DB) joinedTx(ctx context.Context) *joined {
	j, _ := ctx.Value(joinKey{}).(*joined)
	if j == nil || j.path != db.Path {
		return nil
	}
	return j
}

// conn is what a store runs statements on: the transaction ctx carries for db's file, else the
// pool.
func (db *DB) conn(ctx context.Context) querier {
	if j := db.joinedTx(ctx); j != nil {
		return j.tx
	}
	return db.SQL
}

// querier is what *sql.DB and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// step runs fn inside a savepoint of j's transaction: fn's writes stay when it returns true and
// are undone when it returns false. An error means the savepoint statements failed, which
// leaves the transaction unusable: the caller must not commit it.
func (j *joined) step(ctx context.Context, fn func() bool) error {
	name := "karma_" + strconv.Itoa(j.depth)
	j.depth++
	defer func() { j.depth-- }()
	if _, err := j.tx.ExecContext(ctx, "SAVEPOINT "+name); err != nil {
		return err
	}
	if !fn() {
		if _, err := j.tx.ExecContext(ctx, "ROLLBACK TO "+name); err != nil {
			return err
		}
	}
	_, err := j.tx.ExecContext(ctx, "RELEASE "+name)
	return err
}

// stepErr is step for fn that fails with an error: its writes are undone and its error returned.
func (j *joined) stepErr(ctx context.Context, fn func(*sql.Tx) error) error {
	var ferr error
	if err := j.step(ctx, func() bool { ferr = fn(j.tx); return ferr == nil }); err != nil {
		return err
	}
	return ferr
}

// Atomically runs fn with a context that carries one write transaction of db's file: what every
// store of this package on the file writes through that context commits together when fn
// returns nil, and nothing of it when fn fails (or the process dies first). Inside a joined
// handler (or another Atomically) it is a savepoint of the transaction ctx carries already.
// Writes to other files, or to AWS, are not part of it. For short, local work only: the file's
// write lock is held while fn runs.
func (db *DB) Atomically(ctx context.Context, fn func(ctx context.Context) error) error {
	if j := db.joinedTx(ctx); j != nil {
		return j.stepErr(ctx, func(*sql.Tx) error { return fn(ctx) })
	}
	return db.lockedTx(ctx, func(tx *sql.Tx) error {
		jctx, _ := withJoined(ctx, db.Path, tx)
		return fn(jctx)
	})
}
