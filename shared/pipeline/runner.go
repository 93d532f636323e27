package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/queue"
)

// Stage is a named handler; its input queue has the same name.
type Stage struct {
	Name    string
	Handler Handler
	// Workers is how many messages of this stage are handled at once (default 1): the plan and
	// apply stages use it as their parallelism limit.
	Workers int
	// Seen, when set, makes the runtime itself idempotent for this stage, by the rules of the
	// Idempotency middleware (key SeenKey; use one or the other, not both): a key already done
	// is a Duplicate, a key claimed by another worker is put back (InProgress), and the key is
	// marked done once the outputs are published. On an Outbox whose Records(Seen) holds, the
	// claims of a whole batch take one round trip and the mark is committed in the transaction
	// that publishes the outputs and acknowledges the message.
	Seen Seen
	// Lease is how long a claim of Seen holds (default: the runner's visibility timeout; for
	// Handle, 30 s, SQS's default visibility timeout).
	Lease time.Duration
	// Batch, when set, handles the messages of one receive at once (stages with Workers <= 1, on
	// an Outbox); Handler still handles single messages and whatever Batch returns an error for.
	Batch BatchHandler
	// Joined, when set, handles the stage inside the transaction that settles its messages, on
	// a Joinable Outbox and with one worker: the stage's stores must be kept with the queue (the
	// embedded stores on the queue's file), and its handler quick, since the transaction holds
	// the file's write lock while it runs. See joined.go.
	Joined bool
	// Prepare, for a Joined stage, runs on each message before its transaction, outside it: it
	// does what reaches beyond the state file (fetching a commit from the Git remote, building a
	// graph) so that the handler, inside the transaction, does not hold the file's write lock
	// while waiting for the network or computing what needs no state. What it returns the
	// handler finds with Prepared, and Batch with PreparedBatch. Its error is the message's
	// error, as if the handler had returned it.
	Prepare func(ctx context.Context, in message.Envelope) (any, error)
}

// lease is how long st's claims hold.
func (st Stage) lease(def time.Duration) time.Duration {
	if st.Lease > 0 {
		return st.Lease
	}
	return def
}

// handler is st's Handler, behind the Idempotency middleware when the stage has Seen.
func (st Stage) handler(lease time.Duration) Handler {
	if st.Seen == nil {
		return st.Handler
	}
	return Idempotency(st.Seen, st.Name, st.lease(lease))(st.Handler)
}

// Runner is the in-process runtime: it polls each stage's queue, runs the handler, publishes the
// outputs and acknowledges. Lambda and the SQS service runtime reuse Process. On a queue that is
// an Outbox (the embedded queue) and with no other Publisher, Run works in batches instead: see
// Outbox.
type Runner struct {
	Queue      queue.Queue
	Stages     []Stage
	Visibility time.Duration // default 30 s
	// Publisher sends outputs on (default: QueuePublisher on Queue).
	Publisher Publisher
	Log       *slog.Logger
	// Observe, when set, is called after each message is handled (for progress views).
	Observe func(stage string, in message.Envelope, out []message.Envelope, action Action, err error)
	// RetryBase is the first delay before a failed message comes back (default 1 s); it doubles
	// with each receive, up to the visibility timeout. After MaxReceives the queue dead-letters
	// it with the last error as reason.
	RetryBase time.Duration
	// MaxReceives is the queue's receive limit (default queue.DefaultMaxReceives): a message
	// that fails on its last receive is dead-lettered by the runner itself, with its error as
	// the reason, rather than moved by the queue with a generic one.
	MaxReceives int

	inFlight atomic.Int64
}

// lastChance turns a retry on the last allowed receive into a dead letter with the reason.
func (r *Runner) lastChance(action Action, receiveCount int, err error) Action {
	max := r.MaxReceives
	if max <= 0 {
		max = queue.DefaultMaxReceives
	}
	if action == Retry && receiveCount >= max {
		if _, asked := retryAfter(err); !asked { // an InProgress claim is not a failure
			return DeadLetter
		}
	}
	return action
}

// backoff is how long a message received n times stays hidden after its handler failed, unless
// the error asks for a delay itself (RetryAfter).
func (r *Runner) backoff(receiveCount int) time.Duration {
	base := r.RetryBase
	if base <= 0 {
		base = time.Second
	}
	d := base
	for i := 1; i < receiveCount && d < r.visibility(); i++ {
		d *= 2
	}
	return min(d, r.visibility())
}

func (r *Runner) visibility() time.Duration {
	if r.Visibility <= 0 {
		return 30 * time.Second
	}
	return r.Visibility
}

func (r *Runner) log() *slog.Logger {
	if r.Log == nil {
		return slog.Default()
	}
	return r.Log
}

// Publisher sends a stage's outputs on: to the queues Routes names (QueuePublisher, embedded and
// SQS), or to an event bus whose rules route them (EventBridge).
type Publisher interface {
	Publish(ctx context.Context, msgs ...message.Envelope) error
}

// QueuePublisher publishes to every queue a message's type routes to, and to the audit queue.
type QueuePublisher struct{ Queue queue.Queue }

// Publish sends msgs, batched per queue (10 per send, the SQS limit).
func (p QueuePublisher) Publish(ctx context.Context, msgs ...message.Envelope) error {
	return Publish(ctx, p.Queue, msgs...)
}

// Publish sends messages to every queue their type routes to (and the audit queue), batched per
// queue. Roots (e.g. from ingest) are published this way too.
func Publish(ctx context.Context, q queue.Queue, msgs ...message.Envelope) error {
	batches := map[string][]queue.Message{}
	var order []string
	for _, m := range msgs {
		body, err := message.Encode(m)
		if err != nil {
			return fmt.Errorf("pipeline: encode %s: %w", m.Type, err)
		}
		for _, dest := range Destinations(m.Type) {
			if _, ok := batches[dest]; !ok {
				order = append(order, dest)
			}
			batches[dest] = append(batches[dest], queue.Message{Body: body})
		}
	}
	for _, dest := range order {
		b := batches[dest]
		for len(b) > 0 {
			n := min(len(b), 10)
			if err := q.Send(ctx, dest, b[:n]...); err != nil {
				return Transient(fmt.Errorf("pipeline: send to %s: %w", dest, err))
			}
			b = b[n:]
		}
	}
	return nil
}

// Result is what handling one message came to.
type Result struct {
	In     message.Envelope   // zero when the body did not parse
	Out    []message.Envelope // published when Action is Ack
	Action Action
	Err    error
}

// Handle runs one message body through a stage, independent of any transport: parse, handle,
// publish the outputs, run the after-publish hooks. The caller acknowledges as Result.Action
// says (delete, dead-letter with Err as the reason, leave for retry). Used by Runner (embedded
// queue, SQS long polling) and by the Lambda adapter (SQS event batches).
func Handle(ctx context.Context, st Stage, pub Publisher, body []byte) Result {
	return handle(ctx, st.handler(30*time.Second), pub, body)
}

func handle(ctx context.Context, handler Handler, pub Publisher, body []byte) Result {
	in, err := message.Parse(body)
	if err != nil {
		return Result{Action: DeadLetter, Err: err}
	}
	hctx, h := withHooks(ctx)
	out, err := handler(hctx, in)
	action := Classify(err)
	if action == Ack {
		if perr := pub.Publish(ctx, out...); perr != nil {
			// A publish that can never succeed (an output no queue takes: the publisher says
			// so, Permanent) is dead-lettered with its reason now; retried, the handler would
			// run again each time (plan: terraform plan) only to fail the same way.
			action, err = Retry, perr
			if Classify(perr) == DeadLetter {
				action = DeadLetter
			}
		} else if herr := h.run(ctx); herr != nil {
			action, err = Retry, herr
		}
		if action != Ack {
			h.abandoned(ctx)
		}
	}
	return Result{In: in, Out: out, Action: action, Err: err}
}

// Process handles one delivery of stage and acknowledges it on the runner's queue as Handle's
// result says. It returns the action taken.
func (r *Runner) Process(ctx context.Context, st Stage, d queue.Delivery) Action {
	pub := r.Publisher
	if pub == nil {
		pub = QueuePublisher{Queue: r.Queue}
	}
	stop := r.keepHidden(ctx, st, []queue.Delivery{d}, nil) // the Idempotency middleware renews its claim
	res := handle(ctx, st.handler(r.visibility()), pub, d.Body)
	stop()
	res.Action = r.lastChance(res.Action, d.ReceiveCount, res.Err)
	r.settle(ctx, st, d, res.In, res.Out, res.Action, res.Err)
	return res.Action
}

func (r *Runner) settle(ctx context.Context, st Stage, d queue.Delivery, in message.Envelope, out []message.Envelope, action Action, err error) {
	var qerr error
	switch action {
	case Ack, Duplicate:
		qerr = r.Queue.Delete(ctx, st.Name, d.ReceiptHandle)
	case DeadLetter:
		reason := err.Error()
		if d.ReceiveCount > 1 {
			reason = fmt.Sprintf("%s (after %d receives)", reason, d.ReceiveCount)
		}
		qerr = r.Queue.Kill(ctx, st.Name, d.ReceiptHandle, reason)
	case Retry:
		delay, ok := retryAfter(err)
		if !ok {
			delay = r.backoff(d.ReceiveCount)
		}
		qerr = r.Queue.ChangeVisibility(ctx, st.Name, d.ReceiptHandle, delay)
	}
	r.settled(st, d, in, out, action, err, qerr)
}

// retryAfter is the delay an error asks for before its message comes back (InProgress does).
func retryAfter(err error) (time.Duration, bool) {
	var ra interface{ RetryAfter() time.Duration }
	if errors.As(err, &ra) {
		return ra.RetryAfter(), true
	}
	return 0, false
}

// settled logs how a delivery ended and reports it to Observe; qerr is its acknowledgement's error.
func (r *Runner) settled(st Stage, d queue.Delivery, in message.Envelope, out []message.Envelope, action Action, err, qerr error) {
	switch action {
	case DeadLetter:
		r.log().Error("dead-lettered", "stage", st.Name, "message_id", d.MessageID, "reason", err)
	case Retry:
		if _, ok := retryAfter(err); !ok {
			r.log().Warn("will retry", "stage", st.Name, "message_id", d.MessageID, "receive_count", d.ReceiveCount, "error", err)
		}
	}
	if qerr != nil && !errors.Is(qerr, context.Canceled) {
		r.log().Warn("acknowledge failed (the message will be redelivered)", "stage", st.Name, "error", qerr)
	}
	if r.Observe != nil {
		r.Observe(st.Name, in, out, action, err)
	}
}

// Run polls every stage until ctx is cancelled, then waits for handlers in flight (drain).
func (r *Runner) Run(ctx context.Context) {
	var wg sync.WaitGroup
	if ob, ok := r.Queue.(Outbox); ok && r.Publisher == nil {
		for _, st := range r.Stages {
			wg.Add(1)
			go func(st Stage) {
				defer wg.Done()
				r.pollOutbox(ctx, st, ob)
			}(st)
		}
		wg.Wait()
		return
	}
	for _, st := range r.Stages {
		n := max(st.Workers, 1)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(st Stage) {
				defer wg.Done()
				r.poll(ctx, st)
			}(st)
		}
	}
	wg.Wait()
}

func (r *Runner) poll(ctx context.Context, st Stage) {
	batch := 10
	if st.Workers > 1 {
		batch = 1 // parallel stages take one at a time so work spreads over workers
	}
	for ctx.Err() == nil {
		ds, err := r.Queue.Receive(ctx, st.Name, batch, r.visibility(), 50*time.Millisecond)
		if err != nil {
			if ctx.Err() == nil {
				r.log().Warn("receive failed", "stage", st.Name, "error", err)
				time.Sleep(100 * time.Millisecond)
			}
			continue
		}
		for _, d := range ds {
			r.inFlight.Add(1)
			// Handlers finish their message even when shutdown starts (drain); the queue's
			// visibility timeout covers a process that dies instead.
			r.Process(context.WithoutCancel(ctx), st, d)
			r.inFlight.Add(-1)
		}
	}
}

// InFlight is the number of messages being handled now.
func (r *Runner) InFlight() int64 { return r.inFlight.Load() }
