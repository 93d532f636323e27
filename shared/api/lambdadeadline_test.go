package api

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/message"
)

// Behind API Gateway a request outlasting the function's time was stopped by Lambda, and the
// client got API Gateway's bare {"message":"Internal Server Error"} (or 503/504), a write not
// knowing whether it was done. The adapter now stops the request's work a tenth of the
// function's time before its deadline and answers a 504 problem of type timeout. Each test
// gives the invocation a near deadline, as Lambda's context carries one.

// slowChangeSets lists change sets only when its context ends (a DynamoDB scan of a big
// table), and says when that was to be.
type slowChangeSets struct {
	ChangeSets
	deadline chan time.Time
}

func (s slowChangeSets) List(ctx context.Context) ([]*changeset.ChangeSet, error) {
	d, _ := ctx.Deadline()
	s.deadline <- d
	<-ctx.Done()
	return nil, ctx.Err()
}

// A read whose store call heeds its context, cut off: a 504 timeout problem (conforming to
// openapi.json) saying nothing was changed, how to ask for less, and when to try again.
func TestLambdaReadCutOffBeforeTheDeadlineIsATimeoutProblem(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	cfg := h.config()
	slow := slowChangeSets{h.changeSets, make(chan time.Time, 1)}
	cfg.Auth, cfg.ChangeSets = IAM{}, slow
	handler, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ev := event(t, "apigw-v2-iam-get-graph.json")
	ev.RouteKey, ev.RawPath, ev.RawQueryString = "GET /changes", "/changes", "env=prod"
	ev.RequestContext.HTTP.Path = "/changes"
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second) // the function's time
	defer cancel()
	fnDeadline, _ := ctx.Deadline()
	resp, err := LambdaHandler(handler)(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	if d := <-slow.deadline; d.IsZero() || !d.Before(fnDeadline) {
		t.Errorf("the store's context ended at %v, want before the function's deadline %v", d, fnDeadline)
	}
	eventConforms(t, ev, resp)
	p := eventProblem(t, resp)
	if p.Status != http.StatusGatewayTimeout || p.Type != ProblemBase+TypeTimeout || resp.Headers["Retry-After"] == "" ||
		!strings.Contains(p.Detail, "GET /changes?env=prod was cut off") || !strings.Contains(p.Detail, "nothing was changed") ||
		!strings.Contains(p.Detail, "?limit=") {
		t.Errorf("%d Retry-After %q %+v, want a 504 timeout problem naming the request, nothing changed, how to ask for less",
			resp.StatusCode, resp.Headers["Retry-After"], p)
	}
}

// slowPublisher takes a message only when its context ends, and says when that was to be.
type slowPublisher struct {
	mu       sync.Mutex
	deadline time.Time
}

func (p *slowPublisher) Publish(ctx context.Context, _ ...message.Envelope) error {
	d, _ := ctx.Deadline()
	p.mu.Lock()
	p.deadline = d
	p.mu.Unlock()
	<-ctx.Done()
	return ctx.Err()
}

// A write cut off after its commit, queueing its change: its writes, detached from the caller,
// ended with the function's work rather than 2 minutes later (past the function's deadline,
// where Lambda stops it wherever it is), and the 504 says it may have been done and how to find
// out before sending it again.
func TestLambdaWriteCutOffBeforeTheDeadlineSaysHowToFindOut(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	cfg := h.config()
	pub := &slowPublisher{}
	cfg.Auth, cfg.Publisher = IAM{}, pub
	handler, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ev := event(t, "apigw-v2-iam-request-change.json")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	fnDeadline, _ := ctx.Deadline()
	resp, err := LambdaHandler(handler)(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	eventConforms(t, ev, resp)
	p := eventProblem(t, resp)
	if p.Status != http.StatusGatewayTimeout || p.Type != ProblemBase+TypeTimeout || resp.Headers["Retry-After"] != "" ||
		!strings.Contains(p.Detail, "POST /request-change was cut off") || !strings.Contains(p.Detail, "may have been done") ||
		!strings.Contains(p.Detail, "GET /log?since=") || !strings.Contains(p.Detail, "actor=arn%3Aaws%3Aiam%3A%3A210987654321%3Auser%2Fgrace") ||
		!strings.Contains(p.Detail, ev.RequestContext.RequestID) {
		t.Errorf("%d Retry-After %q %+v, want a 504 timeout problem saying the write may have been done and how to find out",
			resp.StatusCode, resp.Headers["Retry-After"], p)
	}
	pub.mu.Lock()
	defer pub.mu.Unlock()
	if pub.deadline.IsZero() || !pub.deadline.Before(fnDeadline) {
		t.Errorf("the write's publish had its context end at %v, want before the function's deadline %v", pub.deadline, fnDeadline)
	}
}

// A handler that does not heed its context (a graph built in memory from a big commit) is
// answered for: the 504 comes before the function's deadline, the handler left running.
func TestLambdaHandlerIgnoringItsContextIsAnsweredBeforeTheDeadline(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	defer close(release)
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second) // the function's time
		defer cancel()
		fnDeadline, _ := ctx.Deadline()
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-time.After(time.Until(fnDeadline) + time.Second): // past the function's deadline
			}
			w.WriteHeader(http.StatusOK)
		})
		ev := event(t, "apigw-v2-iam-get-graph.json")
		ev.RequestContext.HTTP.Method = method
		resp, err := LambdaHandler(h)(ctx, ev)
		if err != nil {
			t.Fatal(err)
		}
		p := eventProblem(t, resp)
		want := "nothing was changed"
		if method == http.MethodPost {
			want = "may have been done"
		}
		if p.Status != http.StatusGatewayTimeout || p.Type != ProblemBase+TypeTimeout || !strings.Contains(p.Detail, want) {
			t.Errorf("%s: %d %+v, want a 504 timeout problem saying %q", method, resp.StatusCode, p, want)
		}
	}
}
