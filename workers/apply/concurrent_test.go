package apply_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	wt "github.com/usekarma/karma/workers/internal/workertest"

	"github.com/usekarma/karma/shared/pipeline"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/terraform"
)

// heldFirstApply is a Runner whose first Apply waits, once inside, until released: a copy of a
// message handled by a worker whose claim ran out, waiting on the workspace's lock while the
// other copy applies. The later Applies of the same plan return its outputs, as TFExec returns
// those of a plan applied already (the state still the one its apply left).
type heldFirstApply struct {
	terraform.Noop
	once             sync.Once
	entered, release chan struct{}
}

func (r *heldFirstApply) Apply(ctx context.Context, ws terraform.Workspace, p terraform.PlanResult) (terraform.Outputs, error) {
	first := false
	r.once.Do(func() { first = true })
	if first {
		close(r.entered)
		<-r.release
	}
	return r.Noop.Apply(ctx, ws, p)
}

// Two handlings of one deployment at once (a copy of the message whose first handler's claim ran
// out) apply once and record one outcome: the one that records second announces the outcome
// recorded first — the keys the apply changed, the runtime version it published — instead of
// recording over it an outcome computed against the runtime the first had just published
// (nothing changed), which would tell the audit log and the change set that the deployment
// changed nothing.
func TestApplyTwoHandlingsOfOneDeploymentRecordOneOutcome(t *testing.T) {
	t.Parallel()
	for _, atomically := range []bool{false, true} {
		t.Run(fmt.Sprintf("atomic=%v", atomically), func(t *testing.T) {
			t.Parallel()
			runner := &heldFirstApply{entered: make(chan struct{}), release: make(chan struct{})}
			s := newStage(t, setup{approved: true, runner: runner})
			w := s.worker(s.runner)
			if atomically {
				w.Atomic = s.db.Atomically
			}
			in := s.planned(t, 80, "prod/vpc/core", 0, vpcConfig)
			ctx := context.Background()

			var late []message.Envelope
			var lateErr error
			done := make(chan struct{})
			go func() {
				defer close(done)
				late, lateErr = w.Handle(ctx, in)
			}()
			<-runner.entered // the late copy read the change set and waits in terraform
			first, err := w.Handle(ctx, in)
			if err != nil || len(first) != 1 || first[0].Type != message.TypeDeploymentApplied {
				t.Fatalf("first handling: %v, %d messages", err, len(first))
			}
			close(runner.release)
			<-done
			if lateErr != nil || len(late) != 1 || late[0].Type != message.TypeDeploymentApplied {
				t.Fatalf("late handling: %v, %d messages", lateErr, len(late))
			}

			want := wt.PayloadOf[message.DeploymentApplied](t, first[0])
			if changed := []string{"cfg_az_count", "cfg_cidr", "cfg_tags", "id"}; !slices.Equal(want.ChangedKeys, changed) {
				t.Fatalf("first handling announced changed keys %v, want %v", want.ChangedKeys, changed)
			}
			got := wt.PayloadOf[message.DeploymentApplied](t, late[0])
			if !slices.Equal(got.ChangedKeys, want.ChangedKeys) || got.RuntimeVersion != want.RuntimeVersion || got.RuntimeHash != want.RuntimeHash {
				t.Errorf("the late handling announced %+v, want the outcome recorded first, %+v", got, want)
			}
			n := s.node(t, "prod/vpc/core")
			if n.Outcome == nil || !slices.Equal(n.Outcome.ChangedKeys, want.ChangedKeys) || n.Outcome.RuntimeVersion != want.RuntimeVersion {
				t.Errorf("recorded outcome %+v, want the first one: changed %v, runtime version %d", n.Outcome, want.ChangedKeys, want.RuntimeVersion)
			}
			if rt, ok := s.param(t, "/iac/vpc/core/runtime"); !ok || rt.Version != 1 {
				t.Errorf("runtime %+v (%v), want published once", rt, ok)
			}
		})
	}
}

// appliesAnyPlan is a Runner that applies whatever plan it is given and remembers its hash.
type appliesAnyPlan struct {
	terraform.Noop
	mu      sync.Mutex
	applied []string
}

func (r *appliesAnyPlan) Apply(_ context.Context, _ terraform.Workspace, p terraform.PlanResult) (terraform.Outputs, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.applied = append(r.applied, p.PlanHash)
	return terraform.Outputs{"id": []byte(`"x"`)}, nil
}

// A deployment whose reviewed plan was approved applies that plan, not another one a
// deployment.planned of the deployment brings (the plan stage planned it again after a
// redelivery, and the message's key was no longer known as done): no approval covers a plan
// nobody saw. The approval then applies the plan it approved.
func TestApplyApprovedDeploymentAppliesOnlyTheReviewedPlan(t *testing.T) {
	t.Parallel()
	runner := &appliesAnyPlan{}
	s := newStage(t, setup{runner: runner})
	reviewed := s.planned(t, 80, "prod/vpc/core", 0, vpcConfig)
	if out := s.handle(t, reviewed); len(out) != 0 {
		t.Fatalf("the reviewed plan: %d messages, want it held", len(out))
	}
	approval := s.approve(t, 81, "prod/vpc/core", "bob")

	other := s.planned(t, 82, "prod/vpc/core", 0, `{"az_count":2,"cidr":"10.99.0.0/16"}`)
	out, action, err := wt.Process(t, s.q, s.w.Handle, other)
	if action != pipeline.Duplicate || len(out) != 0 {
		t.Fatalf("another plan of the approved deployment: action %v (%v), %d messages; want a no-op", action, err, len(out))
	}
	if len(runner.applied) != 0 {
		t.Fatalf("applied %v: a plan nobody reviewed", runner.applied)
	}
	if cs, _ := s.cs.Get(context.Background(), s.csID); !cs.Approved {
		t.Error("the approval was withdrawn")
	}

	if out := s.handle(t, approval); len(out) != 1 || out[0].Type != message.TypeDeploymentApplied {
		t.Fatalf("the approval: %d messages, want deployment.applied", len(out))
	}
	want := wt.PayloadOf[message.DeploymentPlanned](t, reviewed).PlanHash
	if !slices.Equal(runner.applied, []string{want}) {
		t.Errorf("applied %v, want the reviewed plan %s", runner.applied, want)
	}
}
