package apply_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/params"
	wt "github.com/usekarma/karma/workers/internal/workertest"
)

// Terraform outputs Parameter Store cannot hold fail the deployment with the reason, on the first
// delivery and on every redelivery; the apply is never retried in a loop. With the stores' writes
// atomic (the embedded file), the refused publication takes back the outcome recorded with it,
// which is then recorded on its own: the redelivery finds it and does not run Terraform again.
func TestApplyRuntimeTooLargeFailsTheDeployment(t *testing.T) {
	t.Parallel()
	for _, atomically := range []bool{false, true} {
		t.Run(fmt.Sprintf("atomic=%v", atomically), func(t *testing.T) {
			t.Parallel()
			s := newStage(t, setup{approved: true})
			if atomically {
				s.w.Atomic = s.db.Atomically
			}
			// terraform.Noop outputs every top-level config key as cfg_<key>: a 9 KB config value
			// makes a runtime over the 8 KB limit.
			big := fmt.Sprintf(`{"blob":%q}`, strings.Repeat("b", params.MaxValueBytes+1))
			if _, err := s.cs.Update(context.Background(), s.csID, func(cs *changeset.ChangeSet) error {
				cs.Nodes["prod/vpc/core"].Config = json.RawMessage(big)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			in := s.planned(t, 90, "prod/vpc/core", 0, big)
			for attempt := 1; attempt <= 2; attempt++ {
				out := s.handle(t, in) // fails the test unless acknowledged
				if len(out) != 1 || out[0].Type != message.TypeDeploymentFailed {
					t.Fatalf("attempt %d: got %d messages, want one deployment.failed", attempt, len(out))
				}
				p := wt.PayloadOf[message.DeploymentFailed](t, out[0])
				if p.Stage != "apply" || !strings.Contains(p.Error, "/iac/vpc/core/runtime") || !strings.Contains(p.Error, fmt.Sprint(params.MaxValueBytes)) {
					t.Errorf("attempt %d: failed %+v, want the runtime parameter and the %d-byte limit named", attempt, p, params.MaxValueBytes)
				}
			}
			if got := s.runner.applies.Load(); got != 1 {
				t.Errorf("terraform applied %d times, want 1 (the redelivery re-announces the failure)", got)
			}
			if _, ok := s.param(t, "/iac/vpc/core/runtime"); ok {
				t.Error("a runtime was published")
			}
			if n := s.node(t, "prod/vpc/core"); n.Outcome == nil || n.Outcome.RuntimeVersion != 0 {
				t.Errorf("outcome %+v; want Terraform's outcome recorded, unpublished", n.Outcome)
			}
		})
	}
}

// ssmLike refuses, as SSM does, to change a parameter's type with an error that is not marked
// permanent (HierarchyTypeMismatchException is a client error like any other to the SDK).
type ssmLike struct{ params.Store }

func (s ssmLike) Put(ctx context.Context, in params.PutInput) (params.PutResult, error) {
	if cur, err := s.Get(ctx, in.Name); err == nil && cur.Type != params.TypeString {
		return params.PutResult{}, errors.New("HierarchyTypeMismatchException: the parameter type cannot be changed")
	}
	return s.Store.Put(ctx, in)
}

// A config parameter Parameter Store will not overwrite (someone stored a SecureString under
// the name) fails the deployment with nothing published. On AWS, where the writes are not one
// transaction, the runtime used to be published first and stay so — dependents would consume the
// runtime of a deployment recorded failed — and SSM's refusal, not permanent, was retried until
// the message was dead-lettered, the deployment left applying.
func TestApplyConfigParameterRefusedPublishesNothing(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		atomically bool
		ssm        bool
	}{{"embedded", false, false}, {"atomic", true, false}, {"ssm", false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newStage(t, setup{approved: true})
			if tc.atomically {
				s.w.Atomic = s.db.Atomically
			}
			if tc.ssm {
				store := ssmLike{s.params}
				s.w.Params = func(string) (params.Store, error) { return store, nil }
			}
			if _, err := s.params.Put(context.Background(), params.PutInput{Name: "/iac/vpc/core/config", Value: "hunter2",
				Type: params.TypeSecureString}); err != nil {
				t.Fatal(err)
			}
			in := s.planned(t, 90, "prod/vpc/core", 0, vpcConfig)
			for attempt := 1; attempt <= 2; attempt++ {
				out := s.handle(t, in) // fails the test unless acknowledged
				if len(out) != 1 || out[0].Type != message.TypeDeploymentFailed {
					t.Fatalf("attempt %d: got %d messages, want one deployment.failed", attempt, len(out))
				}
				p := wt.PayloadOf[message.DeploymentFailed](t, out[0])
				if !strings.Contains(p.Error, "/iac/vpc/core/config") || !strings.Contains(p.Error, "SecureString") || strings.Contains(p.Error, "hunter2") {
					t.Errorf("attempt %d: failed %q, want the config parameter and its type named, not its value", attempt, p.Error)
				}
			}
			if got := s.runner.applies.Load(); got != 1 {
				t.Errorf("terraform applied %d times, want 1", got)
			}
			if r, ok := s.param(t, "/iac/vpc/core/runtime"); ok {
				t.Errorf("runtime published (version %d) by a deployment recorded failed", r.Version)
			}
			if c, _ := s.param(t, "/iac/vpc/core/config"); c.Value != "hunter2" || c.Version != 1 {
				t.Errorf("config parameter %+v changed", c)
			}
		})
	}
}

// refusesConfig refuses, permanently, every write of a config parameter, for a reason no check
// before the writes can know.
type refusesConfig struct{ params.Store }

func (s refusesConfig) Put(ctx context.Context, in params.PutInput) (params.PutResult, error) {
	if strings.HasSuffix(in.Name, "/config") {
		return params.PutResult{}, &params.InvalidError{Name: in.Name, Reason: "a rule of Parameter Store's own"}
	}
	return s.Store.Put(ctx, in)
}

// Should Parameter Store refuse the config after it took the runtime (without a transaction,
// nothing takes the runtime back), the failure says the runtime was published, and at which
// version, on every delivery: the record does not say that nothing was.
func TestApplyConfigRefusedAfterTheRuntimeSaysSo(t *testing.T) {
	t.Parallel()
	s := newStage(t, setup{approved: true})
	store := refusesConfig{s.params}
	s.w.Params = func(string) (params.Store, error) { return store, nil }
	in := s.planned(t, 90, "prod/vpc/core", 0, vpcConfig)
	for attempt := 1; attempt <= 2; attempt++ {
		out := s.handle(t, in)
		if len(out) != 1 || out[0].Type != message.TypeDeploymentFailed {
			t.Fatalf("attempt %d: got %d messages, want one deployment.failed", attempt, len(out))
		}
		p := wt.PayloadOf[message.DeploymentFailed](t, out[0])
		if want := "/iac/vpc/core/runtime was published (version 1), but not /iac/vpc/core/config"; !strings.Contains(p.Error, want) {
			t.Errorf("attempt %d: failed %q, want it to say %q", attempt, p.Error, want)
		}
	}
	if r, ok := s.param(t, "/iac/vpc/core/runtime"); !ok || r.Version != 1 {
		t.Errorf("runtime %+v, %v; want version 1 published", r, ok)
	}
}
