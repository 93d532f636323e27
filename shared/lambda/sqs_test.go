package lambda_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/usekarma/karma/shared/besidetest"
	"github.com/usekarma/karma/shared/eventbridge"
	"github.com/usekarma/karma/shared/lambda"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/queue"
)

const (
	standardARN = "arn:aws:sqs:us-east-1:123456789012:karma-dev-plan"
	fifoARN     = "arn:aws:sqs:us-east-1:123456789012:karma-dev-apply.fifo"
)

// The stage's behaviour is chosen by each message's idempotency key.
func stage(calls *[]string, mu *sync.Mutex) pipeline.Stage {
	return pipeline.Stage{Name: "plan", Handler: func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
		mu.Lock()
		*calls = append(*calls, in.IdempotencyKey)
		mu.Unlock()
		switch in.IdempotencyKey {
		case "transient":
			return nil, pipeline.Transient(errors.New("graph store timed out"))
		case "poison":
			return nil, pipeline.Permanent(errors.New("payload does not match its type"))
		case "dup":
			return nil, fmt.Errorf("plan did this: %w", pipeline.ErrDuplicate)
		case "busy":
			return nil, &pipeline.InProgress{Key: "k"}
		case "panic":
			var m map[string]int
			m["graph"]++ // a nil map: the stage panics
		case "deadline":
			<-ctx.Done() // a Terraform run outlasting the function's time
			return nil, ctx.Err()
		case "pubfail":
			return []message.Envelope{in.MustDerive(message.TypeDeploymentPlanned, "unpublishable", struct{}{})}, nil
		}
		return []message.Envelope{in.MustDerive(message.TypeDeploymentPlanned, "out-"+in.IdempotencyKey, struct{}{})}, nil
	}}
}

type publisher struct {
	mu   sync.Mutex
	keys []string
	msgs []message.Envelope
}

func (p *publisher) Publish(_ context.Context, msgs ...message.Envelope) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range msgs {
		if m.IdempotencyKey == "unpublishable" {
			return pipeline.Transient(errors.New("bus throttled"))
		}
		p.keys = append(p.keys, m.IdempotencyKey)
		p.msgs = append(p.msgs, m)
	}
	return nil
}

type deadLetterer struct {
	mu      sync.Mutex
	fail    bool
	letters []string // "<source arn>|<message id>|<group>|<reason>"
	bodies  []string
}

func (d *deadLetterer) DeadLetter(_ context.Context, sourceARN string, l queue.DeadLetter, group string) error {
	if d.fail {
		return errors.New("dlq unreachable")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.letters = append(d.letters, fmt.Sprintf("%s|%s|%s|%s", sourceARN, l.MessageID, group, l.Reason))
	d.bodies = append(d.bodies, string(l.Body))
	return nil
}

// body is an encoded envelope with idempotency key key; wrapped puts it in an EventBridge event.
func body(t *testing.T, key string, wrapped bool) string {
	t.Helper()
	e, err := message.New(message.TypeDeploymentRecorded, "dev", message.Actor{Kind: "cli", Name: "t"}, key, struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := message.Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	if !wrapped {
		return string(b)
	}
	ev, _ := json.Marshal(map[string]any{"version": "0", "id": "ev-" + key, "detail-type": e.Type, "source": "karma",
		"account": "123456789012", "time": "2026-03-14T09:33:48Z", "region": "us-east-1", "resources": []string{},
		"detail": json.RawMessage(b)})
	return string(ev)
}

// rec is a record with message id id; group != "" marks it FIFO.
func rec(id, body, arn, group string) events.SQSMessage {
	attrs := map[string]string{"ApproximateReceiveCount": "1", "SentTimestamp": "1520621625029"}
	if group != "" {
		attrs["MessageGroupId"] = group
	}
	return events.SQSMessage{MessageId: id, ReceiptHandle: "rh-" + id, Body: body, EventSourceARN: arn,
		EventSource: "aws:sqs", AWSRegion: "us-east-1", Attributes: attrs}
}

func failures(r events.SQSEventResponse) []string {
	out := []string{}
	for _, f := range r.BatchItemFailures {
		out = append(out, f.ItemIdentifier)
	}
	return out
}

func TestSQSHandler(t *testing.T) {
	type want struct {
		failures []string // message ids, in order
		dead     []string // "<message id>|<group>|<reason contains>"
		calls    []string // idempotency keys the handler saw, in order
		pub      []string // published idempotency keys
	}
	tests := []struct {
		name     string
		records  func(t *testing.T) []events.SQSMessage
		dlqFails bool
		cancel   bool
		want     want
	}{
		{
			name: "standard queue: mixed batch",
			records: func(t *testing.T) []events.SQSMessage {
				return []events.SQSMessage{
					rec("m1", body(t, "ok1", true), standardARN, ""),
					rec("m2", body(t, "transient", true), standardARN, ""),
					rec("m3", body(t, "poison", true), standardARN, ""),
					rec("m4", body(t, "dup", false), standardARN, ""),
					rec("m5", "Message Body", standardARN, ""), // not JSON: poison before the handler
					rec("m6", body(t, "ok2", false), standardARN, ""),
					rec("m7", body(t, "pubfail", true), standardARN, ""),
					rec("m8", body(t, "busy", true), standardARN, ""),
				}
			},
			want: want{
				failures: []string{"m2", "m7", "m8"},
				dead:     []string{"m3||payload does not match its type", "m5||not a JSON object"},
				calls:    []string{"ok1", "transient", "poison", "dup", "ok2", "pubfail", "busy"},
				pub:      []string{"out-ok1", "out-ok2"},
			},
		},
		{
			name: "poison does not fail its batch-mates",
			records: func(t *testing.T) []events.SQSMessage {
				return []events.SQSMessage{
					rec("a", body(t, "poison", true), standardARN, ""),
					rec("b", body(t, "ok", true), standardARN, ""),
				}
			},
			want: want{failures: []string{}, dead: []string{"a||payload does not match"}, calls: []string{"poison", "ok"}, pub: []string{"out-ok"}},
		},
		{
			name: "DLQ send fails: the poison record is retried",
			records: func(t *testing.T) []events.SQSMessage {
				return []events.SQSMessage{
					rec("a", body(t, "poison", true), standardARN, ""),
					rec("b", body(t, "ok", true), standardARN, ""),
				}
			},
			dlqFails: true,
			want:     want{failures: []string{"a"}, calls: []string{"poison", "ok"}, pub: []string{"out-ok"}},
		},
		{
			name: "FIFO: stop at the first failure, report it and the rest",
			records: func(t *testing.T) []events.SQSMessage {
				return []events.SQSMessage{
					rec("f1", body(t, "ok1", true), fifoARN, "dev/vpc/core"),
					rec("f2", body(t, "transient", true), fifoARN, "dev/vpc/core"),
					rec("f3", body(t, "ok2", true), fifoARN, "dev/app/web"),
					rec("f4", body(t, "poison", true), fifoARN, "dev/vpc/core"),
				}
			},
			want: want{failures: []string{"f2", "f3", "f4"}, calls: []string{"ok1", "transient"}, pub: []string{"out-ok1"}},
		},
		{
			name: "FIFO by ARN alone; a dead-lettered record is a success and processing goes on",
			records: func(t *testing.T) []events.SQSMessage {
				return []events.SQSMessage{
					rec("f1", body(t, "poison", true), fifoARN, ""),
					rec("f2", body(t, "ok", true), fifoARN, ""),
					rec("f3", body(t, "pubfail", true), fifoARN, ""),
					rec("f4", body(t, "ok2", true), fifoARN, ""),
				}
			},
			want: want{failures: []string{"f3", "f4"}, dead: []string{"f1||payload does not match"},
				calls: []string{"poison", "ok", "pubfail"}, pub: []string{"out-ok"}},
		},
		{
			name: "FIFO poison keeps its group",
			records: func(t *testing.T) []events.SQSMessage {
				return []events.SQSMessage{rec("f1", body(t, "poison", false), fifoARN, "dev/vpc/core")}
			},
			want: want{failures: []string{}, dead: []string{"f1|dev/vpc/core|payload does not match"}, calls: []string{"poison"}},
		},
		{
			name: "context done: nothing handled, everything reported",
			records: func(t *testing.T) []events.SQSMessage {
				return []events.SQSMessage{rec("a", body(t, "ok", true), standardARN, ""), rec("b", body(t, "ok2", true), standardARN, "")}
			},
			cancel: true,
			want:   want{failures: []string{"a", "b"}},
		},
		{
			name:    "empty batch",
			records: func(*testing.T) []events.SQSMessage { return nil },
			want:    want{failures: []string{}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var calls []string
			pub := &publisher{}
			dead := &deadLetterer{fail: tc.dlqFails}
			h := lambda.SQSHandler(stage(&calls, &mu), pub, dead, eventbridge.Unwrap)
			ctx := t.Context()
			if tc.cancel {
				c, cancel := context.WithCancel(ctx)
				cancel()
				ctx = c
			}
			resp, err := h(ctx, events.SQSEvent{Records: tc.records(t)})
			if err != nil {
				t.Fatalf("handler error: %v", err)
			}
			if got := failures(resp); !slices.Equal(got, tc.want.failures) {
				t.Errorf("BatchItemFailures = %v, want %v", got, tc.want.failures)
			}
			if !slices.Equal(calls, tc.want.calls) {
				t.Errorf("handler calls = %v, want %v", calls, tc.want.calls)
			}
			if !slices.Equal(pub.keys, tc.want.pub) {
				t.Errorf("published = %v, want %v", pub.keys, tc.want.pub)
			}
			if len(dead.letters) != len(tc.want.dead) {
				t.Fatalf("dead letters = %v, want %v", dead.letters, tc.want.dead)
			}
			for i, l := range dead.letters {
				parts := strings.SplitN(l, "|", 4)
				w := strings.SplitN(tc.want.dead[i], "|", 3)
				if parts[1] != w[0] || parts[2] != w[1] || !strings.Contains(parts[3], w[2]) || !strings.HasPrefix(parts[0], "arn:aws:sqs:") {
					t.Errorf("dead letter %d = %s, want %s", i, l, tc.want.dead[i])
				}
			}
		})
	}
}

// A dead letter carries the record's original body (EventBridge event and all), so a redrive
// delivers exactly what the queue had.
func TestDeadLetterKeepsOriginalBody(t *testing.T) {
	var mu sync.Mutex
	var calls []string
	dead := &deadLetterer{}
	orig := body(t, "poison", true)
	h := lambda.SQSHandler(stage(&calls, &mu), &publisher{}, dead, eventbridge.Unwrap)
	if _, err := h(t.Context(), events.SQSEvent{Records: []events.SQSMessage{rec("m", orig, standardARN, "")}}); err != nil {
		t.Fatal(err)
	}
	if len(dead.bodies) != 1 || dead.bodies[0] != orig {
		t.Errorf("dead letter body = %v, want the original", dead.bodies)
	}
}

// The vendor samples (../shared/samples/aws, read in place; skipped without them) decode into events.SQSEvent; their bodies are not
// Karma messages, so each is dead-lettered with its source queue's ARN, and the batch succeeds.
func TestVendorSamples(t *testing.T) {
	for _, file := range []string{"sqs-event.json", "sqsDlqTriggerEvent.json"} {
		t.Run(file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(besidetest.Dir(t, "samples", "aws"), file))
			if err != nil {
				t.Fatal(err)
			}
			var ev events.SQSEvent
			if err := json.Unmarshal(b, &ev); err != nil {
				t.Fatal(err)
			}
			if len(ev.Records) != 1 || ev.Records[0].EventSourceARN == "" || ev.Records[0].Attributes["ApproximateReceiveCount"] != "2" {
				t.Fatalf("decoded %+v", ev)
			}
			var mu sync.Mutex
			var calls []string
			dead := &deadLetterer{}
			resp, err := lambda.SQSHandler(stage(&calls, &mu), &publisher{}, dead, eventbridge.Unwrap)(t.Context(), ev)
			if err != nil || len(resp.BatchItemFailures) != 0 {
				t.Fatalf("response %+v, %v", resp, err)
			}
			r := ev.Records[0]
			if len(dead.letters) != 1 || !strings.HasPrefix(dead.letters[0], r.EventSourceARN+"|"+r.MessageId+"||") || len(calls) != 0 {
				t.Errorf("dead letters %v, calls %v", dead.letters, calls)
			}
		})
	}
}

// maxReceiver is a deadLetterer whose queues allow max receives.
type maxReceiver struct {
	deadLetterer
	max int
	err error
}

func (m *maxReceiver) MaxReceives(context.Context, string) (int, error) { return m.max, m.err }

// On its last receive, a record whose handling fails is dead-lettered by the function with its
// error as the reason (as the in-process Runner does), not left for SQS's redrive, which would
// move it with none; before that it is retried. A record another worker holds (InProgress) is
// not a failure, and a queue whose limit is unknown leaves the record to SQS.
func TestSQSHandlerDeadLettersTheLastFailureWithItsReason(t *testing.T) {
	t.Parallel()
	at := func(t *testing.T, key, count string) events.SQSMessage {
		r := rec("m-"+key+"-"+count, body(t, key, true), standardARN, "")
		r.Attributes["ApproximateReceiveCount"] = count
		return r
	}
	var mu sync.Mutex
	var calls []string
	for _, tc := range []struct {
		name     string
		dead     lambda.DeadLetterer
		rec      events.SQSMessage
		failed   bool
		reasonOf string // "" = no dead letter
	}{
		{"failing before the last receive", &maxReceiver{max: 5}, at(t, "transient", "4"), true, ""},
		{"failing on the last receive", &maxReceiver{max: 5}, at(t, "transient", "5"), false, "graph store timed out (after 5 receives)"},
		{"a publish failing on the last receive", &maxReceiver{max: 3}, at(t, "pubfail", "3"), false, "bus throttled (after 3 receives)"},
		{"the queue's own limit", &maxReceiver{max: 8}, at(t, "transient", "5"), true, ""},
		{"held by another worker on the last receive", &maxReceiver{max: 5}, at(t, "busy", "5"), true, ""},
		{"a limit that cannot be read", &maxReceiver{err: errors.New("access denied")}, at(t, "transient", "9"), true, ""},
		{"a DeadLetterer that does not say: the default limit", &deadLetterer{}, at(t, "transient", "5"), false, "graph store timed out (after 5 receives)"},
		{"the dead-letter queue unreachable", &maxReceiver{max: 5, deadLetterer: deadLetterer{fail: true}}, at(t, "transient", "5"), true, ""},
	} {
		h := lambda.SQSHandler(stage(&calls, &mu), &publisher{}, tc.dead, eventbridge.Unwrap)
		resp, err := h(context.Background(), events.SQSEvent{Records: []events.SQSMessage{tc.rec}})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if failed := len(resp.BatchItemFailures) == 1; failed != tc.failed {
			t.Errorf("%s: reported failed %v, want %v", tc.name, failed, tc.failed)
		}
		var letters []string
		switch d := tc.dead.(type) {
		case *maxReceiver:
			letters = d.letters
		case *deadLetterer:
			letters = d.letters
		}
		switch {
		case tc.reasonOf == "" && len(letters) != 0:
			t.Errorf("%s: dead letters %v, want none", tc.name, letters)
		case tc.reasonOf != "" && (len(letters) != 1 || !strings.Contains(letters[0], tc.reasonOf)):
			t.Errorf("%s: dead letters %v, want one with reason %q", tc.name, letters, tc.reasonOf)
		}
	}
}

// A stage that panics on a record fails that record, not the invocation: Lambda would retry the
// whole batch, and the records that had succeeded would run again. The rest of the batch is
// handled, and on its last receive the record is dead-lettered with the panic as its reason.
func TestSQSHandlerPanicFailsItsRecordOnly(t *testing.T) {
	var mu sync.Mutex
	var calls []string
	pub := &publisher{}
	dead := &maxReceiver{max: 5}
	h := lambda.SQSHandler(stage(&calls, &mu), pub, dead, eventbridge.Unwrap)
	last := rec("m4", body(t, "panic", true), standardARN, "")
	last.Attributes["ApproximateReceiveCount"] = "5"
	resp, err := h(t.Context(), events.SQSEvent{Records: []events.SQSMessage{
		rec("m1", body(t, "ok1", true), standardARN, ""),
		rec("m2", body(t, "panic", true), standardARN, ""),
		rec("m3", body(t, "ok2", true), standardARN, ""),
		last,
	}})
	if err != nil {
		t.Fatal(err)
	}
	if got := failures(resp); !slices.Equal(got, []string{"m2"}) {
		t.Errorf("BatchItemFailures = %v, want [m2]", got)
	}
	if !slices.Equal(pub.keys, []string{"out-ok1", "out-ok2"}) {
		t.Errorf("published %v, want the outputs of ok1 and ok2", pub.keys)
	}
	if len(dead.letters) != 1 || !strings.Contains(dead.letters[0], "|m4||stage plan panicked: assignment to entry in nil map (after 5 receives)") {
		t.Errorf("dead letters %v, want m4's with the panic as its reason", dead.letters)
	}
}

// A batch leaves the end of the function's time unused (DeadlineReserve): the record being
// handled has its context end before the function's, so that it returns and the response
// reaches Lambda (a function still running at its deadline fails its whole batch, the records
// that had succeeded included), and no record is started after it.
func TestSQSHandlerStopsBeforeTheFunctionsDeadline(t *testing.T) {
	var mu sync.Mutex
	var calls []string
	pub := &publisher{}
	st := stage(&calls, &mu)
	next := st.Handler
	var seen []time.Time // the deadline of each record's context
	st.Handler = func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
		d, _ := ctx.Deadline()
		seen = append(seen, d)
		return next(ctx, in)
	}
	h := lambda.SQSHandler(st, pub, &deadLetterer{}, eventbridge.Unwrap)

	// The function's deadline far away: the records' end a reserve before it.
	fn := time.Now().Add(time.Hour)
	ctx, cancel := context.WithDeadline(t.Context(), fn)
	defer cancel()
	if resp, err := h(ctx, events.SQSEvent{Records: []events.SQSMessage{rec("m1", body(t, "ok", true), standardARN, "")}}); err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("response %+v, %v", resp, err)
	}
	if len(seen) != 1 || seen[0].After(fn.Add(-lambda.MaxDeadlineReserve)) {
		t.Fatalf("the record's context ends at %v, want at least %v before the function's %v", seen, lambda.MaxDeadlineReserve, fn)
	}

	// A record still running at the reserve is cut off there, reported failed, and the next
	// ones are not started: reported failed too, and the function's own context is still live.
	seen, calls = nil, nil
	fn = time.Now().Add(2 * time.Second)
	ctx, cancel = context.WithDeadline(t.Context(), fn)
	defer cancel()
	resp, err := h(ctx, events.SQSEvent{Records: []events.SQSMessage{
		rec("m1", body(t, "ok", true), standardARN, ""),
		rec("m2", body(t, "deadline", true), standardARN, ""),
		rec("m3", body(t, "ok2", true), standardARN, ""),
	}})
	if err != nil {
		t.Fatal(err)
	}
	if got := failures(resp); !slices.Equal(got, []string{"m2", "m3"}) {
		t.Errorf("BatchItemFailures = %v, want [m2 m3]", got)
	}
	if !slices.Equal(calls, []string{"ok", "deadline"}) {
		t.Errorf("handled %v, want ok and deadline, and nothing after", calls)
	}
	if len(seen) != 2 || !seen[1].Before(fn) {
		t.Errorf("the records' contexts end at %v, want before the function's %v", seen, fn)
	}
}

// A copy of a message already handled (SQS delivers at least once; Lambda retries a batch whole)
// is acknowledged, and the function's log says so with the record's message id: the stage's
// own logs and metrics run inside the idempotency check, and never see the copy.
func TestSQSHandlerLogsADuplicate(t *testing.T) {
	var logs bytes.Buffer
	defer slog.SetDefault(slog.Default())
	slog.SetDefault(slog.New(slog.NewJSONHandler(&logs, nil)))
	var mu sync.Mutex
	var calls []string
	h := lambda.SQSHandler(stage(&calls, &mu), &publisher{}, &deadLetterer{}, eventbridge.Unwrap)
	resp, err := h(t.Context(), events.SQSEvent{Records: []events.SQSMessage{rec("m-copy", body(t, "dup", true), standardARN, "")}})
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("response %+v, %v", resp, err)
	}
	var line struct {
		Msg       string `json:"msg"`
		MessageID string `json:"message_id"`
		Type      string `json:"type"`
	}
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if json.Unmarshal([]byte(l), &line) == nil && strings.HasPrefix(line.Msg, "duplicate") {
			break
		}
		line.Msg = ""
	}
	if line.MessageID != "m-copy" || line.Type != message.TypeDeploymentRecorded {
		t.Errorf("no log of the duplicate with its message id and type: %s", logs.String())
	}
}
