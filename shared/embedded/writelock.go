package embedded

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"
)

// MaxLockWait is how long a writer waits for the file's write lock in this process before it
// gives up with an error: far longer than any transaction takes, so that only a write that
// waits for itself (join.go) ends this way, as an error instead of a hang.
var MaxLockWait = 30 * time.Second

// Per-file process-wide state, keyed by the file's absolute path so that every *DB on one file
// shares it: the queue's waker (queue_wake.go), its group commit (queue_groupcommit.go), and a
// write lock that queues this process's writers in Go instead of in SQLite's busy handler (which
// sleeps 1, 2, 5, 10... ms between retries). perFileMu guards the maps.
var (
	perFileMu sync.Mutex
	writeLock = map[string]chan struct{}{}
)

// locked runs fn holding the process-wide write lock of db's file (see writeLock). Only the
// stores of this package that write often use it; others simply rely on busy_timeout. When ctx
// carries an open transaction of the file (join.go), its exchange holds the lock: fn runs at once.
func (db *DB) locked(ctx context.Context, fn func() error) error {
	if db.joinedTx(ctx) != nil {
		return fn()
	}
	perFileMu.Lock()
	lock := writeLock[db.Path]
	if lock == nil {
		lock = make(chan struct{}, 1)
		writeLock[db.Path] = lock
	}
	perFileMu.Unlock()
	select {
	case lock <- struct{}{}:
	default:
		t := time.NewTimer(MaxLockWait)
		defer t.Stop()
		select {
		case lock <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return fmt.Errorf("embedded: waited %s for the write lock of %s: held that long by a stage's transaction (a joined "+
				"handler working that long), or a write inside such a transaction made without its context (embedded/join.go)", MaxLockWait, db.Path)
		}
	}
	held := time.Now() // (Stats.LockHeld: the serial part of the process's work)
	defer func() {
		counts.lockHeld.Add(int64(time.Since(held)))
		<-lock
	}()
	return fn()
}

// lockedTx is inTx holding the process-wide write lock of db's file.
func (db *DB) lockedTx(ctx context.Context, fn func(*sql.Tx) error) error {
	return db.locked(ctx, func() error { return db.inTx(ctx, fn) })
}
