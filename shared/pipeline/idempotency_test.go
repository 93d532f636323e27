package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
)

// countingHandler returns one deployment.scheduled derived from its input.
type countingHandler struct {
	calls atomic.Int32
	fail  atomic.Int32 // fail this many calls first
	block chan struct{}
}

func (c *countingHandler) handle(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
	n := c.calls.Add(1)
	if c.block != nil {
		<-c.block
	}
	if n <= c.fail.Load() {
		return nil, errors.New("handler failed")
	}
	p := message.DeploymentScheduled{ChangeSetID: in.ID, DeploymentID: "dep-0123456789abcdef", Component: "prod/vpc/core",
		CausedBy: []message.Cause{{Kind: message.CauseRequest, ID: "cr-1"}}, ConfigHash: testConfigHash}
	return []message.Envelope{in.MustDerive(message.TypeDeploymentScheduled, "deployment.scheduled:"+p.DeploymentID, p)}, nil
}

func TestIdempotencySecondDeliveryIsDuplicate(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	q, seen := newQueue(t, db), newSeen(t, db)
	c := &countingHandler{}
	st := pipeline.Stage{Name: pipeline.StageResolve, Handler: pipeline.Chain(c.handle, pipeline.Idempotency(seen, pipeline.StageResolve, time.Minute))}
	r := &pipeline.Runner{Queue: q, Stages: []pipeline.Stage{st}, Log: quietLog}
	in := detected(t, "cr-dup")
	ctx := context.Background()

	tests := []struct {
		name      string
		want      pipeline.Action
		wantCalls int32
	}{
		{"first delivery runs", pipeline.Ack, 1},
		{"second delivery is a duplicate", pipeline.Duplicate, 1},
		{"third delivery is a duplicate", pipeline.Duplicate, 1},
	}
	for _, tt := range tests {
		send(t, q, st.Name, in)
		d := receiveOne(t, q, st.Name, time.Minute)
		if got := r.Process(ctx, st, d); got != tt.want {
			t.Errorf("%s: action = %v, want %v", tt.name, got, tt.want)
		}
		if n := c.calls.Load(); n != tt.wantCalls {
			t.Errorf("%s: handler calls = %d, want %d", tt.name, n, tt.wantCalls)
		}
	}
	if done, err := seen.Done(ctx, "resolve|request:cr-dup"); err != nil || !done {
		t.Errorf("Done(resolve|request:cr-dup) = %v, %v; want true", done, err)
	}
	// A duplicate is acknowledged: nothing is left on the stage queue.
	if n, _ := q.Depth(ctx, st.Name); n != 0 {
		t.Errorf("%d messages left on %s, want 0", n, st.Name)
	}
	// Only the first delivery published.
	outs := drain(t, q, pipeline.StageGraphWrite)
	if len(outs) != 1 {
		t.Errorf("graph-write got %d messages, want 1", len(outs))
	}
	validateAll(t, outs)

	// The key is per stage: another stage handles the same message.
	other := pipeline.Chain(c.handle, pipeline.Idempotency(seen, pipeline.StageAudit, time.Minute))
	if _, err := other(ctx, in); err != nil {
		t.Errorf("another stage with the same key: %v", err)
	}
}

func TestIdempotencyKeyFallsBackToMessageID(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	q, seen := newQueue(t, db), newSeen(t, db)
	c := &countingHandler{}
	st := pipeline.Stage{Name: "keyless", Handler: pipeline.Chain(c.handle, pipeline.Idempotency(seen, "keyless", time.Minute))}
	r := &pipeline.Runner{Queue: q, Stages: []pipeline.Stage{st}, Log: quietLog}
	in := detected(t, "cr-keyless")
	in.IdempotencyKey = ""
	send(t, q, st.Name, in)
	if got := r.Process(context.Background(), st, receiveOne(t, q, st.Name, time.Minute)); got != pipeline.Ack {
		t.Fatalf("action = %v", got)
	}
	if done, err := seen.Done(context.Background(), "keyless|id:"+in.ID); err != nil || !done {
		t.Errorf("Done(keyless|id:<id>) = %v, %v; want true", done, err)
	}
}

func TestIdempotencyConcurrentDeliveriesRunOnce(t *testing.T) {
	t.Parallel()
	seen := newSeen(t, newDB(t))
	c := &countingHandler{block: make(chan struct{})}
	h := pipeline.Idempotency(seen, pipeline.StagePlan, time.Minute)(c.handle)
	in := detected(t, "cr-concurrent")

	const n = 8
	var start sync.WaitGroup
	start.Add(1)
	results := make(chan error, n)
	for range n {
		go func() {
			start.Wait()
			_, err := h(context.Background(), in)
			results <- err
		}()
	}
	start.Done()
	// The losers return at once while the winner is blocked in the handler; then it finishes.
	var errs []error
	for len(errs) < n-1 {
		select {
		case err := <-results:
			errs = append(errs, err)
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d deliveries returned while one was in the handler", len(errs), n-1)
		}
	}
	close(c.block)
	errs = append(errs, <-results)
	if got := c.calls.Load(); got != 1 {
		t.Errorf("handler ran %d times, want 1", got)
	}
	ok := 0
	for _, err := range errs {
		var ip *pipeline.InProgress
		switch {
		case err == nil:
			ok++
		case errors.As(err, &ip):
			if ip.Key != "plan|request:cr-concurrent" {
				t.Errorf("InProgress key = %q", ip.Key)
			}
			if ip.RetryAfter() != time.Second {
				t.Errorf("RetryAfter = %v, want 1s", ip.RetryAfter())
			}
			if pipeline.Classify(err) != pipeline.Retry {
				t.Errorf("Classify(InProgress) = %v, want retry", pipeline.Classify(err))
			}
		default:
			t.Errorf("unexpected error %v", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d deliveries succeeded, want 1", ok)
	}
}

func TestIdempotencyFailedHandlerReleasesClaim(t *testing.T) {
	t.Parallel()
	seen := newSeen(t, newDB(t))
	c := &countingHandler{}
	c.fail.Store(1)
	h := pipeline.Idempotency(seen, pipeline.StageApply, time.Hour)(c.handle)
	in := detected(t, "cr-release")
	ctx := context.Background()
	if _, err := h(ctx, in); err == nil || pipeline.Classify(err) != pipeline.Retry {
		t.Fatalf("first call: err = %v, want a retryable failure", err)
	}
	// The lease is an hour: only a released claim lets the retry run now.
	out, err := h(ctx, in)
	if err != nil {
		t.Fatalf("retry: %v (the failed attempt kept its claim?)", err)
	}
	if len(out) != 1 || c.calls.Load() != 2 {
		t.Errorf("retry: %d outputs, %d calls; want 1 output, 2 calls", len(out), c.calls.Load())
	}
	if done, _ := seen.Done(ctx, "apply|request:cr-release"); done {
		t.Error("outside a runtime nothing publishes, so nothing may be marked done")
	}
}

// A handler that panics (the Lambda adapter recovers it and fails the record) leaves no claim
// behind, renewed for as long as the process lives: the retry runs.
func TestIdempotencyPanickingHandlerReleasesClaim(t *testing.T) {
	t.Parallel()
	seen := newSeen(t, newDB(t))
	c := &countingHandler{}
	panics := true
	h := pipeline.Idempotency(seen, pipeline.StageApply, time.Hour)(func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
		if panics {
			panics = false
			panic("nil map")
		}
		return c.handle(ctx, in)
	})
	in := detected(t, "cr-panic")
	func() {
		defer func() {
			if p := recover(); p == nil {
				t.Fatal("the handler's panic did not reach the caller")
			}
		}()
		_, _ = h(context.Background(), in)
	}()
	// The lease is an hour: only a released claim lets the retry run now.
	if out, err := h(context.Background(), in); err != nil || len(out) != 1 {
		t.Fatalf("retry: %d outputs, %v (the panicking attempt kept its claim?)", len(out), err)
	}
}

// fakeSeen fails on demand.
type fakeSeen struct {
	doneErr, claimErr error
}

func (f fakeSeen) Done(context.Context, string) (bool, error) { return false, f.doneErr }
func (f fakeSeen) Claim(context.Context, string, time.Duration) (bool, error) {
	return f.claimErr == nil, f.claimErr
}
func (f fakeSeen) Release(context.Context, string) error { return nil }
func (f fakeSeen) Mark(context.Context, string) error    { return nil }

func TestIdempotencyStoreErrorsAreTransient(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		seen fakeSeen
	}{
		{"done lookup fails", fakeSeen{doneErr: errors.New("database is locked")}},
		{"claim fails", fakeSeen{claimErr: errors.New("database is locked")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := &countingHandler{}
			_, err := pipeline.Idempotency(tt.seen, "s", time.Minute)(c.handle)(context.Background(), detected(t, "cr-x"))
			if !pipeline.IsTransient(err) || pipeline.Classify(err) != pipeline.Retry {
				t.Errorf("err = %v: want transient, retry", err)
			}
			if c.calls.Load() != 0 {
				t.Error("the handler must not run")
			}
		})
	}
}

func TestIdempotencyMarksOnlyAfterPublish(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	q, seen := newQueue(t, db), newSeen(t, db)
	transport := &failingSend{Queue: q}
	c := &countingHandler{}
	const lease = 300 * time.Millisecond
	st := pipeline.Stage{Name: pipeline.StageResolve, Handler: pipeline.Chain(c.handle, pipeline.Idempotency(seen, pipeline.StageResolve, lease))}
	rec := newRecorder()
	r := &pipeline.Runner{Queue: transport, Stages: []pipeline.Stage{st}, Observe: rec.observe, Log: quietLog}
	in := detected(t, "cr-publish")
	ctx := context.Background()
	key := "resolve|request:cr-publish"

	send(t, q, st.Name, in)
	transport.fail.Store(true)
	if got := r.Process(ctx, st, receiveOne(t, q, st.Name, 50*time.Millisecond)); got != pipeline.Retry {
		t.Fatalf("publish failed: action = %v, want retry", got)
	}
	if o := rec.next(t, time.Second); o.err == nil || !pipeline.IsTransient(o.err) {
		t.Errorf("observed error %v, want the transient send error", o.err)
	}
	if done, err := seen.Done(ctx, key); err != nil || done {
		t.Fatalf("key marked done although nothing was published (done=%v, err=%v)", done, err)
	}
	if n, _ := q.Depth(ctx, st.Name); n != 1 {
		t.Errorf("the input must stay on its queue for redelivery: depth %d", n)
	}

	// Redelivered once the claim's lease ran out (the visibility timeout in production), the
	// handler runs again and this time its outputs are published and the key marked.
	transport.fail.Store(false)
	time.Sleep(lease)
	if got := r.Process(ctx, st, receiveOne(t, q, st.Name, time.Minute)); got != pipeline.Ack {
		t.Fatalf("redelivery: action = %v, want ack", got)
	}
	if c.calls.Load() != 2 {
		t.Errorf("handler calls = %d, want 2", c.calls.Load())
	}
	if done, err := seen.Done(ctx, key); err != nil || !done {
		t.Errorf("after a successful publish: done = %v, %v; want true", done, err)
	}
	outs := drain(t, q, pipeline.StageGraphWrite)
	if len(outs) != 1 {
		t.Errorf("graph-write got %d messages, want 1", len(outs))
	}
	validateAll(t, outs)
}

// racingSeen is a Seen (not a BatchSeen, nor one an Outbox records) whose first lookup of a key
// that is not done lets another worker finish that key — claim it, handle it, mark it done —
// right after the lookup answered: the moment between a worker's lookup and its claim.
type racingSeen struct {
	pipeline.Seen
	once sync.Once
}

func (s *racingSeen) Done(ctx context.Context, key string) (bool, error) {
	done, err := s.Seen.Done(ctx, key)
	if err == nil && !done {
		s.once.Do(func() {
			if ok, cerr := s.Seen.Claim(ctx, key, time.Minute); cerr != nil || !ok {
				panic(fmt.Sprintf("the other worker's claim of %s: %v, %v", key, ok, cerr))
			}
			if merr := s.Seen.Mark(ctx, key); merr != nil {
				panic(merr)
			}
		})
	}
	return done, err
}

// A key marked done by another worker between the lookup and the claim is a duplicate: Mark
// dropped that worker's claim, so the claim succeeds, and the work must not be done again (an
// apply must not run Terraform twice for one deployment).
func TestIdempotencyKeyMarkedBetweenLookupAndClaimIsDuplicate(t *testing.T) {
	t.Parallel()
	seen := &racingSeen{Seen: newSeen(t, newDB(t))}
	c := &countingHandler{}
	h := pipeline.Idempotency(seen, pipeline.StageApply, time.Minute)(c.handle)
	_, err := h(context.Background(), detected(t, "cr-race"))
	if !errors.Is(err, pipeline.ErrDuplicate) {
		t.Errorf("err = %v, want a duplicate", err)
	}
	if n := c.calls.Load(); n != 0 {
		t.Errorf("the handler ran %d times after another worker had done the key", n)
	}
	if live, err := seen.Seen.(pipeline.Renewer).Renew(context.Background(), "apply|request:cr-race", time.Minute); err != nil || live {
		t.Errorf("a claim is left on the key (%v, %v)", live, err)
	}
}

// The same on the batched runner, whose claims go through claimAll when the Seen cannot claim a
// batch itself.
func TestRunnerKeyMarkedBetweenLookupAndClaimIsDuplicate(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	q := newQueue(t, db)
	seen := &racingSeen{Seen: newSeen(t, db)}
	c := &countingHandler{}
	st := pipeline.Stage{Name: pipeline.StageApply, Handler: c.handle, Seen: seen}
	rec := newRecorder()
	r := &pipeline.Runner{Queue: q, Stages: []pipeline.Stage{st}, Log: quietLog, Observe: rec.observe, Visibility: time.Minute}
	send(t, q, st.Name, detected(t, "cr-race-runner"))
	var got observed
	runUntil(t, r, rec, 10*time.Second, func(o observed) bool { got = o; return true })
	if got.action != pipeline.Duplicate {
		t.Errorf("action = %v (%v), want duplicate", got.action, got.err)
	}
	if n := c.calls.Load(); n != 0 {
		t.Errorf("the handler ran %d times after another worker had done the key", n)
	}
}
