package apply_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"sync/atomic"
	"testing"

	wt "github.com/usekarma/karma/workers/internal/workertest"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/policy"
	"github.com/usekarma/karma/shared/terraform"
	"github.com/usekarma/karma/workers/apply"
)

// stalePlanRunner is Noop whose first Apply fails as terraform.TFExec does when the saved plan
// was made from another state than the current one; before failing it runs meanwhile (if set).
// Like terraform's (which record when they were made), its plans made after that failure differ
// from the first: their hash is another.
type stalePlanRunner struct {
	terraform.Noop
	failed    atomic.Bool
	meanwhile func()
}

func (r *stalePlanRunner) Plan(ctx context.Context, ws terraform.Workspace) (terraform.PlanResult, error) {
	res, err := r.Noop.Plan(ctx, ws)
	res.PlanHash = replanHash(res.PlanHash)
	return res, err
}

func (r *stalePlanRunner) Apply(ctx context.Context, ws terraform.Workspace, p terraform.PlanResult) (terraform.Outputs, error) {
	if !r.failed.Swap(true) {
		if r.meanwhile != nil {
			r.meanwhile()
		}
		return nil, &terraform.Error{Op: terraform.OpVerify, Component: ws.ID(), Err: terraform.ErrPlanChanged}
	}
	noop, err := r.Noop.Plan(ctx, ws)
	if err != nil || p.PlanHash != replanHash(noop.PlanHash) {
		return nil, &terraform.Error{Op: terraform.OpVerify, Component: ws.ID(), Err: terraform.ErrPlanChanged}
	}
	return r.Noop.Apply(ctx, ws, noop)
}

func replanHash(h string) string {
	sum := sha256.Sum256([]byte("planned again " + h))
	return hex.EncodeToString(sum[:])
}

// Auto-approved: the stale plan is planned again and the new plan applied at once. The record
// names the plan applied: the new plan is announced (deployment.planned keyed by its hash, its
// resources) and causes the deployment.applied — never the stale plan's summary and hash for
// what was applied. Delivered to the stage, the new plan does nothing; a redelivery of the stale
// plan announces the same plan message again.
func TestApplyStalePlanAutoApprovedReplansAndApplies(t *testing.T) {
	t.Parallel()
	s := newStage(t, setup{auto: true, runner: &stalePlanRunner{}})
	in := s.planned(t, 60, "prod/vpc/core", 0, vpcConfig)
	stale := wt.PayloadOf[message.DeploymentPlanned](t, in)
	out := s.handle(t, in)
	if len(out) != 2 || out[0].Type != message.TypeDeploymentPlanned || out[1].Type != message.TypeDeploymentApplied {
		t.Fatalf("got %v, want the new plan's deployment.planned, then deployment.applied", types(out))
	}
	if s.runner.plans.Load() != 1 || s.runner.applies.Load() != 2 {
		t.Errorf("%d plans, %d applies; want 1 and 2 (the stale one, the new one)", s.runner.plans.Load(), s.runner.applies.Load())
	}
	np := wt.PayloadOf[message.DeploymentPlanned](t, out[0])
	if np.PlanHash != replanHash(stale.PlanHash) || np.DeploymentID != stale.DeploymentID || out[0].IdempotencyKey != apply.ReplannedKey(np) ||
		out[0].CausationID != in.ID {
		t.Errorf("announced plan %s (key %s, cause %s), want the new plan %s, caused by the stale one", np.PlanHash, out[0].IdempotencyKey,
			out[0].CausationID, replanHash(stale.PlanHash))
	}
	if out[1].CausationID != out[0].ID || out[1].IdempotencyKey != "deployment.applied:"+stale.DeploymentID {
		t.Errorf("deployment.applied caused by %s (key %s), want the new plan %s", out[1].CausationID, out[1].IdempotencyKey, out[0].ID)
	}
	cs, _ := s.cs.Get(context.Background(), s.csID)
	if o := cs.Nodes["prod/vpc/core"].Outcome; o == nil || o.Plan == nil || o.Plan.PlanHash != np.PlanHash || o.PlanMessageID != out[0].ID {
		t.Errorf("outcome %+v: want the applied plan recorded with its message", o)
	}

	// The new plan reaches the apply stage (its route): nothing more happens.
	if again := s.handle(t, out[0]); len(again) != 0 {
		t.Errorf("the new plan, delivered to apply: %v, want nothing", types(again))
	}
	// The stale plan delivered again (its outputs lost): the same plan message, then the outcome.
	again := s.handle(t, in)
	if len(again) != 2 || again[0].ID != out[0].ID || again[0].IdempotencyKey != out[0].IdempotencyKey || string(again[0].Payload) != string(out[0].Payload) ||
		again[1].Type != message.TypeDeploymentApplied || again[1].CausationID != out[0].ID || again[1].IdempotencyKey != out[1].IdempotencyKey {
		t.Errorf("the stale plan again: %v, want the new plan announced again, then its outcome", types(again))
	}
	if s.runner.plans.Load() != 1 || s.runner.applies.Load() != 2 {
		t.Errorf("deliveries again ran terraform: %d plans, %d applies", s.runner.plans.Load(), s.runner.applies.Load())
	}
}

// destroyingReplan is stalePlanRunner whose plans made again destroy a resource (the state
// changed outside Karma: what the stale plan updated is now replaced).
type destroyingReplan struct{ stalePlanRunner }

func (r *destroyingReplan) Plan(ctx context.Context, ws terraform.Workspace) (terraform.PlanResult, error) {
	res, err := r.stalePlanRunner.Plan(ctx, ws)
	res.Summary.Add, res.Summary.Destroy = res.Summary.Add+1, res.Summary.Destroy+1
	return res, err
}

// Auto-approved, but the plan made again destroys: it is not applied by the auto-approval (a
// destroy always needs people's approval, as police decides for any plan) but held for review,
// announced, the auto-approval refused with the reason.
func TestApplyStalePlanAutoApprovedThatNowDestroysWaitsForReview(t *testing.T) {
	t.Parallel()
	s := newStage(t, setup{auto: true, runner: &destroyingReplan{}})
	out := s.handle(t, s.planned(t, 64, "prod/vpc/core", 0, vpcConfig))
	if len(out) != 1 || out[0].Type != message.TypeDeploymentPlanned {
		t.Fatalf("got %d messages (%v), want one deployment.planned (the new plan, held)", len(out), types(out))
	}
	np := wt.PayloadOf[message.DeploymentPlanned](t, out[0])
	if np.Plan.Destroy != 1 {
		t.Errorf("announced plan %+v, want the new one (1 destroy)", np.Plan)
	}
	if s.runner.plans.Load() != 1 || s.runner.applies.Load() != 1 {
		t.Errorf("%d plans, %d applies; want 1 and 1 (only the stale attempt)", s.runner.plans.Load(), s.runner.applies.Load())
	}
	cs, _ := s.cs.Get(context.Background(), s.csID)
	n := cs.Nodes["prod/vpc/core"]
	if cs.Approved || cs.AutoApprove || !strings.Contains(cs.AutoApproveRefused, "destroys 1 resource(s)") ||
		n.State != changeset.Planned || n.Plan == nil || n.Plan.PlanHash != np.PlanHash {
		t.Errorf("change set approved=%v auto=%v refused %q, node %s holding %+v: want the new plan held for review",
			cs.Approved, cs.AutoApprove, cs.AutoApproveRefused, n.State, n.Plan)
	}
	if _, ok := s.param(t, "/iac/vpc/core/runtime"); ok {
		t.Error("runtime published: the destroying plan was applied without an approval")
	}
}

// denyDestroys is a policy denying every plan that destroys.
type denyDestroys struct{}

func (denyDestroys) Evaluate(_ context.Context, _ string, in policy.Input) (policy.Decision, error) {
	if in.Plan != nil && in.Plan.Destroy > 0 {
		return policy.Decision{Deny: []string{"no destroys here"}}, nil
	}
	return policy.Decision{}, nil
}

// Auto-approved, and the policies deny the plan made again: the deployment fails with their
// reason; nothing is applied.
func TestApplyStalePlanAutoApprovedThatPoliciesDenyFails(t *testing.T) {
	t.Parallel()
	s := newStage(t, setup{auto: true, runner: &destroyingReplan{}})
	s.w.Policies = denyDestroys{}
	if _, err := s.cs.Update(context.Background(), s.csID, func(cs *changeset.ChangeSet) error { cs.Commit = sha1; return nil }); err != nil {
		t.Fatal(err)
	}
	out := s.handle(t, s.planned(t, 65, "prod/vpc/core", 0, vpcConfig))
	if len(out) != 2 || out[0].Type != message.TypeDeploymentPlanned || out[1].Type != message.TypeDeploymentFailed {
		t.Fatalf("got %d messages (%v), want the denied plan's deployment.planned, then deployment.failed", len(out), types(out))
	}
	if np := wt.PayloadOf[message.DeploymentPlanned](t, out[0]); np.Plan.Destroy != 1 || out[0].IdempotencyKey != apply.ReplannedKey(np) {
		t.Errorf("announced plan %+v (key %s), want the new one (1 destroy)", np.Plan, out[0].IdempotencyKey)
	}
	if f := wt.PayloadOf[message.DeploymentFailed](t, out[1]); f.Stage != "apply" || !strings.Contains(f.Error, "no destroys here") || out[1].CausationID != out[0].ID {
		t.Errorf("failure %+v (caused by %s), want the policy's reason, caused by the denied plan", f, out[1].CausationID)
	}
	if s.runner.applies.Load() != 1 {
		t.Errorf("%d applies; want 1 (only the stale attempt)", s.runner.applies.Load())
	}
	if _, ok := s.param(t, "/iac/vpc/core/runtime"); ok {
		t.Error("runtime published: the denied plan was applied")
	}
}

// Reviewed: the stale plan is planned again and the new plan waits for a new review; the
// approval of the old plan approves nothing; approving the new one applies it.
func TestApplyStalePlanReviewedWaitsForANewReview(t *testing.T) {
	t.Parallel()
	s := newStage(t, setup{runner: &stalePlanRunner{}})
	planned := s.planned(t, 61, "prod/vpc/core", 0, vpcConfig)
	s.handle(t, planned) // held
	approved := s.approve(t, 62, "prod/vpc/core", "bob")
	out := s.handle(t, approved)
	if len(out) != 1 || out[0].Type != message.TypeDeploymentPlanned {
		t.Fatalf("got %d messages, want one deployment.planned (the new plan)", len(out))
	}
	np := wt.PayloadOf[message.DeploymentPlanned](t, out[0])
	if out[0].IdempotencyKey != apply.ReplannedKey(np) || np.DeploymentID != changeset.DeploymentID(s.csID, "prod/vpc/core") {
		t.Errorf("new plan %+v key %s", np, out[0].IdempotencyKey)
	}
	if s.runner.plans.Load() != 1 || s.runner.applies.Load() != 1 {
		t.Errorf("%d plans, %d applies; want 1 and 1 (nothing applied but the stale attempt)", s.runner.plans.Load(), s.runner.applies.Load())
	}
	cs, _ := s.cs.Get(context.Background(), s.csID)
	n := cs.Nodes["prod/vpc/core"]
	if cs.Approved || cs.ApprovedBy != "" || n.State != changeset.Planned || n.Plan == nil || n.Plan.PlanHash != np.PlanHash || n.PlanMessageID != out[0].ID {
		t.Errorf("change set approved=%v by %q, node %s holding %+v (message %s): want the approval withdrawn and the new plan held",
			cs.Approved, cs.ApprovedBy, n.State, n.Plan, n.PlanMessageID)
	}
	if _, ok := s.param(t, "/iac/vpc/core/runtime"); ok {
		t.Error("runtime published without a review of the new plan")
	}
	wt.CheckGolden(t, "replanned_for_review", out, map[string]string{s.root.ID: "root", approved.ID: "approved"})

	// The new plan reaches the apply stage (its route): it stays held.
	if again := s.handle(t, out[0]); len(again) != 0 {
		t.Errorf("the new plan, delivered to apply: %d messages, want none (held)", len(again))
	}
	// The old approval delivered again approves nothing: the held plan is announced again, the
	// same message.
	again := s.handle(t, approved)
	if len(again) != 1 || again[0].ID != out[0].ID || again[0].IdempotencyKey != out[0].IdempotencyKey || string(again[0].Payload) != string(out[0].Payload) {
		t.Errorf("the old approval again: %+v, want the held plan announced again", again)
	}
	if s.runner.applies.Load() != 1 || s.runner.plans.Load() != 1 {
		t.Errorf("the old approval ran terraform: %d plans, %d applies", s.runner.plans.Load(), s.runner.applies.Load())
	}

	// Reviewed and approved: applied.
	reapproved := s.approve(t, 63, "prod/vpc/core", "carol")
	if reapproved.IdempotencyKey == approved.IdempotencyKey {
		t.Fatalf("both approvals are keyed %s: the second would be taken for a duplicate", approved.IdempotencyKey)
	}
	done := s.handle(t, reapproved)
	if len(done) != 1 || done[0].Type != message.TypeDeploymentApplied {
		t.Fatalf("the approved new plan: %d messages, want one deployment.applied", len(done))
	}
	if _, ok := s.param(t, "/iac/vpc/core/runtime"); !ok {
		t.Error("no runtime after the new plan was applied")
	}
}

// A stale plan whose deployment another delivery applied meanwhile (its plan file is spent):
// that outcome is announced; nothing is planned again.
func TestApplyStalePlanAppliedMeanwhile(t *testing.T) {
	t.Parallel()
	runner := &stalePlanRunner{}
	s := newStage(t, setup{approved: true, runner: runner})
	runner.meanwhile = func() {
		_, err := s.cs.Update(context.Background(), s.csID, func(cs *changeset.ChangeSet) error {
			cs.Nodes["prod/vpc/core"].Outcome = &changeset.Outcome{RuntimeVersion: 0, ChangedKeys: []string{"id"}, RuntimeHash: strings.Repeat("ab", 32),
				Runtime: []byte(`{"id":"x"}`)}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	}
	out := s.handle(t, s.planned(t, 64, "prod/vpc/core", 0, vpcConfig))
	if len(out) != 1 || out[0].Type != message.TypeDeploymentApplied {
		t.Fatalf("got %d messages, want the recorded outcome announced", len(out))
	}
	if p := wt.PayloadOf[message.DeploymentApplied](t, out[0]); strings.Join(p.ChangedKeys, ",") != "id" || p.RuntimeVersion != 1 {
		t.Errorf("announced %+v, want the recorded outcome, published", p)
	}
	if s.runner.plans.Load() != 0 {
		t.Errorf("planned %d times, want 0", s.runner.plans.Load())
	}
}

// failingRunner fails every Apply as terraform does, with its diagnostics.
type failingRunner struct{ terraform.Noop }

func (*failingRunner) Apply(_ context.Context, ws terraform.Workspace, _ terraform.PlanResult) (terraform.Outputs, error) {
	return nil, &terraform.Error{Op: terraform.OpApply, Component: ws.ID(), Err: errExit1{}, Log: "module.component.terraform_data.vpc: Creating...",
		Diagnostics: []terraform.Diagnostic{{Summary: "local-exec provisioner error", Detail: "Error running command: exit status 3. Output: quota exceeded",
			Address: "module.component.terraform_data.vpc", Where: "vpc/main.tf:16"}},
		Applied: []string{"create module.component.terraform_data.network"}, Errored: []string{"create module.component.terraform_data.vpc"}}
}

type errExit1 struct{}

func (errExit1) Error() string { return "exit status 1\nstderr" }

// A failed terraform apply fails the deployment with terraform's diagnostics, and says what it
// changed before failing.
func TestApplyFailureCarriesTerraformDiagnostics(t *testing.T) {
	t.Parallel()
	s := newStage(t, setup{approved: true, runner: &failingRunner{}})
	in := s.planned(t, 65, "prod/vpc/core", 0, vpcConfig)
	out := s.handle(t, in)
	if len(out) != 1 || out[0].Type != message.TypeDeploymentFailed {
		t.Fatalf("got %d messages, want one deployment.failed", len(out))
	}
	if s.runner.plans.Load() != 0 {
		t.Errorf("a failed apply was planned again %d times", s.runner.plans.Load())
	}
	wt.CheckGolden(t, "failed_terraform_error", out, map[string]string{s.root.ID: "root", in.ID: "planned"})
}

// staleThenFailing is stalePlanRunner whose apply of the plan made again fails as terraform does.
type staleThenFailing struct{ stalePlanRunner }

func (r *staleThenFailing) Apply(ctx context.Context, ws terraform.Workspace, p terraform.PlanResult) (terraform.Outputs, error) {
	if !r.failed.Load() {
		return r.stalePlanRunner.Apply(ctx, ws, p)
	}
	return (&failingRunner{}).Apply(ctx, ws, p)
}

// Auto-approved, and terraform fails applying the plan made again (having maybe changed some of
// its resources): the failure is recorded after the plan it was applying, caused by it.
func TestApplyStalePlanAutoApprovedWhoseNewPlanFailsNamesIt(t *testing.T) {
	t.Parallel()
	s := newStage(t, setup{auto: true, runner: &staleThenFailing{}})
	in := s.planned(t, 66, "prod/vpc/core", 0, vpcConfig)
	stale := wt.PayloadOf[message.DeploymentPlanned](t, in)
	out := s.handle(t, in)
	if len(out) != 2 || out[0].Type != message.TypeDeploymentPlanned || out[1].Type != message.TypeDeploymentFailed {
		t.Fatalf("got %v, want the new plan's deployment.planned, then deployment.failed", types(out))
	}
	if np := wt.PayloadOf[message.DeploymentPlanned](t, out[0]); np.PlanHash != replanHash(stale.PlanHash) || out[1].CausationID != out[0].ID {
		t.Errorf("announced plan %s, failure caused by %s: want the new plan %s, causing the failure", np.PlanHash, out[1].CausationID, replanHash(stale.PlanHash))
	}
	if f := wt.PayloadOf[message.DeploymentFailed](t, out[1]); !strings.Contains(f.Error, "quota exceeded") {
		t.Errorf("failure %q, want terraform's diagnostics", f.Error)
	}
	if s.runner.applies.Load() != 2 {
		t.Errorf("%d applies, want 2", s.runner.applies.Load())
	}
}

// ownerRecorder is stalePlanRunner keeping the deployment each plan was made for.
type ownerRecorder struct {
	stalePlanRunner
	owners []terraform.PlanOwner
}

func (r *ownerRecorder) Plan(ctx context.Context, ws terraform.Workspace) (terraform.PlanResult, error) {
	r.owners = append(r.owners, ws.Owner)
	return r.stalePlanRunner.Plan(ctx, ws)
}

// A stale plan made again is made for its deployment (terraform.Workspace.Owner), as the plan
// stage's are: once the deployment is over, the new plan is removed from the workspace.
func TestApplyStalePlanMadeAgainNamesItsDeployment(t *testing.T) {
	t.Parallel()
	rec := &ownerRecorder{}
	s := newStage(t, setup{approved: true, runner: rec})
	in := s.planned(t, 60, "prod/vpc/core", 0, vpcConfig)
	stale := wt.PayloadOf[message.DeploymentPlanned](t, in)
	s.handle(t, in)
	want := terraform.PlanOwner{ChangeSetID: stale.ChangeSetID, DeploymentID: stale.DeploymentID}
	if len(rec.owners) != 1 || rec.owners[0] != want {
		t.Fatalf("plans made again for %+v, want one for %+v", rec.owners, want)
	}
}
