package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/message/messagetest"

	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/queue"
)

// The contract lives at the repository root: schemas/<type>.v<N>.schema.json, each referring to
// schemas/envelope.schema.json relatively (see shared/message/golden_test.go).
// validate checks a produced message against its schema and the codec (messagetest).
func validate(t testing.TB, e message.Envelope) { messagetest.Validate(t, e) }

func validateAll(t testing.TB, msgs []message.Envelope) { messagetest.ValidateAll(t, msgs) }

func newDB(t testing.TB) *embedded.DB {
	t.Helper()
	db, err := embedded.Open(filepath.Join(t.TempDir(), "karma.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func newQueue(t testing.TB, db *embedded.DB) *embedded.Queue {
	t.Helper()
	q, err := embedded.NewQueue(context.Background(), db, embedded.QueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func newSeen(t testing.TB, db *embedded.DB) *embedded.Seen {
	t.Helper()
	s, err := embedded.NewSeen(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// quietLog keeps runner warnings out of the test output.
var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

var testActor = message.Actor{Kind: "cli", Name: "ada"}

// detected is a valid change.detected root (a change request for prod/vpc/core) whose
// idempotency key is "request:<reqID>".
func detected(t testing.TB, reqID string) message.Envelope {
	t.Helper()
	p := message.ChangeDetected{Source: message.SourceRequest, Components: []message.ComponentRef{{Type: "vpc", Nickname: "core"}},
		Request: &message.ChangeRequest{ID: reqID, Configs: map[string]string{"vpc/core": `{"cidr":"10.1.0.0/16"}`}}}
	e, err := message.New(message.TypeChangeDetected, "prod", testActor, "request:"+reqID, struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	p.ChangeSetID = e.ID
	if e.Payload, err = json.Marshal(p); err != nil {
		t.Fatal(err)
	}
	validate(t, e)
	return e
}

const testConfigHash = "a3f1c2d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"

// scheduled is what a resolve handler would derive from in: a deployment.scheduled with a valid
// payload, built without Derive so that Correlation has something to fill in.
func scheduled(t testing.TB, in message.Envelope, component string) message.Envelope {
	t.Helper()
	depID := fmt.Sprintf("dep-%016x", len(component))
	p := message.DeploymentScheduled{ChangeSetID: in.ID, DeploymentID: depID, Component: component, Wave: 0,
		CausedBy: []message.Cause{{Kind: message.CauseRequest, ID: "cr-1"}}, ConfigHash: testConfigHash}
	e, err := message.New(message.TypeDeploymentScheduled, "", message.Actor{}, "deployment.scheduled:"+depID, p)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// send puts in on queue name through q.
func send(t testing.TB, q queue.Queue, name string, in message.Envelope) {
	t.Helper()
	b, err := message.Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Send(context.Background(), name, queue.Message{Body: b}); err != nil {
		t.Fatal(err)
	}
}

// receiveOne receives exactly one delivery from name (waiting up to 2 s).
func receiveOne(t testing.TB, q queue.Queue, name string, visibility time.Duration) queue.Delivery {
	t.Helper()
	ds, err := q.Receive(context.Background(), name, 1, visibility, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 {
		t.Fatalf("receive %s: %d deliveries, want 1", name, len(ds))
	}
	return ds[0]
}

// drain receives every message currently on name and parses them.
func drain(t testing.TB, q queue.Queue, name string) []message.Envelope {
	t.Helper()
	var out []message.Envelope
	for {
		ds, err := q.Receive(context.Background(), name, 10, time.Minute, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 0 {
			return out
		}
		for _, d := range ds {
			e, err := message.Parse(d.Body)
			if err != nil {
				t.Fatalf("%s holds an unparsable message: %v", name, err)
			}
			out = append(out, e)
			if err := q.Delete(context.Background(), name, d.ReceiptHandle); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// observed is what Runner.Observe saw for one message.
type observed struct {
	stage  string
	in     message.Envelope
	out    []message.Envelope
	action pipeline.Action
	err    error
	at     time.Time
}

// recorder collects Observe calls.
type recorder struct {
	mu  sync.Mutex
	got []observed
	ch  chan observed
}

func newRecorder() *recorder { return &recorder{ch: make(chan observed, 100)} }

func (r *recorder) observe(stage string, in message.Envelope, out []message.Envelope, action pipeline.Action, err error) {
	o := observed{stage, in, out, action, err, time.Now()}
	r.mu.Lock()
	r.got = append(r.got, o)
	r.mu.Unlock()
	select {
	case r.ch <- o:
	default:
	}
}

func (r *recorder) all() []observed {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]observed(nil), r.got...)
}

// next waits for the next observation.
func (r *recorder) next(t testing.TB, timeout time.Duration) observed {
	t.Helper()
	select {
	case o := <-r.ch:
		return o
	case <-time.After(timeout):
		t.Fatalf("nothing handled within %v", timeout)
		return observed{}
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
