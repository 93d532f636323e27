package eventbridge_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awseb "github.com/aws/aws-sdk-go-v2/service/eventbridge"

	"github.com/usekarma/karma/shared/eventbridge"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
)

// fakeBus is a PutEvents endpoint that records each request's entries (by the envelope's
// idempotency key) and fails the entries fail says.
type fakeBus struct {
	mu       sync.Mutex
	requests [][]string
	fail     func(request int, key string) string // an ErrorCode, or ""
}

func (f *fakeBus) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var in struct {
		Entries []struct {
			Source, DetailType, Detail, EventBusName string
		}
	}
	if err := json.Unmarshal(body, &in); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	f.mu.Lock()
	n := len(f.requests)
	var keys []string
	type result struct {
		EventId      string `json:",omitempty"`
		ErrorCode    string `json:",omitempty"`
		ErrorMessage string `json:",omitempty"`
	}
	out := struct {
		FailedEntryCount int
		Entries          []result
	}{}
	for _, e := range in.Entries {
		var env message.Envelope
		_ = json.Unmarshal([]byte(e.Detail), &env)
		if e.Source != "karma" || e.DetailType != env.Type || e.EventBusName != "bus" {
			http.Error(w, "bad entry "+e.Source+" "+e.DetailType, 400)
			f.mu.Unlock()
			return
		}
		keys = append(keys, env.IdempotencyKey)
		if code := f.fail(n, env.IdempotencyKey); code != "" {
			out.FailedEntryCount++
			out.Entries = append(out.Entries, result{ErrorCode: code, ErrorMessage: "injected"})
		} else {
			out.Entries = append(out.Entries, result{EventId: fmt.Sprintf("ev-%d-%s", n, env.IdempotencyKey)})
		}
	}
	f.requests = append(f.requests, keys)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_ = json.NewEncoder(w).Encode(out)
}

func fakePublisher(t *testing.T, f *fakeBus) *eventbridge.Publisher {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	client := awseb.New(awseb.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")})
	return eventbridge.NewPublisher(client, "bus", eventbridge.PublisherOptions{InitialInterval: 5 * time.Millisecond, MaxElapsed: 300 * time.Millisecond})
}

// envelopes makes n messages cycling through every routed type; key i is "k<i>".
func envelopes(t *testing.T, n int, payloadBytes int) []message.Envelope {
	t.Helper()
	types := []string{message.TypeChangeDetected, message.TypeChangeResolved, message.TypeDeploymentScheduled,
		message.TypeDeploymentSkipped, message.TypeDeploymentRecorded, message.TypeDeploymentPlanned,
		message.TypeDeploymentApproved, message.TypeDeploymentApplied, message.TypeDeploymentFailed}
	out := make([]message.Envelope, n)
	for i := range out {
		e, err := message.New(types[i%len(types)], "dev", message.Actor{Kind: "cli", Name: "test"}, fmt.Sprintf("k%d", i),
			map[string]string{"pad": strings.Repeat("p", payloadBytes)})
		if err != nil {
			t.Fatal(err)
		}
		out[i] = e
	}
	return out
}

func TestPublishBatchesByCountAndSize(t *testing.T) {
	f := &fakeBus{fail: func(int, string) string { return "" }}
	p := fakePublisher(t, f)
	if err := p.Publish(t.Context(), envelopes(t, 25, 10)...); err != nil {
		t.Fatal(err)
	}
	if got := sizes(f.requests); got != "[10 10 5]" {
		t.Errorf("request sizes %s, want [10 10 5]", got)
	}
	f.requests = nil
	// 100 KiB each: two fit in 256 KiB.
	if err := p.Publish(t.Context(), envelopes(t, 5, 100*1024)...); err != nil {
		t.Fatal(err)
	}
	if got := sizes(f.requests); got != "[2 2 1]" {
		t.Errorf("request sizes %s, want [2 2 1]", got)
	}
	// Over 256 KiB alone: refused before sending, permanently.
	err := p.Publish(t.Context(), envelopes(t, 1, 300*1024)...)
	if err == nil || pipeline.Classify(err) != pipeline.DeadLetter {
		t.Errorf("Publish(300 KiB) = %v, want a permanent error", err)
	}
	if err := p.Publish(t.Context()); err != nil {
		t.Errorf("Publish() = %v", err)
	}
}

func sizes(reqs [][]string) string {
	var s []int
	for _, r := range reqs {
		s = append(s, len(r))
	}
	return fmt.Sprint(s)
}

func TestPublishRetriesOnlyFailedEntries(t *testing.T) {
	f := &fakeBus{fail: func(req int, key string) string {
		if req == 0 && (key == "k3" || key == "k7") {
			return "ThrottlingException"
		}
		if req == 1 && key == "k7" {
			return "InternalFailure"
		}
		return ""
	}}
	p := fakePublisher(t, f)
	if err := p.Publish(t.Context(), envelopes(t, 10, 10)...); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if len(f.requests) != 3 || fmt.Sprint(f.requests[1]) != "[k3 k7]" || fmt.Sprint(f.requests[2]) != "[k7]" {
		t.Errorf("requests %v, want all, then [k3 k7], then [k7]", f.requests)
	}
}

func TestPublishGivesUp(t *testing.T) {
	t.Run("permanent code fails at once", func(t *testing.T) {
		f := &fakeBus{fail: func(_ int, key string) string {
			if key == "k1" {
				return "MalformedDetail"
			}
			return ""
		}}
		err := fakePublisher(t, f).Publish(t.Context(), envelopes(t, 3, 10)...)
		if err == nil || !strings.Contains(err.Error(), "MalformedDetail") || len(f.requests) != 1 {
			t.Errorf("Publish = %v after %d requests; want a MalformedDetail error after 1", err, len(f.requests))
		}
	})
	t.Run("throttled for ever is bounded and transient", func(t *testing.T) {
		f := &fakeBus{fail: func(_ int, key string) string {
			if key == "k0" {
				return "ThrottlingException"
			}
			return ""
		}}
		start := time.Now()
		err := fakePublisher(t, f).Publish(t.Context(), envelopes(t, 3, 10)...)
		if err == nil || !pipeline.IsTransient(err) || !strings.Contains(err.Error(), "deployment") && !strings.Contains(err.Error(), "change") {
			t.Errorf("Publish = %v, want a transient error naming the entry", err)
		}
		if time.Since(start) > 5*time.Second || len(f.requests) < 2 {
			t.Errorf("gave up after %v and %d requests", time.Since(start), len(f.requests))
		}
		for _, r := range f.requests[1:] {
			if fmt.Sprint(r) != "[k0]" {
				t.Errorf("retry sent %v, want [k0]", r)
			}
		}
	})
}

// A message PutEvents would take but whose event, as a rule delivers it to a stage queue
// (EventBridge's own fields around the entry), is over SQS's 256 KiB is refused before sending,
// permanently: accepted, it would never reach the queue (nor the audit log).
func TestPublishRefusesWhatNoQueueCouldTake(t *testing.T) {
	f := &fakeBus{fail: func(int, string) string { return "" }}
	p := fakePublisher(t, f)
	// An entry 100 bytes under PutEvents' limit: Source + DetailType + Detail + 14 for Time.
	e := envelopes(t, 1, 0)[0]
	b, err := message.Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	pad := eventbridge.MaxRequestBytes - 100 - (len("karma") + len(e.Type) + len(b) + 14)
	e = envelopes(t, 1, pad)[0]
	b, _ = message.Encode(e)
	if entry := len("karma") + len(e.Type) + len(b) + 14; entry > eventbridge.MaxRequestBytes || entry < eventbridge.MaxRequestBytes-200 {
		t.Fatalf("entry of %d bytes: want just under %d", entry, eventbridge.MaxRequestBytes)
	}
	err = p.Publish(t.Context(), e)
	if err == nil || pipeline.Classify(err) != pipeline.DeadLetter || !strings.Contains(err.Error(), "SQS") {
		t.Errorf("Publish = %v, want a permanent error naming SQS's limit", err)
	}
	if len(f.requests) != 0 {
		t.Errorf("sent %v, want nothing sent", f.requests)
	}
	// Well under both: sent.
	if err := p.Publish(t.Context(), envelopes(t, 1, eventbridge.MaxRequestBytes-2048)...); err != nil || len(f.requests) != 1 {
		t.Errorf("Publish(just under) = %v, requests %v", err, f.requests)
	}
}
