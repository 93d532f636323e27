package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/audit"
)

// A change request recorded as change.detected v2 carries the proposed environment files as
// written (request.configs, JSON in strings), and any message may carry a secret-named key:
// GET /log shows them redacted, as GET /components does, while the stored record (and so its
// hash chain) stays as it was.
func TestLogRedactsSecretsInEveryBody(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	const secret, nested = "hunter2-db-password", "s3cr3t-api-key-in-a-list"
	cfg := `{"cidr":"10.0.0.0/16","db_password":"` + secret + `","tags":[{"api_key":"` + nested + `"}]}`
	v2 := map[string]any{"id": "0193a8c2-0000-7000-8000-000000000001", "type": "change.detected", "version": 2,
		"occurred_at": "2026-11-22T14:03:12Z", "correlation_id": "0193a8c2-0000-7000-8000-000000000001",
		"actor": map[string]any{"kind": "cli", "name": "Ada <ada@example.com>"}, "env": "prod",
		"idempotency_key": "request:r1",
		"payload": map[string]any{"change_set_id": "0193a8c2-0000-7000-8000-000000000001", "source": "request",
			"components": []any{map[string]any{"type": "vpc", "nickname": "core"}},
			"request":    map[string]any{"id": "r1", "configs": map[string]any{"vpc/core": cfg}}, "auto_approve": false}}
	body, _ := json.Marshal(v2)
	// an ECS task definition's plan: container_definitions is a JSON document in a string, its
	// environment a name/value list
	const ecs = "ecs-env-db-pass"
	other := []byte(`{"type":"deployment.planned","version":2,"payload":{"resources":[{"after":{"master_password":"` + secret + `","port":5432}},` +
		`{"address":"aws_ecs_task_definition.app","after":{"container_definitions":"[{\"environment\":[{\"name\":\"DB_PASSWORD\",\"value\":\"` + ecs + `\"},{\"name\":\"PORT\",\"value\":\"8080\"}]}]"}}]}}`)
	plain := []byte(`{"type":"deployment.applied","version":1,"payload":{"changed_keys":["password_arn"],"note":"a {\"token\": 1} in prose"}}`)
	at := time.Date(2026, 11, 22, 14, 3, 12, 0, time.UTC)
	recs := []audit.Record{
		{MessageID: "m-v2", Type: "change.detected", Version: 2, Env: "prod", Chain: "change/redact", CorrelationID: "redact", ActorKind: "cli", Actor: "ada", OccurredAt: at, Body: body},
		{MessageID: "m-planned", Type: "deployment.planned", Version: 2, Env: "prod", Chain: "change/redact", CorrelationID: "redact", ActorKind: "cli", Actor: "ada", OccurredAt: at.Add(time.Second), Body: other},
		{MessageID: "m-plain", Type: "deployment.applied", Version: 1, Env: "prod", Chain: "change/redact", CorrelationID: "redact", ActorKind: "cli", Actor: "ada", OccurredAt: at.Add(2 * time.Second), Body: plain},
	}
	if _, err := h.audit.Append(t.Context(), recs...); err != nil {
		t.Fatal(err)
	}
	r := h.call("GET", "/log?correlation=redact", "reader", nil).want(http.StatusOK)
	if strings.Contains(string(r.body), secret) || strings.Contains(string(r.body), nested) || strings.Contains(string(r.body), ecs) {
		t.Fatalf("GET /log shows a secret:\n%s", r.body)
	}
	var page LogPage
	r.decode(&page)
	if len(page.Records) != 3 {
		t.Fatalf("%d records, want 3", len(page.Records))
	}
	var env struct {
		Payload struct {
			Request struct{ Configs map[string]string }
		}
	}
	if err := json.Unmarshal(page.Records[0].Body, &env); err != nil {
		t.Fatal(err)
	}
	var shown map[string]any
	if err := json.Unmarshal([]byte(env.Payload.Request.Configs["vpc/core"]), &shown); err != nil {
		t.Fatalf("the redacted config is no longer JSON: %v", err)
	}
	if shown["db_password"] != Redacted || shown["cidr"] != "10.0.0.0/16" {
		t.Errorf("config shown as %v", shown)
	}
	var rest map[string]any
	_ = json.Unmarshal(page.Records[0].Body, &rest)
	if a, _ := rest["actor"].(map[string]any); a["name"] != "Ada <ada@example.com>" || rest["version"] != 2.0 {
		t.Errorf("the rest of the body is not shown as written: %s", page.Records[0].Body)
	}
	if b := string(page.Records[1].Body); !strings.Contains(b, `\"value\":\"`+Redacted+`\"`) || !strings.Contains(b, `\"value\":\"8080\"`) {
		t.Errorf("the ECS task definition's environment is shown as %s", b)
	}
	if string(page.Records[2].Body) != string(plain) {
		t.Errorf("a body with nothing to hide is shown as %s, want it as stored", page.Records[2].Body)
	}
	// The stored records are untouched: the chain still verifies.
	if err := h.audit.Verify(t.Context(), "change/redact"); err != nil {
		t.Errorf("Verify: %v", err)
	}
	stored, err := h.audit.RecordAt(t.Context(), "change/redact", 1)
	if err != nil || !strings.Contains(string(stored.Body), secret) || stored.Hash != page.Records[0].Hash {
		t.Errorf("the stored record changed: %v", err)
	}
}
