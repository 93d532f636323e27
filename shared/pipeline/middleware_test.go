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
	"github.com/usekarma/karma/shared/queue"
)

// retryAfterErr is an error that says when to come back, like *pipeline.InProgress.
type retryAfterErr struct{ d time.Duration }

func (e retryAfterErr) Error() string             { return fmt.Sprintf("busy, retry after %v", e.d) }
func (e retryAfterErr) RetryAfter() time.Duration { return e.d }

// localPermanent marks itself permanent without importing pipeline (as message.MalformedError does).
type localPermanent struct{ permanent bool }

func (e localPermanent) Error() string   { return "local" }
func (e localPermanent) Permanent() bool { return e.permanent }

func TestClassify(t *testing.T) {
	t.Parallel()
	plain := errors.New("connection reset by peer")
	tests := []struct {
		name string
		err  error
		want pipeline.Action
	}{
		{"nil", nil, pipeline.Ack},
		{"ErrDuplicate", pipeline.ErrDuplicate, pipeline.Duplicate},
		{"ErrDuplicate wrapped", fmt.Errorf("resolve already handled request:1: %w", pipeline.ErrDuplicate), pipeline.Duplicate},
		{"ErrDuplicate wrapped twice", fmt.Errorf("outer: %w", fmt.Errorf("inner: %w", pipeline.ErrDuplicate)), pipeline.Duplicate},
		{"Permanent", pipeline.Permanent(plain), pipeline.DeadLetter},
		{"Permanent wrapped", fmt.Errorf("plan: %w", pipeline.Permanent(plain)), pipeline.DeadLetter},
		{"MalformedError", &message.MalformedError{Reason: "unknown message type \"x\""}, pipeline.DeadLetter},
		{"MalformedError wrapped", fmt.Errorf("decode: %w", &message.MalformedError{Reason: "bad"}), pipeline.DeadLetter},
		{"Parse error", func() error { _, err := message.Parse([]byte("{")); return err }(), pipeline.DeadLetter},
		{"Permanent() false", localPermanent{false}, pipeline.Retry},
		{"Permanent() true, no pipeline import", localPermanent{true}, pipeline.DeadLetter},
		{"Transient", pipeline.Transient(plain), pipeline.Retry},
		{"Transient wrapped", fmt.Errorf("lineage: %w", pipeline.Transient(plain)), pipeline.Retry},
		{"plain error", plain, pipeline.Retry},
		{"context.Canceled", context.Canceled, pipeline.Retry},
		{"context.Canceled wrapped", fmt.Errorf("receive: %w", context.Canceled), pipeline.Retry},
		{"context.DeadlineExceeded", context.DeadlineExceeded, pipeline.Retry},
		{"RetryAfter", retryAfterErr{time.Second}, pipeline.Retry},
		{"InProgress", &pipeline.InProgress{Key: "plan|deployment.recorded:dep-1"}, pipeline.Retry},
		{"duplicate wins over permanent", pipeline.Permanent(fmt.Errorf("x: %w", pipeline.ErrDuplicate)), pipeline.Duplicate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := pipeline.Classify(tt.err); got != tt.want {
				t.Errorf("Classify(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestActionString(t *testing.T) {
	t.Parallel()
	for a, want := range map[pipeline.Action]string{pipeline.Ack: "ack", pipeline.Retry: "retry", pipeline.DeadLetter: "dead-letter", pipeline.Duplicate: "duplicate"} {
		if a.String() != want {
			t.Errorf("%d.String() = %q, want %q", a, a.String(), want)
		}
	}
}

func TestIsTransient(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"Transient", pipeline.Transient(errors.New("x")), true},
		{"Transient wrapped", fmt.Errorf("a: %w", pipeline.Transient(errors.New("x"))), true},
		{"deadline exceeded", context.DeadlineExceeded, true},
		{"plain", errors.New("x"), false},
		{"canceled", context.Canceled, false},
		{"permanent", pipeline.Permanent(errors.New("x")), false},
	}
	for _, tt := range tests {
		if got := pipeline.IsTransient(tt.err); got != tt.want {
			t.Errorf("%s: IsTransient = %v, want %v", tt.name, got, tt.want)
		}
	}
	if pipeline.Permanent(nil) != nil || pipeline.Transient(nil) != nil {
		t.Error("Permanent(nil) and Transient(nil) must be nil")
	}
	inner := errors.New("inner")
	if !errors.Is(pipeline.Permanent(inner), inner) || !errors.Is(pipeline.Transient(inner), inner) {
		t.Error("Permanent and Transient must unwrap to their cause")
	}
	if pipeline.Permanent(inner).Error() != "inner" || pipeline.Transient(inner).Error() != "inner" {
		t.Error("Permanent and Transient must keep the message")
	}
}

func TestChainOrder(t *testing.T) {
	t.Parallel()
	var trace []string
	mw := func(name string) pipeline.Middleware {
		return func(next pipeline.Handler) pipeline.Handler {
			return func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
				trace = append(trace, name+">")
				out, err := next(ctx, in)
				trace = append(trace, "<"+name)
				return out, err
			}
		}
	}
	h := pipeline.Chain(func(context.Context, message.Envelope) ([]message.Envelope, error) {
		trace = append(trace, "handler")
		return nil, nil
	}, mw("a"), mw("b"))
	if _, err := h(context.Background(), message.Envelope{}); err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(trace), "[a> b> handler <b <a]"; got != want {
		t.Errorf("trace = %s, want %s (first listed is outermost)", got, want)
	}
}

func TestRetryTransient(t *testing.T) {
	t.Parallel()
	boom := errors.New("throttled")
	tests := []struct {
		name      string
		failures  int   // errors before success (-1: always)
		err       error // what a failure returns
		wantCalls int   // -1: more than one
		wantErr   error
	}{
		{"success at once", 0, nil, 1, nil},
		{"transient twice then success", 2, pipeline.Transient(boom), 3, nil},
		{"deadline exceeded is transient", 1, context.DeadlineExceeded, 2, nil},
		{"plain error is not retried", -1, boom, 1, boom},
		{"permanent error is not retried", -1, pipeline.Permanent(boom), 1, boom},
		{"malformed is not retried", -1, &message.MalformedError{Reason: "x"}, 1, message.ErrMalformed},
		{"duplicate is not retried", -1, fmt.Errorf("x: %w", pipeline.ErrDuplicate), 1, pipeline.ErrDuplicate},
		{"in progress is not retried in-process", -1, &pipeline.InProgress{Key: "k"}, 1, nil},
		{"transient forever stops", -1, pipeline.Transient(boom), -1, boom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int32
			want := detected(t, "cr-retry")
			h := pipeline.Chain(func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
				n := int(calls.Add(1))
				if tt.failures < 0 || n <= tt.failures {
					return nil, tt.err
				}
				return []message.Envelope{in}, nil
			}, pipeline.RetryTransient(300*time.Millisecond))
			start := time.Now()
			out, err := h(context.Background(), want)
			elapsed := time.Since(start)
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.failures >= 0 && err != nil {
				t.Errorf("err = %v, want success", err)
			}
			if tt.failures >= 0 && (len(out) != 1 || out[0].ID != want.ID) {
				t.Errorf("outputs = %v, want the handler's", out)
			}
			if tt.failures < 0 && pipeline.Classify(err) != pipeline.Classify(tt.err) {
				t.Errorf("the returned error classifies as %v, the handler's as %v", pipeline.Classify(err), pipeline.Classify(tt.err))
			}
			switch got := int(calls.Load()); {
			case tt.wantCalls == -1:
				if got < 2 {
					t.Errorf("calls = %d, want several", got)
				}
				// backoff stops before a wait would cross maxElapsed.
				if elapsed < 100*time.Millisecond || elapsed > 300*time.Millisecond+time.Second {
					t.Errorf("gave up after %v, want within about maxElapsed (300ms)", elapsed)
				}
				if !pipeline.IsTransient(err) {
					t.Errorf("the last error %v must stay transient (Retry for the queue)", err)
				}
			case got != tt.wantCalls:
				t.Errorf("calls = %d, want %d", got, tt.wantCalls)
			}
		})
	}
}

func TestRetryTransientStopsOnCancel(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	var calls atomic.Int32
	h := pipeline.RetryTransient(time.Minute)(func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
		if calls.Add(1) == 2 {
			cancel()
		}
		return nil, pipeline.Transient(errors.New("throttled"))
	})
	start := time.Now()
	_, err := h(ctx, message.Envelope{})
	if err == nil {
		t.Fatal("want an error")
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("kept retrying %v after cancel", time.Since(start))
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("calls = %d, want 2 (none after cancel)", n)
	}
	if pipeline.Classify(err) != pipeline.Retry {
		t.Errorf("Classify(%v) = %v, want retry", err, pipeline.Classify(err))
	}
}

func TestCorrelation(t *testing.T) {
	t.Parallel()
	in := detected(t, "cr-corr")
	other := message.Actor{Kind: "karma", Name: "karma"}
	h := pipeline.Chain(func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
		bare := scheduled(t, in, "prod/vpc/core") // own correlation id, no actor, no env, no cause
		set := scheduled(t, in, "prod/ecs-cluster/core")
		set.CausationID, set.Actor, set.Env = "0198a3b4-0000-7000-8000-000000000001", other, "dev"
		return []message.Envelope{bare, set}, nil
	}, pipeline.Correlation())
	out, err := h(context.Background(), in)
	if err != nil || len(out) != 2 {
		t.Fatalf("out = %v, err = %v", out, err)
	}
	tests := []struct {
		name           string
		got            message.Envelope
		causation, env string
		actor          message.Actor
	}{
		{"unset fields come from the input", out[0], in.ID, in.Env, in.Actor},
		{"set fields are kept", out[1], "0198a3b4-0000-7000-8000-000000000001", "dev", other},
	}
	for _, tt := range tests {
		if tt.got.CorrelationID != in.CorrelationID {
			t.Errorf("%s: correlation_id = %s, want the input's %s", tt.name, tt.got.CorrelationID, in.CorrelationID)
		}
		if tt.got.CausationID != tt.causation {
			t.Errorf("%s: causation_id = %s, want %s", tt.name, tt.got.CausationID, tt.causation)
		}
		if tt.got.Actor != tt.actor {
			t.Errorf("%s: actor = %+v, want %+v", tt.name, tt.got.Actor, tt.actor)
		}
		if tt.got.Env != tt.env {
			t.Errorf("%s: env = %q, want %q", tt.name, tt.got.Env, tt.env)
		}
		validate(t, tt.got)
	}

	// Outputs returned with an error are corrected too (they are not published, but logged).
	h = pipeline.Correlation()(func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
		return []message.Envelope{scheduled(t, in, "prod/vpc/core")}, errors.New("x")
	})
	out, _ = h(context.Background(), in)
	if len(out) != 1 || out[0].CorrelationID != in.CorrelationID {
		t.Errorf("outputs with an error: %+v", out)
	}
}

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

// failingSend is a transport whose Send fails while fail is set.
type failingSend struct {
	queue.Queue
	fail  atomic.Bool
	sends atomic.Int32
}

func (f *failingSend) Send(ctx context.Context, name string, msgs ...queue.Message) error {
	if f.fail.Load() {
		return errors.New("send refused")
	}
	f.sends.Add(1)
	return f.Queue.Send(ctx, name, msgs...)
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
