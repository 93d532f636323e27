package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/api"
	"github.com/usekarma/karma/shared/audit"
	"github.com/usekarma/karma/shared/embedded"
)

// `karma audit log --json` prints a change request recorded as change.detected v2 — its proposed
// environment file as written, a literal password in it — redacted, locally as with --server
// (GET /log, which the web page reads too): the same document, no secret.
func TestAuditLogJSONRedactsSecretsLocallyAndRemotely(t *testing.T) {
	repo, state, db := demoRepoDB(t)
	log, err := embedded.NewAuditLog(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	const secret = "hunter2-in-a-proposal"
	cfg := `{"cidr":"10.0.0.0/16","db_password":"` + secret + `"}`
	body, _ := json.Marshal(map[string]any{"id": "m1", "type": "change.detected", "version": 2, "env": "prod",
		"payload": map[string]any{"source": "request", "request": map[string]any{"id": "r1", "configs": map[string]any{"vpc/core": cfg}}}})
	rec := audit.Record{MessageID: "m1", Type: "change.detected", Version: 2, Env: "prod", Chain: "change/r1", CorrelationID: "r1",
		ActorKind: "cli", Actor: "ada", OccurredAt: time.Date(2026, 11, 22, 14, 0, 0, 0, time.UTC), Body: body}
	if _, err := log.Append(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	sv := startAPIOver(t, db, 100)
	g := &globals{}
	code, local, errOut := karmaWith(t, g, "audit", "log", "--json", "--repo", repo, "--state-dir", state)
	if code != 0 {
		t.Fatalf("audit log --json: exit %d %s", code, errOut)
	}
	code, remote, errOut := karmaWith(t, g, "audit", "log", "--json", "--server", sv.url)
	if code != 0 {
		t.Fatalf("audit log --json --server: exit %d %s", code, errOut)
	}
	for name, out := range map[string]string{"locally": local, "with --server": remote} {
		if strings.Contains(out, secret) || !strings.Contains(out, api.Redacted) {
			t.Errorf("audit log --json %s shows the secret, or no redaction:\n%s", name, out)
		}
	}
	if local != remote {
		t.Errorf("audit log --json differs locally and with --server:\n--- local\n%s\n--- server\n%s", local, remote)
	}
}
