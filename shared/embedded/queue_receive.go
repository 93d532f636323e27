package embedded

// Receiving: Receive's wait, and the plan that picks what a receive delivers (FIFO groups, the
// receive count that dead-letters a message; queue.go states the contract).

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/usekarma/karma/shared/queue"
)

// Receive returns up to max (1..10) visible messages, hiding them for visibility; with wait > 0
// it waits up to wait for at least one.
func (q *Queue) Receive(ctx context.Context, name string, max int, visibility, wait time.Duration) ([]queue.Delivery, error) {
	switch {
	case name == "":
		return nil, errors.New("embedded queue: receive: empty queue name")
	case max < 1 || max > MaxReceiveBatch:
		return nil, fmt.Errorf("embedded queue %s: receive: max %d not in 1..%d", name, max, MaxReceiveBatch)
	case visibility < 0 || visibility > MaxVisibility:
		return nil, fmt.Errorf("embedded queue %s: receive: visibility %v not in 0..%v", name, visibility, MaxVisibility)
	}
	var out []queue.Delivery
	err := q.await(ctx, name, wait, func() (got bool, err error) {
		out, err = q.receiveOnce(ctx, name, max, visibility)
		return len(out) > 0, err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// await runs try until it gets something, for up to wait: at once (taking the write lock) after
// a Send or release to queue name woke it, and first unless this process drained the queue since
// its last send; otherwise, every PollInterval, only once the cheap read-only check finds a
// visible message (sent by another process, or whose visibility expired).
func (q *Queue) await(ctx context.Context, name string, wait time.Duration, try func() (bool, error)) error {
	deadline := time.Now().Add(wait)
	var t *time.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for look := q.wake.maybe(name); ; {
		woken := q.wake.channel(name) // taken before looking, so a Send from now on is not missed
		if look || q.anyVisible(ctx, name) {
			if got, err := try(); err != nil || got {
				return err
			}
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil
		}
		if t == nil {
			t = time.NewTimer(min(left, q.poll))
		} else {
			t.Reset(min(left, q.poll))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("embedded queue %s: receive: %w", name, ctx.Err())
		case <-woken:
			look = true
			t.Stop() // (Go 1.23 timers: a stopped timer delivers nothing stale after Reset)
		case <-t.C:
			look = false
		}
	}
}

// anyVisible is the cheap read-only check a waiting Receive makes before taking the write lock.
// Errors count as "maybe": receiveOnce reports them.
func (q *Queue) anyVisible(ctx context.Context, name string) bool {
	var ok bool
	err := q.db.SQL.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM messages
		WHERE queue = ? AND visible_at <= ?)`, name, time.Now().UnixNano()).Scan(&ok)
	return ok || err != nil
}

// receiveOnce is one Receive attempt, in one transaction: plan, deliver the planned messages
// that have receives left, dead-letter the others and plan again for the slots they freed.
func (q *Queue) receiveOnce(ctx context.Context, name string, max int, visibility time.Duration) ([]queue.Delivery, error) {
	var out []queue.Delivery
	err := q.db.lockedTx(ctx, func(tx *sql.Tx) (err error) {
		out, _, err = q.receiveTx(ctx, tx, name, max, visibility)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("embedded queue %s: receive: %w", name, err)
	}
	return out, nil
}

// receiveTx is receiveOnce's work inside tx. It also returns the messages it moved to the dead
// letters instead of delivering them (out of receives), so that a runner can say so.
func (q *Queue) receiveTx(ctx context.Context, tx *sql.Tx, name string, max int, visibility time.Duration) ([]queue.Delivery, []queue.DeadLetter, error) {
	var out []queue.Delivery
	var dead []queue.DeadLetter
	err := func() error {
		now := time.Now().UnixNano()
		taken := map[int64]bool{} // planned by an earlier round
		for round := 0; len(out) < max; round++ {
			var picked []planned
			var err error
			if round == 0 && !q.isGrouped(name) {
				if picked, err = q.receiveFast(ctx, tx, name, now, max, visibility); err != nil {
					return err
				}
			}
			fast := len(picked) > 0 // received already, receipts and all; else planned now
			if !fast {
				if picked, err = plan(ctx, tx, name, now, max-len(out), taken); err != nil || len(picked) == 0 {
					return err
				}
				if round == 0 && !q.isGrouped(name) {
					q.grouped.Store(name, true) // the one statement found nothing the plan found
				}
			}
			var spent []planned // they had their MaxReceives receives
			var seqs []any
			var nonce string // one per statement: a receipt is "<seq>.<nonce>" (receiveFast made its own)
			if !fast {
				nonce = newNonce()
			}
			for _, m := range picked {
				taken[m.seq] = true
				if m.receives >= q.maxReceives {
					spent = append(spent, m)
					continue
				}
				receipt := m.receipt
				if !fast {
					seqs = append(seqs, m.seq)
					receipt = strconv.FormatInt(m.seq, 10) + "." + nonce
				}
				out = append(out, queue.Delivery{MessageID: m.id, Body: m.body, ReceiptHandle: receipt,
					ReceiveCount: m.receives + 1, SentAt: time.Unix(0, m.sentAt).UTC()})
			}
			if len(seqs) > 0 {
				// One statement for the round: each row's receive count goes up by one (plan
				// read it in this transaction) and its receipt is its own seq and the nonce.
				if _, err := tx.ExecContext(ctx, `UPDATE messages SET receive_count = receive_count + 1, visible_at = ?,
					receipt = seq || '.' || ?, holder = ? WHERE seq IN (`+strings.Repeat(",?", len(seqs))[1:]+`)`,
					append([]any{now + int64(visibility), nonce, thisHolder()}, seqs...)...); err != nil {
					return err
				}
			}
			if len(spent) == 0 {
				return nil // plan gave all there is
			}
			reason := fmt.Sprintf("max receives (%d) exceeded", q.maxReceives)
			for _, m := range spent {
				if _, err := tx.ExecContext(ctx, `INSERT INTO dead_letters
					(id, queue, body, group_id, sent_at, reason, receive_count, dead_at)
					SELECT id, queue, body, group_id, sent_at, ?, receive_count, ? FROM messages
					WHERE seq = ?`, reason, now, m.seq); err != nil {
					return err
				}
				if _, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE seq = ?`, m.seq); err != nil {
					return err
				}
				dead = append(dead, queue.DeadLetter{MessageID: m.id, Queue: name, Body: m.body, Reason: reason,
					ReceiveCount: m.receives, DeadAt: time.Unix(0, now).UTC()})
			}
		}
		return nil
	}()
	if err != nil {
		return nil, nil, err
	}
	q.wake.received(name, len(out), max)
	return out, dead, nil
}

// newNonce is the random part of the receipts of one receive: 32 hex digits.
func newNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// pick is one planned delivery: a message or n messages of an idle group.
type pick struct {
	planned
	group string
	n     int
}

// planned is a message a receive is to deliver.
type planned struct {
	seq      int64
	id       string
	body     []byte
	sentAt   int64
	receives int    // before this receive
	receipt  string // receiveFast's, when it received the message already
}

// receiveFast receives up to n messages in one statement, when the queue holds no message of a
// FIFO group: then plan's order is the visible messages' by (visible_at, seq), which the
// statement takes. A message out of receives is left as it is (for receiveTx to dead-letter it,
// as after plan). It returns the messages in plan's order, each with its receipt and its receive
// count before this receive; none when the queue has no visible message or holds a grouped one.
//
// A receipt is "<seq>.<nonce>.<visible_at before>": the statement can return the rows' values
// only as it leaves them, so the order they were visible in travels in the receipt, which is
// opaque to receivers (parseReceipt reads the seq before the first dot). The limit n is part of
// the statement's text (one text per n, each prepared once per connection): SQLite plans a
// LIMIT given as a parameter for its value, and prepares the statement again each time the
// value differs from the last run's.
func (q *Queue) receiveFast(ctx context.Context, tx *sql.Tx, name string, now int64, n int, visibility time.Duration) ([]planned, error) {
	nonce := newNonce()
	rows, err := tx.QueryContext(ctx, `UPDATE messages SET
			receive_count = CASE WHEN receive_count < ?1 THEN receive_count + 1 ELSE receive_count END,
			receipt = CASE WHEN receive_count < ?1 THEN seq || '.' || ?2 || '.' || visible_at ELSE receipt END,
			visible_at = CASE WHEN receive_count < ?1 THEN ?3 ELSE visible_at END,
			holder = CASE WHEN receive_count < ?1 THEN ?4 ELSE holder END
		WHERE seq IN (SELECT seq FROM messages WHERE queue = ?5 AND visible_at <= ?6 ORDER BY visible_at, seq LIMIT `+strconv.Itoa(n)+`)
			AND NOT EXISTS (SELECT 1 FROM messages WHERE queue = ?5 AND group_id != '')
		RETURNING seq, id, body, sent_at, receive_count, receipt`,
		q.maxReceives, nonce, now+int64(visibility), thisHolder(), name, now)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []planned
	visibleAt := map[int64]int64{}
	for rows.Next() {
		var m planned
		if err := rows.Scan(&m.seq, &m.id, &m.body, &m.sentAt, &m.receives, &m.receipt); err != nil {
			return nil, err
		}
		if rest, ok := strings.CutPrefix(m.receipt, strconv.FormatInt(m.seq, 10)+"."+nonce+"."); ok {
			m.receives-- // received now: the count before
			if visibleAt[m.seq], err = strconv.ParseInt(rest, 10, 64); err != nil {
				return nil, fmt.Errorf("receipt %q: %w", m.receipt, err)
			}
		} else {
			visibleAt[m.seq] = math.MinInt64 // out of receives, visible then: its order does not matter
			m.receipt = ""
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		return visibleAt[a.seq] < visibleAt[b.seq] || visibleAt[a.seq] == visibleAt[b.seq] && a.seq < b.seq
	})
	return out, nil
}

// isGrouped is whether a receive from queue name found messages of a FIFO group, which
// receiveFast does not take: from then on this process's receives from it plan first.
func (q *Queue) isGrouped(name string) bool {
	_, ok := q.grouped.Load(name)
	return ok
}

// plan picks up to n deliverable messages not in taken, in delivery order: visible messages by
// (visible_at, seq), skipping groups with a message in flight; a group's messages are taken in
// seq order at the place its first visible message appears.
func plan(ctx context.Context, tx *sql.Tx, name string, now int64, n int, taken map[int64]bool) ([]planned, error) {
	rows, err := tx.QueryContext(ctx, `SELECT seq, group_id, id, body, sent_at, receive_count FROM messages
		WHERE queue = ?1 AND visible_at <= ?2 AND (group_id = '' OR group_id NOT IN (
			SELECT group_id FROM messages WHERE queue = ?1 AND visible_at > ?2 AND group_id != ''))
		ORDER BY visible_at, seq`, name, now)
	if err != nil {
		return nil, err
	}
	var picks []pick
	var groups map[string]int // group -> index in picks
	slots := 0
	for slots < n && rows.Next() {
		var p pick
		if err := rows.Scan(&p.seq, &p.group, &p.id, &p.body, &p.sentAt, &p.receives); err != nil {
			rows.Close()
			return nil, err
		}
		if taken[p.seq] {
			continue
		}
		slots++
		if p.group == "" {
			picks = append(picks, p)
		} else if i, ok := groups[p.group]; ok {
			picks[i].n++
		} else {
			if groups == nil {
				groups = map[string]int{}
			}
			groups[p.group] = len(picks)
			p.n = 1
			picks = append(picks, p)
		}
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]planned, 0, slots)
	for _, p := range picks {
		if p.group == "" {
			out = append(out, p.planned)
			continue
		}
		// No message of this group is in flight, so all of them are visible: take the first
		// p.n by seq, whichever of them the scan met.
		grows, err := tx.QueryContext(ctx, `SELECT seq, id, body, sent_at, receive_count FROM messages
			WHERE queue = ? AND group_id = ? AND group_id != '' ORDER BY seq`, name, p.group)
		if err != nil {
			return nil, err
		}
		for got := 0; got < p.n && grows.Next(); {
			var m planned
			if err := grows.Scan(&m.seq, &m.id, &m.body, &m.sentAt, &m.receives); err != nil {
				grows.Close()
				return nil, err
			}
			if !taken[m.seq] {
				out = append(out, m)
				got++
			}
		}
		if err := grows.Close(); err != nil {
			return nil, err
		}
		if err := grows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}
