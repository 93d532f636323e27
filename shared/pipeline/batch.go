package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/queue"
)

// Batching. A transport that can settle several deliveries in one transaction implements Outbox
// (the embedded queue does); the Runner then receives up to MaxBatch messages at a time with
// their idempotency keys claimed in the same transaction, handles them, and ends each delivery
// with a Settlement — its outputs sent, its key marked done, the delivery acknowledged — that
// one Exchange commits together with the receipt (and claims) of the next batch. Other
// transports (SQS) are driven one message at a time through Process. See outbox.go.

// Outgoing is one message to send to one queue.
type Outgoing struct {
	Queue   string
	Message queue.Message
}

// Settlement is how the runtime ends one delivery on an Outbox: the outputs to send, the
// idempotency keys to mark done or release, and what becomes of the delivery itself.
type Settlement struct {
	// Queue and Receipt name the delivery; an empty Receipt settles no delivery (only Sends,
	// Marks and Releases).
	Queue   string
	Receipt string
	// Action says what becomes of the delivery: Ack and Duplicate delete it; DeadLetter moves it
	// to the dead letters with Reason; Retry hides it for RetryAfter, or leaves it as it is when
	// RetryAfter < 0 (it comes back when its visibility timeout expires).
	Action     Action
	Reason     string
	RetryAfter time.Duration
	// Unhandled, with Retry, says the delivery is put back without having been handled: its
	// key is in progress on another worker (InProgress), whose own delivery settles the key. Its
	// receive is given back, so that a copy waiting for a long handler (a Terraform apply of 40
	// minutes) is not dead-lettered for too many receives while it waits.
	Unhandled bool
	Sends     []Outgoing
	// Marks are idempotency keys to record as done (dropping their claims); Releases are claims
	// to drop without marking. Only for a Seen the Outbox Records.
	Marks    []string
	Releases []string
}

// Receiving asks Exchange to receive the next messages of a queue in its transaction.
type Receiving struct {
	Queue      string
	Max        int // 1..MaxBatch
	Visibility time.Duration
	// Keys, when set, gives the idempotency key of each delivery received ("" for none): the
	// keys are claimed for Lease in the same transaction, as BatchSeen.ClaimAll would claim them
	// (in the store of a Seen the Outbox Records). Keys runs inside the transaction, so it must
	// be quick and touch no store; it may run more than once (a transaction tried again), and
	// its last run saw the deliveries Exchange returns.
	Keys  func([]queue.Delivery) []string
	Lease time.Duration
	// Wait, when the exchange received nothing, is how long to wait for messages (and receive
	// them, with their claims, in another transaction); 0 returns at once.
	Wait time.Duration
}

// Exchanged is what an Exchange committed.
type Exchanged struct {
	// Acks[i] is the error of settlement i's acknowledgement when the rest was committed
	// without it (e.g. queue.ErrStaleReceipt: the delivery was received again since).
	Acks []error
	// Deliveries were received (hidden for Receiving.Visibility); Claims[i] is what claiming
	// the key of Deliveries[i] found (ClaimTaken when it had no key).
	Deliveries []queue.Delivery
	Claims     []ClaimState
	// Dead are the messages the receive moved to the dead-letter queue instead of delivering
	// them (they had had their receives): the runner reports them as it reports its own.
	Dead []queue.DeadLetter
}

// Outbox is an optional interface of a queue.Queue: it settles deliveries transactionally.
type Outbox interface {
	// Exchange commits, in one transaction, every settlement of batch (all their sends, marks,
	// releases and acknowledgements) and, with recv, the receipt of the queue's next messages
	// and the claims of their keys: all of it takes effect together, or nothing does (err; when
	// recv.Wait made it wait, a failure while waiting is an error only if batch was empty).
	Exchange(ctx context.Context, batch []Settlement, recv *Receiving) (Exchanged, error)
	// Records reports whether Exchange can mark, release and claim the keys of seen (same store).
	Records(seen Seen) bool
}

// Joinable is an optional interface of an Outbox: a stage's own writes, to stores kept with the
// queue, can take part in the transaction that settles its messages (a Stage with Joined).
type Joinable interface {
	Outbox
	// ExchangeJoined runs handle inside a transaction, then commits in that transaction the
	// settlements handle returned and, with recv, receives and claims as Exchange would. The
	// ctx handle gets carries the transaction: the stores kept with the queue, called with it,
	// write in it. Everything takes effect together, or nothing does (err). handle may run
	// more than once (the transaction tried again), each time from scratch.
	ExchangeJoined(ctx context.Context, handle JoinedHandler, recv *Receiving) (Exchanged, error)
}

// JoinedHandler does a batch's work inside an exchange's transaction and returns its
// settlements. step runs one message's part in a savepoint of the transaction: the writes fn
// makes stay when fn returns true and are undone when it returns false. An error (from step, or
// returned) fails the whole exchange.
type JoinedHandler func(ctx context.Context, step func(fn func() bool) error) ([]Settlement, error)

// ClaimState is what claiming one idempotency key found.
type ClaimState int

const (
	// ClaimTaken: the key is now claimed by the caller.
	ClaimTaken ClaimState = iota
	// ClaimHeld: a live claim of another worker holds the key.
	ClaimHeld
	// ClaimDone: the key was marked done.
	ClaimDone
)

// BatchSeen is an optional interface of a Seen: Done and Claim for many keys in one round trip.
type BatchSeen interface {
	Seen
	// ClaimAll looks up and claims keys for lease, as Done then Claim would for each. A key
	// given twice is taken at most once (the later copies are ClaimHeld).
	ClaimAll(ctx context.Context, keys []string, lease time.Duration) ([]ClaimState, error)
}

// BatchHandler handles several messages of a stage at once (e.g. one write for all of them). It
// returns, for each input, the outputs and the error its Handler would have returned. The runtime
// runs the stage's Handler again for every input the batch returned an error for, so a batch
// handler may fail a whole batch on any error and leave the details to Handler. AfterPublish
// does nothing inside a batch handler.
type BatchHandler func(ctx context.Context, ins []message.Envelope) (outs [][]message.Envelope, errs []error)

// SeenKey is the idempotency key of in for stage: "<stage>|<idempotency key>", or
// "<stage>|id:<message id>" for a message without one (as the Idempotency middleware keys it).
func SeenKey(stage string, in message.Envelope) string {
	if in.IdempotencyKey == "" {
		return stage + "|id:" + in.ID
	}
	return stage + "|" + in.IdempotencyKey
}

// claimAll claims keys on seen: in one round trip on a BatchSeen, else Done and Claim per key.
func claimAll(ctx context.Context, seen Seen, keys []string, lease time.Duration) ([]ClaimState, error) {
	if bs, ok := seen.(BatchSeen); ok {
		return bs.ClaimAll(ctx, keys, lease)
	}
	out := make([]ClaimState, len(keys))
	for i, k := range keys {
		done, err := seen.Done(ctx, k)
		if err != nil {
			return nil, fmt.Errorf("idempotency lookup: %w", err)
		}
		if done {
			out[i] = ClaimDone
			continue
		}
		ok, err := seen.Claim(ctx, k, lease)
		if err != nil {
			return nil, err
		}
		if !ok {
			out[i] = ClaimHeld
			continue
		}
		// Free because its holder marked it done since the lookup (Mark drops the claim)?
		if done, err = seen.Done(ctx, k); err != nil || done {
			_ = seen.Release(context.WithoutCancel(ctx), k)
			if err != nil {
				return nil, fmt.Errorf("idempotency lookup: %w", err)
			}
			out[i] = ClaimDone
		}
	}
	return out, nil
}

// outgoing encodes msgs for every queue their type routes to (and the audit queue).
func outgoing(msgs []message.Envelope) ([]Outgoing, error) {
	var out []Outgoing
	for _, m := range msgs {
		body, err := message.Encode(m)
		if err != nil {
			return nil, Transient(fmt.Errorf("pipeline: encode %s: %w", m.Type, err))
		}
		for _, dest := range Routes[m.Type] {
			out = append(out, Outgoing{Queue: dest, Message: queue.Message{Body: body}})
		}
		out = append(out, Outgoing{Queue: StageAudit, Message: queue.Message{Body: body}})
	}
	return out, nil
}
