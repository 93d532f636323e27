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
}

// Runner is the in-process runtime: it polls each stage's queue, runs the handler, publishes the
// outputs and acknowledges. Lambda and the SQS service runtime reuse Process.
type Runner struct {
	Queue      queue.Queue
	Stages     []Stage
	Visibility time.Duration // default 30 s
	Log        *slog.Logger
	// Observe, when set, is called after each message is handled (for progress views).
	Observe func(stage string, in message.Envelope, out []message.Envelope, action Action, err error)

	inFlight atomic.Int64
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

// Process handles one delivery of stage: parse, handle, publish, after-publish hooks, then
// delete; or, on error, what Classify says. It returns the action taken.
func (r *Runner) Process(ctx context.Context, st Stage, d queue.Delivery) Action {
	in, err := message.Parse(d.Body)
	if err != nil {
		r.settle(ctx, st, d, message.Envelope{}, nil, DeadLetter, err)
		return DeadLetter
	}
	hctx, h := withHooks(ctx)
	out, err := st.Handler(hctx, in)
	action := Classify(err)
	if action == Ack {
		if perr := Publish(ctx, r.Queue, out...); perr != nil {
			action, err = Retry, perr
		} else if herr := h.run(ctx); herr != nil {
			action, err = Retry, herr
		}
	}
	r.settle(ctx, st, d, in, out, action, err)
	return action
}

func (r *Runner) settle(ctx context.Context, st Stage, d queue.Delivery, in message.Envelope, out []message.Envelope, action Action, err error) {
	var qerr error
	switch action {
	case Ack, Duplicate:
		qerr = r.Queue.Delete(ctx, st.Name, d.ReceiptHandle)
	case DeadLetter:
		r.log().Error("dead-lettered", "stage", st.Name, "message_id", d.MessageID, "reason", err)
		qerr = r.Queue.Kill(ctx, st.Name, d.ReceiptHandle, err.Error())
	case Retry:
		var ra interface{ RetryAfter() time.Duration }
		if errors.As(err, &ra) {
			qerr = r.Queue.ChangeVisibility(ctx, st.Name, d.ReceiptHandle, ra.RetryAfter())
		} else {
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
