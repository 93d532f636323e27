package main

import (
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
)

// A plan the apply stage made again (a stale plan) is said to wait for a review only when it
// does; one applied at once (auto-approved: its deployment.applied published with it) is said to
// be the one applied.
func TestProgressPlanMadeAgain(t *testing.T) {
	t.Parallel()
	actor := message.Actor{Kind: "cli", Name: "ada"}
	p := message.DeploymentPlanned{DeploymentScheduled: message.DeploymentScheduled{ChangeSetID: "cs-1", DeploymentID: "dep-0123456789abcdef",
		Component: "prod/vpc/core", CausedBy: []message.Cause{{Kind: message.CauseCommit, ID: "abc"}}}, Plan: message.PlanSummary{Add: 1},
		PlanHash: strings.Repeat("ab", 32)}
	in, err := message.New(message.TypeDeploymentPlanned, "prod", actor, "deployment.planned:"+p.DeploymentID, p)
	if err != nil {
		t.Fatal(err)
	}
	planned := in.MustDerive(message.TypeDeploymentPlanned, message.PlannedAgainKey(p), p)
	applied := planned.MustDerive(message.TypeDeploymentApplied, "deployment.applied:"+p.DeploymentID,
		message.DeploymentApplied{ChangeSetID: p.ChangeSetID, DeploymentID: p.DeploymentID, Component: p.Component, RuntimeVersion: 1, ChangedKeys: []string{}})

	var held, done strings.Builder
	newProgress(&held).observe(pipeline.StageApply, in, []message.Envelope{planned}, pipeline.Ack, nil)
	newProgress(&done).observe(pipeline.StageApply, in, []message.Envelope{planned, applied}, pipeline.Ack, nil)
	if !strings.Contains(held.String(), "waits for a review (karma apply cs-1)") {
		t.Errorf("held:\n%s", held.String())
	}
	if got := done.String(); strings.Contains(got, "waits for a review") || !strings.Contains(got, "this new plan is the one applied") ||
		!strings.Contains(got, "applied   "+p.DeploymentID) {
		t.Errorf("applied at once:\n%s", got)
	}
}

// A held promotion's change.resolved has no commit and no components: it read "at commit : 0
// component(s) may be affected", as if resolved and deploying nothing. It says it is held, and why.
func TestProgressSaysAPromotionIsHeld(t *testing.T) {
	t.Parallel()
	actor := message.Actor{Kind: "git", Name: "ada"}
	in, err := message.New(message.TypeChangeDetected, "prod", actor, "promotion:x/dev", message.ChangeDetected{ChangeSetID: "x", Source: message.SourceGit})
	if err != nil {
		t.Fatal(err)
	}
	resolved := in.MustDerive(message.TypeChangeResolved, "resolved:x/prod", message.ChangeResolved{ChangeSetID: "x/prod", Source: message.SourceGit,
		Held: "promotion held: prod was deployed since at commit 444444444444"})
	resolved.Env = "prod"
	var out strings.Builder
	newProgress(&out).observe(pipeline.StageResolve, in, []message.Envelope{resolved}, pipeline.Ack, nil)
	if got := out.String(); !strings.Contains(got, "change x/prod [prod] held") || !strings.Contains(got, "deployed since at commit 444444444444") ||
		strings.Contains(got, "may be affected") {
		t.Errorf("progress:\n%s", got)
	}
}

// A held promotion's change set has no deployments: karma plan and apply summed it up as
// "done". It says it is held, nothing deployed, and why.
func TestChangeStateSaysAPromotionIsHeld(t *testing.T) {
	t.Parallel()
	cs := &changeset.ChangeSet{ID: "x/prod", Env: "prod", Nodes: map[string]*changeset.Node{},
		Held: &changeset.Hold{Reason: "promotion held: prod was deployed since at commit 444444444444", Attempt: 1}}
	if got := changeState(cs); !strings.Contains(got, "— held, nothing deployed") || !strings.Contains(got, "444444444444") {
		t.Errorf("changeState = %q", got)
	}
}
