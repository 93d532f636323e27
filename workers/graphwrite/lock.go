package graphwrite

// The environment's lock around a graph write, for stores whose commit check and write are not
// one transaction. On Neptune a write is many requests (the stored hashes, the changed elements
// in batches, the removals, then the commit): two graph-writes of one environment running at once
// — two pushes in quick succession, handled by two Lambda invocations — would interleave them,
// leave a graph mixing both commits, and record whichever commit finished last, an older one
// possibly, over elements of the newer. The lock is a lease in the idempotency store
// (pipeline.Seen's Claim and Release; DynamoDB in AWS mode), renewed while the write runs.

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/usekarma/karma/shared/pipeline"
)

// Locker takes a lease on a key unless a live one holds it, and gives it back: pipeline.Seen's
// Claim and Release. A Locker that is also a pipeline.Renewer has the lease renewed while the
// write runs.
type Locker interface {
	Claim(ctx context.Context, key string, lease time.Duration) (bool, error)
	Release(ctx context.Context, key string) error
}

// DefaultLockWait is how long a write waits for the environment's lock (Worker.LockWait).
const DefaultLockWait = 30 * time.Second

// lockLease is the lock's lease, renewed every third of it: a worker that dies holding the lock
// holds it that long at most.
var lockLease = 2 * time.Minute

// errLockLost ends a write whose lease could not be renewed: another worker may hold the lock.
var errLockLost = errors.New("graph-write: the environment's lock ran out while its graph was written (not renewed in time): " +
	"the write stopped and is retried; the next write of the environment writes its whole graph again")

// lockKey is the lock of env's graph, in the idempotency store's key space.
func lockKey(env string) string { return "graph-write|lock|" + env }

// lockEnv waits for env's lock (at most LockWait; then the message is put back, InProgress) and
// returns a context for the write, cancelled should the lease be lost, and unlock.
func (w *Worker) lockEnv(ctx context.Context, env string) (context.Context, func(), error) {
	key := lockKey(env)
	wait := w.LockWait
	if wait <= 0 {
		wait = DefaultLockWait
	}
	deadline := time.Now().Add(wait)
	pause := 50 * time.Millisecond
	lease := lockLease
	for {
		ok, err := w.Lock.Claim(ctx, key, lease)
		if err != nil {
			return nil, nil, pipeline.Transient(err)
		}
		if ok {
			break
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, nil, &pipeline.InProgress{Key: key}
		}
		t := time.NewTimer(min(pause, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, nil, pipeline.Transient(ctx.Err())
		case <-t.C:
		}
		pause = min(2*pause, time.Second)
	}
	locked, cancel := context.WithCancelCause(ctx)
	stop := func() {}
	var lost atomic.Bool
	if r, ok := w.Lock.(pipeline.Renewer); ok {
		stop = pipeline.Every(lease/3, func() {
			live, err := r.Renew(locked, key, lease)
			if err == nil && !live {
				lost.Store(true)
				cancel(errLockLost)
			} else if err != nil && locked.Err() == nil {
				slog.WarnContext(ctx, "renewing the graph-write lock failed; trying again", "key", key, "error", err)
			}
		})
	}
	unlock := func() {
		stop()
		cancel(nil)
		if lost.Load() {
			return // the lease is another worker's now: giving it back would free it under that worker
		}
		if err := w.Lock.Release(context.WithoutCancel(ctx), key); err != nil {
			slog.WarnContext(ctx, "giving back the graph-write lock failed: the environment's next write waits until its lease runs out",
				"key", key, "lease", lease, "error", err)
		}
	}
	return locked, unlock, nil
}
