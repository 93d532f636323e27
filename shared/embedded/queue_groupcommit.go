package embedded

// Group commit: concurrent Exchanges on one file are committed in one transaction; if a group's
// transaction fails, each of its exchanges is committed alone (queue_outbox.go states the
// contract).

import (
	"context"
	"database/sql"
	"fmt"
	"runtime"
	"sync"

	"github.com/usekarma/karma/shared/pipeline"
)

// group commit: one per file, like the write lock.
type groupCommit struct {
	mu      sync.Mutex
	pending []*settleReq
	leading bool // a request is committing (or about to)
}

type settleReq struct {
	q   *Queue
	ctx context.Context // the caller's: a joined handler runs with it
	// batch is what to settle; with handle, what handle returned in the transaction.
	batch  []pipeline.Settlement
	handle pipeline.JoinedHandler
	recv   *pipeline.Receiving
	force  bool // receive even if this process drained the queue
	out    pipeline.Exchanged
	err    error
	woke   []string      // queues to wake once committed
	done   chan struct{} // closed when committed or failed
	lead   chan struct{} // closed when this request is to commit the next group
}

var groups = map[string]*groupCommit{}

func groupFor(db *DB) *groupCommit {
	perFileMu.Lock()
	defer perFileMu.Unlock()
	g := groups[db.Path]
	if g == nil {
		g = &groupCommit{}
		groups[db.Path] = g
	}
	return g
}

// exchange queues the request; the first request to arrive while no transaction runs commits
// everything queued, then hands the lead to the next request that arrived meanwhile.
func (g *groupCommit) exchange(ctx context.Context, r *settleReq) (pipeline.Exchanged, error) {
	r.done, r.lead = make(chan struct{}), make(chan struct{})
	q := r.q
	g.mu.Lock()
	g.pending = append(g.pending, r)
	if g.leading {
		g.mu.Unlock()
		select {
		case <-r.done:
			return r.out, r.err
		case <-r.lead:
		}
		g.mu.Lock()
	} else {
		g.leading = true
		g.mu.Unlock()
		runtime.Gosched() // let exchanges that are about to arrive join this group
		g.mu.Lock()
	}
	group := g.pending
	g.pending = nil
	g.mu.Unlock()

	// A commit, once started, finishes: its callers are settling work already done.
	commitGroup(context.WithoutCancel(ctx), q.db, group)

	g.mu.Lock()
	if len(g.pending) > 0 {
		close(g.pending[0].lead)
	} else {
		g.leading = false
	}
	g.mu.Unlock()
	<-r.done
	return r.out, r.err
}

// commitGroup commits group in one transaction, or, if that fails, each request alone.
func commitGroup(ctx context.Context, db *DB, group []*settleReq) {
	err := db.lockedTx(ctx, func(tx *sql.Tx) error { return settleTx(ctx, tx, group) })
	if err != nil && len(group) > 1 {
		for _, r := range group {
			r.err = db.lockedTx(ctx, func(tx *sql.Tx) error { return settleTx(ctx, tx, []*settleReq{r}) })
		}
	} else {
		for _, r := range group {
			r.err = err
		}
	}
	w := wakerFor(db)
	for _, r := range group {
		if r.err != nil {
			r.out, r.woke = pipeline.Exchanged{}, nil
			r.err = fmt.Errorf("embedded queue: exchange: %w", r.err)
		} else {
			w.signal(r.woke...)
		}
		close(r.done)
	}
}
