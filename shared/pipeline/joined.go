package pipeline

import (
	"context"
	"fmt"
	"time"
)

// Joined stages. A stage whose stores are kept with the queue (Stage.Joined, on a Joinable
// Outbox) is handled inside the transaction that settles its batch: its writes, its outputs, the
// marks of its idempotency keys, the acknowledgement of its messages and the receipt of its next
// batch commit together, in one write transaction per batch, or not at all. Each message is
// handled in a savepoint: the writes of a message that is to be retried are undone with it, so
// nothing a failed attempt wrote is left behind (also when it is its last receive and it is
// dead-lettered: lastChance decides that after the savepoint); an acknowledged, duplicate or
// permanently failed message keeps its writes, as it would unjoined (a permanent failure's
// records stay). A
// message's AfterPublish hooks run right after its handler, in the same transaction, which
// commits them with the outputs they follow. The transaction holds the file's write lock while
// the handler runs: what a handler needs from beyond the file (a Git fetch) its Stage.Prepare
// fetches first, outside it.

// joins reports whether st is handled in its settling transaction on ob: the stage asks for
// it, ob can, one worker handles it (the transaction is one at a time), and its idempotency keys
// (if any) are marked in the same store.
func (r *Runner) joins(st Stage, ob Outbox) (Joinable, bool) {
	jo, ok := ob.(Joinable)
	if !ok || !st.Joined || st.Workers > 1 || (st.Seen != nil && !ob.Records(st.Seen)) {
		return nil, false
	}
	return jo, true
}

// handleJoined handles items and settles them, with recv, in one ExchangeJoined; it returns
// what the exchange received (nil if it failed).
func (r *Runner) handleJoined(ctx context.Context, st Stage, jo Joinable, items []*item, recv *Receiving) *Exchanged {
	r.prepare(ctx, st, items)
	handle := func(ctx context.Context, step func(func() bool) error) ([]Settlement, error) {
		for _, it := range items {
			it.reset() // a transaction tried again handles its batch from scratch
		}
		if err := r.own(ctx, st, items); err != nil {
			return nil, err
		}
		if err := r.runJoined(ctx, st, step, items); err != nil {
			return nil, err
		}
		return r.settlements(ctx, st, items, true), nil
	}
	var ex Exchanged
	var err error
	for attempt, wait := 0, 50*time.Millisecond; attempt < 3; attempt, wait = attempt+1, wait*4 {
		if attempt > 0 {
			r.log().Warn("settling failed, trying again", "stage", st.Name, "error", err)
			time.Sleep(wait)
		}
		if ex, err = jo.ExchangeJoined(ctx, handle, recv); err == nil {
			break
		}
	}
	return r.settledBy(ctx, items, ex, err)
}

// own decides, inside the stage's transaction, which items' idempotency keys the transaction
// owns: a key marked done is a Duplicate; a key twice in the batch is put back the second time
// (InProgress, as a claim held elsewhere would be); the others are the transaction's, marked with
// its settlements. A joined stage takes no claims: no other joined worker, in this process or
// another, can handle a key while the transaction holds the file's write lock, and what it marks
// commits with what it handled; a live claim of a worker that is not joined puts the message back.
func (r *Runner) own(ctx context.Context, st Stage, items []*item) error {
	if st.Seen == nil {
		return nil
	}
	var keys []string
	seen := map[string]bool{}
	for _, it := range items {
		if it.decided || it.key == "" {
			continue
		}
		if seen[it.key] {
			it.decide(Retry, &InProgress{Key: it.key})
			continue
		}
		seen[it.key] = true
		keys = append(keys, it.key)
	}
	if len(keys) == 0 {
		return nil
	}
	done, held, err := keyStates(ctx, st.Seen, keys)
	if err != nil {
		return fmt.Errorf("pipeline: %s: idempotency lookup: %w", st.Name, err)
	}
	for _, it := range items {
		switch {
		case it.decided || it.key == "":
		case done[it.key]:
			it.decide(Duplicate, fmt.Errorf("%s already handled %s: %w", st.Name, it.key, ErrDuplicate))
		case held[it.key]:
			// A live claim: a worker that is not joined (another process on the file, with
			// another configuration) is handling the key outside any transaction of ours.
			it.decide(Retry, &InProgress{Key: it.key})
		default:
			it.claimed = true
		}
	}
	return nil
}

// KeyStater is an optional interface of a Seen: which of many keys are done, and which a live
// claim holds, in one round trip.
type KeyStater interface {
	KeyStates(ctx context.Context, keys []string) (done, held map[string]bool, err error)
}

func keyStates(ctx context.Context, seen Seen, keys []string) (done, held map[string]bool, err error) {
	if ks, ok := seen.(KeyStater); ok {
		return ks.KeyStates(ctx, keys)
	}
	done = map[string]bool{}
	for _, k := range keys {
		ok, err := seen.Done(ctx, k)
		if err != nil {
			return nil, nil, err
		}
		done[k] = ok
	}
	return done, map[string]bool{}, nil
}

// prepare runs the stage's Prepare on the items not yet decided; an item it fails is decided
// with its error, as a handler's (its claim released) — unless its key is done already: then it
// is a Duplicate, as own would find it inside the transaction (a key once marked stays marked),
// so that a Prepare failing on a copy of a message that was handled (a Git remote out of reach)
// does not turn it into retries and then a dead letter.
func (r *Runner) prepare(ctx context.Context, st Stage, items []*item) {
	if st.Prepare == nil {
		return
	}
	for _, it := range items {
		if it.decided {
			continue
		}
		v, err := st.Prepare(ctx, it.in)
		if err != nil {
			if st.Seen != nil && it.key != "" {
				if done, derr := st.Seen.Done(ctx, it.key); derr == nil && done {
					it.decide(Duplicate, fmt.Errorf("%s already handled %s: %w", st.Name, it.key, ErrDuplicate))
					continue
				}
			}
			it.decide(Classify(err), err)
			it.release = it.claimed
			continue
		}
		it.prepared = v
	}
}

type preparedKey struct{}

// Prepared is what the stage's Prepare returned for the message being handled (nil when none).
func Prepared(ctx context.Context) any { return ctx.Value(preparedKey{}) }

type preparedBatchKey struct{}

// PreparedBatch is, for a BatchHandler, what the stage's Prepare returned for each message of
// the batch, in the batch's order (nil when the stage has no Prepare, or when not called by a
// joined stage's runner).
func PreparedBatch(ctx context.Context) []any {
	v, _ := ctx.Value(preparedBatchKey{}).([]any)
	return v
}

// WithPrepared returns ctx carrying v as what Prepare returned (for runtimes other than the
// Runner, and tests).
func WithPrepared(ctx context.Context, v any) context.Context { return withPrepared(ctx, v) }

func withPrepared(ctx context.Context, v any) context.Context {
	if v == nil {
		return ctx
	}
	return context.WithValue(ctx, preparedKey{}, v)
}

// runJoined runs the stage on the items not yet decided, each in a step: with the stage's
// BatchHandler first (all in one step, kept only if every message succeeded), then one by one.
func (r *Runner) runJoined(ctx context.Context, st Stage, step func(func() bool) error, items []*item) error {
	todo, ins := undecided(items)
	if st.Batch != nil && len(todo) > 1 {
		whole := false
		var prepared []any
		if st.Prepare != nil {
			prepared = make([]any, len(todo))
			for i, it := range todo {
				prepared[i] = it.prepared
			}
		}
		bctx := context.WithValue(ctx, preparedBatchKey{}, prepared)
		err := step(func() bool {
			outs, errs := st.Batch(bctx, ins)
			if len(outs) != len(todo) || len(errs) != len(todo) {
				return false
			}
			for _, e := range errs {
				if e != nil {
					return false
				}
			}
			for i, it := range todo {
				it.out, it.action, it.handled = outs[i], Ack, true
				if r.encode(it); it.action != Ack {
					return false
				}
			}
			whole = true
			return true
		})
		if err != nil {
			return fmt.Errorf("pipeline: %s: savepoint: %w", st.Name, err)
		}
		if whole {
			return nil
		}
		for _, it := range todo { // undone: one by one instead
			it.reset()
		}
	}
	for _, it := range todo {
		err := step(func() bool {
			hctx, h := withHooks(withPrepared(ctx, it.prepared))
			it.out, it.err = st.Handler(hctx, it.in)
			it.action, it.handled = Classify(it.err), true
			it.release = it.err != nil && it.claimed
			r.encode(it)
			if it.action == Ack && len(h.fns) > 0 {
				if err := h.run(ctx); err != nil {
					it.action, it.err = Retry, err
				}
			}
			return it.action != Retry
		})
		if err != nil {
			return fmt.Errorf("pipeline: %s: savepoint: %w", st.Name, err)
		}
	}
	return nil
}

// reset forgets what handling it found (not what was decided before: malformed, duplicate, held).
func (it *item) reset() {
	if it.decided {
		return
	}
	it.out, it.sends, it.handled, it.published, it.release = nil, nil, false, false, false
	it.action, it.err, it.qerr = Ack, nil, nil
}
