package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/problem"
)

// stuckPublisher does not publish while stuck: it waits for its context to end, and says when
// that was to be; unstuck, it captures.
type stuckPublisher struct {
	capturePublisher
	stuck    bool
	deadline time.Time
}

func (p *stuckPublisher) Publish(ctx context.Context, msgs ...message.Envelope) error {
	p.mu.Lock()
	stuck := p.stuck
	if stuck {
		p.deadline, _ = ctx.Deadline()
	}
	p.mu.Unlock()
	if !stuck {
		return p.capturePublisher.Publish(ctx, msgs...)
	}
	<-ctx.Done()
	return ctx.Err()
}

// A delivery outlasting the webhook function's time was stopped by Lambda, and the sender got
// API Gateway's bare 5xx. Its work now stops before the deadline and it is answered a 504
// timeout problem telling the sender to deliver it again; the delivery again queues the
// commit's change once.
func TestWebhookDeliveryCutOffBeforeTheDeadline(t *testing.T) {
	db, err := embedded.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	seen, err := embedded.NewSeen(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	auditLog, err := embedded.NewAuditLog(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	pub := &stuckPublisher{stuck: true}
	h, err := webhookHandler(env(map[string]string{"KARMA_WEBHOOK_SECRETS": `{"github:acme/config": "` + hookSecret + `"}`}),
		webhookDeps{Publisher: pub, Deliveries: seen, Audit: auditLog, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	push := pushBody("refs/heads/main", strings.Repeat("a", 40), strings.Repeat("b", 40), true, "iac/prod/vpc/core/config.json")
	ev := hookEvent("push", "d1", push, hookSign(push), false)

	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second) // the function's time
	defer cancel()
	fnDeadline, _ := ctx.Deadline()
	resp, err := h(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	var d problem.Document
	if err := json.Unmarshal([]byte(resp.Body), &d); err != nil || resp.Headers["Content-Type"] != problem.ContentType {
		t.Fatalf("%d %v %s: want a problem document (%v)", resp.StatusCode, resp.Headers, resp.Body, err)
	}
	if resp.StatusCode != 504 || d.Status != 504 || d.Type != problem.Base+"timeout" || resp.Headers["Retry-After"] == "" ||
		!strings.Contains(d.Detail, `"d1" was cut off`) || !strings.Contains(d.Detail, "deliver it again") || !strings.Contains(d.Detail, "req-d1") {
		t.Errorf("%d %v %+v, want a 504 timeout problem naming the delivery and telling the sender to deliver it again", resp.StatusCode, resp.Headers, d)
	}
	pub.mu.Lock()
	if pub.deadline.IsZero() || !pub.deadline.Before(fnDeadline) {
		t.Errorf("the publish had its context end at %v, want before the function's deadline %v", pub.deadline, fnDeadline)
	}
	pub.stuck = false
	pub.mu.Unlock()

	// Delivered again, the push is queued, once.
	for _, want := range []int{202, 200} {
		resp, err = h(t.Context(), ev)
		if err != nil || resp.StatusCode != want {
			t.Errorf("delivered again: %d %v %s, want %d", resp.StatusCode, err, resp.Body, want)
		}
	}
	if len(pub.msgs) != 1 {
		t.Errorf("%d messages published, want 1", len(pub.msgs))
	}
}
