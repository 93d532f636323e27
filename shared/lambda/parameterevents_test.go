package lambda_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/uuid"

	"github.com/usekarma/karma/shared/besidetest"
	"github.com/usekarma/karma/shared/lambda"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/message/messagetest"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/trigger"
)

func ssmEvent(id, name, op, detailType string) string {
	return `{"version":"0","id":"` + id + `","detail-type":"` + detailType + `","source":"aws.ssm","account":"123456789012",
		"time":"2026-11-22T08:00:00Z","region":"us-east-1","resources":[],"detail":{"operation":"` + op + `","name":"` + name + `","type":"String"}}`
}

func quoted(s string) string { b, _ := json.Marshal(s); return string(b) }

func sns(s string) string {
	return `{"Type":"Notification","MessageId":"m-1","TopicArn":"arn:aws:sns:us-east-1:1:t","Message":` + quoted(s) + `}`
}

// A Parameter Store Change event, however it is wrapped, becomes the parameter.changed of the
// account's environment, keyed by the event: every delivery of it is one trigger.
func TestParameterEventsTurnsAnEventIntoATrigger(t *testing.T) {
	t.Parallel()
	unwrap := lambda.ParameterEvents("prod", "/iac", true)
	ev := ssmEvent("ev-1", "/iac/vpc/core/runtime", "Update", "Parameter Store Change")
	for name, body := range map[string]string{"as sent": ev, "quoted again": quoted(ev), "inside SNS": sns(ev)} {
		b, err := unwrap([]byte(body))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		e, err := message.Parse(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		messagetest.Validate(t, e)
		var p message.ParameterChanged
		if err := message.Decode(e, &p); err != nil {
			t.Fatal(err)
		}
		if e.Type != message.TypeParameterChanged || e.Env != "prod" || e.IdempotencyKey != "parameter.changed:/iac/vpc/core/runtime@event:ev-1" ||
			p.Name != "/iac/vpc/core/runtime" || p.Operation != "Update" || p.EventID != "ev-1" || p.Version != 0 || !p.AutoApprove ||
			!e.OccurredAt.Equal(time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)) || e.Actor.Name != trigger.UnknownModifier {
			t.Errorf("%s: %+v %+v", name, e, p)
		}
	}
	// A name without its leading slash is compared with the prefix's layout with one.
	b, err := unwrap([]byte(ssmEvent("ev-2", "iac/vpc/core/config", "Create", "Parameter Store Change")))
	if err != nil || !strings.Contains(string(b), `"name":"/iac/vpc/core/config"`) {
		t.Errorf("no leading slash: %s %v", b, err)
	}
}

func TestParameterEventsPassesKarmasMessagesAndIgnoresTheRest(t *testing.T) {
	t.Parallel()
	unwrap := lambda.ParameterEvents("prod", "/iac", false)
	pushed, err := trigger.GitPushed(trigger.Push{SHA: strings.Repeat("a", 40), Author: "ada", Files: []trigger.FileChange{{Path: "iac/prod/vpc/core/config.json"}}}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := message.Encode(pushed)
	fromBus := `{"version":"0","id":"e-9","detail-type":"git.pushed","source":"karma","account":"1","time":"2026-11-22T08:00:00Z",
		"region":"us-east-1","resources":[],"detail":` + string(raw) + `}`
	for name, body := range map[string]string{"from Karma's bus": fromBus, "a bare envelope": string(raw)} {
		b, err := unwrap([]byte(body))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if e, err := message.Parse(b); err != nil || e.ID != pushed.ID {
			t.Errorf("%s: %v %v, want the git.pushed as published", name, e, err)
		}
	}
	for name, body := range map[string]string{
		"a policy action":         ssmEvent("ev-3", "/iac/vpc/core/config", "Expiration", "Parameter Store Policy Action"),
		"another source's change": strings.Replace(ssmEvent("ev-4", "/iac/vpc/core/config", "Update", "Parameter Store Change"), "aws.ssm", "custom.app", 1),
	} {
		if b, err := unwrap([]byte(body)); b != nil || err != nil {
			t.Errorf("%s: %s %v, want nothing for the stage", name, b, err)
		}
	}
	for name, body := range map[string]string{
		"not JSON":              `not json`,
		"a change without name": ssmEvent("ev-5", "", "Update", "Parameter Store Change"),
		"an array":              `[1]`,
	} {
		if _, err := unwrap([]byte(body)); pipeline.Classify(err) != pipeline.DeadLetter {
			t.Errorf("%s: %v, want a permanent error", name, err)
		}
	}
}

// The vendor's samples (beside the checkout; skipped without them): each Parameter Store Change
// becomes a trigger of its operation; an EC2 event is nothing for the stage.
func TestParameterEventsVendorSamples(t *testing.T) {
	t.Parallel()
	dir := besidetest.Dir(t, "samples", "aws")
	unwrap := lambda.ParameterEvents("prod", "/iac", false)
	for f, op := range map[string]string{"awsdocs__parameter-store-change__create-parameter.json": "Create",
		"awsdocs__parameter-store-change__update-parameter.json": "Update", "awsdocs__parameter-store-change__delete-parameter.json": "Delete",
		"eventBridgeEvent.json": ""} {
		body, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		b, err := unwrap(body)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if op == "" {
			if b != nil {
				t.Errorf("%s: %s, want nothing", f, b)
			}
			continue
		}
		e, err := message.Parse(b)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		messagetest.Validate(t, e)
		var p message.ParameterChanged
		if err := message.Decode(e, &p); err != nil || p.Operation != op || p.EventID == "" {
			t.Errorf("%s: %+v %v", f, p, err)
		}
	}
}

// In the SQS handler, an event that is nothing for the stage is acknowledged: not handled, not
// dead-lettered, not retried.
func TestSQSHandlerAcknowledgesWhatIsNothingForTheStage(t *testing.T) {
	t.Parallel()
	var calls []string
	var mu sync.Mutex
	pub, dead := &publisher{}, &deadLetterer{}
	h := lambda.SQSHandler(stage(&calls, &mu), pub, dead, lambda.ParameterEvents("prod", "/iac", false))
	resp, err := h(context.Background(), events.SQSEvent{Records: []events.SQSMessage{{MessageId: "m1", EventSourceARN: standardARN,
		Body: ssmEvent("ev-1", "/iac/vpc/core/config", "Expiration", "Parameter Store Policy Action")}}})
	if err != nil || len(resp.BatchItemFailures) != 0 || len(calls) != 0 || len(dead.letters) != 0 || len(pub.keys) != 0 {
		t.Errorf("resp %+v err %v calls %v dead %v published %v", resp, err, calls, dead.letters, pub.keys)
	}
}

// failingPublisher refuses every message: the bus is throttled.
type failingPublisher struct{}

func (failingPublisher) Publish(context.Context, ...message.Envelope) error {
	return pipeline.Transient(errors.New("bus throttled"))
}

// The ingest function publishes a Parameter Store event's trigger (so that it is audited, and
// handled when the bus brings it back) rather than handling it in place; everything else goes
// to the stage's handler. A trigger that cannot be published is retried, never dropped.
func TestPublishParameterEventsPublishesTheTrigger(t *testing.T) {
	t.Parallel()
	var calls []string
	var mu sync.Mutex
	pub, dead := &publisher{}, &deadLetterer{}
	next := lambda.SQSHandler(stage(&calls, &mu), pub, dead, lambda.ParameterEvents("prod", "/iac", false))
	envelope := body(t, "ok1", true)
	batch := events.SQSEvent{Records: []events.SQSMessage{
		{MessageId: "event", EventSourceARN: standardARN, Body: sns(ssmEvent("ev-7", "/iac/vpc/core/config", "Update", "Parameter Store Change"))},
		{MessageId: "envelope", EventSourceARN: standardARN, Body: envelope},
		{MessageId: "policy", EventSourceARN: standardARN, Body: ssmEvent("ev-8", "/iac/vpc/core/config", "Expiration", "Parameter Store Policy Action")},
		{MessageId: "garbage", EventSourceARN: standardARN, Body: `not json`},
	}}
	resp, err := lambda.PublishParameterEvents("prod", "/iac", false, pub, dead, next)(context.Background(), batch)
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("resp %+v err %v", resp, err)
	}
	if !slices.Contains(pub.keys, "parameter.changed:/iac/vpc/core/config@event:ev-7") {
		t.Errorf("the event's trigger was not published: %v", pub.keys)
	}
	if len(calls) != 1 {
		t.Errorf("the stage handled %v, want only the envelope (the event's trigger comes back through the bus)", calls)
	}
	if len(dead.letters) != 1 {
		t.Errorf("dead letters %v, want the body that is no event", dead.letters)
	}

	// The bus refuses: the event's record is reported failed (SQS retries it); the rest is handled.
	calls = nil
	resp, err = lambda.PublishParameterEvents("prod", "/iac", false, failingPublisher{}, dead, next)(context.Background(), events.SQSEvent{Records: batch.Records[:2]})
	if err != nil || len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != "event" || len(calls) != 1 {
		t.Errorf("resp %+v err %v calls %v", resp, err, calls)
	}
}

// blockingPublisher waits for its context to end (a bus that does not answer), and says when
// that context's deadline was.
type blockingPublisher struct{ deadlines []time.Time }

func (b *blockingPublisher) Publish(ctx context.Context, _ ...message.Envelope) error {
	d, _ := ctx.Deadline()
	b.deadlines = append(b.deadlines, d)
	<-ctx.Done()
	return ctx.Err()
}

// Publishing Parameter Store events' triggers stops before the function's deadline, as the
// stage's records do (lambda.DeadlineReserve): a publish still waiting is cut off, its record
// and the events not yet published are reported failed, and the response reaches Lambda, which
// would otherwise fail the whole batch.
func TestPublishParameterEventsStopsBeforeTheFunctionsDeadline(t *testing.T) {
	t.Parallel()
	var calls []string
	var mu sync.Mutex
	dead := &deadLetterer{}
	next := lambda.SQSHandler(stage(&calls, &mu), &publisher{}, dead, lambda.ParameterEvents("prod", "/iac", false))
	pub := &blockingPublisher{}
	fn := time.Now().Add(time.Second)
	ctx, cancel := context.WithDeadline(t.Context(), fn)
	defer cancel()
	resp, err := lambda.PublishParameterEvents("prod", "/iac", false, pub, dead, next)(ctx, events.SQSEvent{Records: []events.SQSMessage{
		{MessageId: "e1", EventSourceARN: standardARN, Body: ssmEvent("ev-1", "/iac/vpc/core/config", "Update", "Parameter Store Change")},
		{MessageId: "e2", EventSourceARN: standardARN, Body: ssmEvent("ev-2", "/iac/vpc/edge/config", "Update", "Parameter Store Change")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if got := failures(resp); !slices.Equal(got, []string{"e1", "e2"}) {
		t.Errorf("BatchItemFailures = %v, want [e1 e2]", got)
	}
	if len(pub.deadlines) != 1 || !pub.deadlines[0].Before(fn) {
		t.Errorf("publishes ending at %v, want one, ending before the function's %v", pub.deadlines, fn)
	}
}

// A Parameter Store event whose trigger cannot be published is retried, and on the last receive
// its queue allows dead-lettered by the function with the publisher's error as the reason, as
// SQSHandler does with a stage's failures: SQS's redrive would move it with none.
func TestPublishParameterEventsDeadLettersTheLastFailureWithItsReason(t *testing.T) {
	t.Parallel()
	var calls []string
	var mu sync.Mutex
	for _, tc := range []struct {
		count, reason string // reason "": reported failed, no dead letter
		fails         bool
	}{
		{"4", "", false},
		{"5", "bus throttled (after 5 receives)", false},
		{"5", "", true}, // the dead-letter queue unreachable: left for SQS
	} {
		dead := &maxReceiver{max: 5, deadLetterer: deadLetterer{fail: tc.fails}}
		next := lambda.SQSHandler(stage(&calls, &mu), &publisher{}, dead, lambda.ParameterEvents("prod", "/iac", false))
		body := ssmEvent("ev-3", "/iac/vpc/core/config", "Update", "Parameter Store Change")
		r := events.SQSMessage{MessageId: "e-" + tc.count, EventSourceARN: standardARN, Body: body,
			Attributes: map[string]string{"ApproximateReceiveCount": tc.count}}
		resp, err := lambda.PublishParameterEvents("prod", "/iac", false, failingPublisher{}, dead, next)(t.Context(), events.SQSEvent{Records: []events.SQSMessage{r}})
		if err != nil {
			t.Fatal(err)
		}
		wantFailed := []string{r.MessageId}
		if tc.reason != "" {
			wantFailed = []string{}
		}
		if got := failures(resp); !slices.Equal(got, wantFailed) {
			t.Errorf("receive %s: BatchItemFailures = %v, want %v", tc.count, got, wantFailed)
		}
		switch {
		case tc.reason == "" && len(dead.letters) != 0:
			t.Errorf("receive %s: dead letters %v, want none", tc.count, dead.letters)
		case tc.reason != "" && (len(dead.letters) != 1 || !strings.HasSuffix(dead.letters[0], "|"+r.MessageId+"||"+tc.reason) || dead.bodies[0] != body):
			t.Errorf("receive %s: dead letters %v, want the event with reason %q", tc.count, dead.letters, tc.reason)
		}
	}
}

// Every delivery of a Parameter Store event is the same trigger — id and change id included —
// so that a copy (EventBridge and SQS deliver at least once; a batch the function could not
// finish comes back whole) is not recorded by the audit log as a second trigger naming a change
// that never comes. Two events are two triggers.
func TestParameterEventsEveryDeliveryIsTheSameTrigger(t *testing.T) {
	t.Parallel()
	pub := &publisher{}
	var calls []string
	var mu sync.Mutex
	dead := &deadLetterer{}
	next := lambda.SQSHandler(stage(&calls, &mu), pub, dead, lambda.ParameterEvents("prod", "/iac", false))
	h := lambda.PublishParameterEvents("prod", "/iac", false, pub, dead, next)
	ev := ssmEvent("ev-11", "/iac/vpc/core/config", "Update", "Parameter Store Change")
	for i, body := range []string{ev, sns(ev), ev} {
		resp, err := h(context.Background(), events.SQSEvent{Records: []events.SQSMessage{{MessageId: "m" + string(rune('0'+i)), EventSourceARN: standardARN, Body: body}}})
		if err != nil || len(resp.BatchItemFailures) != 0 {
			t.Fatalf("delivery %d: %+v %v", i, resp, err)
		}
	}
	other, _, err := lambda.ParameterTrigger("prod", "/iac", false, []byte(ssmEvent("ev-12", "/iac/vpc/core/config", "Update", "Parameter Store Change")))
	if err != nil {
		t.Fatal(err)
	}
	pub.mu.Lock()
	defer pub.mu.Unlock()
	if len(pub.msgs) != 3 {
		t.Fatalf("published %d, want the trigger of each delivery", len(pub.msgs))
	}
	first := pub.msgs[0]
	messagetest.Validate(t, first) // ids are UUIDs version 7
	if _, err := uuid.Parse(first.ID); err != nil || first.CorrelationID == first.ID {
		t.Errorf("trigger id %q, change id %q: want two UUIDs", first.ID, first.CorrelationID)
	}
	for i, e := range pub.msgs[1:] {
		if e.ID != first.ID || e.CorrelationID != first.CorrelationID {
			t.Errorf("delivery %d: trigger %s change %s, want the first delivery's %s and %s", i+1, e.ID, e.CorrelationID, first.ID, first.CorrelationID)
		}
	}
	if other.ID == first.ID || other.CorrelationID == first.CorrelationID {
		t.Errorf("another event's trigger has the same ids: %s %s", other.ID, other.CorrelationID)
	}
}
