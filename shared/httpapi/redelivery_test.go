package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/message/messagetest"
)

// changeID is the change_id of a reply.
func changeID(t *testing.T, body []byte) string {
	t.Helper()
	var r reply
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("reply %s: %v", body, err)
	}
	return r.ChangeID
}

// published checks that every message published is a git.pushed naming change as the change
// it starts (its correlation id: the id the ingest stage gives its change.detected).
func published(t *testing.T, c *capture, change string) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.msgs {
		messagetest.Validate(t, m)
		if m.Type != message.TypeGitPushed || m.CorrelationID != change || m.ID == change {
			t.Errorf("published %s id %s correlation %s; want a git.pushed of change %s", m.Type, m.ID, m.CorrelationID, change)
		}
	}
}

// Every delivery of one commit — the same delivery replayed, a redelivery under a new delivery
// id, a retry after a 503 — answers with the change that commit has, the one the pipeline
// actually runs.
func TestWebhookRedeliveryNamesTheCommitsChange(t *testing.T) {
	t.Parallel()
	push := githubPush("refs/heads/main", sha1, sha2, "iac/prod/vpc/core/config.json")
	headers := func(delivery string) map[string]string {
		return map[string]string{"X-GitHub-Event": "push", "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": sign(push)}
	}
	t.Run("redelivered", func(t *testing.T) {
		t.Parallel()
		h, cap, _ := newHandler(t)
		w := post(h, push, headers("d1"))
		if w.Code != http.StatusAccepted {
			t.Fatalf("first delivery: %d %s", w.Code, w.Body)
		}
		first := changeID(t, w.Body.Bytes())
		published(t, cap, first)
		for _, d := range []string{"d1", "d2", "d3"} { // the same delivery again, then new ones
			w := post(h, push, headers(d))
			if w.Code != http.StatusOK || changeID(t, w.Body.Bytes()) != first || !json.Valid(w.Body.Bytes()) {
				t.Errorf("delivery %s: %d %s, want 200 naming change %s", d, w.Code, w.Body, first)
			}
		}
		published(t, cap, first)
	})
	t.Run("after a 503", func(t *testing.T) {
		t.Parallel()
		h, cap, _ := newHandler(t)
		cap.fail = errors.New("queue unreachable")
		if w := post(h, push, headers("d1")); w.Code != http.StatusServiceUnavailable {
			t.Fatalf("pipeline down: %d %s", w.Code, w.Body)
		}
		cap.fail = nil
		w := post(h, push, headers("d2"))
		if w.Code/100 != 2 || changeID(t, w.Body.Bytes()) == "" {
			t.Fatalf("retry: %d %s", w.Code, w.Body)
		}
		if len(cap.msgs) != 1 {
			t.Fatalf("%d messages published, want 1", len(cap.msgs))
		}
		published(t, cap, changeID(t, w.Body.Bytes()))
	})
}
