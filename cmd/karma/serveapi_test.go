package main

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usekarma/karma/shared/api"
	"github.com/usekarma/karma/shared/api/client"
	"github.com/usekarma/karma/shared/audit"
)

// karma serve serves the API over the pipeline it runs: with bearer tokens and their scopes, a
// push is reviewed and approved through the API by someone with the approve scope, the graph
// follows the deployment, and a caller without the scope is refused.
func TestServeAPI(t *testing.T) {
	needTerraform(t)
	repo, state := demoRepo(t)
	reader, readerSHA, _ := api.NewToken()
	approver, approverSHA, _ := api.NewToken()
	tokens := filepath.Join(t.TempDir(), "tokens")
	os.WriteFile(tokens, []byte("auditor sha256:"+readerSHA+" read\nrelease sha256:"+approverSHA+" read,approve\n"), 0o600)
	sv := startServe(t, &globals{}, "--repo", repo, "--state-dir", state, "--secret", "github:acme/config="+serveSecret,
		"--tokens-file", tokens, "--reconcile", "0")
	ctx := context.Background()
	deadline := time.Now().Add(2 * time.Minute)
	asReader, _ := client.New(sv.url, client.Options{Token: reader})
	asApprover, _ := client.New(sv.url, client.Options{Token: approver})
	anonymous, _ := client.New(sv.url, client.Options{})

	if _, err := anonymous.Graph(ctx, "", ""); !client.IsStatus(err, http.StatusUnauthorized) {
		t.Errorf("GET /graph without a token: %v, want 401", err)
	}
	doc, err := asReader.Graph(ctx, "prod", "")
	if err != nil || len(doc.Components) == 0 {
		t.Fatalf("GET /graph?env=prod: %v, %v", doc, err)
	}
	imp, err := asReader.Impact(ctx, "prod/vpc/core", nil)
	if err != nil || len(imp.Affected) < 2 {
		t.Errorf("GET /impact: %+v, %v", imp, err)
	}

	// A push, not auto-approved: it waits for review, visible through the API.
	initial := git(t, repo, "rev-parse", "HEAD")
	push := ghPush("refs/heads/main", zeroSHA, initial, "ada", ghCommitOf(t, repo, zeroSHA, initial))
	if code, body := sv.post(t, push, ghHeaders("push", uuid.NewString(), serveSecret, push)); code != 202 {
		t.Fatalf("push: %d %s", code, body)
	}
	var waiting []string
	for time.Now().Before(deadline) && len(waiting) == 0 {
		list, err := asReader.Changes(ctx, client.ChangesQuery{Env: "prod"})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range list.Changes {
			if c.State == api.StateAwaiting {
				waiting = append(waiting, c.ID)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(waiting) != 1 {
		t.Fatalf("changes waiting for approval in prod: %v", waiting)
	}
	detail, err := asReader.Change(ctx, waiting[0])
	if err != nil || detail.Commit != initial {
		t.Fatalf("GET /changes/%s: %+v, %v", waiting[0], detail, err)
	}
	if _, err := asReader.Approve(ctx, waiting[0]); !client.IsStatus(err, http.StatusForbidden) {
		t.Errorf("approve without the approve scope: %v, want 403", err)
	}
	if _, err := asApprover.Approve(ctx, waiting[0]); err != nil {
		t.Fatalf("approve: %v", err)
	}
	l, a, _ := stores(t, state)
	sv.waitIdle(t, deadline, func() bool { return appliedCount(t, l, "prod/vpc/core") == 1 })
	comp, err := asReader.Component(ctx, "prod", "vpc", "core")
	if err != nil || comp.Runtime == nil || len(comp.Deployments) == 0 {
		t.Errorf("GET /components/prod/vpc/core after the apply: %+v, %v", comp, err)
	}
	// The approval is audited with its caller.
	recs, err := a.Query(ctx, audit.Query{Actor: "release"})
	if err != nil || len(recs) == 0 {
		t.Errorf("no audit record by the approver: %v", err)
	}
	var ce *client.Error
	if _, err := asReader.Deployment(ctx, "dep-nope"); !errors.As(err, &ce) || ce.Status != http.StatusNotFound || !strings.Contains(ce.Detail, "dep-nope") {
		t.Errorf("GET /deployments/dep-nope: %v, want a 404 problem", err)
	}
}
