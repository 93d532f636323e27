package pipeline_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/queue"
)

// A hook that fails leaves the message for redelivery, like a failed publish.
func TestAfterPublishHookFailureRetries(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	q := newQueue(t, db)
	var ran atomic.Int32
	st := pipeline.Stage{Name: "hooks", Handler: func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
		pipeline.AfterPublish(ctx, func(context.Context) error { ran.Add(1); return errors.New("mark failed") })
		pipeline.AfterPublish(ctx, func(context.Context) error { ran.Add(100); return nil })
		return nil, nil
	}}
	r := &pipeline.Runner{Queue: q, Stages: []pipeline.Stage{st}, Log: quietLog}
	send(t, q, st.Name, detected(t, "cr-hook"))
	if got := r.Process(context.Background(), st, receiveOne(t, q, st.Name, time.Minute)); got != pipeline.Retry {
		t.Errorf("action = %v, want retry", got)
	}
	if ran.Load() != 1 {
		t.Errorf("hooks ran %d, want the first only (1)", ran.Load())
	}
	// Outside a runtime, AfterPublish is a no-op.
	pipeline.AfterPublish(context.Background(), func(context.Context) error { t.Error("ran outside a runtime"); return nil })
}

// A message whose handler succeeded but whose outputs could not be finished (a hook failed
// after the publish) is retried: its idempotency claim is given back, so that the redelivery
// handles it again instead of finding the key held by the attempt that failed — put back every
// second as in progress until the queue dead-letters it for too many receives.
func TestFailedHookGivesTheClaimBack(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct {
		plain      bool // the queue's Outbox hidden: Run takes SQS's path (Process)
		middleware bool // the Idempotency middleware around the handler, instead of Stage.Seen
	}{
		"outbox":            {},
		"outbox middleware": {middleware: true},
		"process":           {plain: true},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			db := newDB(t)
			q, seen := newQueue(t, db), newSeen(t, db)
			var calls, hooks atomic.Int32
			h := func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
				calls.Add(1)
				pipeline.AfterPublish(ctx, func(context.Context) error {
					if hooks.Add(1) == 1 {
						return pipeline.Transient(errors.New("database is locked"))
					}
					return nil
				})
				return nil, nil
			}
			st := pipeline.Stage{Name: pipeline.StageIngest, Seen: seen, Handler: h}
			if c.middleware {
				st.Seen, st.Handler = nil, pipeline.Idempotency(seen, st.Name, time.Minute)(h)
			}
			var tq queue.Queue = q
			if c.plain {
				tq = plainQueue{q}
			}
			rec := newRecorder()
			// A claim lasts the visibility timeout (a minute); the retry comes back after 10 ms.
			r := &pipeline.Runner{Queue: tq, Stages: []pipeline.Stage{st}, Log: quietLog, Observe: rec.observe,
				Visibility: time.Minute, RetryBase: 10 * time.Millisecond}
			send(t, q, st.Name, detected(t, "cr-hook-claim"))
			var inProgress int
			runUntil(t, r, rec, 10*time.Second, func(o observed) bool {
				var ip *pipeline.InProgress
				if errors.As(o.err, &ip) {
					inProgress++
				}
				return o.action == pipeline.Ack || inProgress >= 2
			})
			if n := calls.Load(); n != 2 || inProgress > 0 {
				t.Errorf("handler ran %d times, %d times put back as in progress; want twice, never", n, inProgress)
			}
			if dead, _ := q.ListDead(context.Background(), st.Name); len(dead) != 0 {
				t.Errorf("dead-lettered: %+v", dead)
			}
		})
	}
}

// permanentPublisher refuses every publish as something no retry can change.
type permanentPublisher struct{}

func (permanentPublisher) Publish(context.Context, ...message.Envelope) error {
	return pipeline.Permanent(errors.New("message of 300 KiB: over the 256 KiB a queue takes"))
}

// An output that can never be published (the publisher says so: Permanent) dead-letters the
// message at once with that reason, its claim given back and its key not marked; retried, the
// handler would run again on every receive only to fail the same way.
func TestAPermanentPublishFailureDeadLettersAtOnce(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	q, seen := newQueue(t, db), newSeen(t, db)
	c := &countingHandler{}
	st := pipeline.Stage{Name: pipeline.StageResolve, Handler: pipeline.Chain(c.handle, pipeline.Idempotency(seen, pipeline.StageResolve, time.Minute))}
	r := &pipeline.Runner{Queue: q, Stages: []pipeline.Stage{st}, Publisher: permanentPublisher{}, Log: quietLog}
	ctx := context.Background()
	send(t, q, st.Name, detected(t, "cr-too-large"))
	if got := r.Process(ctx, st, receiveOne(t, q, st.Name, time.Minute)); got != pipeline.DeadLetter {
		t.Fatalf("action = %v, want dead-letter", got)
	}
	if c.calls.Load() != 1 {
		t.Errorf("handler calls = %d, want 1", c.calls.Load())
	}
	key := "resolve|request:cr-too-large"
	if done, err := seen.Done(ctx, key); err != nil || done {
		t.Errorf("key marked done although nothing was published (done=%v, err=%v)", done, err)
	}
	if ok, err := seen.Claim(ctx, key, time.Minute); err != nil || !ok {
		t.Errorf("the claim was not given back (claimed again: %v, %v)", ok, err)
	}
	dead, err := q.ListDead(ctx, st.Name)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 1 || !strings.Contains(dead[0].Reason, "over the 256 KiB") {
		t.Errorf("dead letters %+v, want the message with the publisher's reason", dead)
	}
}
