package apply_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/terraform"
	wt "github.com/usekarma/karma/workers/internal/workertest"
)

// echoingRunner applies as terraform.Noop does, and its module also outputs, in clear, the value
// the config holds at ptr (a module that passes a secret it was given on to an output).
type echoingRunner struct {
	terraform.Noop
	ptr string
}

func (e *echoingRunner) Apply(ctx context.Context, ws terraform.Workspace, p terraform.PlanResult) (terraform.Outputs, error) {
	out, err := e.Noop.Apply(ctx, ws, p)
	if err != nil {
		return nil, err
	}
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(ws.Config, &cfg); err != nil {
		return nil, err
	}
	out["connection"] = json.RawMessage(`"postgres://app:` + strings.Trim(string(cfg[strings.TrimPrefix(e.ptr, "/")]), `"`) + `@db/app"`)
	return out, nil
}

// A value taken from a SecureString runtime that the module outputs is not published in the
// component's runtime (a String parameter), nor kept in the change set's outcome: the deployment
// fails saying terraform applied and which output holds it, without the value.
func TestApplyDoesNotPublishASecureStringValueInTheRuntime(t *testing.T) {
	t.Parallel()
	const secret = "vpc-s3cr3t-0a1b2c"
	s := newStage(t, setup{approved: true, runner: &echoingRunner{ptr: "/service_discovery_vpc_id"}})
	if _, err := s.params.Put(context.Background(), params.PutInput{Name: "/iac/vpc/core/runtime", Value: `{"vpc_id":"` + secret + `"}`,
		Type: params.TypeSecureString}); err != nil {
		t.Fatal(err)
	}
	resolved := `{"service_discovery_vpc_id":"` + secret + `","tags":{"Environment":"prod"}}` // as the plan stage planned it
	out := s.handle(t, s.planned(t, 10, "prod/ecs-cluster/core", 1, resolved))
	if len(out) != 1 || out[0].Type != message.TypeDeploymentFailed {
		t.Fatalf("%v, want one deployment.failed", types(out))
	}
	f := wt.PayloadOf[message.DeploymentFailed](t, out[0])
	if !strings.Contains(f.Error, "terraform applied prod/ecs-cluster/core") || !strings.Contains(f.Error, "connection") || strings.Contains(f.Error, secret) {
		t.Errorf("failure %q: want it to say terraform applied and name the output, without the value", f.Error)
	}
	if p, ok := s.param(t, "/iac/ecs-cluster/core/runtime"); ok {
		t.Errorf("runtime published: %+v", p)
	}
	cs, err := s.cs.Get(context.Background(), s.csID)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(cs)
	if strings.Contains(string(b), secret) {
		t.Errorf("the change set holds the secret: %s", b)
	}
	if n := cs.Nodes["prod/ecs-cluster/core"]; n.Outcome != nil {
		t.Errorf("an outcome was recorded: %+v", n.Outcome)
	}
}
