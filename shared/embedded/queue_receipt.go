package embedded

// Settling a delivery by its receipt handle: Delete, ChangeVisibility and Kill; a receipt that
// is not current fails with queue.ErrStaleReceipt.

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/usekarma/karma/shared/queue"
)

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

// Delete acknowledges a delivery.
func (q *Queue) Delete(ctx context.Context, name, receipt string) error {
	return q.byReceipt(ctx, name, "delete", receipt, func(seq int64) (bool, error) {
		return affected(q.db.conn(ctx).ExecContext(ctx, `DELETE FROM messages
			WHERE seq = ? AND queue = ? AND receipt = ?`, seq, name, receipt))
	})
}

// ChangeVisibility hides a delivery for visibility from now (0 releases it at once).
func (q *Queue) ChangeVisibility(ctx context.Context, name, receipt string, visibility time.Duration) error {
	if visibility < 0 || visibility > MaxVisibility {
		return fmt.Errorf("embedded queue %s: change visibility: %v not in 0..%v", name, visibility, MaxVisibility)
	}
	err := q.byReceipt(ctx, name, "change visibility", receipt, func(seq int64) (bool, error) {
		return affected(q.db.conn(ctx).ExecContext(ctx, `UPDATE messages SET visible_at = ?
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
