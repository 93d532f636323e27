package trigger_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/message/messagetest"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/trigger"
)

func rollbackRequest() trigger.RollbackRequest {
	return trigger.RollbackRequest{Env: "prod", Component: "prod/vpc/core", Actor: message.Actor{Kind: "cli", Name: "grace"},
		Target: message.Rollback{DeploymentID: "dep-0123456789abcdef", ChangeSetID: "019cebab-87be-7000-8000-000000000001/prod",
			Commit: strings.Repeat("5", 40), ConfigHash: strings.Repeat("ab", 32), Replaces: "dep-fedcba9876543210"}}
}

func TestFromRollback(t *testing.T) {
	t.Parallel()
	e, err := trigger.FromRollback(rollbackRequest())
	if err != nil {
		t.Fatal(err)
	}
	messagetest.Validate(t, e)
	var p message.ChangeDetected
	if err := message.Decode(e, &p); err != nil {
		t.Fatal(err)
	}
	if e.Env != "prod" || e.IdempotencyKey != "rollback:"+e.ID || p.ChangeSetID != e.ID || p.AutoApprove {
		t.Errorf("envelope %+v, payload %+v", e, p)
	}
	messagetest.CheckGolden(t, "rollback_request", []message.Envelope{e}, map[string]string{e.ID: "root-id"})
}

func TestFromRollbackInvalid(t *testing.T) {
	t.Parallel()
	for name, change := range map[string]func(*trigger.RollbackRequest){
		"no environment":           func(r *trigger.RollbackRequest) { r.Env = "" },
		"component of another env": func(r *trigger.RollbackRequest) { r.Component = "dev/vpc/core" },
		"component not an id":      func(r *trigger.RollbackRequest) { r.Component = "prod/vpc" },
		"deployment not an id":     func(r *trigger.RollbackRequest) { r.Target.DeploymentID = "d1" },
		"replaces not an id":       func(r *trigger.RollbackRequest) { r.Target.Replaces = "latest" },
		"short commit":             func(r *trigger.RollbackRequest) { r.Target.Commit = "5555555" },
		"no config hash":           func(r *trigger.RollbackRequest) { r.Target.ConfigHash = "" },
		"no change set":            func(r *trigger.RollbackRequest) { r.Target.ChangeSetID = "" },
		"nobody asks":              func(r *trigger.RollbackRequest) { r.Actor.Name = " " },
	} {
		r := rollbackRequest()
		change(&r)
		if _, err := trigger.FromRollback(r); !errors.Is(err, trigger.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
}
