package plan_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	wt "github.com/usekarma/karma/workers/internal/workertest"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/terraform"
)

// failingGets is a parameter store whose Get of one name fails with err (when set).
type failingGets struct {
	params.Store
	name string
	err  error
}

func (f *failingGets) Get(ctx context.Context, name string) (params.Parameter, error) {
	if name == f.name && f.err != nil {
		return params.Parameter{}, f.err
	}
	return f.Store.Get(ctx, name)
}

// countingPlans counts the plans terraform is asked for.
type countingPlans struct {
	terraform.Noop
	n int
}

func (c *countingPlans) Plan(ctx context.Context, ws terraform.Workspace) (terraform.PlanResult, error) {
	c.n++
	return c.Noop.Plan(ctx, ws)
}

// A transient Parameter Store error while the references are read is retried (the message is
// redelivered); only what the config gets wrong fails the deployment.
func TestPlanInterpolationErrors(t *testing.T) {
	t.Parallel()
	throttled := fmt.Errorf(`ssm: get "/iac/vpc/core/runtime": %w`,
		errors.New("operation error SSM: GetParameter, https response error StatusCode: 400, RequestID: 8b1c, api error ThrottlingException: Rate exceeded"))
	tests := []struct {
		name    string
		runtime string // vpc/core's runtime, "" = none
		err     error  // of the runtime's Get, nil = the store's answer
		want    pipeline.Action
		failed  string // in deployment.failed
	}{
		{name: "throttled", runtime: `{"vpc_id":"vpc-0a1b2c"}`, err: throttled, want: pipeline.Retry},
		{name: "timed out", runtime: `{"vpc_id":"vpc-0a1b2c"}`, err: fmt.Errorf("ssm: get: %w", context.DeadlineExceeded), want: pipeline.Retry},
		{name: "marked transient", runtime: `{"vpc_id":"vpc-0a1b2c"}`, err: pipeline.Transient(errors.New("connection reset")), want: pipeline.Retry},
		{name: "refused for good", runtime: `{"vpc_id":"vpc-0a1b2c"}`, err: &params.InvalidError{Name: "/iac/vpc/core/runtime", Reason: "invalid name"}, want: pipeline.Ack, failed: "invalid name"},
		{name: "no runtime", want: pipeline.Ack, failed: "vpc/core has no runtime yet"},
		{name: "no such key", runtime: `{"private_subnet_ids":[]}`, want: pipeline.Ack, failed: `has no key "vpc_id"`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			runner := &countingPlans{}
			s := newStage(t, runner)
			if tt.runtime != "" {
				s.putRuntime(t, "vpc/core", tt.runtime)
			}
			s.w.Params = func(string) (params.Store, error) {
				return &failingGets{Store: s.params, name: "/iac/vpc/core/runtime", err: tt.err}, nil
			}
			out, action, err := wt.Process(t, s.q, s.w.Handle, s.recorded(t, 50+i, "prod/ecs-cluster/core", 1))
			if action != tt.want {
				t.Fatalf("action %v (%v), %d messages; want %v", action, err, len(out), tt.want)
			}
			if runner.n != 0 {
				t.Errorf("terraform planned %d times", runner.n)
			}
			if tt.failed == "" {
				if len(out) != 0 || !pipeline.IsTransient(err) {
					t.Errorf("%d messages, err %v: want nothing published and a transient error", len(out), err)
				}
				return
			}
			wt.ValidateAll(t, out)
			if len(out) != 1 || out[0].Type != message.TypeDeploymentFailed {
				t.Fatalf("%d messages, want one deployment.failed", len(out))
			}
			if p := wt.PayloadOf[message.DeploymentFailed](t, out[0]); p.Stage != "plan" || !strings.Contains(p.Error, "resolving references: ") || !strings.Contains(p.Error, tt.failed) {
				t.Errorf("failed %+v, want an error containing %q", p, tt.failed)
			}
		})
	}
}

// A dependent deploys the upstream runtime its lineage names: the version the upstream's
// deployment in the same change set published, even when the runtime was written again since
// (that write is a change of its own, which redeploys the dependent in turn). A runtime deleted
// and created again since starts again at version 1: its version of the number published is
// another document (not the hash the deployment recorded), and the dependent fails, naming
// it, rather than deploy it under a lineage naming the upstream's deployment.
func TestPlanUsesTheRuntimeVersionItsUpstreamPublished(t *testing.T) {
	t.Parallel()
	const v1 = `{"vpc_id":"vpc-v1"}`
	sum := sha256.Sum256([]byte(v1))
	for i, tt := range []struct {
		name      string
		published int64  // vpc/core's Outcome.RuntimeVersion, 0 = not deployed in the change set
		hash      string // its Outcome.RuntimeHash ("": an outcome recorded without one)
		recreated bool   // the runtime is deleted and created again since, rather than written again
		wantCfg   string // planned
		wantError string // failed
	}{
		{name: "deployed in the change set", published: 1, wantCfg: `{"service_discovery_vpc_id":"vpc-v1","tags":{"Environment":"prod"}}`},
		{name: "deployed in the change set, its document", published: 1, hash: hex.EncodeToString(sum[:]),
			wantCfg: `{"service_discovery_vpc_id":"vpc-v1","tags":{"Environment":"prod"}}`},
		{name: "not deployed in the change set", wantCfg: `{"service_discovery_vpc_id":"vpc-v2","tags":{"Environment":"prod"}}`},
		{name: "a version no longer kept", published: 7, wantError: "no longer has version 7"},
		{name: "deleted and created again since", published: 1, hash: hex.EncodeToString(sum[:]), recreated: true,
			wantError: "version 1 of /iac/vpc/core/runtime is not the runtime deployment dep-"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStage(t, nil)
			s.putRuntime(t, "vpc/core", v1)
			if tt.published > 0 {
				if _, err := s.cs.Update(t.Context(), s.csID, func(cs *changeset.ChangeSet) error {
					n := cs.Nodes["prod/vpc/core"]
					n.State, n.Outcome = changeset.Applied, &changeset.Outcome{RuntimeVersion: tt.published, ChangedKeys: []string{"vpc_id"}, RuntimeHash: tt.hash}
					return nil
				}); err != nil {
					t.Fatal(err)
				}
			}
			if tt.recreated {
				if err := s.params.Delete(t.Context(), "/iac/vpc/core/runtime"); err != nil {
					t.Fatal(err)
				}
			}
			s.putRuntime(t, "vpc/core", `{"vpc_id":"vpc-v2"}`) // written again since (version 2; version 1 when created again)
			out := s.handle(t, s.recorded(t, 80+i, "prod/ecs-cluster/core", 1))
			if tt.wantError != "" {
				if out[0].Type != message.TypeDeploymentFailed {
					t.Fatalf("%s, want deployment.failed containing %q", out[0].Type, tt.wantError)
				}
				if p := wt.PayloadOf[message.DeploymentFailed](t, out[0]); !strings.Contains(p.Error, tt.wantError) {
					t.Fatalf("%s %+v, want deployment.failed containing %q", out[0].Type, p, tt.wantError)
				} else if tt.recreated && (!strings.Contains(p.Error, "(sha256 "+tt.hash[:16]+"…, found ") || !strings.Contains(p.Error, "deleted and created again since") ||
					strings.Contains(p.Error, "vpc-v")) {
					t.Errorf("failed %q: want both hashes named, the reason, and no value", p.Error)
				}
				return
			}
			p := wt.PayloadOf[message.DeploymentPlanned](t, out[0])
			if want := noopPlan(t, s, "prod/ecs-cluster/core", tt.wantCfg); out[0].Type != message.TypeDeploymentPlanned || p.PlanHash != want.PlanHash {
				t.Errorf("%s of hash %s, want the plan of %s (%s)", out[0].Type, p.PlanHash, tt.wantCfg, want.PlanHash)
			}
		})
	}
}
