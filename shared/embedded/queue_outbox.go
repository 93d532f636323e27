package embedded

// Outbox: the Queue settles a runner's deliveries transactionally (pipeline.Outbox); Seen
// claims a batch of idempotency keys in one transaction (pipeline.BatchSeen, seen.go). The
// exchange's transaction is settleTx (queue_settle.go), committed by a group commit
// (queue_groupcommit.go).
//
// Contract beyond the interfaces:
//   - Exchange commits in one transaction every settlement of its batch: sends (queued in the
//     order given, as Send would, DedupIDs included), marks (handled keys, claims dropped),
//     releases, and each delivery's acknowledgement (delete, dead-letter, change visibility);
//     then, with a Receiving, it receives as Receive would and claims the keys of what it
//     received; what that receive moved to the dead letters instead (out of receives) it
//     returns too (Exchanged.Dead), so that the runner reports it. Without Wait it skips the receive when this process drained the queue since
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
	"errors"
	"fmt"

	"github.com/usekarma/karma/shared/pipeline"
)

var _ pipeline.Outbox = (*Queue)(nil)

// Records reports whether Exchange can mark, release and claim seen's keys: seen is the
// embedded Seen of the same file.
func (q *Queue) Records(seen pipeline.Seen) bool {
	s, ok := seen.(*Seen)
	return ok && s != nil && s.db != nil && s.db.Path == q.db.Path
}

// Exchange commits batch and, with recv, receives and claims, in one transaction (see the
// contract at the top of this file).
func (q *Queue) Exchange(ctx context.Context, batch []pipeline.Settlement, recv *pipeline.Receiving) (pipeline.Exchanged, error) {
	if err := checkSettlements(batch); err != nil {
		return pipeline.Exchanged{}, err
	}
	return q.exchange(ctx, batch, nil, recv)
}

// ExchangeJoined runs handle in the exchange's transaction, then commits the settlements it
// returns and, with recv, receives and claims, in the same transaction (see the contract).
func (q *Queue) ExchangeJoined(ctx context.Context, handle pipeline.JoinedHandler, recv *pipeline.Receiving) (pipeline.Exchanged, error) {
	if handle == nil {
		return pipeline.Exchanged{}, errors.New("embedded queue: exchange: nil handler")
	}
	return q.exchange(ctx, nil, handle, recv)
}

// checkSettlements refuses settlements that name no queue or send an empty body.
func checkSettlements(batch []pipeline.Settlement) error {
	for i, s := range batch {
		for _, o := range s.Sends {
			if o.Queue == "" {
				return fmt.Errorf("embedded queue: exchange: settlement %d sends to an empty queue name", i)
			}
			if len(o.Message.Body) == 0 {
				return fmt.Errorf("embedded queue %s: exchange: settlement %d sends an empty body", o.Queue, i)
			}
		}
		if s.Receipt != "" && s.Queue == "" {
			return fmt.Errorf("embedded queue: exchange: settlement %d has a receipt but no queue", i)
		}
	}
	return nil
}

func (q *Queue) exchange(ctx context.Context, batch []pipeline.Settlement, handle pipeline.JoinedHandler, recv *pipeline.Receiving) (pipeline.Exchanged, error) {
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
	settles := len(batch) > 0 || handle != nil
	if settles || (recv != nil && q.wake.maybe(recv.Queue)) {
		var err error
		if ex, err = g.exchange(ctx, &settleReq{q: q, ctx: ctx, batch: batch, handle: handle, recv: recv}); err != nil {
			return ex, err
		}
	}
	if recv == nil || recv.Wait <= 0 || len(ex.Deliveries) > 0 {
		return ex, nil
	}
	acks, dead := ex.Acks, ex.Dead
	err := q.await(ctx, recv.Queue, recv.Wait, func() (bool, error) {
		var err error
		ex, err = g.exchange(ctx, &settleReq{q: q, ctx: ctx, recv: recv, force: true})
		dead = append(dead, ex.Dead...) // committed, whatever the wait comes to
		return len(ex.Deliveries) > 0, err
	})
	ex.Acks, ex.Dead = acks, dead
	if err != nil && !settles {
		return ex, err
	}
	return ex, nil // the settlements are committed: what failed is only the wait for more
}
