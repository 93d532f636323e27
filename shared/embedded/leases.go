package embedded

// Leases: what processes hold on the file, who holds it, until when; and releasing at once what
// a process known to be gone held (see holder.go).
//
// Contract:
//   - Every Receive (and Exchange receive) records this process as the holder of the messages it
//     hands out; every claim of an idempotency key (Seen.Claim, ClaimAll, Exchange) records it
//     as the claim's holder.
//   - Leases lists messages in flight (received, visibility not yet expired) and live claims,
//     each with its holder and when it runs out by itself.
//   - ReleaseAbandoned releases the leases whose holder is known to be gone (Holder.Running:
//     same host, the pid has no process or a process that started at another time): a message
//     becomes visible at once (receive count kept, the dead holder's receipt made stale), a claim
//     is dropped. Leases of running holders, of holders on other hosts and of leases taken before
//     holders were recorded are left to run out. It returns what it released.

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Lease is a message a process received and has not settled (Queue, MessageID, Body), or an
// idempotency key it claimed (Key), with its holder and when it runs out by itself.
type Lease struct {
	Queue     string
	MessageID string
	Body      []byte
	Key       string
	Holder    Holder
	Until     time.Time
}

// Leases returns the messages in flight, oldest lease end first.
func (q *Queue) Leases(ctx context.Context) ([]Lease, error) {
	rows, err := q.db.SQL.QueryContext(ctx, `SELECT queue, id, body, holder, visible_at FROM messages
		WHERE visible_at > ? ORDER BY visible_at, seq`, time.Now().UnixNano())
	if err != nil {
		return nil, fmt.Errorf("embedded queue: leases: %w", err)
	}
	defer rows.Close()
	var out []Lease
	for rows.Next() {
		var l Lease
		var holder string
		var until int64
		if err := rows.Scan(&l.Queue, &l.MessageID, &l.Body, &holder, &until); err != nil {
			return nil, fmt.Errorf("embedded queue: leases: %w", err)
		}
		l.Holder, l.Until = decodeHolder(holder), time.Unix(0, until)
		out = append(out, l)
	}
	return out, rows.Err()
}

// ReleaseAbandoned makes the messages held by processes known to be gone visible at once.
func (q *Queue) ReleaseAbandoned(ctx context.Context) ([]Lease, error) {
	leases, err := q.Leases(ctx)
	if err != nil {
		return nil, err
	}
	gone := abandoned(leases)
	if len(gone) == 0 {
		return nil, nil
	}
	var released []Lease
	err = q.db.lockedTx(ctx, func(tx *sql.Tx) error {
		released = released[:0]
		now := time.Now().UnixNano()
		for _, l := range gone {
			ok, err := affected(tx.ExecContext(ctx, `UPDATE messages SET visible_at = ?, holder = '', receipt = ''
				WHERE queue = ? AND id = ? AND holder = ? AND visible_at > ?`, now, l.Queue, l.MessageID, l.Holder.encode(), now))
			if err != nil {
				return err
			}
			if ok {
				released = append(released, l)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("embedded queue: release abandoned messages: %w", err)
	}
	for _, l := range released {
		q.wake.signal(l.Queue)
	}
	return released, nil
}

// Leases returns the live claims, oldest lease end first.
func (s *Seen) Leases(ctx context.Context) ([]Lease, error) {
	rows, err := s.db.SQL.QueryContext(ctx, `SELECT key, holder, expires FROM claims
		WHERE expires > ? ORDER BY expires, key`, time.Now().UnixNano())
	if err != nil {
		return nil, fmt.Errorf("embedded seen: leases: %w", err)
	}
	defer rows.Close()
	var out []Lease
	for rows.Next() {
		var l Lease
		var holder string
		var until int64
		if err := rows.Scan(&l.Key, &holder, &until); err != nil {
			return nil, fmt.Errorf("embedded seen: leases: %w", err)
		}
		l.Holder, l.Until = decodeHolder(holder), time.Unix(0, until)
		out = append(out, l)
	}
	return out, rows.Err()
}

// ReleaseAbandoned drops the claims held by processes known to be gone.
func (s *Seen) ReleaseAbandoned(ctx context.Context) ([]Lease, error) {
	leases, err := s.Leases(ctx)
	if err != nil {
		return nil, err
	}
	gone := abandoned(leases)
	if len(gone) == 0 {
		return nil, nil
	}
	var released []Lease
	err = s.db.lockedTx(ctx, func(tx *sql.Tx) error {
		released = released[:0]
		for _, l := range gone {
			ok, err := affected(tx.ExecContext(ctx, `DELETE FROM claims WHERE key = ? AND holder = ?`, l.Key, l.Holder.encode()))
			if err != nil {
				return err
			}
			if ok {
				released = append(released, l)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("embedded seen: release abandoned claims: %w", err)
	}
	return released, nil
}

// abandoned are the leases whose holder is known to be gone (each holder is looked at once).
func abandoned(leases []Lease) []Lease {
	state := map[Holder]bool{}
	var out []Lease
	for _, l := range leases {
		gone, seen := state[l.Holder]
		if !seen {
			running, known := l.Holder.Running()
			gone = known && !running
			state[l.Holder] = gone
		}
		if gone {
			out = append(out, l)
		}
	}
	return out
}
