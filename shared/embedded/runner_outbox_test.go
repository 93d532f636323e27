package embedded_test

// The pipeline Runner on the embedded queue's Outbox: runtime idempotency (Stage.Seen), hooks
// between publishing and acknowledging, batch handlers.

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/queue"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func request(t testing.TB, id string) message.Envelope {
	t.Helper()
	e, err := message.New(message.TypeChangeDetected, "prod", message.Actor{Kind: "cli", Name: "test"}, "request:"+id,
		message.ChangeDetected{Source: message.SourceRequest, ChangeSetID: id})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func sendEnvelope(t testing.TB, q queue.Queue, name string, e message.Envelope) {
	t.Helper()
	b, err := message.Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Send(context.Background(), name, queue.Message{Body: b}); err != nil {
		t.Fatal(err)
	}
}

type observation struct {
	in     message.Envelope
	action pipeline.Action
	err    error
}

type observer struct {
	mu  sync.Mutex
	all []observation
	ch  chan observation
}

func newObserver() *observer { return &observer{ch: make(chan observation, 100)} }

func (o *observer) observe(_ string, in message.Envelope, _ []message.Envelope, a pipeline.Action, err error) {
	o.mu.Lock()
	o.all = append(o.all, observation{in, a, err})
	o.mu.Unlock()
	o.ch <- observation{in, a, err}
}

// run runs r until stop says so.
func run(t *testing.T, r *pipeline.Runner, o *observer, stop func(observation) bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ob := <-o.ch:
			if stop(ob) {
				return
			}
		case <-deadline:
			t.Fatal("not done within 10s")
		}
	}
}

// Two copies of one message in one batch: the handler runs once; the other copy is put back
// (InProgress) and then acknowledged as a duplicate; the key is marked in the transaction that
// publishes and acknowledges.
func TestRunnerOutboxSeenRunsEachKeyOnce(t *testing.T) {
	db := queueTestDB(t, "")
	q, seen := newTestQueue(t, db), newTestSeen(t, db)
	var calls atomic.Int32
	st := pipeline.Stage{Name: pipeline.StageResolve, Seen: seen, Handler: func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
		calls.Add(1)
		return []message.Envelope{in.MustDerive(message.TypeDeploymentSkipped, "skipped:"+in.ID,
			message.DeploymentSkipped{ChangeSetID: in.ID, Component: "prod/vpc/core", Reason: "no-consumed-key-changed"})}, nil
	}}
	in := request(t, "cr-1")
	sendEnvelope(t, q, st.Name, in)
	sendEnvelope(t, q, st.Name, in)
	o := newObserver()
	r := &pipeline.Runner{Queue: q, Stages: []pipeline.Stage{st}, Log: quiet, Observe: o.observe, Visibility: time.Minute}
	acks, dups := 0, 0
	run(t, r, o, func(ob observation) bool {
		switch ob.action {
		case pipeline.Ack:
			acks++
		case pipeline.Duplicate:
			dups++
		case pipeline.Retry:
			var ip *pipeline.InProgress
			if !errors.As(ob.err, &ip) {
				t.Errorf("retry with %v", ob.err)
			}
		default:
			t.Errorf("action %v (%v)", ob.action, ob.err)
		}
		return acks+dups == 2
	})
	if acks != 1 || dups != 1 || calls.Load() != 1 {
		t.Errorf("acks %d, duplicates %d, handler calls %d; want 1, 1, 1", acks, dups, calls.Load())
	}
	if done, _ := seen.Done(context.Background(), "resolve|request:cr-1"); !done {
		t.Error("key not marked")
	}
	if ok, _ := seen.Claim(context.Background(), "resolve|request:cr-1", time.Hour); !ok {
		t.Error("the claim is still held after the mark")
	}
	if got := drainQueue(t, q, pipeline.StageGraphWrite); len(got) != 1 {
		t.Errorf("graph-write got %d messages, want 1", len(got))
	}
	if n, _ := q.Depth(context.Background(), st.Name); n != 0 {
		t.Errorf("depth %d", n)
	}
}

// An AfterPublish hook runs once the outputs are published and before the input is acknowledged.
func TestRunnerOutboxHooksRunBetweenPublishAndAck(t *testing.T) {
	db := queueTestDB(t, "")
	q, seen := newTestQueue(t, db), newTestSeen(t, db)
	var published, acked atomic.Int32
	st := pipeline.Stage{Name: pipeline.StageResolve, Seen: seen, Handler: func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
		pipeline.AfterPublish(ctx, func(ctx context.Context) error {
			if n, _ := q.Depth(ctx, pipeline.StageGraphWrite); n == 1 {
				published.Add(1)
			}
			if n, _ := q.Depth(ctx, pipeline.StageResolve); n == 0 {
				acked.Add(1)
			}
			if done, _ := seen.Done(ctx, "resolve|request:cr-hook"); done {
				t.Error("the key was marked before the hook ran")
			}
			return nil
		})
		return []message.Envelope{in.MustDerive(message.TypeDeploymentSkipped, "skipped:"+in.ID,
			message.DeploymentSkipped{ChangeSetID: in.ID, Component: "prod/vpc/core", Reason: "no-consumed-key-changed"})}, nil
	}}
	sendEnvelope(t, q, st.Name, request(t, "cr-hook"))
	o := newObserver()
	r := &pipeline.Runner{Queue: q, Stages: []pipeline.Stage{st}, Log: quiet, Observe: o.observe}
	run(t, r, o, func(ob observation) bool { return true })
	if published.Load() != 1 || acked.Load() != 0 {
		t.Errorf("in the hook: published %d, acknowledged %d; want 1, 0", published.Load(), acked.Load())
	}
	if done, _ := seen.Done(context.Background(), "resolve|request:cr-hook"); !done {
		t.Error("key not marked after the hook")
	}
}

// A batch handler handles what it can; whatever it fails goes through Handler, one by one.
func TestRunnerOutboxBatchHandler(t *testing.T) {
	db := queueTestDB(t, "")
	q := newTestQueue(t, db)
	var batches, singles atomic.Int32
	st := pipeline.Stage{Name: pipeline.StageAudit,
		Handler: func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
			singles.Add(1)
			return nil, nil
		},
		Batch: func(ctx context.Context, ins []message.Envelope) ([][]message.Envelope, []error) {
			batches.Add(1)
			errs := make([]error, len(ins))
			errs[0] = errors.New("first one fails")
			return make([][]message.Envelope, len(ins)), errs
		}}
	for _, id := range []string{"a", "b", "c"} {
		sendEnvelope(t, q, st.Name, request(t, id))
	}
	o := newObserver()
	r := &pipeline.Runner{Queue: q, Stages: []pipeline.Stage{st}, Log: quiet, Observe: o.observe}
	n := 0
	run(t, r, o, func(ob observation) bool {
		if ob.action != pipeline.Ack {
			t.Errorf("action %v (%v)", ob.action, ob.err)
		}
		n++
		return n == 3
	})
	if batches.Load() != 1 || singles.Load() != 1 {
		t.Errorf("batch calls %d, single calls %d; want 1 and 1", batches.Load(), singles.Load())
	}
}

// Handle (the Lambda path) with Stage.Seen: the same rules, one message at a time.
func TestHandleWithStageSeen(t *testing.T) {
	db := queueTestDB(t, "")
	q, seen := newTestQueue(t, db), newTestSeen(t, db)
	var calls atomic.Int32
	st := pipeline.Stage{Name: pipeline.StagePlan, Seen: seen, Handler: func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
		calls.Add(1)
		return nil, nil
	}}
	b, _ := message.Encode(request(t, "cr-handle"))
	pub := pipeline.QueuePublisher{Queue: q}
	if res := pipeline.Handle(context.Background(), st, pub, b); res.Action != pipeline.Ack {
		t.Fatalf("first: %v (%v)", res.Action, res.Err)
	}
	if res := pipeline.Handle(context.Background(), st, pub, b); res.Action != pipeline.Duplicate {
		t.Fatalf("second: %v (%v)", res.Action, res.Err)
	}
	if calls.Load() != 1 {
		t.Errorf("handler ran %d times", calls.Load())
	}
}

// Within a batch, a message's hooks run before the next message is handled (as Process would
// handle them one by one): resolve's hook records the decisions the next message must not
// announce again.
func TestRunnerOutboxHooksRunBeforeTheNextMessage(t *testing.T) {
	db := queueTestDB(t, "")
	q := newTestQueue(t, db)
	var hooked, sawHook atomic.Int32
	st := pipeline.Stage{Name: pipeline.StageResolve, Handler: func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
		if hooked.Load() > 0 {
			sawHook.Add(1)
		}
		pipeline.AfterPublish(ctx, func(context.Context) error { hooked.Add(1); return nil })
		return []message.Envelope{in.MustDerive(message.TypeDeploymentSkipped, "skipped:"+in.ID,
			message.DeploymentSkipped{ChangeSetID: in.ID, Component: "prod/vpc/core", Reason: "no-consumed-key-changed"})}, nil
	}}
	for _, id := range []string{"a", "b", "c"} {
		sendEnvelope(t, q, st.Name, request(t, id))
	}
	o := newObserver()
	r := &pipeline.Runner{Queue: q, Stages: []pipeline.Stage{st}, Log: quiet, Observe: o.observe}
	n := 0
	run(t, r, o, func(ob observation) bool { n++; return n == 3 })
	if hooked.Load() != 3 || sawHook.Load() != 2 {
		t.Errorf("hooks ran %d times, %d handlers saw the previous message's hook; want 3 and 2", hooked.Load(), sawHook.Load())
	}
	if got := drainQueue(t, q, pipeline.StageGraphWrite); len(got) != 3 {
		t.Errorf("graph-write got %d messages, want every message's output (3)", len(got))
	}
}
