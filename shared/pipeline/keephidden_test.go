package pipeline_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/queue"
)

// plainQueue hides the embedded queue's Outbox, so that Run takes the path of SQS (Process).
type plainQueue struct{ queue.Queue }

// A handler that runs far longer than the visibility timeout (a Terraform apply creating a
// database) keeps its message: no second worker gets it meanwhile and runs it again. Both
// runner paths: the embedded queue's batches (Outbox) and one delivery at a time (SQS).
func TestLongHandlerKeepsItsMessageHidden(t *testing.T) {
	t.Parallel()
	for name, wrap := range map[string]func(q queue.Queue) queue.Queue{
		"outbox":  func(q queue.Queue) queue.Queue { return q },
		"process": func(q queue.Queue) queue.Queue { return plainQueue{q} },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			db := newDB(t)
			q := newQueue(t, db)
			const visibility = 600 * time.Millisecond
			var calls atomic.Int32
			h := func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
				calls.Add(1)
				time.Sleep(5 * visibility)
				return nil, nil
			}
			st := pipeline.Stage{Name: pipeline.StageApply, Workers: 2, Handler: h}
			rec := newRecorder()
			r := &pipeline.Runner{Queue: wrap(q), Stages: []pipeline.Stage{st}, Log: quietLog, Observe: rec.observe, Visibility: visibility}
			send(t, q, st.Name, detected(t, "cr-long-"+name))
			runUntil(t, r, rec, 30*time.Second, func(o observed) bool {
				if o.action != pipeline.Ack {
					t.Errorf("action %v (%v), want ack", o.action, o.err)
				}
				return true
			})
			if n := calls.Load(); n != 1 {
				t.Errorf("the handler ran %d times, want once: its message came back while it ran", n)
			}
			if n, _ := q.Depth(context.Background(), st.Name); n != 0 {
				t.Errorf("depth %d after the ack, want 0", n)
			}
		})
	}
}

// A copy of a message (same idempotency key) arriving after the claim's first lease, while the
// first copy's handler still runs, finds the key in progress (the claim is renewed), then done:
// the handler runs once. Both runner paths.
func TestLongHandlerKeepsItsClaim(t *testing.T) {
	t.Parallel()
	for name, wrap := range map[string]func(q queue.Queue) queue.Queue{
		"outbox":  func(q queue.Queue) queue.Queue { return q },
		"process": func(q queue.Queue) queue.Queue { return plainQueue{q} },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			db := newDB(t)
			q, seen := newQueue(t, db), newSeen(t, db)
			const lease = 600 * time.Millisecond
			var calls atomic.Int32
			entered := make(chan struct{}, 2)
			h := func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
				calls.Add(1)
				entered <- struct{}{}
				time.Sleep(5 * lease)
				return nil, nil
			}
			st := pipeline.Stage{Name: pipeline.StageApply, Workers: 2, Handler: h, Seen: seen, Lease: lease}
			rec := newRecorder()
			r := &pipeline.Runner{Queue: wrap(q), Stages: []pipeline.Stage{st}, Log: quietLog, Observe: rec.observe, Visibility: lease}
			in := detected(t, "cr-claim-"+name)
			send(t, q, st.Name, in)
			go func() {
				<-entered
				time.Sleep(2 * lease) // past the first lease
				send(t, q, st.Name, in)
			}()
			acks, dups := 0, 0
			runUntil(t, r, rec, 30*time.Second, func(o observed) bool {
				switch o.action {
				case pipeline.Ack:
					acks++
				case pipeline.Duplicate:
					dups++
				case pipeline.Retry: // in progress: put back for a moment
				default:
					t.Errorf("action %v (%v)", o.action, o.err)
				}
				return acks+dups == 2
			})
			if n := calls.Load(); n != 1 || acks != 1 || dups != 1 {
				t.Errorf("the handler ran %d times, %d acks, %d duplicates; want once, 1 and 1", n, acks, dups)
			}
		})
	}
}

// A copy that waits for a handler running longer than its receives last — an approval announced
// again while the first one's Terraform apply runs for 40 minutes, put back as in progress every
// second — is not dead-lettered for too many receives: a receive that finds the key in progress
// is given back (embedded queue). Here two receives, and a handler of about four seconds.
func TestCopyWaitingForALongHandlerIsNotDeadLettered(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const max = 2
	db := newDB(t)
	q, err := embedded.NewQueue(ctx, db, embedded.QueueOptions{MaxReceives: max})
	if err != nil {
		t.Fatal(err)
	}
	seen := newSeen(t, db)
	var calls atomic.Int32
	entered := make(chan struct{}, 2)
	h := func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
		calls.Add(1)
		entered <- struct{}{}
		time.Sleep(4 * time.Second)
		return nil, nil
	}
	st := pipeline.Stage{Name: pipeline.StageApply, Workers: 2, Handler: h, Seen: seen}
	rec := newRecorder()
	r := &pipeline.Runner{Queue: q, Stages: []pipeline.Stage{st}, Log: quietLog, Observe: rec.observe, Visibility: time.Minute, MaxReceives: max}
	in := detected(t, "cr-copy-waits")
	send(t, q, st.Name, in)
	go func() {
		<-entered
		send(t, q, st.Name, in)
	}()
	acks, dups, inProgress := 0, 0, 0
	runUntil(t, r, rec, 30*time.Second, func(o observed) bool {
		var ip *pipeline.InProgress
		switch {
		case o.action == pipeline.Ack:
			acks++
		case o.action == pipeline.Duplicate:
			dups++
		case o.action == pipeline.Retry && errors.As(o.err, &ip):
			inProgress++
		default:
			t.Errorf("action %v (%v)", o.action, o.err)
			return true
		}
		return acks+dups == 2
	})
	if n := calls.Load(); n != 1 || acks != 1 || dups != 1 || inProgress < max {
		t.Errorf("the handler ran %d times, %d acks, %d duplicates, %d times in progress; want once, 1, 1 and at least %d",
			n, acks, dups, inProgress, max)
	}
	if dead, _ := q.ListDead(ctx, st.Name); len(dead) != 0 {
		t.Errorf("%d dead letters, the first for %q", len(dead), dead[0].Reason)
	}
}
