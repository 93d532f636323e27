package embedded

import "context"

// Depth is how many messages a queue holds, visible or in flight (SQS's
// ApproximateNumberOfMessages plus ...NotVisible). The CLI uses it to run the pipeline until idle.
func (q *Queue) Depth(ctx context.Context, queue string) (int, error) {
	var n int
	err := q.db.SQL.QueryRowContext(ctx, `SELECT count(*) FROM messages WHERE queue = ?`, queue).Scan(&n)
	return n, err
}
