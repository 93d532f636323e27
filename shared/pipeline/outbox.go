package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/queue"
)

// The Runner on an Outbox. Each stage has Workers workers (default 1) and one receiver that
// starts idle ones. A worker handles a batch — up to MaxBatch messages for a stage with one
// worker (one after the other, or all at once with the stage's BatchHandler), one message for a
// stage with several — and then, in one Exchange, publishes its outputs, marks its keys done,
// acknowledges it, and receives and claims the next batch, which it handles in turn. When the
// queue has nothing for it, the worker goes idle; the receiver waits for messages (Receive, woken
// by sends) and hands them to idle workers, never receiving more than those can start on.
// Exchanges that arrive together (other workers, other stages) may share a transaction.
//
// The delivery contract holds per message: its outputs are published in the transaction that
// acknowledges it, or before (when its handler registered AfterPublish hooks, or Seen's marks live
// in another store: then the outputs are sent first, hooks and marks run, and the acknowledgement
// follows), never after. Within a batch, messages are handled one after the other as Process
// would handle them: a message's hooks run before the next message is handled.

// MaxBatch is the most messages the Runner receives at once (SQS's limit).
const MaxBatch = 10

// receiveWait is how long the receiver's Receive waits for a message: the embedded queue wakes it
// at once on a send, and Run's cancellation interrupts it.
const receiveWait = time.Second

// item is one delivery on its way through the batched runner.
type item struct {
	d         queue.Delivery
	in        message.Envelope
	key       string // idempotency key (stages with Seen)
	claimed   bool   // key claimed for this delivery
	release   bool   // the handler failed: give the claim back
	decided   bool   // action known before handling (malformed, duplicate, in progress)
	out       []message.Envelope
	sends     []Outgoing
	handled   bool   // the stage ran on it
	published bool   // sends committed ahead of the acknowledgement (AfterPublish hooks)
	prepared  any    // what Stage.Prepare returned (joined stages)
	hooks     *hooks // its handler's, when it succeeded (onAbandon, should its outputs not be finished)
	action    Action
	err       error
	qerr      error // the acknowledgement's error
}

func (it *item) decide(a Action, err error) { it.decided, it.action, it.err = true, a, err }

func (r *Runner) pollOutbox(ctx context.Context, st Stage, ob Outbox) {
	workers := max(st.Workers, 1)
	batch := MaxBatch
	if workers > 1 {
		batch = 1 // a slow message never waits behind another in its worker
	}
	idle := make(chan struct{}, workers) // a token per idle worker
	for range workers {
		idle <- struct{}{}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	for ctx.Err() == nil {
		select {
		case <-idle:
		case <-ctx.Done():
			return
		}
		n := 1
		for more := true; more && n < workers && n*batch < MaxBatch; {
			select {
			case <-idle:
				n++
			default:
				more = false
			}
		}
		recv, parsed := r.receiving(st, ob, min(n*batch, MaxBatch))
		recv.Wait = receiveWait
		ex, err := ob.Exchange(ctx, nil, recv)
		r.deadOnReceive(st, ex.Dead)
		ds := ex.Deliveries
		if err == nil && len(ds) > 0 {
			r.inFlight.Add(int64(len(ds)))
		}
		// Workers without a message go back to idle.
		for range n - (len(ds)+batch-1)/batch {
			idle <- struct{}{}
		}
		if err != nil {
			if ctx.Err() == nil {
				r.log().Warn("receive failed", "stage", st.Name, "error", err)
				time.Sleep(100 * time.Millisecond)
			}
			continue
		}
		// Handlers finish their messages even when shutdown starts (drain); the queue's
		// visibility timeout covers a process that dies instead.
		hctx := context.WithoutCancel(ctx)
		items := r.received(hctx, st, ob, recv, *parsed, ex)
		for len(items) > 0 {
			first := items[:min(batch, len(items))]
			items = items[len(first):]
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.work(ctx, hctx, st, ob, batch, first)
				idle <- struct{}{}
			}()
		}
	}
}

// receiving is what to ask an Exchange to receive for st, up to max messages; parsed will hold
// the items Keys parsed (when the Outbox claims the keys itself).
func (r *Runner) receiving(st Stage, ob Outbox, max int) (*Receiving, *[]*item) {
	recv := &Receiving{Queue: st.Name, Max: max, Visibility: r.visibility()}
	parsed := new([]*item)
	if _, joined := r.joins(st, ob); joined {
		return recv, parsed // no claims: its transaction owns the keys (joined.go)
	}
	if st.Seen != nil && ob.Records(st.Seen) {
		recv.Lease = st.lease(r.visibility())
		recv.Keys = func(ds []queue.Delivery) []string {
			*parsed = r.parse(st, ds)
			keys := make([]string, len(*parsed))
			for i, it := range *parsed {
				keys[i] = it.key
			}
			return keys
		}
	}
	return recv, parsed
}

// received turns what an Exchange received into items, claimed (but for a joined stage).
func (r *Runner) received(ctx context.Context, st Stage, ob Outbox, recv *Receiving, parsed []*item, ex Exchanged) []*item {
	if len(ex.Deliveries) == 0 {
		return nil
	}
	if _, joined := r.joins(st, ob); joined {
		return r.parse(st, ex.Deliveries) // keys checked in the stage's transaction (joined.go)
	}
	if recv.Keys == nil {
		return r.claim(ctx, st, ex.Deliveries)
	}
	if len(parsed) != len(ex.Deliveries) || len(ex.Claims) != len(ex.Deliveries) { // cannot happen
		return r.claim(ctx, st, ex.Deliveries)
	}
	for i, it := range parsed {
		if it.key != "" {
			r.applyClaim(st, it, ex.Claims[i])
		}
	}
	return parsed
}

// work handles items, then every batch it receives with their settlement, until the queue has
// nothing more for it or the runner stops.
func (r *Runner) work(ctx, hctx context.Context, st Stage, ob Outbox, batch int, items []*item) {
	for len(items) > 0 {
		var recv *Receiving
		var parsed *[]*item
		if ctx.Err() == nil {
			recv, parsed = r.receiving(st, ob, batch)
		}
		var next *Exchanged
		if jo, ok := r.joins(st, ob); ok {
			next = r.handleJoined(hctx, st, jo, items, recv)
		} else {
			ds := make([]queue.Delivery, len(items))
			var keys []string
			for i, it := range items {
				ds[i] = it.d
				if it.claimed {
					keys = append(keys, it.key)
				}
			}
			stop := r.keepHidden(hctx, st, ds, keys)
			r.handle(hctx, st, ob, items)
			stop()
			next = r.settleItems(hctx, st, ob, items, recv)
		}
		if next != nil {
			r.inFlight.Add(int64(len(next.Deliveries)))
			r.deadOnReceive(st, next.Dead)
		}
		for _, it := range items {
			r.settled(st, it.d, it.in, it.out, it.action, it.err, it.qerr)
		}
		r.inFlight.Add(-int64(len(items)))
		items = nil
		if next != nil && recv != nil {
			items = r.received(hctx, st, ob, recv, *parsed, *next)
		}
	}
}

// deadOnReceive reports the messages a receive of st's queue moved to the dead letters instead
// of delivering them (they had had their receives, the last without being settled: their
// holder died, or was putting them back as in progress), as the messages the runner
// dead-letters itself are reported: logged, and to Observe.
func (r *Runner) deadOnReceive(st Stage, dead []queue.DeadLetter) {
	for _, d := range dead {
		in, _ := message.Parse(d.Body) // (zero when it does not parse)
		r.settled(st, queue.Delivery{MessageID: d.MessageID, Body: d.Body, ReceiveCount: d.ReceiveCount}, in, nil,
			DeadLetter, errors.New(d.Reason), nil)
	}
}

// parse turns deliveries into items; a malformed message is decided (dead letter).
func (r *Runner) parse(st Stage, ds []queue.Delivery) []*item {
	items := make([]*item, len(ds))
	for i, d := range ds {
		it := &item{d: d}
		items[i] = it
		in, err := message.Parse(d.Body)
		if err != nil {
			it.decide(DeadLetter, err)
			continue
		}
		it.in = in
		if st.Seen != nil {
			it.key = SeenKey(st.Name, in)
		}
	}
	return items
}

// applyClaim decides an item by what claiming its key found.
func (r *Runner) applyClaim(st Stage, it *item, c ClaimState) {
	switch c {
	case ClaimDone:
		it.decide(Duplicate, fmt.Errorf("%s already handled %s: %w", st.Name, it.key, ErrDuplicate))
	case ClaimHeld:
		it.decide(Retry, &InProgress{Key: it.key})
	default:
		it.claimed = true
	}
}

// claim parses the deliveries and, for a stage with Seen, claims their keys in one round trip.
func (r *Runner) claim(ctx context.Context, st Stage, ds []queue.Delivery) []*item {
	items := r.parse(st, ds)
	var keyed []*item
	var keys []string
	for _, it := range items {
		if it.key != "" {
			keyed = append(keyed, it)
			keys = append(keys, it.key)
		}
	}
	if len(keys) == 0 {
		return items
	}
	states, err := claimAll(ctx, st.Seen, keys, st.lease(r.visibility()))
	for i, it := range keyed {
		if err != nil {
			it.decide(Retry, Transient(fmt.Errorf("idempotency claim: %w", err)))
			continue
		}
		r.applyClaim(st, it, states[i])
	}
	return items
}

// handle runs the stage on the items not yet decided, in order, and encodes their outputs. A
// message that registered AfterPublish hooks has its outputs (and every earlier one's) published
// and its hooks run before the next message is handled, as Process would: a hook may record
// what the next message's handler must see (resolve marks the decisions it announced).
func (r *Runner) handle(ctx context.Context, st Stage, ob Outbox, items []*item) {
	todo, ins := undecided(items)
	if st.Batch != nil && len(todo) > 1 {
		outs, errs := st.Batch(ctx, ins)
		var again []*item
		for i, it := range todo {
			if len(outs) == len(todo) && len(errs) == len(todo) && errs[i] == nil {
				it.out, it.action, it.handled = outs[i], Ack, true
				r.encode(it)
			} else {
				again = append(again, it)
			}
		}
		todo = again
	}
	for _, it := range todo {
		hctx, h := withHooks(ctx)
		it.out, it.err = st.Handler(hctx, it.in)
		it.action, it.handled = Classify(it.err), true
		it.release = it.err != nil && it.claimed
		if it.err == nil {
			it.hooks = h
		}
		r.encode(it)
		if it.action == Ack && len(h.fns) > 0 {
			if r.publish(ctx, ob, items) {
				if err := h.run(ctx); err != nil {
					it.action, it.err = Retry, err
				}
			}
		}
	}
}

// undecided are the items whose action is not known before handling, and their messages.
func undecided(items []*item) ([]*item, []message.Envelope) {
	var todo []*item
	var ins []message.Envelope
	for _, it := range items {
		if !it.decided {
			todo, ins = append(todo, it), append(ins, it.in)
		}
	}
	return todo, ins
}

// encode turns an acknowledged item's outputs into sends.
func (r *Runner) encode(it *item) {
	if it.action != Ack {
		return
	}
	var err error
	if it.sends, err = outgoing(it.out); err != nil {
		it.action, it.err = Retry, err // (its claim is given back with the settlement)
	}
}

// publish sends the outputs of the items handled so far that are not published yet, in one
// Exchange; it reports whether they all are published now (if not, those items are to retry).
func (r *Runner) publish(ctx context.Context, ob Outbox, items []*item) bool {
	var pubs []Settlement
	var pending []*item
	for _, it := range items {
		if it.handled && it.action == Ack && !it.published {
			pubs = append(pubs, Settlement{Sends: it.sends})
			pending = append(pending, it)
		}
	}
	if len(pubs) == 0 {
		return true
	}
	if _, err := r.exchange(ctx, ob, pubs, nil); err != nil {
		for _, it := range pending {
			it.action, it.err = Retry, Transient(fmt.Errorf("pipeline: publish: %w", err))
		}
		return false
	}
	for _, it := range pending {
		it.published = true
	}
	return true
}

// settleItems marks and acknowledges items, publishes what is not published yet and receives
// with recv, in one Exchange; when Seen's marks live in another store, the outputs are published
// and the keys marked first. It returns what the Exchange received (nil if it failed).
func (r *Runner) settleItems(ctx context.Context, st Stage, ob Outbox, items []*item, recv *Receiving) *Exchanged {
	records := st.Seen == nil || ob.Records(st.Seen)
	if !records {
		r.publish(ctx, ob, items)
		for _, it := range items {
			if it.action == Ack && it.claimed {
				if err := st.Seen.Mark(ctx, it.key); err != nil {
					it.action, it.err = Retry, err
				}
			}
		}
	}
	ex, err := r.exchange(ctx, ob, r.settlements(ctx, st, items, records), recv)
	return r.settledBy(ctx, items, ex, err)
}

// settlements are the Settlements that end items: records says whether the Outbox marks and
// releases the stage's keys itself (else they were marked already, and releases happen here).
func (r *Runner) settlements(ctx context.Context, st Stage, items []*item, records bool) []Settlement {
	batch := make([]Settlement, len(items))
	for i, it := range items {
		it.action = r.lastChance(it.action, it.d.ReceiveCount, it.err)
		s := Settlement{Queue: st.Name, Receipt: it.d.ReceiptHandle, Action: it.action, RetryAfter: -1}
		switch it.action {
		case Ack:
			if !it.published {
				s.Sends = it.sends
			}
			if it.claimed && records {
				s.Marks = []string{it.key}
			}
		case DeadLetter:
			s.Reason = it.err.Error()
			if it.d.ReceiveCount > 1 {
				s.Reason = fmt.Sprintf("%s (after %d receives)", s.Reason, it.d.ReceiveCount)
			}
		case Retry:
			if ra, ok := retryAfter(it.err); ok {
				var ip *InProgress
				s.RetryAfter, s.Unhandled = ra, errors.As(it.err, &ip)
			} else {
				s.RetryAfter = r.backoff(it.d.ReceiveCount)
			}
		}
		if it.hooks != nil && it.action != Ack {
			it.hooks.abandoned(ctx)
			it.hooks = nil
		}
		// A handler that failed gives its claim back, so that a retry may claim again; so does
		// one whose outputs could not be finished (published, hooks run, key marked): kept, the
		// claim would hold the key against the redelivery until its lease ran out, putting the
		// message back as in progress on every receive until the queue dead-lettered it.
		if it.release || it.claimed && it.action != Ack {
			if records {
				s.Releases = []string{it.key}
			} else {
				_ = st.Seen.Release(ctx, it.key)
			}
		}
		batch[i] = s
	}
	return batch
}

// settledBy records on items what the Exchange that settled them came to, and returns what it
// received (nil if it failed).
func (r *Runner) settledBy(ctx context.Context, items []*item, ex Exchanged, err error) *Exchanged {
	for i, it := range items {
		switch {
		case err != nil:
			// Nothing was committed: every message comes back after its visibility timeout.
			it.qerr = err
			if it.action == Ack && !it.published {
				it.action, it.err = Retry, Transient(fmt.Errorf("pipeline: publish: %w", err))
				if it.hooks != nil {
					it.hooks.abandoned(ctx)
				}
			}
		case i < len(ex.Acks):
			it.qerr = ex.Acks[i]
		}
	}
	if err != nil {
		return nil
	}
	return &ex
}

// exchange runs ob.Exchange, trying again briefly when the transaction fails (e.g. the file is
// locked by another process for longer than its busy timeout).
func (r *Runner) exchange(ctx context.Context, ob Outbox, batch []Settlement, recv *Receiving) (Exchanged, error) {
	var err error
	for attempt, wait := 0, 50*time.Millisecond; attempt < 3; attempt, wait = attempt+1, wait*4 {
		if attempt > 0 {
			r.log().Warn("settling failed, trying again", "error", err)
			time.Sleep(wait)
		}
		var ex Exchanged
		if ex, err = ob.Exchange(ctx, batch, recv); err == nil {
			return ex, nil
		}
	}
	return Exchanged{}, err
}
