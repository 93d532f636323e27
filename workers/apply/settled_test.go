package apply_test

import (
	"context"
	"strings"
	"testing"
	"time"

	wt "github.com/usekarma/karma/workers/internal/workertest"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/governance"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/terraform"
)

// Never deploy what the lineage records as not deployed: a deployment skipped (rejected,
// expired) after its approval was released is not applied when its deployment.approved comes.

const (
	vpc = "prod/vpc/core"
	ecs = "prod/ecs-cluster/core"
)

var reviewer = message.Actor{Kind: "user", Name: "rita"}

// staleForA is Noop but for vpc/core (A), whose reviewed plan goes stale (stalePlanRunner).
type staleForA struct {
	terraform.Noop
	a stalePlanRunner
}

func (r *staleForA) Plan(ctx context.Context, ws terraform.Workspace) (terraform.PlanResult, error) {
	if ws.ID() == vpc {
		return r.a.Plan(ctx, ws)
	}
	return r.Noop.Plan(ctx, ws)
}

func (r *staleForA) Apply(ctx context.Context, ws terraform.Workspace, p terraform.PlanResult) (terraform.Outputs, error) {
	if ws.ID() == vpc {
		return r.a.Apply(ctx, ws, p)
	}
	return r.Noop.Apply(ctx, ws, p)
}

// skipRejected records a rejection of the change set and carries it out, as the API and
// resolve do (changeset.RejectChange, then SkipRejected on change.rejected).
func (s *stageEnv) skipRejected(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	if _, _, err := changeset.RejectChange(ctx, s.cs, s.csID, reviewer, "not this week"); err != nil {
		t.Fatalf("reject: %v", err)
	}
	if _, err := s.cs.Update(ctx, s.csID, func(cs *changeset.ChangeSet) error { return cs.SkipRejected() }); err != nil {
		t.Fatalf("skip rejected: %v", err)
	}
}

// skipExpired expires the change set, as resolve does on change.expired.
func (s *stageEnv) skipExpired(t *testing.T) {
	t.Helper()
	_, err := s.cs.Update(context.Background(), s.csID, func(cs *changeset.ChangeSet) error { return cs.Expire(cs.ExpiresAt) })
	if err != nil {
		t.Fatalf("expire: %v", err)
	}
}

// heldAndApproved holds the plans of vpc/core (A, whose plan goes stale with staleForA) and
// ecs-cluster/core (B), approves the change set (changeset.Approve, as karma apply and the API
// do) and returns the two deployment.approved, A's first.
func (s *stageEnv) heldAndApproved(t *testing.T) (a, b message.Envelope) {
	t.Helper()
	ctx := context.Background()
	// Give the change set an approval expiry (in the future), so that it can expire once its
	// approval is withdrawn.
	if _, err := s.cs.Update(ctx, s.csID, func(cs *changeset.ChangeSet) error {
		cs.Rules = &governance.Rules{Environment: governance.Environment{ApprovalExpiry: governance.Duration(time.Hour)}}
		cs.ExpiresAt = time.Now().Add(time.Hour)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// B's upstream runtime is there: nothing but the skip stands between B and terraform.
	s.putRuntime(t, "/iac/vpc/core/runtime", `{"vpc_id":"vpc-0a1b2c"}`)
	if out := s.handle(t, s.planned(t, 90, vpc, 0, vpcConfig)); len(out) != 0 {
		t.Fatalf("A's plan: %d messages, want none (held)", len(out))
	}
	if out := s.handle(t, s.planned(t, 91, ecs, 1, `{"service_discovery_vpc_id":"vpc-0a1b2c","tags":{"Environment":"prod"}}`)); len(out) != 0 {
		t.Fatalf("B's plan: %d messages, want none (held)", len(out))
	}
	ap, err := changeset.Approve(ctx, s.cs, s.csID, "bob")
	if err != nil || len(ap.Messages) != 2 {
		t.Fatalf("approve: %d messages, %v; want 2", len(ap.Messages), err)
	}
	wt.ValidateAll(t, ap.Messages)
	if n := s.node(t, ecs); n.State != changeset.Scheduled {
		t.Fatalf("B after the approval: %s, want scheduled", n.State)
	}
	return ap.Messages[0], ap.Messages[1]
}

func (s *stageEnv) putRuntime(t *testing.T, name, value string) {
	t.Helper()
	if _, err := s.params.Put(context.Background(), params.PutInput{Name: name, Value: value}); err != nil {
		t.Fatal(err)
	}
}

// The review's sequence: A and B approved; A's plan is stale, so the apply stage plans it again
// and withdraws the approval; the change set, no longer approved, is rejected (or expires) and B
// is skipped; then B's deployment.approved comes. Terraform must not run for B, nothing may be
// announced about it, and B stays skipped.
func TestApplyApprovalOfASkippedDeploymentAppliesNothing(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		skip   func(*stageEnv, *testing.T)
		reason string
	}{
		{"rejected", (*stageEnv).skipRejected, changeset.ReasonRejected},
		{"expired", (*stageEnv).skipExpired, changeset.ReasonExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newStage(t, setup{runner: &staleForA{}})
			approvedA, approvedB := s.heldAndApproved(t)

			out := s.handle(t, approvedA) // stale: planned again, held for review, approval withdrawn
			if len(out) != 1 || out[0].Type != message.TypeDeploymentPlanned {
				t.Fatalf("A's approval: %d messages, want its new plan", len(out))
			}
			if cs, _ := s.cs.Get(context.Background(), s.csID); cs.Approved {
				t.Fatal("the approval was not withdrawn")
			}
			tc.skip(s, t)
			if n := s.node(t, ecs); n.State != changeset.Skipped || n.Reason != tc.reason {
				t.Fatalf("B: %s (%s), want skipped (%s)", n.State, n.Reason, tc.reason)
			}
			applies := s.runner.applies.Load()

			out, action, err := wt.Process(t, s.q, s.w.Handle, approvedB)
			if action != pipeline.Duplicate || len(out) != 0 {
				t.Fatalf("B's approval after its skip: action %v (%v), %d messages %v; want a no-op (duplicate), nothing announced", action, err, len(out), types(out))
			}
			if err == nil || !strings.Contains(err.Error(), "not applied: it is skipped already ("+tc.reason+")") {
				t.Errorf("the reason logged: %v", err)
			}
			if got := s.runner.applies.Load(); got != applies {
				t.Errorf("terraform apply ran %d time(s) for a skipped deployment", got-applies)
			}
			if _, ok := s.param(t, "/iac/ecs-cluster/core/runtime"); ok {
				t.Error("a runtime was published for a skipped deployment")
			}
			if n := s.node(t, ecs); n.State != changeset.Skipped || n.Reason != tc.reason || n.Outcome != nil {
				t.Errorf("B after its approval: %s (%s), outcome %+v; want skipped, no outcome", n.State, n.Reason, n.Outcome)
			}
		})
	}
}

// Between the withdrawal and any rejection, B's approval is covered by no approval: it applies
// nothing. Approving the change set again re-announces B's plan under the same key, which is
// then applied — once (the refused delivery did not mark the key done).
func TestApplyApprovalWithdrawnMeanwhileWaitsForTheNextApproval(t *testing.T) {
	t.Parallel()
	s := newStage(t, setup{runner: &staleForA{}})
	seen, err := embedded.NewSeen(context.Background(), s.db)
	if err != nil {
		t.Fatal(err)
	}
	h := pipeline.Chain(s.w.Handle, pipeline.Idempotency(seen, pipeline.StageApply, time.Minute))
	approvedA, approvedB := s.heldAndApproved(t)
	if out, action, err := wt.Process(t, s.q, h, approvedA); action != pipeline.Ack || len(out) != 1 {
		t.Fatalf("A's approval: action %v (%v), %d messages", action, err, len(out))
	}
	out, action, err := wt.Process(t, s.q, h, approvedB)
	if action != pipeline.Duplicate || len(out) != 0 || err == nil || !strings.Contains(err.Error(), "not approved (any more)") {
		t.Fatalf("B's approval once the approval was withdrawn: action %v (%v), %d messages; want a no-op", action, err, len(out))
	}
	if s.runner.applies.Load() != 1 { // A's stale attempt only
		t.Errorf("%d terraform applies, want 1", s.runner.applies.Load())
	}

	again, err := changeset.Approve(context.Background(), s.cs, s.csID, "bob")
	if err != nil {
		t.Fatal(err)
	}
	var reB message.Envelope
	for _, m := range again.Messages {
		if wt.PayloadOf[message.DeploymentApproved](t, m).Component == ecs {
			reB = m
		}
	}
	if reB.IdempotencyKey != approvedB.IdempotencyKey {
		t.Fatalf("B re-announced with key %q, want %q", reB.IdempotencyKey, approvedB.IdempotencyKey)
	}
	out, action, err = wt.Process(t, s.q, h, reB)
	if action != pipeline.Ack || len(out) != 1 || out[0].Type != message.TypeDeploymentApplied {
		t.Fatalf("B approved again: action %v (%v), %v; want deployment.applied", action, err, types(out))
	}
}

// skipOnPlan is stalePlanRunner whose plans made again run during first (once): a skip that
// happens while the stale deployment is planned again.
type skipOnPlan struct {
	*stalePlanRunner
	during func()
}

func (r *skipOnPlan) Plan(ctx context.Context, ws terraform.Workspace) (terraform.PlanResult, error) {
	if r.during != nil {
		r.during()
		r.during = nil
	}
	return r.stalePlanRunner.Plan(ctx, ws)
}

// A deployment skipped while its stale plan is being planned again, or while terraform finds the
// plan stale, is left skipped: not put back to planned, no approval withdrawn, no new plan
// announced, nothing applied.
func TestApplyStalePlanOfASkippedDeploymentStaysSkipped(t *testing.T) {
	t.Parallel()
	for _, when := range []string{"while planning again", "while terraform verifies the plan"} {
		t.Run(when, func(t *testing.T) {
			t.Parallel()
			stale := &stalePlanRunner{}
			runner := &skipOnPlan{stalePlanRunner: stale}
			s := newStage(t, setup{runner: runner})
			_, approvedB := s.heldAndApproved(t)
			// Another deployment's stale plan withdrew the approval, then the change set was
			// rejected and B skipped: meanwhile, as B's approval was being applied.
			skip := func() {
				if _, err := s.cs.Update(context.Background(), s.csID, func(cs *changeset.ChangeSet) error {
					cs.WithdrawApproval()
					return nil
				}); err != nil {
					t.Error(err)
				}
				s.skipRejected(t)
			}
			if when == "while planning again" {
				runner.during = skip
			} else {
				stale.meanwhile = skip
			}
			out, action, err := wt.Process(t, s.q, s.w.Handle, approvedB)
			if action != pipeline.Duplicate || len(out) != 0 {
				t.Fatalf("action %v (%v), %v; want a no-op, nothing announced", action, err, types(out))
			}
			n := s.node(t, ecs)
			if n.State != changeset.Skipped || n.Reason != changeset.ReasonRejected || n.Plan != nil || n.Outcome != nil {
				t.Errorf("B: %s (%s), plan %+v, outcome %+v; want still skipped (rejected), no plan", n.State, n.Reason, n.Plan, n.Outcome)
			}
			if s.runner.applies.Load() != 1 {
				t.Errorf("%d terraform applies, want 1 (the stale attempt, which changed nothing)", s.runner.applies.Load())
			}
			wantPlans := int32(1)
			if when != "while planning again" {
				wantPlans = 0 // found settled before planning again
			}
			if s.runner.plans.Load() != wantPlans {
				t.Errorf("%d plans, want %d", s.runner.plans.Load(), wantPlans)
			}
		})
	}
}

// skipDuringApply is Noop whose Apply runs during before applying.
type skipDuringApply struct {
	terraform.Noop
	during func()
}

func (r *skipDuringApply) Apply(ctx context.Context, ws terraform.Workspace, p terraform.PlanResult) (terraform.Outputs, error) {
	r.during()
	return r.Noop.Apply(ctx, ws, p)
}

// A skip that comes while terraform is applying cannot undo the apply: it happened, and is
// recorded as it happened — the outcome on the node (which stays skipped: resolve's MarkApplied
// leaves a settled node as it is), the runtime published, deployment.applied announced (and so
// in the lineage and the audit log).
func TestApplySkippedWhileTerraformRunsRecordsTheApply(t *testing.T) {
	t.Parallel()
	runner := &skipDuringApply{}
	s := newStage(t, setup{runner: runner})
	_, approvedB := s.heldAndApproved(t)
	runner.during = func() {
		if _, err := s.cs.Update(context.Background(), s.csID, func(cs *changeset.ChangeSet) error {
			cs.WithdrawApproval()
			return nil
		}); err != nil {
			t.Error(err)
		}
		s.skipRejected(t)
	}
	out := s.handle(t, approvedB)
	if len(out) != 1 || out[0].Type != message.TypeDeploymentApplied {
		t.Fatalf("%v, want deployment.applied: the apply happened", types(out))
	}
	rt, ok := s.param(t, "/iac/ecs-cluster/core/runtime")
	n := s.node(t, ecs)
	if !ok || n.Outcome == nil || n.Outcome.RuntimeVersion != rt.Version {
		t.Errorf("outcome %+v, runtime %+v (%v): want the apply recorded with its published runtime", n.Outcome, rt, ok)
	}
	if n.State != changeset.Skipped {
		t.Errorf("B: %s; the skip is the change set's decision, kept beside the outcome", n.State)
	}
}

func types(msgs []message.Envelope) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, m.Type)
	}
	return out
}

// A delivery of a deployment's plan that comes after the deployment was retried (karma retry
// gives the node a new deployment) and the retry applied — its first handling published
// deployment.failed, and marking its key done failed — must not announce the retry's outcome
// as its own: deployment.applied of the failed deployment would record an apply that never
// happened. It applies nothing and announces nothing.
func TestApplyOfARetriedDeploymentDoesNotAnnounceTheRetrysOutcome(t *testing.T) {
	t.Parallel()
	s := newStage(t, setup{approved: true})
	first := s.planned(t, 90, vpc, 0, vpcConfig)
	p := wt.PayloadOf[message.DeploymentPlanned](t, first)
	failed := p.DeploymentID
	p.DeploymentID = changeset.DeploymentID(failed, "retry")
	retry := wt.FixedDerive(t, s.root, 91, message.TypeDeploymentPlanned, "deployment.planned:"+p.DeploymentID, p)
	retry.Env = "prod"
	if _, err := s.cs.Update(context.Background(), s.csID, func(cs *changeset.ChangeSet) error {
		cs.Nodes[vpc].DeploymentID = p.DeploymentID
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if out := s.handle(t, retry); len(out) != 1 || out[0].Type != message.TypeDeploymentApplied {
		t.Fatalf("the retry: %d messages %v, want its deployment.applied", len(out), types(out))
	}

	out, action, err := wt.Process(t, s.q, s.w.Handle, first)
	if action != pipeline.Duplicate || len(out) != 0 {
		t.Fatalf("the failed deployment's plan again: action %v (%v), %d messages %v; want a no-op", action, err, len(out), types(out))
	}
	if err == nil || !strings.Contains(err.Error(), "is deployment "+p.DeploymentID+" now") {
		t.Errorf("the reason logged: %v", err)
	}
	if got := s.runner.applies.Load(); got != 1 {
		t.Errorf("terraform applied %d times, want 1", got)
	}
}
