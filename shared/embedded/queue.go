package embedded

// Queue: queue.Queue and queue.DeadLetters on the embedded SQLite file, with SQS semantics.
//
// Contract beyond the interfaces (checked by queuetest plus queue_test.go):
//   - Queues need no creation: a name is a queue as soon as something is sent to it. Names and
//     bodies must be non-empty (SQS refuses empty bodies); Receive's max must be 1..10 and
//     visibility 0..12h, as with SQS.
//   - Order: a Receive hands out visible messages in the order they became visible (send order,
//     a message whose visibility expired queues up behind what was sent meanwhile), except
//     that messages of one GroupID always come in send order.
//   - FIFO groups: while any message of a group is in flight (received, visibility not yet
//     expired, not deleted) no other message of that group is delivered; one Receive may hand
//     out several messages of an idle group, in order (as SQS FIFO queues do).
//   - Dedup: a Send with a non-empty DedupID that was already sent to the same queue in the
//     last 5 minutes is accepted and dropped, even if the first message is already deleted.
//   - Every receive counts. A message that was received MaxReceives times is, on the next
//     receive that would deliver it, moved to the dead letters with reason
//     "max receives (N) exceeded" instead. Kill moves it at once with the caller's reason.
//   - A receipt handle is current until the message is received again, deleted or
//     dead-lettered; Delete, ChangeVisibility and Kill with any other handle fail with an error
//     matching queue.ErrStaleReceipt. A current handle stays usable after the visibility
//     expired as long as nobody received the message again (as with SQS).
//   - Redrive moves a queue's dead letters back, oldest first, keeping message id and group,
//     with the receive count reset to 0; they queue up behind the messages already there.
//   - Crash safety: state lives only in the file. A process that dies holding deliveries loses
//     nothing: they come back when their visibility expires, to any process using the file, or
//     at once when another process on the host sees that the holder is gone
//     (ReleaseAbandoned, leases.go).
//   - Receive's wait polls the file every PollInterval (other processes' sends, expired
//     visibility) and wakes at once on a Send, ChangeVisibility(0), Redrive or Exchange send
//     to its queue made through any Queue of this process on the same file. A Receive takes
//     the write lock at once when a message may be there, else only once the read-only check
//     finds one: after this process's last receive from the queue came back short, until
//     something is sent to it.

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/usekarma/karma/shared/queue"
)

var (
	_ queue.Queue       = (*Queue)(nil)
	_ queue.DeadLetters = (*Queue)(nil)
)

const (
	// DefaultPollInterval is how often a waiting Receive looks at the file again.
	DefaultPollInterval = 20 * time.Millisecond
	// DedupWindow is how long a DedupID suppresses later sends with the same id (SQS: 5 min).
	DedupWindow = 5 * time.Minute
	// MaxReceiveBatch is the largest max a Receive accepts (SQS: 10).
	MaxReceiveBatch = 10
	// MaxVisibility is the longest visibility timeout (SQS: 12 hours).
	MaxVisibility = 12 * time.Hour
)

// QueueOptions tunes NewQueue; the zero value means the defaults.
type QueueOptions struct {
	// MaxReceives is how many receives a message gets before it is dead-lettered
	// (0 = queue.DefaultMaxReceives).
	MaxReceives int
	// PollInterval is how often Receive's wait checks the file (0 = DefaultPollInterval).
	PollInterval time.Duration
}

// Queue is the embedded queue.Queue and queue.DeadLetters. Safe for concurrent use, and any
// number of Queues (in one process or several) may share one file.
type Queue struct {
	db          *DB
	maxReceives int
	poll        time.Duration
	wake        *waker
	lastPrune   atomic.Int64 // unix nanos of the last dedup-table prune
}

// NewQueue creates the queue tables if needed.
func NewQueue(ctx context.Context, db *DB, opts QueueOptions) (*Queue, error) {
	if db == nil || db.SQL == nil {
		return nil, errors.New("embedded queue: NewQueue needs a DB")
	}
	if opts.MaxReceives < 0 || opts.PollInterval < 0 {
		return nil, fmt.Errorf("embedded queue: negative option in %+v", opts)
	}
	if opts.MaxReceives == 0 {
		opts.MaxReceives = queue.DefaultMaxReceives
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = DefaultPollInterval
	}
	err := db.migrate(ctx,
		// seq (the rowid) orders messages: a new row's seq exceeds every existing one.
		`CREATE TABLE IF NOT EXISTS messages (
			seq           INTEGER PRIMARY KEY,
			id            TEXT NOT NULL,              -- UUID
			queue         TEXT NOT NULL,
			body          BLOB NOT NULL,
			group_id      TEXT NOT NULL DEFAULT '',
			dedup_id      TEXT NOT NULL DEFAULT '',
			sent_at       INTEGER NOT NULL,           -- unix nanoseconds
			visible_at    INTEGER NOT NULL,           -- unix nanoseconds
			receive_count INTEGER NOT NULL DEFAULT 0,
			receipt       TEXT NOT NULL DEFAULT '')`,
		`CREATE INDEX IF NOT EXISTS messages_visible ON messages(queue, visible_at)`,
		`CREATE INDEX IF NOT EXISTS messages_group ON messages(queue, group_id) WHERE group_id != ''`,
		`CREATE TABLE IF NOT EXISTS dead_letters (
			id            TEXT NOT NULL,
			queue         TEXT NOT NULL,
			body          BLOB NOT NULL,
			group_id      TEXT NOT NULL DEFAULT '',
			sent_at       INTEGER NOT NULL,
			reason        TEXT NOT NULL,
			receive_count INTEGER NOT NULL,
			dead_at       INTEGER NOT NULL)`,
		`CREATE INDEX IF NOT EXISTS dead_letters_queue ON dead_letters(queue, dead_at)`,
		// DedupIDs seen in the last DedupWindow, including those of messages already gone.
		`CREATE TABLE IF NOT EXISTS message_dedup (
			queue    TEXT NOT NULL,
			dedup_id TEXT NOT NULL,
			sent_at  INTEGER NOT NULL,
			PRIMARY KEY (queue, dedup_id)) WITHOUT ROWID`,
	)
	if err != nil {
		return nil, err
	}
	// The process holding a message in flight (leases.go).
	if err := db.addColumn(ctx, "messages", "holder", "TEXT NOT NULL DEFAULT ''"); err != nil {
		return nil, err
	}
	return &Queue{db: db, maxReceives: opts.MaxReceives, poll: opts.PollInterval, wake: wakerFor(db)}, nil
}

// The driver prepares every statement anew on each execution (it has no statement cache), so
// the hot paths use one statement per batch rather than one per message.

// insertChunk bounds the rows of one multi-row INSERT (7 variables each, SQLite allows 32766).
const insertChunk = 500

// Send enqueues msgs in one transaction; messages whose DedupID was seen in the last
// DedupWindow are dropped.
func (q *Queue) Send(ctx context.Context, name string, msgs ...queue.Message) error {
	if name == "" {
		return errors.New("embedded queue: send: empty queue name")
	}
	for i, m := range msgs {
		if len(m.Body) == 0 {
			return fmt.Errorf("embedded queue %s: send: message %d has an empty body", name, i)
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	err := q.db.lockedTx(ctx, func(tx *sql.Tx) error {
		return q.sendTx(ctx, tx, name, msgs, time.Now().UnixNano())
	})
	if err != nil {
		return fmt.Errorf("embedded queue %s: send: %w", name, err)
	}
	q.wake.signal(name)
	return nil
}

// sendTx enqueues msgs (validated) on queue name inside tx, sent at now.
func (q *Queue) sendTx(ctx context.Context, tx *sql.Tx, name string, msgs []queue.Message, now int64) error {
	keep := msgs
	if slices.ContainsFunc(msgs, func(m queue.Message) bool { return m.DedupID != "" }) {
		var err error
		if keep, err = q.dedup(ctx, tx, name, msgs, now); err != nil {
			return err
		}
	}
	// OR FAIL: a failing row fails the transaction anyway, so SQLite need not keep a statement
	// journal to undo the statement's earlier rows (the journal costs more than the insert).
	for chunk := range slices.Chunk(keep, insertChunk) {
		var b strings.Builder
		b.WriteString(`INSERT OR FAIL INTO messages (id, queue, body, group_id, dedup_id, sent_at, visible_at) VALUES `)
		args := make([]any, 0, 7*len(chunk))
		for i, m := range chunk {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString("(?,?,?,?,?,?,?)")
			args = append(args, newUUID(), name, m.Body, m.GroupID, m.DedupID, now, now)
		}
		if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
			return err
		}
	}
	return nil
}

// dedup records msgs' DedupIDs and returns the messages to enqueue: those without a DedupID
// or whose DedupID was not seen in the last DedupWindow (nor earlier in msgs).
func (q *Queue) dedup(ctx context.Context, tx *sql.Tx, name string, msgs []queue.Message, now int64) ([]queue.Message, error) {
	expired := now - int64(DedupWindow)
	if last := q.lastPrune.Load(); now-last > int64(time.Minute) && q.lastPrune.CompareAndSwap(last, now) {
		if _, err := tx.ExecContext(ctx, `DELETE FROM message_dedup WHERE sent_at <= ?`, expired); err != nil {
			return nil, err
		}
	}
	keep := make([]queue.Message, 0, len(msgs))
	for _, m := range msgs {
		if m.DedupID != "" {
			// Changes nothing (0 rows) when the id was seen within the window.
			res, err := tx.ExecContext(ctx, `INSERT INTO message_dedup (queue, dedup_id, sent_at)
				VALUES (?, ?, ?) ON CONFLICT (queue, dedup_id) DO UPDATE SET sent_at = excluded.sent_at
				WHERE message_dedup.sent_at <= ?`, name, m.DedupID, now, expired)
			if fresh, err := affected(res, err); err != nil {
				return nil, err
			} else if !fresh {
				continue // a duplicate: accepted, not enqueued
			}
		}
		keep = append(keep, m)
	}
	return keep, nil
}

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
		out, err = q.receiveTx(ctx, tx, name, max, visibility)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("embedded queue %s: receive: %w", name, err)
	}
	return out, nil
}

// receiveTx is receiveOnce's work inside tx.
func (q *Queue) receiveTx(ctx context.Context, tx *sql.Tx, name string, max int, visibility time.Duration) ([]queue.Delivery, error) {
	// One statement per message, by seq: SQLite runs a statement on a list of rows (IN (...),
	// RETURNING) through temporary tables and a statement journal, which cost more here than
	// the few extra statements.
	var out []queue.Delivery
	err := func() error {
		now := time.Now().UnixNano()
		taken := map[int64]bool{} // planned by an earlier round
		for len(out) < max {
			picked, err := plan(ctx, tx, name, now, max-len(out), taken)
			if err != nil || len(picked) == 0 {
				return err
			}
			var spent []planned // they had their MaxReceives receives
			for _, m := range picked {
				taken[m.seq] = true
				if m.receives >= q.maxReceives {
					spent = append(spent, m)
					continue
				}
				receipt := newReceipt(m.seq)
				if _, err := tx.ExecContext(ctx, `UPDATE messages SET receive_count = ?, visible_at = ?, receipt = ?, holder = ?
					WHERE seq = ?`, m.receives+1, now+int64(visibility), receipt, thisHolder(), m.seq); err != nil {
					return err
				}
				out = append(out, queue.Delivery{MessageID: m.id, Body: m.body, ReceiptHandle: receipt,
					ReceiveCount: m.receives + 1, SentAt: time.Unix(0, m.sentAt).UTC()})
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
			}
		}
		return nil
	}()
	if err == nil {
		q.wake.received(name, len(out), max)
	}
	return out, err
}

// newReceipt is a fresh receipt handle for message seq: "<seq>.<32 random hex digits>".
func newReceipt(seq int64) string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return strconv.FormatInt(seq, 10) + "." + hex.EncodeToString(b[:])
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
	receives int
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

// parseReceipt returns the message seq a receipt handle "<seq>.<random>" names.
func parseReceipt(receipt string) (int64, error) {
	s, _, ok := strings.Cut(receipt, ".")
	seq, err := strconv.ParseInt(s, 10, 64)
	if !ok || err != nil || seq <= 0 {
		return 0, fmt.Errorf("invalid receipt handle %q", receipt)
	}
	return seq, nil
}

// byReceipt runs fn on the message seq a receipt names; fn reporting no row means a stale
// receipt. fn runs holding the write lock but outside a transaction: a single write statement
// takes SQLite's write lock when it starts, so it needs no BEGIN IMMEDIATE.
func (q *Queue) byReceipt(ctx context.Context, name, op, receipt string, fn func(seq int64) (bool, error)) error {
	seq, err := parseReceipt(receipt)
	if err != nil {
		return fmt.Errorf("embedded queue %s: %s: %w", name, op, err)
	}
	var ok bool
	err = q.db.locked(ctx, func() (err error) {
		ok, err = fn(seq)
		return err
	})
	if err != nil {
		return fmt.Errorf("embedded queue %s: %s: %w", name, op, err)
	} else if !ok {
		return fmt.Errorf("embedded queue %s: %s: %w", name, op, queue.ErrStaleReceipt)
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

// Delete acknowledges a delivery.
func (q *Queue) Delete(ctx context.Context, name, receipt string) error {
	return q.byReceipt(ctx, name, "delete", receipt, func(seq int64) (bool, error) {
		return affected(q.db.SQL.ExecContext(ctx, `DELETE FROM messages
			WHERE seq = ? AND queue = ? AND receipt = ?`, seq, name, receipt))
	})
}

// ChangeVisibility hides a delivery for visibility from now (0 releases it at once).
func (q *Queue) ChangeVisibility(ctx context.Context, name, receipt string, visibility time.Duration) error {
	if visibility < 0 || visibility > MaxVisibility {
		return fmt.Errorf("embedded queue %s: change visibility: %v not in 0..%v", name, visibility, MaxVisibility)
	}
	err := q.byReceipt(ctx, name, "change visibility", receipt, func(seq int64) (bool, error) {
		return affected(q.db.SQL.ExecContext(ctx, `UPDATE messages SET visible_at = ?
			WHERE seq = ? AND queue = ? AND receipt = ?`,
			time.Now().UnixNano()+int64(visibility), seq, name, receipt))
	})
	if err == nil && visibility == 0 {
		q.wake.signal(name)
	}
	return err
}

// Kill moves a delivery to the dead letters at once, with reason.
func (q *Queue) Kill(ctx context.Context, name, receipt, reason string) error {
	return q.byReceipt(ctx, name, "kill", receipt, func(seq int64) (moved bool, err error) {
		err = q.db.inTx(ctx, func(tx *sql.Tx) error {
			moved, err = affected(tx.ExecContext(ctx, `INSERT INTO dead_letters
				(id, queue, body, group_id, sent_at, reason, receive_count, dead_at)
				SELECT id, queue, body, group_id, sent_at, ?, receive_count, ? FROM messages
				WHERE seq = ? AND queue = ? AND receipt = ?`, reason, time.Now().UnixNano(), seq, name, receipt))
			if err != nil || !moved {
				return err
			}
			_, err = tx.ExecContext(ctx, `DELETE FROM messages WHERE seq = ?`, seq)
			return err
		})
		return moved, err
	})
}

// ListDead returns the dead letters of queue name, oldest first.
func (q *Queue) ListDead(ctx context.Context, name string) ([]queue.DeadLetter, error) {
	rows, err := q.db.SQL.QueryContext(ctx, `SELECT id, queue, body, reason, receive_count, dead_at
		FROM dead_letters WHERE queue = ? ORDER BY dead_at, rowid`, name)
	if err != nil {
		return nil, fmt.Errorf("embedded queue %s: list dead: %w", name, err)
	}
	defer rows.Close()
	out := []queue.DeadLetter{}
	for rows.Next() {
		var d queue.DeadLetter
		var deadAt int64
		if err := rows.Scan(&d.MessageID, &d.Queue, &d.Body, &d.Reason, &d.ReceiveCount, &deadAt); err != nil {
			return nil, fmt.Errorf("embedded queue %s: list dead: %w", name, err)
		}
		d.DeadAt = time.Unix(0, deadAt).UTC()
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("embedded queue %s: list dead: %w", name, err)
	}
	return out, nil
}

// Redrive moves every dead letter of queue name back to it, oldest first, receive count 0.
func (q *Queue) Redrive(ctx context.Context, name string) (int, error) {
	var n int64
	err := q.db.lockedTx(ctx, func(tx *sql.Tx) error {
		now := time.Now().UnixNano()
		res, err := tx.ExecContext(ctx, `INSERT INTO messages
			(id, queue, body, group_id, sent_at, visible_at)
			SELECT id, queue, body, group_id, sent_at, ? FROM dead_letters
			WHERE queue = ? ORDER BY dead_at, rowid`, now, name)
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM dead_letters WHERE queue = ?`, name)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("embedded queue %s: redrive: %w", name, err)
	}
	if n > 0 {
		q.wake.signal(name)
	}
	return int(n), nil
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

// waker lets waiting Receives of one process sleep until a write may have made a message of
// their queue visible: channel returns a channel that signal closes. Each queue has its own, so
// a Send wakes only the receivers of the queues it wrote to.
//
// It also keeps a hint per queue: drained, when this process's last receive from the queue got
// fewer messages than it asked for and nothing was sent to it (by this process) since. A
// drained queue may still hold messages another process sent, or whose visibility expired:
// receivers that trust the hint poll for those.
type waker struct {
	mu      sync.Mutex
	chs     map[string]chan struct{}
	drained map[string]bool
}

// maybe reports whether queue name may have visible messages, as far as this process knows.
func (w *waker) maybe(name string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return !w.drained[name]
}

// received records that a receive from name got got of the max messages it asked for; it runs
// holding the file's write lock, like every write, so it orders with the signals of sends.
func (w *waker) received(name string, got, max int) {
	if got >= max {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.drained[name] = true
}

func (w *waker) channel(name string) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	ch := w.chs[name]
	if ch == nil {
		ch = make(chan struct{})
		w.chs[name] = ch
	}
	return ch
}

func (w *waker) signal(names ...string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, name := range names {
		delete(w.drained, name)
		if ch := w.chs[name]; ch != nil {
			close(ch)
			delete(w.chs, name) // the next channel(name) makes a fresh one
		}
	}
}

// Per-file process-wide state, keyed by the file's absolute path so that every *DB on one file
// shares it: the waker, and a write lock that queues this process's writers in Go instead of
// in SQLite's busy handler (which sleeps 1, 2, 5, 10... ms between retries).
var (
	perFileMu sync.Mutex
	wakers    = map[string]*waker{}
	writeLock = map[string]chan struct{}{}
)

func wakerFor(db *DB) *waker {
	perFileMu.Lock()
	defer perFileMu.Unlock()
	w := wakers[db.Path]
	if w == nil {
		w = &waker{chs: map[string]chan struct{}{}, drained: map[string]bool{}}
		wakers[db.Path] = w
	}
	return w
}

// locked runs fn holding the process-wide write lock of db's file (see writeLock). Only the
// stores of this package that write often use it; others simply rely on busy_timeout.
func (db *DB) locked(ctx context.Context, fn func() error) error {
	perFileMu.Lock()
	lock := writeLock[db.Path]
	if lock == nil {
		lock = make(chan struct{}, 1)
		writeLock[db.Path] = lock
	}
	perFileMu.Unlock()
	select {
	case lock <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-lock }()
	return fn()
}

// lockedTx is inTx holding the process-wide write lock of db's file.
func (db *DB) lockedTx(ctx context.Context, fn func(*sql.Tx) error) error {
	return db.locked(ctx, func() error { return db.inTx(ctx, fn) })
}
