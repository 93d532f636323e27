package embedded

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/queue"
)

// ack is one acknowledgement of a delete statement.
type ack struct {
	r   *settleReq
	i   int
	seq int64
}

// settleTx runs the requests' statements in tx: all sends in one INSERT, all marks in another
// (which drops their claims), the other dropped claims in one DELETE and the acknowledged
// messages in one DELETE per queue; dead letters and visibility changes row by row (they are
// rare); then each request's receive and claims.
func settleTx(ctx context.Context, tx *sql.Tx, group []*settleReq) error {
	for _, r := range group {
		if r.handle == nil {
			continue
		}
		jctx, j := withJoined(context.WithoutCancel(r.ctx), r.q.db.Path, tx)
		batch, err := r.handle(jctx, func(fn func() bool) error { return j.step(jctx, fn) })
		if err != nil {
			return err
		}
		if err := checkSettlements(batch); err != nil {
			return err
		}
		r.batch = batch
	}
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
			drops = append(drops, s.Releases...)
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
				set := `visible_at = ?`
				if s.Unhandled { // its receive is given back (pipeline.Settlement)
					set += `, receive_count = MAX(receive_count - 1, 0)`
				}
				ok, err := affected(tx.ExecContext(ctx, `UPDATE messages SET `+set+`
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
		// A key marked now drops its claim by the trigger handled_drops_claim (seen.go); one
		// marked already keeps nothing either.
		marked := map[string]bool{}
		if err := scanKeys(marked)(tx.QueryContext(ctx, `INSERT INTO handled (key) VALUES `+strings.Repeat(",(?)", len(marks))[1:]+
			` ON CONFLICT DO NOTHING RETURNING key`, strArgs(marks)...)); err != nil {
			return err
		}
		for _, k := range marks {
			if !marked[k] {
				drops = append(drops, k)
			}
		}
	}
	for len(drops) > 0 {
		n := min(len(drops), insertChunk)
		if _, err := tx.ExecContext(ctx, `DELETE FROM claims WHERE key IN (`+strings.Repeat(",?", n)[1:]+`)`,
			strArgs(drops[:n])...); err != nil {
			return err
		}
		drops = drops[n:]
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
		ds, dead, err := r.q.receiveTx(ctx, tx, r.recv.Queue, r.recv.Max, r.recv.Visibility)
		if err != nil {
			return err
		}
		r.out.Deliveries, r.out.Dead = ds, dead
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

// deleteTx deletes the acknowledged messages of queue name whose receipt is current, in one
// statement per insertChunk acknowledgements, and records a stale receipt error for the others.
// A receipt names its message's seq ("<seq>.<random>", set by the receive that made it), so a
// row matches the lists only by its own seq and receipt together.
func deleteTx(ctx context.Context, tx *sql.Tx, name string, acks []ack) error {
	for len(acks) > 0 {
		chunk := acks[:min(len(acks), insertChunk)]
		acks = acks[len(chunk):]
		args := make([]any, 0, 1+2*len(chunk))
		for _, a := range chunk {
			args = append(args, a.seq)
		}
		args = append(args, name)
		for _, a := range chunk {
			args = append(args, a.r.batch[a.i].Receipt)
		}
		list := strings.Repeat(",?", len(chunk))[1:]
		// (+queue: the rows are found by seq; on the queue's index SQLite would scan the queue.)
		rows, err := tx.QueryContext(ctx, `DELETE FROM messages WHERE seq IN (`+list+`) AND +queue = ? AND receipt IN (`+list+`)
			RETURNING seq, receipt`, args...)
		if err != nil {
			return err
		}
		gone := make(map[int64]bool, len(chunk))
		receiptOf := make(map[int64]string, len(chunk))
		for rows.Next() {
			var seq int64
			var receipt string
			if err := rows.Scan(&seq, &receipt); err != nil {
				rows.Close()
				return err
			}
			gone[seq], receiptOf[seq] = true, receipt
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for _, a := range chunk {
			if !gone[a.seq] || a.r.batch[a.i].Receipt != receiptOf[a.seq] {
				a.r.out.Acks[a.i] = fmt.Errorf("embedded queue %s: delete: %w", name, queue.ErrStaleReceipt)
				continue
			}
			delete(gone, a.seq) // a second acknowledgement of the same delivery finds it gone
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
