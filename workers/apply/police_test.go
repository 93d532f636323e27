package apply_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	wt "github.com/usekarma/karma/workers/internal/workertest"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/policy"
	"github.com/usekarma/karma/shared/terraform"
)

// denyDeletingTheDatabase is a policy denying a plan that deletes aws_db_instance.main.
type denyDeletingTheDatabase struct{}

func (denyDeletingTheDatabase) Evaluate(_ context.Context, _ string, in policy.Input) (policy.Decision, error) {
	if in.Plan == nil {
		return policy.Decision{}, nil
	}
	for _, r := range in.Plan.Resources {
		if r.Address == "module.component.aws_db_instance.main" && strings.Contains(strings.Join(r.Actions, ","), "delete") {
			return policy.Decision{Deny: []string{"the database is not deleted"}}, nil
		}
	}
	return policy.Decision{}, nil
}

// listingRunner is terraform.Noop whose plans change more resources than a deployment.planned
// lists: PlanResources lists them all, the database's deletion last.
type listingRunner struct {
	terraform.Noop
	mu      sync.Mutex
	listed  []string // plan hashes listed
	applied int
}

func (r *listingRunner) PlanResources(_ context.Context, _ terraform.Workspace, p terraform.PlanResult) ([]message.ResourceChange, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.listed = append(r.listed, p.PlanHash)
	return append(manyCreates(), message.ResourceChange{Address: "module.component.aws_db_instance.main", Actions: []string{"delete"}, ValuesOmitted: true}), nil
}

func (r *listingRunner) Apply(ctx context.Context, ws terraform.Workspace, p terraform.PlanResult) (terraform.Outputs, error) {
	r.mu.Lock()
	r.applied++
	r.mu.Unlock()
	return r.Noop.Apply(ctx, ws, p)
}

// manyCreates are as many created resources as a deployment.planned lists.
func manyCreates() []message.ResourceChange {
	out := make([]message.ResourceChange, message.MaxPlanResources)
	for i := range out {
		out[i] = message.ResourceChange{Address: fmt.Sprintf("module.component.aws_route53_record.r[%d]", i), Actions: []string{"create"}}
	}
	return out
}

// The policies asked before a plan is applied are shown every resource it changes, not the
// first message.MaxPlanResources its deployment.planned lists: a plan whose list was cut
// before the resource a policy forbids deleting is denied, not applied (people approved the
// change: Karma's own rule, that a destroy needs an approval, is satisfied).
func TestApplyPoliciesSeeEveryResourceOfATruncatedPlan(t *testing.T) {
	t.Parallel()
	runner := &listingRunner{}
	s := newStage(t, setup{approved: true})
	w := s.worker(runner)
	w.Policies = denyDeletingTheDatabase{}
	if _, err := s.cs.Update(context.Background(), s.csID, func(cs *changeset.ChangeSet) error {
		cs.Commit, cs.ApprovedBy, cs.Approvals = sha1, "bob", []changeset.Approver{{By: "bob", Person: "bob", At: wt.FixedTime}}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	listed := s.planned(t, 70, "prod/vpc/core", 0, vpcConfig)
	p := wt.PayloadOf[message.DeploymentPlanned](t, listed)
	p.Plan = message.PlanSummary{Add: message.MaxPlanResources + 40, Destroy: 1}
	p.Resources, p.ResourcesTruncated = manyCreates(), true
	in := wt.FixedDerive(t, s.root, 70, message.TypeDeploymentPlanned, listed.IdempotencyKey, p)
	in.Env = "prod"

	out, _, err := wt.Process(t, s.q, w.Handle, in)
	if err != nil || len(out) != 1 || out[0].Type != message.TypeDeploymentFailed {
		t.Fatalf("%v, %d messages %v; want deployment.failed", err, len(out), types(out))
	}
	if f := wt.PayloadOf[message.DeploymentFailed](t, out[0]); !strings.Contains(f.Error, "the database is not deleted") {
		t.Errorf("failure %q, want the policy's reason", f.Error)
	}
	if runner.applied != 0 {
		t.Errorf("applied %d time(s): a plan the policies deny", runner.applied)
	}
	if len(runner.listed) != 1 || runner.listed[0] != p.PlanHash {
		t.Errorf("listed the resources of plans %v, want the plan applied, %s", runner.listed, p.PlanHash)
	}
}

// A plan whose deployment.planned lists only some of its resources, applied by a runner that
// cannot list the rest (no terraform.PlanLister), is denied naming why — fail closed — and not
// applied: the policies would be asked about a list cut before the resource a rule is about.
func TestApplyPoliciesDenyATruncatedPlanTheRunnerCannotList(t *testing.T) {
	t.Parallel()
	runner := &countingRunner{Runner: &terraform.Noop{}} // no PlanLister
	s := newStage(t, setup{approved: true})
	w := s.worker(runner)
	w.Policies = denyDeletingTheDatabase{}
	if _, err := s.cs.Update(context.Background(), s.csID, func(cs *changeset.ChangeSet) error {
		cs.Commit, cs.ApprovedBy, cs.Approvals = sha1, "bob", []changeset.Approver{{By: "bob", Person: "bob", At: wt.FixedTime}}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	listed := s.planned(t, 70, "prod/vpc/core", 0, vpcConfig)
	p := wt.PayloadOf[message.DeploymentPlanned](t, listed)
	p.Plan = message.PlanSummary{Add: message.MaxPlanResources + 40, Destroy: 1}
	p.Resources, p.ResourcesTruncated = manyCreates(), true
	in := wt.FixedDerive(t, s.root, 70, message.TypeDeploymentPlanned, listed.IdempotencyKey, p)
	in.Env = "prod"

	out, _, err := wt.Process(t, s.q, w.Handle, in)
	if err != nil || len(out) != 1 || out[0].Type != message.TypeDeploymentFailed {
		t.Fatalf("%v, %d messages %v; want deployment.failed", err, len(out), types(out))
	}
	f := wt.PayloadOf[message.DeploymentFailed](t, out[0])
	if !strings.Contains(f.Error, "the policies cannot be shown every resource the plan of prod/vpc/core changes") || !strings.Contains(f.Error, "cannot list a saved plan's resources") {
		t.Errorf("failure %q, want it to say the runner cannot list the plan's resources", f.Error)
	}
	if n := runner.applies.Load(); n != 0 {
		t.Errorf("applied %d time(s): a plan the policies were shown only part of", n)
	}
}
