package embedded

// Dead letters: ListDead and Redrive (queue.DeadLetters).

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/usekarma/karma/shared/queue"
)

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
