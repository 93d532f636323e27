package sqs

import (
	"fmt"
	"sync"
	"time"

	"github.com/usekarma/karma/shared/queue"
)

// receipts remembers the deliveries a Queue handed out, because SQS itself cannot answer two
// questions the queue.Queue contract asks:
//   - Is a receipt stale? SQS (and moto) accept a Delete with an old receipt handle of a message
//     that was received again since, and a Delete of a message already deleted. A receipt that
//     this Queue saw superseded (the same message received again through it) or used up (deleted,
//     dead-lettered) is refused here with queue.ErrStaleReceipt before SQS is asked.
//   - What is the body of a receipt? Kill must copy the message to the dead-letter queue, and
//     SQS has no read-by-receipt call.
//
// Entries are dropped an hour after their visibility deadline (live ones) or after they went
// stale, so memory stays bounded by the traffic of the last hour.
type receipts struct {
	mu        sync.Mutex
	byReceipt map[string]*delivery
	current   map[string]string // queue name + "\x00" + message id -> its newest receipt
	lastSweep time.Time
}

// keep is how long an entry outlives its visibility deadline (live) or its end (stale).
const keep = time.Hour

type deliveryState int

const (
	live deliveryState = iota
	superseded
	used
)

type delivery struct {
	queue        string // the queue name as the caller gives it (without prefix)
	messageID    string
	body         []byte // nil once not live
	groupID      string
	receiveCount int
	deadline     time.Time // visibility deadline of a live entry; when it stopped being live otherwise
	state        deliveryState
}

func newReceipts() *receipts {
	return &receipts{byReceipt: map[string]*delivery{}, current: map[string]string{}}
}

func key(queue, messageID string) string { return queue + "\x00" + messageID }

// received records a fresh delivery; an older receipt of the same message becomes stale.
func (r *receipts) received(name string, d queue.Delivery, groupID string, deadline time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if now.Sub(r.lastSweep) > time.Minute {
		r.sweep(now)
	}
	k := key(name, d.MessageID)
	if old, ok := r.current[k]; ok && old != d.ReceiptHandle {
		if e := r.byReceipt[old]; e != nil && e.state == live {
			e.state, e.body, e.deadline = superseded, nil, now
		}
	}
	r.current[k] = d.ReceiptHandle
	r.byReceipt[d.ReceiptHandle] = &delivery{queue: name, messageID: d.MessageID, body: d.Body,
		groupID: groupID, receiveCount: d.ReceiveCount, deadline: deadline, state: live}
}

// check returns the live delivery of receipt on queue name, nil if this Queue does not know the
// receipt (another process received it: SQS decides), or an error matching
// queue.ErrStaleReceipt if it knows the receipt is stale.
func (r *receipts) check(name, receipt string) (*delivery, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.byReceipt[receipt]
	if e == nil || e.queue != name {
		return nil, nil
	}
	switch e.state {
	case superseded:
		return nil, fmt.Errorf("message %s was received again since: %w", e.messageID, queue.ErrStaleReceipt)
	case used:
		return nil, fmt.Errorf("message %s is already deleted or dead-lettered: %w", e.messageID, queue.ErrStaleReceipt)
	}
	c := *e
	return &c, nil
}

// used marks receipt's message as deleted or dead-lettered.
func (r *receipts) use(receipt string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.byReceipt[receipt]; e != nil {
		e.state, e.body, e.deadline = used, nil, time.Now()
		if k := key(e.queue, e.messageID); r.current[k] == receipt {
			delete(r.current, k)
		}
	}
}

// extend moves a live receipt's visibility deadline.
func (r *receipts) extend(receipt string, deadline time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.byReceipt[receipt]; e != nil && e.state == live {
		e.deadline = deadline
	}
}

// sweep drops entries older than keep. Called with mu held.
func (r *receipts) sweep(now time.Time) {
	r.lastSweep = now
	for receipt, e := range r.byReceipt {
		if now.Sub(e.deadline) < keep {
			continue
		}
		delete(r.byReceipt, receipt)
		if k := key(e.queue, e.messageID); r.current[k] == receipt {
			delete(r.current, k)
		}
	}
}
