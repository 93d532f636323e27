package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/queue"
)

func TestDestinations(t *testing.T) {
	t.Parallel()
	tests := []struct {
		typ  string
		want []string
	}{
		{message.TypeChangeDetected, []string{pipeline.StageResolve, pipeline.StageAudit}},
		{message.TypeChangeResolved, []string{pipeline.StageGraphWrite, pipeline.StageAudit}},
		{message.TypeDeploymentScheduled, []string{pipeline.StageGraphWrite, pipeline.StageAudit}},
		{message.TypeDeploymentSkipped, []string{pipeline.StageGraphWrite, pipeline.StageAudit}},
		{message.TypeDeploymentRecorded, []string{pipeline.StagePlan, pipeline.StageAudit}},
		{message.TypeDeploymentPlanned, []string{pipeline.StageApply, pipeline.StageAudit}},
		{message.TypeDeploymentApproved, []string{pipeline.StageApply, pipeline.StageAudit}},
		{message.TypeDeploymentApplied, []string{pipeline.StageResolve, pipeline.StageGraphWrite, pipeline.StageAudit}},
		{message.TypeDeploymentFailed, []string{pipeline.StageResolve, pipeline.StageGraphWrite, pipeline.StageAudit}},
		{"something.new", []string{pipeline.StageAudit}},
	}
	for _, tt := range tests {
		if got := pipeline.Destinations(tt.typ); !slices.Equal(got, tt.want) {
			t.Errorf("Destinations(%s) = %v, want %v", tt.typ, got, tt.want)
		}
	}
	// Destinations must not alias Routes.
	d := pipeline.Destinations(message.TypeDeploymentApplied)
	d[0] = "mutated"
	if pipeline.Routes[message.TypeDeploymentApplied][0] == "mutated" {
		t.Error("Destinations returned Routes' own slice")
	}
	for typ := range message.Latest {
		if len(pipeline.Routes[typ]) == 0 {
			t.Errorf("%s has no consumer in Routes", typ)
		}
	}
}

func TestPublishRoutesAndBatches(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	q := newQueue(t, db)
	ctx := context.Background()
	root := detected(t, "cr-publish-batch")
	var msgs []message.Envelope
	for i := range 25 { // more than one SQS batch (10) per queue
		p := message.DeploymentApplied{ChangeSetID: root.ID, DeploymentID: fmt.Sprintf("dep-%016x", i), Component: "prod/vpc/core",
			RuntimeVersion: 1, ChangedKeys: []string{}, RuntimeHash: testConfigHash}
		msgs = append(msgs, root.MustDerive(message.TypeDeploymentApplied, "deployment.applied:"+p.DeploymentID, p))
	}
	msgs = append(msgs, root)
	validateAll(t, msgs)
	if err := pipeline.Publish(ctx, q, msgs...); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]int{pipeline.StageResolve: 26, pipeline.StageGraphWrite: 25, pipeline.StageAudit: 26, pipeline.StagePlan: 0} {
		if n, err := q.Depth(ctx, name); err != nil || n != want {
			t.Errorf("%s holds %d (%v), want %d", name, n, err, want)
		}
	}
	// In order, within a queue.
	got := drain(t, q, pipeline.StageAudit)
	for i := range got {
		if got[i].ID != msgs[i].ID {
			t.Fatalf("audit message %d is %s, want %s", i, got[i].ID, msgs[i].ID)
		}
	}

	bad := root
	bad.Payload = json.RawMessage(`{not json`)
	if err := pipeline.Publish(ctx, q, bad); err == nil {
		t.Error("publishing an unencodable message must fail")
	}
	failing := &failingSend{Queue: q}
	failing.fail.Store(true)
	if err := pipeline.Publish(ctx, failing, root); !pipeline.IsTransient(err) {
		t.Errorf("a failed send: %v, want a transient error", err)
	}
}

// poison returns a wire body made from a valid change.detected with edit applied to its JSON.
func poison(t *testing.T, edit func(m map[string]any)) []byte {
	t.Helper()
	b, err := message.Encode(detected(t, "cr-poison"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	b, err = json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decodeStage is a resolve-like stage: it decodes change.detected and derives one output, wrapped
// in the middleware production uses (cmd/karma/pipeline.go).
func decodeStage(seen pipeline.Seen, name string) (pipeline.Stage, *atomic.Int32) {
	var calls atomic.Int32
	h := func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
		calls.Add(1)
		var p message.ChangeDetected
		if err := message.Decode(in, &p); err != nil {
			return nil, err
		}
		s := message.DeploymentScheduled{ChangeSetID: p.ChangeSetID, DeploymentID: "dep-00000000000000aa", Component: "prod/vpc/core",
			CausedBy: []message.Cause{{Kind: message.CauseRequest, ID: p.Request.ID}}, ConfigHash: testConfigHash}
		return []message.Envelope{in.MustDerive(message.TypeDeploymentScheduled, "deployment.scheduled:"+s.DeploymentID, s)}, nil
	}
	return pipeline.Stage{Name: name, Handler: pipeline.Chain(h, pipeline.Logging(quietLog, name), pipeline.Correlation(),
		pipeline.Idempotency(seen, name, time.Minute), pipeline.RetryTransient(200*time.Millisecond))}, &calls
}

// runUntil runs r until stop returns true (checked on every observation), then stops it and
// waits for it to drain.
func runUntil(t *testing.T, r *pipeline.Runner, rec *recorder, timeout time.Duration, stop func(observed) bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	deadline := time.After(timeout)
	for {
		select {
		case o := <-rec.ch:
			if stop(o) {
				return
			}
		case <-deadline:
			t.Fatalf("condition not reached within %v; observed %d messages", timeout, len(rec.all()))
		}
	}
}

func TestRunnerPoisonMessagesAreDeadLetteredAndBlockNothing(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	q, seen := newQueue(t, db), newSeen(t, db)
	st, calls := decodeStage(seen, pipeline.StageResolve)
	rec := newRecorder()
	r := &pipeline.Runner{Queue: q, Stages: []pipeline.Stage{st}, Log: quietLog, Observe: rec.observe, Visibility: time.Minute}
	ctx := context.Background()

	poisons := []struct {
		name   string
		body   []byte
		reason string // must appear in the dead letter's reason
	}{
		{"not JSON", []byte(`{"id": "x", this is not json`), "envelope is not valid JSON"},
		{"not an object", []byte(`"change.detected"`), "envelope is not valid JSON"},
		{"unknown type", poison(t, func(m map[string]any) { m["type"] = "change.exploded" }), `unknown message type "change.exploded"`},
		{"unknown version", poison(t, func(m map[string]any) { m["version"] = 9 }), "unsupported version 9 of change.detected"},
		{"missing correlation", poison(t, func(m map[string]any) { delete(m, "correlation_id") }), "has no correlation_id"},
		{"payload of another shape", poison(t, func(m map[string]any) { m["payload"].(map[string]any)["not_a_field"] = true }),
			`unknown field "not_a_field"`},
	}
	for _, p := range poisons {
		if err := q.Send(ctx, st.Name, queue.Message{Body: p.body}); err != nil {
			t.Fatal(err)
		}
	}
	valid := detected(t, "cr-valid")
	send(t, q, st.Name, valid)

	runUntil(t, r, rec, 10*time.Second, func(o observed) bool { return o.in.ID == valid.ID })

	var valids []observed
	for _, o := range rec.all() {
		if o.in.ID == valid.ID {
			valids = append(valids, o)
		}
	}
	if len(valids) != 1 || valids[0].action != pipeline.Ack || valids[0].err != nil {
		t.Fatalf("the valid message: %+v, want one ack", valids)
	}
	if got := calls.Load(); got != 2 {
		t.Errorf("handler calls = %d, want 2 (the valid message and the one whose payload needs decoding)", got)
	}
	dead, err := q.ListDead(ctx, st.Name)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != len(poisons) {
		t.Fatalf("%d dead letters, want %d: %+v", len(dead), len(poisons), dead)
	}
	for _, p := range poisons {
		t.Run(p.name, func(t *testing.T) {
			i := slices.IndexFunc(dead, func(d queue.DeadLetter) bool { return string(d.Body) == string(p.body) })
			if i < 0 {
				t.Fatal("not in the dead-letter queue")
			}
			d := dead[i]
			if !strings.Contains(d.Reason, p.reason) || !strings.Contains(d.Reason, "malformed") {
				t.Errorf("reason %q does not name the problem (%q)", d.Reason, p.reason)
			}
			if d.ReceiveCount != 1 {
				t.Errorf("received %d times, want 1: a poison message is not retried", d.ReceiveCount)
			}
		})
	}
	if n, _ := q.Depth(ctx, st.Name); n != 0 {
		t.Errorf("%d messages left on %s", n, st.Name)
	}
	outs := drain(t, q, pipeline.StageGraphWrite)
	if len(outs) != 1 || outs[0].CausationID != valid.ID || outs[0].CorrelationID != valid.CorrelationID {
		t.Errorf("graph-write got %+v, want the valid message's consequence", outs)
	}
	validateAll(t, outs)
}

func TestRunnerTransientErrorIsRedeliveredThenDeadLettered(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	q, seen := newQueue(t, db), newSeen(t, db)
	var calls atomic.Int32
	h := func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
		calls.Add(1)
		return nil, pipeline.Transient(errors.New("database is locked"))
	}
	st := pipeline.Stage{Name: pipeline.StagePlan, Handler: pipeline.Chain(h, pipeline.Correlation(), pipeline.Idempotency(seen, pipeline.StagePlan, time.Minute))}
	// Each failure hides the message for the backoff (RetryBase doubling with each receive).
	r := &pipeline.Runner{Queue: q, Stages: []pipeline.Stage{st}, Log: quietLog, RetryBase: time.Millisecond}
	ctx := context.Background()
	in := detected(t, "cr-transient")
	send(t, q, st.Name, in)

	const visibility = 30 * time.Millisecond
	for i := 1; i <= queue.DefaultMaxReceives; i++ {
		d := receiveOne(t, q, st.Name, visibility)
		if d.ReceiveCount != i {
			t.Errorf("delivery %d has receive count %d", i, d.ReceiveCount)
		}
		want := pipeline.Retry
		if i == queue.DefaultMaxReceives {
			want = pipeline.DeadLetter // the last receive: dead-lettered with the error as reason
		}
		if got := r.Process(ctx, st, d); got != want {
			t.Fatalf("delivery %d: action %v, want %v", i, got, want)
		}
		if i == queue.DefaultMaxReceives {
			break
		}
		if dead, _ := q.ListDead(ctx, st.Name); len(dead) != 0 {
			t.Fatalf("dead-lettered after %d receives, want %d", i, queue.DefaultMaxReceives)
		}
		if n, _ := q.Depth(ctx, st.Name); n != 1 {
			t.Fatalf("after delivery %d the message is gone (depth %d): it must stay for redelivery", i, n)
		}
	}
	dead, err := q.ListDead(ctx, st.Name)
	if err != nil || len(dead) != 1 {
		t.Fatalf("ListDead = %+v, %v", dead, err)
	}
	if want := fmt.Sprintf("database is locked (after %d receives)", queue.DefaultMaxReceives); dead[0].Reason != want {
		t.Errorf("reason = %q, want %q", dead[0].Reason, want)
	}
	if got := calls.Load(); got != queue.DefaultMaxReceives {
		t.Errorf("handler ran %d times, want %d (the failed attempts released their claims)", got, queue.DefaultMaxReceives)
	}
}

// The same through Run: the message comes back after its visibility timeout until dead-lettered.
func TestRunnerRunDeadLettersAfterMaxReceives(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	q := newQueue(t, db)
	var calls atomic.Int32
	st := pipeline.Stage{Name: pipeline.StageApply, Handler: func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
		calls.Add(1)
		return nil, errors.New("unknown error")
	}}
	rec := newRecorder()
	r := &pipeline.Runner{Queue: q, Stages: []pipeline.Stage{st}, Log: quietLog, Observe: rec.observe, Visibility: 20 * time.Millisecond}
	send(t, q, st.Name, detected(t, "cr-run-dlq"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if dead, _ := q.ListDead(context.Background(), st.Name); len(dead) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not dead-lettered; handler ran %d times", calls.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if got := calls.Load(); got != queue.DefaultMaxReceives {
		t.Errorf("handler ran %d times, want %d", got, queue.DefaultMaxReceives)
	}
	all := rec.all()
	for i, o := range all {
		want := pipeline.Retry
		if i == len(all)-1 {
			want = pipeline.DeadLetter
		}
		if o.action != want {
			t.Errorf("handling %d: action %v, want %v", i+1, o.action, want)
		}
	}
	if dead, _ := q.ListDead(context.Background(), st.Name); len(dead) != 1 || !strings.Contains(dead[0].Reason, "unknown error") {
		t.Errorf("dead letters %+v: want the handler's error as reason", dead)
	}
}

func TestRunnerInProgressComesBackQuickly(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	q := newQueue(t, db)
	var mu sync.Mutex
	var calls []time.Time
	st := pipeline.Stage{Name: pipeline.StagePlan, Handler: func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, time.Now())
		if len(calls) == 1 {
			return nil, fmt.Errorf("wrapped: %w", &pipeline.InProgress{Key: "plan|k"})
		}
		return nil, nil
	}}
	rec := newRecorder()
	// A visibility timeout of a minute: only the InProgress hint can bring the message back soon.
	r := &pipeline.Runner{Queue: q, Stages: []pipeline.Stage{st}, Log: quietLog, Observe: rec.observe, Visibility: time.Minute}
	send(t, q, st.Name, detected(t, "cr-inprogress"))
	runUntil(t, r, rec, 10*time.Second, func(o observed) bool { return o.action == pipeline.Ack })

	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 2 {
		t.Fatalf("handler ran %d times, want 2", len(calls))
	}
	gap := calls[1].Sub(calls[0])
	if gap < 150*time.Millisecond || gap > 2*time.Second {
		t.Errorf("redelivered after %v, want about 1s", gap)
	}
	if n, _ := q.Depth(context.Background(), st.Name); n != 0 {
		t.Errorf("depth %d after ack", n)
	}
}

// Two copies of one message on two workers: the handler runs once; the other copy waits
// (InProgress), then finds the work done (Duplicate); both are acknowledged.
func TestRunnerConcurrentCopiesRunOnce(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	q, seen := newQueue(t, db), newSeen(t, db)
	var calls atomic.Int32
	h := func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
		calls.Add(1)
		time.Sleep(300 * time.Millisecond)
		return nil, nil
	}
	st := pipeline.Stage{Name: pipeline.StageApply, Workers: 2, Handler: pipeline.Chain(h, pipeline.Idempotency(seen, pipeline.StageApply, time.Minute))}
	rec := newRecorder()
	r := &pipeline.Runner{Queue: q, Stages: []pipeline.Stage{st}, Log: quietLog, Observe: rec.observe, Visibility: time.Minute}
	in := detected(t, "cr-copies")
	send(t, q, st.Name, in)
	send(t, q, st.Name, in)
	acks, dups := 0, 0
	runUntil(t, r, rec, 10*time.Second, func(o observed) bool {
		switch o.action {
		case pipeline.Ack:
			acks++
		case pipeline.Duplicate:
			dups++
		case pipeline.Retry:
			var ip *pipeline.InProgress
			if !errors.As(o.err, &ip) {
				t.Errorf("retry with %v, want InProgress", o.err)
			}
		default:
			t.Errorf("action %v (%v)", o.action, o.err)
		}
		return acks+dups == 2
	})
	if acks != 1 || dups != 1 {
		t.Errorf("acks %d, duplicates %d; want 1 and 1", acks, dups)
	}
	if calls.Load() != 1 {
		t.Errorf("handler ran %d times, want 1", calls.Load())
	}
	if n, _ := q.Depth(context.Background(), st.Name); n != 0 {
		t.Errorf("depth %d, want 0", n)
	}
}

// Cancelling Run lets the handler in flight finish, publish and acknowledge (drain).
func TestRunnerDrainsOnShutdown(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	q := newQueue(t, db)
	entered, release := make(chan struct{}), make(chan struct{})
	var handlerCtxErr atomic.Value
	st := pipeline.Stage{Name: pipeline.StageResolve, Handler: func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
		close(entered)
		<-release
		handlerCtxErr.Store(fmt.Sprint(ctx.Err()))
		p := message.DeploymentSkipped{ChangeSetID: in.ID, Component: "prod/vpc/core", Reason: "no-consumed-key-changed", Detail: ""}
		return []message.Envelope{in.MustDerive(message.TypeDeploymentSkipped, "deployment.skipped:"+in.ID+"/prod/vpc/core", p)}, nil
	}}
	rec := newRecorder()
	r := &pipeline.Runner{Queue: q, Stages: []pipeline.Stage{st}, Log: quietLog, Observe: rec.observe}
	send(t, q, st.Name, detected(t, "cr-drain"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	<-entered
	if r.InFlight() != 1 {
		t.Errorf("InFlight = %d while handling, want 1", r.InFlight())
	}
	cancel()
	select {
	case <-done:
		t.Fatal("Run returned with a handler in flight")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	<-done
	if got := handlerCtxErr.Load(); got != "<nil>" {
		t.Errorf("the handler's context was cancelled by shutdown: %v", got)
	}
	if o := rec.next(t, time.Second); o.action != pipeline.Ack {
		t.Errorf("action %v (%v), want ack", o.action, o.err)
	}
	if n, _ := q.Depth(context.Background(), st.Name); n != 0 {
		t.Errorf("depth %d: the drained message was not acknowledged", n)
	}
	outs := drain(t, q, pipeline.StageGraphWrite)
	if len(outs) != 1 {
		t.Fatalf("graph-write got %d messages, want 1", len(outs))
	}
	validateAll(t, outs)
	if r.InFlight() != 0 {
		t.Errorf("InFlight = %d after Run", r.InFlight())
	}
}

// A message the queue moves to the dead letters itself, on a receive that finds it out of
// receives (its holder died on its last one), is reported as the runner's own dead letters are:
// to Observe (what karma plan and apply print) and the log, not left for 'karma dlq list' alone.
func TestRunnerReportsWhatTheQueueDeadLettersOnReceive(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	q, err := embedded.NewQueue(ctx, newDB(t), embedded.QueueOptions{MaxReceives: 2})
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	st := pipeline.Stage{Name: pipeline.StagePlan, Handler: func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
		calls.Add(1)
		return nil, nil
	}}
	in := detected(t, "cr-spent")
	send(t, q, st.Name, in)
	for range 2 { // two holders that died: received, never settled
		receiveOne(t, q, st.Name, time.Millisecond)
		time.Sleep(5 * time.Millisecond)
	}
	rec := newRecorder()
	r := &pipeline.Runner{Queue: q, Stages: []pipeline.Stage{st}, Log: quietLog, Observe: rec.observe, Visibility: time.Minute}
	var got observed
	runUntil(t, r, rec, 10*time.Second, func(o observed) bool { got = o; return true })
	if got.action != pipeline.DeadLetter || got.err == nil || !strings.Contains(got.err.Error(), "max receives (2) exceeded") || got.in.ID != in.ID {
		t.Errorf("observed %v of message %q (%v); want message %s dead-lettered for max receives", got.action, got.in.ID, got.err, in.ID)
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("the handler ran %d times", n)
	}
	if dead, _ := q.ListDead(ctx, st.Name); len(dead) != 1 {
		t.Errorf("dead letters %+v, want the message", dead)
	}
}
