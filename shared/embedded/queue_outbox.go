package embedded

// Outbox: the Queue settles a runner's deliveries transactionally (pipeline.Outbox), and Seen
// claims a batch of idempotency keys in one transaction (pipeline.BatchSeen).
//
// Contract beyond the interfaces:
//   - Exchange commits in one transaction every settlement of its batch: sends (queued in the
//     order given, as Send would, DedupIDs included), marks (handled keys, claims dropped),
//     releases, and each delivery's acknowledgement (delete, dead-letter, change visibility);
//     then, with a Receiving, it receives as Receive would and claims the keys of what it
//     received. Without Wait it skips the receive when this process drained the queue since
//     its last send to it (see Receive); with Wait it then waits as Receive does. An acknowledgement whose receipt is stale or invalid fails
//     alone (its error in Acks, the rest committed), as Delete, Kill or ChangeVisibility would
//     have failed after the sends; a failing statement fails the whole exchange and commits
//     nothing.
//   - Concurrent Exchanges on one file are committed together (group commit): while one
//     transaction runs, the exchanges that arrive queue up and the next transaction takes them
//     all. If a group's transaction fails, each of its exchanges is committed alone, so one
//     exchange's failure never fails another's.
//   - Records(seen) holds for the embedded Seen on the same file: its tables are the ones
//     Exchange marks, releases and claims in.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/queue"
)

var (
	_ pipeline.Outbox    = (*Queue)(nil)
	_ pipeline.BatchSeen = (*Seen)(nil)
)

// Records reports whether Exchange can mark, release and claim seen's keys: seen is the
// embedded Seen of the same file.
func (q *Queue) Records(seen pipeline.Seen) bool {
	s, ok := seen.(*Seen)
	return ok && s != nil && s.db != nil && s.db.Path == q.db.Path
}

// Exchange commits batch and, with recv, receives and claims, in one transaction (see the
// contract at the top of this file).
func (q *Queue) Exchange(ctx context.Context, batch []pipeline.Settlement, recv *pipeline.Receiving) (pipeline.Exchanged, error) {
	for i, s := range batch {
		for _, o := range s.Sends {
			if o.Queue == "" {
				return pipeline.Exchanged{}, fmt.Errorf("embedded queue: exchange: settlement %d sends to an empty queue name", i)
			}
			if len(o.Message.Body) == 0 {
				return pipeline.Exchanged{}, fmt.Errorf("embedded queue %s: exchange: settlement %d sends an empty body", o.Queue, i)
			}
		}
		if s.Receipt != "" && s.Queue == "" {
			return pipeline.Exchanged{}, fmt.Errorf("embedded queue: exchange: settlement %d has a receipt but no queue", i)
		}
	}
	if recv != nil {
		switch {
		case recv.Queue == "":
			return pipeline.Exchanged{}, errors.New("embedded queue: exchange: receive from an empty queue name")
		case recv.Max < 1 || recv.Max > MaxReceiveBatch:
			return pipeline.Exchanged{}, fmt.Errorf("embedded queue %s: exchange: receive max %d not in 1..%d", recv.Queue, recv.Max, MaxReceiveBatch)
		case recv.Visibility < 0 || recv.Visibility > MaxVisibility:
			return pipeline.Exchanged{}, fmt.Errorf("embedded queue %s: exchange: visibility %v not in 0..%v", recv.Queue, recv.Visibility, MaxVisibility)
		}
	}
	if err := ctx.Err(); err != nil {
		return pipeline.Exchanged{}, fmt.Errorf("embedded queue: exchange: %w", err)
	}
	g := groupFor(q.db)
	var ex pipeline.Exchanged
	if len(batch) > 0 || (recv != nil && q.wake.maybe(recv.Queue)) {
		var err error
		if ex, err = g.exchange(ctx, q, batch, recv, false); err != nil {
			return ex, err
		}
	}
	if recv == nil || recv.Wait <= 0 || len(ex.Deliveries) > 0 {
		return ex, nil
	}
	acks := ex.Acks
	err := q.await(ctx, recv.Queue, recv.Wait, func() (bool, error) {
		var err error
		ex, err = g.exchange(ctx, q, nil, recv, true)
		return len(ex.Deliveries) > 0, err
	})
	ex.Acks = acks
	if err != nil && len(batch) == 0 {
		return ex, err
	}
	return ex, nil // the settlements are committed: what failed is only the wait for more
}

// group commit: one per file, like the write lock.
type groupCommit struct {
	mu      sync.Mutex
	pending []*settleReq
	leading bool // a request is committing (or about to)
}

type settleReq struct {
	q     *Queue
	batch []pipeline.Settlement
	recv  *pipeline.Receiving
	force bool // receive even if this process drained the queue
	out   pipeline.Exchanged
	err   error
	woke  []string      // queues to wake once committed
	done  chan struct{} // closed when committed or failed
	lead  chan struct{} // closed when this request is to commit the next group
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
func (g *groupCommit) exchange(ctx context.Context, q *Queue, batch []pipeline.Settlement, recv *pipeline.Receiving, force bool) (pipeline.Exchanged, error) {
	r := &settleReq{q: q, batch: batch, recv: recv, force: force, done: make(chan struct{}), lead: make(chan struct{})}
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

// ack is one acknowledgement of a delete statement.
type ack struct {
	r   *settleReq
	i   int
	seq int64
}

// settleTx runs the requests' statements in tx: all sends in one INSERT, all marks in another;
// everything else row by row (SQLite runs a statement on a list of rows, IN (...) or RETURNING,
// through temporary tables, which cost more than the few extra statements); then each request's
// receive and claims.
func settleTx(ctx context.Context, tx *sql.Tx, group []*settleReq) error {
	now := time.Now().UnixNano()
	var rows []any // 7 values per message
	var marks, drops []string
	deletes := map[string][]ack{}
	var deleteOrder []string
	for _, r := range group {
		r.out, r.woke = pipeline.Exchanged{Acks: make([]error, len(r.batch))}, nil
		for i, s := range r.batch {
			for _, o := range s.Sends {
				if o.Message.DedupID != "" {
					keep, err := r.q.dedup(ctx, tx, o.Queue, []queue.Message{o.Message}, now)
					if err != nil {
						return err
					}
					if len(keep) == 0 {
						continue
					}
				}
				m := o.Message
				rows = append(rows, newUUID(), o.Queue, m.Body, m.GroupID, m.DedupID, now, now)
				r.woke = append(r.woke, o.Queue)
			}
			marks = append(marks, s.Marks...)
			drops = append(append(drops, s.Marks...), s.Releases...)
			if s.Receipt == "" {
				continue
			}
			seq, err := parseReceipt(s.Receipt)
			if err != nil {
				r.out.Acks[i] = fmt.Errorf("embedded queue %s: %s: %w", s.Queue, opName(s.Action), err)
				continue
			}
			switch s.Action {
			case pipeline.Ack, pipeline.Duplicate:
				if _, ok := deletes[s.Queue]; !ok {
					deleteOrder = append(deleteOrder, s.Queue)
				}
				deletes[s.Queue] = append(deletes[s.Queue], ack{r, i, seq})
			case pipeline.DeadLetter:
				moved, err := affected(tx.ExecContext(ctx, `INSERT INTO dead_letters
					(id, queue, body, group_id, sent_at, reason, receive_count, dead_at)
					SELECT id, queue, body, group_id, sent_at, ?, receive_count, ? FROM messages
					WHERE seq = ? AND queue = ? AND receipt = ?`, s.Reason, now, seq, s.Queue, s.Receipt))
				if err != nil {
					return err
				}
				if !moved {
					r.out.Acks[i] = fmt.Errorf("embedded queue %s: kill: %w", s.Queue, queue.ErrStaleReceipt)
					continue
				}
				if _, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE seq = ?`, seq); err != nil {
					return err
				}
			case pipeline.Retry:
				if s.RetryAfter < 0 {
					continue
				}
				if s.RetryAfter > MaxVisibility {
					r.out.Acks[i] = fmt.Errorf("embedded queue %s: change visibility: %v not in 0..%v", s.Queue, s.RetryAfter, MaxVisibility)
					continue
				}
				ok, err := affected(tx.ExecContext(ctx, `UPDATE messages SET visible_at = ?
					WHERE seq = ? AND queue = ? AND receipt = ?`, now+int64(s.RetryAfter), seq, s.Queue, s.Receipt))
				if err != nil {
					return err
				}
				if !ok {
					r.out.Acks[i] = fmt.Errorf("embedded queue %s: change visibility: %w", s.Queue, queue.ErrStaleReceipt)
				} else if s.RetryAfter == 0 {
					r.woke = append(r.woke, s.Queue)
				}
			}
		}
	}
	for len(rows) > 0 {
		n := min(len(rows)/7, insertChunk)
		stmt := `INSERT OR FAIL INTO messages (id, queue, body, group_id, dedup_id, sent_at, visible_at) VALUES ` +
			strings.Repeat(",(?,?,?,?,?,?,?)", n)[1:]
		if _, err := tx.ExecContext(ctx, stmt, rows[:7*n]...); err != nil {
			return err
		}
		rows = rows[7*n:]
	}
	if len(marks) > 0 {
		if _, err := tx.ExecContext(ctx, `INSERT INTO handled (key) VALUES `+strings.Repeat(",(?)", len(marks))[1:]+
			` ON CONFLICT DO NOTHING`, strArgs(marks)...); err != nil {
			return err
		}
	}
	for _, k := range drops {
		if _, err := tx.ExecContext(ctx, `DELETE FROM claims WHERE key = ?`, k); err != nil {
			return err
		}
	}
	for _, name := range deleteOrder {
		if err := deleteTx(ctx, tx, name, deletes[name]); err != nil {
			return err
		}
	}
	for _, r := range group {
		if r.recv == nil || !(r.force || r.q.wake.maybe(r.recv.Queue)) {
			continue // (a drained queue: the runner's receiver polls it for other processes' sends)
		}
		ds, err := r.q.receiveTx(ctx, tx, r.recv.Queue, r.recv.Max, r.recv.Visibility)
		if err != nil {
			return err
		}
		r.out.Deliveries = ds
		r.out.Claims = make([]pipeline.ClaimState, len(ds))
		if r.recv.Keys == nil || len(ds) == 0 {
			continue
		}
		keys := r.recv.Keys(ds)
		var idx []int
		var claim []string
		for i, k := range keys {
			if k != "" && i < len(ds) {
				idx = append(idx, i)
				claim = append(claim, k)
			}
		}
		states, err := claimTx(ctx, tx, claim, r.recv.Lease, time.Now())
		if err != nil {
			return err
		}
		for j, i := range idx {
			r.out.Claims[i] = states[j]
		}
	}
	return nil
}

// deleteTx deletes the acknowledged messages of queue name whose receipt is current, and records
// a stale receipt error for the others.
func deleteTx(ctx context.Context, tx *sql.Tx, name string, acks []ack) error {
	for _, a := range acks {
		ok, err := affected(tx.ExecContext(ctx, `DELETE FROM messages WHERE seq = ? AND queue = ? AND receipt = ?`,
			a.seq, name, a.r.batch[a.i].Receipt))
		if err != nil {
			return err
		}
		if !ok {
			a.r.out.Acks[a.i] = fmt.Errorf("embedded queue %s: delete: %w", name, queue.ErrStaleReceipt)
		}
	}
	return nil
}

func opName(a pipeline.Action) string {
	switch a {
	case pipeline.DeadLetter:
		return "kill"
	case pipeline.Retry:
		return "change visibility"
	}
	return "delete"
}

func strArgs(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// ClaimAll looks up and claims keys in one transaction: each key is ClaimDone if marked,
// ClaimTaken if claimed now (no live claim held it), else ClaimHeld; a key given twice is
// taken at most once.
func (s *Seen) ClaimAll(ctx context.Context, keys []string, lease time.Duration) ([]pipeline.ClaimState, error) {
	if len(keys) == 0 {
		return []pipeline.ClaimState{}, nil
	}
	var out []pipeline.ClaimState
	err := s.db.lockedTx(ctx, func(tx *sql.Tx) (err error) {
		out, err = claimTx(ctx, tx, keys, lease, time.Now())
		return err
	})
	return out, err
}

// claimTx is ClaimAll's work inside tx.
func claimTx(ctx context.Context, tx *sql.Tx, keys []string, lease time.Duration, now time.Time) ([]pipeline.ClaimState, error) {
	out := make([]pipeline.ClaimState, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	var uniq []string
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		if !seen[k] {
			seen[k] = true
			uniq = append(uniq, k)
		}
	}
	done := map[string]bool{}
	taken := map[string]bool{}
	for _, k := range uniq {
		var d bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM handled WHERE key = ?)`, k).Scan(&d); err != nil {
			return nil, err
		}
		if d {
			done[k] = true
			continue
		}
		ok, err := affected(tx.ExecContext(ctx, `INSERT INTO claims (key, expires, holder) VALUES (?, ?, ?)
			ON CONFLICT (key) DO UPDATE SET expires = excluded.expires, holder = excluded.holder WHERE claims.expires < ?`,
			k, now.Add(lease).UnixNano(), thisHolder(), now.UnixNano()))
		if err != nil {
			return nil, err
		}
		taken[k] = ok
	}
	for i, k := range keys {
		switch {
		case done[k]:
			out[i] = pipeline.ClaimDone
		case taken[k]:
			out[i] = pipeline.ClaimTaken
			delete(taken, k) // a second copy of the key in keys is held by the first
		default:
			out[i] = pipeline.ClaimHeld
		}
	}
	return out, nil
}
