package api

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/httpapi"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/webhook"
)

func TestNoRouteAndWrongMethod(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	p := h.call("GET", "/nope", "reader", nil).want(http.StatusNotFound).problem()
	if !strings.Contains(p.Detail, "/openapi.json") {
		t.Errorf("404: %s", p.Detail)
	}
	r := h.call("DELETE", "/changes/x", "admin", nil).want(http.StatusMethodNotAllowed)
	r.problem()
	if r.Header.Get("Allow") != "GET" {
		t.Errorf("Allow %q", r.Header.Get("Allow"))
	}
	if r := h.call("GET", "/request-change", "admin", nil).want(http.StatusMethodNotAllowed); r.Header.Get("Allow") != "POST" {
		t.Errorf("Allow %q", r.Header.Get("Allow"))
	}
}

func TestLogFiltersAndRefusals(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	var created ChangeCreated
	h.call("POST", "/request-change", "writer", request("prod/vpc/core", vpcChange(30))).want(http.StatusCreated).decode(&created)
	h.runUntilIdle()
	all := logAll(t, h, "correlation="+created.ChangeID, 100)
	paged := logAll(t, h, "correlation="+created.ChangeID, 1)
	if len(all) < 5 || len(paged) != len(all) {
		t.Fatalf("%d records in one page, %d one by one", len(all), len(paged))
	}
	for i := range all {
		if all[i].MessageID != paged[i].MessageID {
			t.Fatalf("record %d: %s one by one, %s in one page", i, paged[i].MessageID, all[i].MessageID)
		}
	}
	for _, rec := range logAll(t, h, "actor=writer&component=prod/vpc/core", 100) {
		if rec.Actor != "writer" || rec.Component != "prod/vpc/core" {
			t.Errorf("actor=writer&component=prod/vpc/core gave %+v", rec)
		}
	}
	since := all[len(all)-1].OccurredAt.Format("2006-01-02T15:04:05.000000000Z07:00")
	for _, rec := range logAll(t, h, "correlation="+created.ChangeID+"&since="+since, 100) {
		if rec.OccurredAt.Before(all[len(all)-1].OccurredAt) {
			t.Errorf("since %s gave a record of %s", since, rec.OccurredAt)
		}
	}
	for query, ptrs := range map[string][]string{
		"limit=0":                 {"/query/limit"},
		"limit=x&since=yesterday": {"/query/limit", "/query/since"},
		"cursor=nope":             {"/query/cursor"},
		"since=2026-03-02T00:00:00Z&until=2026-03-01T00:00:00Z": {"/query/until"},
	} {
		p := h.call("GET", "/log?"+query, "reader", nil).want(http.StatusBadRequest).problem()
		if got := p.pointers(); !slices.Equal(slices.Sorted(slices.Values(got)), ptrs) {
			t.Errorf("GET /log?%s: %v, want %v", query, p.pointers(), ptrs)
		}
	}
}

func TestChangesList(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	var ids []string
	for _, comp := range []string{"prod/vpc/core", "prod/s3-bucket/assets", "dev/vpc/core"} {
		env := strings.SplitN(comp, "/", 2)[0]
		var v ComponentView
		h.call("GET", "/components/"+comp, "reader", nil).want(http.StatusOK).decode(&v)
		cfg := v.Config.(map[string]any)
		cfg["tags"] = map[string]any{"Environment": env, "Changed": "yes"}
		var created ChangeCreated
		h.call("POST", "/request-change", "writer", request(comp, cfg)).want(http.StatusCreated).decode(&created)
		ids = append([]string{created.ChangeID}, ids...) // newest first
	}
	h.runUntilIdle()
	var got []string
	cursor := ""
	for {
		var page ChangeList
		h.call("GET", "/changes?limit=2&cursor="+cursor, "reader", nil).want(http.StatusOK).decode(&page)
		for _, c := range page.Changes {
			got = append(got, c.ID)
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	if !slices.Equal(got, ids) {
		t.Errorf("pages gave %v, want %v", got, ids)
	}
	var prod ChangeList
	h.call("GET", "/changes?env=prod", "reader", nil).want(http.StatusOK).decode(&prod)
	if len(prod.Changes) != 2 || prod.Changes[0].Env != "prod" || prod.Changes[1].Env != "prod" {
		t.Errorf("env=prod: %+v", prod.Changes)
	}
	byState := 0
	for _, st := range changeStates {
		var l ChangeList
		h.call("GET", "/changes?state="+st, "reader", nil).want(http.StatusOK).decode(&l)
		for _, c := range l.Changes {
			if c.State != st {
				t.Errorf("state=%s lists %s in state %s", st, c.ID, c.State)
			}
		}
		byState += len(l.Changes)
	}
	if byState != len(ids) {
		t.Errorf("%d change sets over all states, want %d", byState, len(ids))
	}
	for query, ptrs := range map[string][]string{"state=sleeping": {"/query/state"}, "limit=501": {"/query/limit"}, "cursor=nope": {"/query/cursor"}} {
		p := h.call("GET", "/changes?"+query, "reader", nil).want(http.StatusBadRequest).problem()
		if !slices.Equal(p.pointers(), ptrs) {
			t.Errorf("GET /changes?%s: %v, want %v", query, p.pointers(), ptrs)
		}
	}
}

func TestHealthAndMetrics(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	var rd Readiness
	h.call("GET", "/readyz", "", nil).want(http.StatusOK).decode(&rd)
	if rd.Checks["graph"] != "ok" || rd.Checks["change_sets"] != "ok" || rd.Checks["audit_log"] != "ok" {
		t.Errorf("Readiness %+v", rd)
	}
	cfg := h.config()
	cfg.Ready = map[string]func(*http.Request) error{"queue": func(*http.Request) error { return errors.New("queue unreachable") }}
	handler, _ := New(cfg)
	h.handler = handler
	p := h.call("GET", "/readyz", "", nil).want(http.StatusServiceUnavailable).problem()
	if !slices.Equal(p.pointers(), []string{"/checks/queue"}) {
		t.Errorf("a failing check: %+v", p)
	}

	var created ChangeCreated
	h.call("POST", "/request-change", "writer", request("prod/vpc/core", vpcChange(30))).want(http.StatusCreated).decode(&created)
	before := h.call("GET", "/metrics", "reader", nil).want(http.StatusOK)
	if !strings.Contains(string(before.body), `karma_queue_depth{queue="resolve"} 1`) {
		t.Errorf("queue depth before the pipeline ran:\n%s", grep(before.body, "karma_queue_depth"))
	}
	h.runUntilIdle()
	h.call("POST", "/changes/"+created.ChangeID+"/approve", "approver", nil).want(http.StatusOK)
	h.runUntilIdle()
	after := string(h.call("GET", "/metrics", "reader", nil).want(http.StatusOK).body)
	for _, want := range []string{`karma_queue_depth{queue="resolve"} 0`, `karma_dead_letters{queue="plan"} 0`, `karma_deployments_total{outcome="applied"} 1`,
		`karma_stage_duration_seconds_count{action="ack",stage="plan"} 1`, `karma_api_request_duration_seconds_count{code="201",route="POST /request-change"} 1`} {
		if !strings.Contains(after, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	cfg.Metrics = nil
	h.handler, _ = New(cfg)
	h.call("GET", "/metrics", "reader", nil).want(http.StatusNotFound).problem()
}

func grep(b []byte, s string) string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// The Git webhook is served at /webhooks/git by shared/httpapi, with its own authentication.
func TestWebhookMounted(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.call("POST", "/webhooks/git", "", `{}`).want(http.StatusNotFound).problem() // not configured
	ctx := context.Background()
	seen, err := embedded.NewSeen(ctx, h.db)
	if err != nil {
		t.Fatal(err)
	}
	cfg := h.config()
	cfg.Webhooks = &httpapi.Webhooks{Secrets: webhook.StaticSecrets{"github:*": "s3cret"}, Branches: map[string]bool{"main": true},
		Deliveries: seen, Changes: seen, Publisher: pipeline.QueuePublisher{Queue: h.q}, Audit: h.audit, ModulesDir: "components"}
	h.handler, _ = New(cfg)
	body := `{"zen": "Keep it logically awesome.", "hook_id": 1}`
	m := hmac.New(sha256.New, []byte("s3cret"))
	m.Write([]byte(body))
	r := h.call("POST", "/webhooks/git", "", body, "X-GitHub-Event", "ping", "X-GitHub-Delivery", "d-1", "X-Hub-Signature-256", "sha256="+hex.EncodeToString(m.Sum(nil)))
	if r.StatusCode != http.StatusOK || !strings.Contains(string(r.body), "pong") {
		t.Errorf("signed ping: %d %s", r.StatusCode, r.body)
	}
	h.call("POST", "/webhooks/git", "", body, "X-GitHub-Event", "ping", "X-GitHub-Delivery", "d-2", "X-Hub-Signature-256", "sha256=00").want(http.StatusUnauthorized)
}
