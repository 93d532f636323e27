// Package queue is the transport between stages, with SQS semantics: a received message is
// invisible for its visibility timeout and comes back if not deleted (a process killed
// mid-stage loses nothing); every receive counts; after MaxReceives receives a message moves to
// the queue's dead-letter queue instead of being delivered again. A handler may also dead-letter
// a message at once, with a reason (a poison message). Implementations: embedded (SQLite) and
// SQS; one conformance suite (queuetest) checks both.
package queue

import (
	"context"
	"time"
)

// DefaultMaxReceives is the receive count after which a message is dead-lettered.
const DefaultMaxReceives = 5

// Message is one message to send.
type Message struct {
	Body []byte
	// GroupID orders messages on FIFO queues (one group per env/component); "" on standard queues.
	GroupID string
	// DedupID deduplicates sends on FIFO queues; "" lets the queue decide.
	DedupID string
}

// Delivery is one received message.
type Delivery struct {
	MessageID     string
	Body          []byte
	ReceiptHandle string
	ReceiveCount  int
	SentAt        time.Time
}

// DeadLetter is a message in a dead-letter queue, with why it is there.
type DeadLetter struct {
	MessageID    string
	Queue        string // the queue it came from
	Body         []byte
	Reason       string
	ReceiveCount int
	DeadAt       time.Time
}

// Queue is the transport as workers' runtimes use it.
type Queue interface {
	Send(ctx context.Context, queue string, msgs ...Message) error
	// Receive returns up to max visible messages, hiding them for visibility. It waits up to
	// wait for at least one (0 = return at once).
	Receive(ctx context.Context, queue string, max int, visibility, wait time.Duration) ([]Delivery, error)
	// Delete acknowledges a delivery. Deleting with a stale receipt (the message was received
	// again since) is an error matching ErrStaleReceipt.
	Delete(ctx context.Context, queue, receipt string) error
	// ChangeVisibility hides (or, with 0, releases) a delivery again.
	ChangeVisibility(ctx context.Context, queue, receipt string, visibility time.Duration) error
	// Kill moves a delivery to the dead-letter queue at once, with its reason.
	Kill(ctx context.Context, queue, receipt, reason string) error
}

// DeadLetters is the dead-letter side (karma dlq list | redrive).
type DeadLetters interface {
	ListDead(ctx context.Context, queue string) ([]DeadLetter, error)
	// Redrive moves every dead letter of queue back to it (receive count reset); returns how many.
	Redrive(ctx context.Context, queue string) (int, error)
}

// Counts are how many messages a queue holds, by state, and its dead-letter queue (approximate
// on SQS, which counts them itself).
type Counts struct {
	Waiting  int // visible: ready to be received
	InFlight int // received and not yet deleted (hidden for their visibility timeout)
	Delayed  int // sent with a delay not yet over
	Dead     int // in the dead-letter queue
}

// Held is every message the queue holds, dead letters aside: what Depth reports.
func (c Counts) Held() int { return c.Waiting + c.InFlight + c.Delayed }
