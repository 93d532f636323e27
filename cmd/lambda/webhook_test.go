package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/usekarma/karma/shared/audit"
	"github.com/usekarma/karma/shared/embedded"
	karmalambda "github.com/usekarma/karma/shared/lambda"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/webhook"
)

const hookSecret = "webhook-test-secret"

type capturePublisher struct {
	mu   sync.Mutex
	msgs []message.Envelope
}

func (c *capturePublisher) Publish(_ context.Context, msgs ...message.Envelope) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, msgs...)
	return nil
}

// hookEvent is a GitHub delivery as API Gateway (HTTP API, payload 2.0) hands it to the
// function: lower-case header names, the body as a string or base64.
func hookEvent(event, delivery string, body []byte, signature string, b64 bool) events.APIGatewayV2HTTPRequest {
	ev := events.APIGatewayV2HTTPRequest{Version: "2.0", RouteKey: "POST /webhooks/git", RawPath: "/webhooks/git",
		Headers: map[string]string{"content-type": "application/json", "user-agent": "GitHub-Hookshot/abc",
			"x-github-event": event, "x-github-delivery": delivery, "x-hub-signature-256": signature},
		Body: string(body)}
	ev.RequestContext.RequestID = "req-" + delivery
	ev.RequestContext.HTTP.Method = "POST"
	ev.RequestContext.HTTP.Path = "/webhooks/git"
	ev.RequestContext.HTTP.SourceIP = "192.0.2.10"
	if b64 {
		ev.Body, ev.IsBase64Encoded = base64.StdEncoding.EncodeToString(body), true
	}
	return ev
}

func pushBody(ref, before, after string, withFiles bool, files ...string) []byte {
	commit := map[string]any{"id": after, "message": "one more AZ", "timestamp": "2026-11-22T08:00:00Z",
		"author": map[string]any{"name": "Bob", "email": "bob@example.com", "username": "bob"}}
	if withFiles {
		commit["added"], commit["removed"], commit["modified"] = []string{}, []string{}, files
	}
	b, _ := json.Marshal(map[string]any{"ref": ref, "before": before, "after": after, "created": false, "deleted": false, "forced": false,
		"commits": []any{commit}, "head_commit": commit, "pusher": map[string]any{"name": "bob", "email": "bob@example.com"},
		"repository": map[string]any{"full_name": "acme/config", "name": "config", "clone_url": "https://github.com/acme/config.git"}})
	return b
}

func hookSign(body []byte) string { return webhook.SignatureHeader([]byte(hookSecret), body) }

func TestWebhookMode(t *testing.T) {
	ctx := t.Context()
	db, err := embedded.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	seen, err := embedded.NewSeen(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	auditLog, err := embedded.NewAuditLog(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	pub := &capturePublisher{}
	h, err := webhookHandler(env(map[string]string{
		"KARMA_WEBHOOK_SECRETS": `{"github:acme/config": "` + hookSecret + `"}`,
		"KARMA_BRANCHES":        "main, release",
		"KARMA_AUTO_APPROVE":    "true",
	}), webhookDeps{Publisher: pub, Deliveries: seen, Audit: auditLog, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	before, after, later, latest := strings.Repeat("a", 40), strings.Repeat("b", 40), strings.Repeat("c", 40), strings.Repeat("d", 40)
	push := pushBody("refs/heads/main", before, after, true, "iac/prod/vpc/core/config.json")
	release := pushBody("refs/heads/release", after, later, true, "components/vpc/main.tf", "README.md")
	// Its own commit: the commit of another push (to another deploy branch) is that push's change.
	truncated := pushBody("refs/heads/main", after, latest, false)
	ping := []byte(`{"zen":"Design for failure.","hook_id":7,"repository":{"full_name":"acme/config"}}`)
	notV2 := hookEvent("push", "d9", push, hookSign(push), false)
	notV2.Version = "1.0"
	elsewhere := hookEvent("push", "d10", push, hookSign(push), false)
	elsewhere.RawPath = "/prod/other"

	for _, c := range []struct {
		name   string
		ev     events.APIGatewayV2HTTPRequest
		status int
		want   string
		queued int // messages published so far
	}{
		{"push", hookEvent("push", "d1", push, hookSign(push), false), 202, `"status":"queued"`, 1},
		{"redelivery", hookEvent("push", "d1", push, hookSign(push), false), 200, `"status":"duplicate"`, 1},
		{"redelivery under a new delivery id", hookEvent("push", "d1-again", push, hookSign(push), false), 200, `"status":"duplicate"`, 1},
		{"base64 body, module change on another deploy branch", hookEvent("push", "d2", release, hookSign(release), true), 202, `"status":"queued"`, 2},
		{"bad signature", hookEvent("push", "d3", push, "sha256="+strings.Repeat("0", 64), false), 401, "does not match the body", 2},
		{"signature over a re-encoding", hookEvent("push", "d4", push, hookSign([]byte(base64.StdEncoding.EncodeToString(push))), true), 401, "does not match", 2},
		{"truncated push: queued for resolve to diff", hookEvent("push", "d5", truncated, hookSign(truncated), false), 202, `"status":"queued"`, 3},
		{"ping", hookEvent("ping", "d6", ping, hookSign(ping), false), 200, "pong", 3},
		{"tag", hookEvent("push", "d7", pushBody("refs/tags/v1", before, after, true), hookSign(pushBody("refs/tags/v1", before, after, true)), false), 200, "only branches deploy", 3},
		{"not payload 2.0", notV2, 400, "want 2.0", 3},
		{"other path", elsewhere, 404, "not found", 3},
	} {
		resp, err := h(ctx, c.ev)
		if err != nil {
			t.Fatalf("%s: the handler returned an error (API Gateway would answer a bare 500): %v", c.name, err)
		}
		wantType := "application/json"
		if c.status >= 400 {
			wantType = "application/problem+json" // RFC 9457
		}
		if resp.StatusCode != c.status || !strings.Contains(resp.Body, c.want) || resp.Headers["Content-Type"] != wantType {
			t.Errorf("%s: %d %v %s, want %d containing %s", c.name, resp.StatusCode, resp.Headers, resp.Body, c.status, c.want)
		}
		if len(pub.msgs) != c.queued {
			t.Errorf("%s: %d messages published, want %d", c.name, len(pub.msgs), c.queued)
		}
		if strings.HasPrefix(c.name, "redelivery") && !strings.Contains(resp.Body, `"change_id":"`+pub.msgs[0].CorrelationID+`"`) {
			t.Errorf("%s: %s, want the change the commit already has (%s)", c.name, resp.Body, pub.msgs[0].CorrelationID)
		}
	}

	var p message.GitPushed
	if err := message.Decode(pub.msgs[0], &p); err != nil {
		t.Fatal(err)
	}
	if pub.msgs[0].Type != message.TypeGitPushed || pub.msgs[0].IdempotencyKey != "git.pushed:"+after || p.Commit.SHA != after ||
		p.Commit.Author != "Bob <bob@example.com>" || !p.AutoApprove || strings.Join(p.Files, ",") != "iac/prod/vpc/core/config.json" {
		t.Errorf("published %+v %+v", pub.msgs[0], p)
	}
	if err := message.Decode(pub.msgs[1], &p); err != nil || strings.Join(p.Files, ",") != "components/vpc/main.tf" || p.Commit.Branch != "release" {
		t.Errorf("module change: %+v %v", p, err)
	}
	recs, err := auditLog.Query(ctx, audit.Query{})
	if err != nil {
		t.Fatal(err)
	}
	var security, ignored int
	for _, r := range recs {
		switch {
		case strings.HasPrefix(r.Chain, "security/") && r.Type == "security.webhook_rejected":
			security++
			if !strings.Contains(string(r.Body), "192.0.2.10") {
				t.Errorf("the security entry does not name the source address: %s", r.Body)
			}
		case r.Type == "trigger.ignored":
			ignored++
		}
	}
	if security != 2 || ignored != 1 {
		t.Errorf("audit: %d security entries (want 2), %d ignored (want 1)", security, ignored)
	}
}

// KARMA_STAGE=webhook selects the API Gateway handler; its settings are checked at start.
func TestWebhookModeSetup(t *testing.T) {
	cfg := awsConfig("http://127.0.0.1:1") // never called: clients connect on first use
	ok := map[string]string{"KARMA_STAGE": "webhook", "KARMA_EVENT_BUS": "karma", "KARMA_WEBHOOK_SECRETS": `{"gitlab:*": "s"}`}
	h, err := lambdaHandler(t.Context(), lambdaApp(t, ok, cfg), env(ok))
	if err != nil {
		t.Fatal(err)
	}
	if _, isAPI := h.(apiGatewayHandler); !isAPI {
		t.Errorf("KARMA_STAGE=webhook: handler %T, want an API Gateway handler", h)
	}
	auditVars := map[string]string{"KARMA_STAGE": "audit", "KARMA_EVENT_BUS": "karma"}
	h, err = lambdaHandler(t.Context(), lambdaApp(t, auditVars, cfg), env(auditVars))
	if _, isSQS := h.(karmalambda.Handler); err != nil || !isSQS {
		t.Errorf("KARMA_STAGE=audit: handler %T, %v; want the SQS handler", h, err)
	}
	for name, c := range map[string]struct {
		vars map[string]string
		want string
	}{
		"no secrets":    {map[string]string{"KARMA_WEBHOOK_SECRETS": ""}, "KARMA_WEBHOOK_SECRETS is not set"},
		"not an object": {map[string]string{"KARMA_WEBHOOK_SECRETS": `["x"]`}, "want a JSON object"},
		"empty object":  {map[string]string{"KARMA_WEBHOOK_SECRETS": `{}`}, "no unauthenticated mode"},
		"empty secret":  {map[string]string{"KARMA_WEBHOOK_SECRETS": `{"github:acme/config": ""}`}, "empty secret"},
		"bad provider":  {map[string]string{"KARMA_WEBHOOK_SECRETS": `{"svn:acme/config": "s"}`}, `"svn:acme/config"`},
		"no bus":        {map[string]string{"KARMA_EVENT_BUS": ""}, "KARMA_EVENT_BUS is not set"},
	} {
		vars := map[string]string{}
		for k, v := range ok {
			vars[k] = v
		}
		for k, v := range c.vars {
			vars[k] = v
		}
		if _, err := lambdaHandler(t.Context(), lambdaApp(t, vars, cfg), env(vars)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", name, err, c.want)
		}
	}
}
