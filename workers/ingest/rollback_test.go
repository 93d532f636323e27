package ingest_test

import (
	"errors"
	"strings"
	"testing"

	wt "github.com/usekarma/karma/workers/internal/workertest"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/workers/ingest"
)

func rollbackRequest() ingest.RollbackRequest {
	return ingest.RollbackRequest{Env: "prod", Component: "prod/vpc/core", Actor: message.Actor{Kind: "cli", Name: "grace"},
		Target: message.Rollback{DeploymentID: "dep-0123456789abcdef", ChangeSetID: "019cebab-87be-7000-8000-000000000001/prod",
			Commit: strings.Repeat("5", 40), ConfigHash: strings.Repeat("ab", 32), Replaces: "dep-fedcba9876543210"}}
}

func TestFromRollback(t *testing.T) {
	t.Parallel()
	e, err := ingest.FromRollback(rollbackRequest())
	if err != nil {
		t.Fatal(err)
	}
	wt.Validate(t, e)
	p := wt.PayloadOf[message.ChangeDetected](t, e)
	if e.Env != "prod" || e.IdempotencyKey != "rollback:"+e.ID || p.ChangeSetID != e.ID || p.AutoApprove {
		t.Errorf("envelope %+v, payload %+v", e, p)
	}
	wt.CheckGolden(t, "rollback_request", []message.Envelope{e}, map[string]string{e.ID: "root-id"})
}

func TestFromRollbackInvalid(t *testing.T) {
	t.Parallel()
	for name, change := range map[string]func(*ingest.RollbackRequest){
		"no environment":           func(r *ingest.RollbackRequest) { r.Env = "" },
		"component of another env": func(r *ingest.RollbackRequest) { r.Component = "dev/vpc/core" },
		"component not an id":      func(r *ingest.RollbackRequest) { r.Component = "prod/vpc" },
		"deployment not an id":     func(r *ingest.RollbackRequest) { r.Target.DeploymentID = "d1" },
		"replaces not an id":       func(r *ingest.RollbackRequest) { r.Target.Replaces = "latest" },
		"short commit":             func(r *ingest.RollbackRequest) { r.Target.Commit = "5555555" },
		"no config hash":           func(r *ingest.RollbackRequest) { r.Target.ConfigHash = "" },
		"no change set":            func(r *ingest.RollbackRequest) { r.Target.ChangeSetID = "" },
		"nobody asks":              func(r *ingest.RollbackRequest) { r.Actor.Name = " " },
	} {
		r := rollbackRequest()
		change(&r)
		if _, err := ingest.FromRollback(r); !errors.Is(err, ingest.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
}
