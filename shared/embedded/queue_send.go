package embedded

// Sending: Send, and the dedup window of DedupIDs (queue.go states the contract).

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/usekarma/karma/shared/queue"
)

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
