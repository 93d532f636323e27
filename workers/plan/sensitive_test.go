package plan_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/terraform"
)

// recordingRunner is terraform.Noop that keeps the workspaces it was given.
type recordingRunner struct {
	terraform.Noop
	mu  sync.Mutex
	wss []terraform.Workspace
}

func (r *recordingRunner) Plan(ctx context.Context, ws terraform.Workspace) (terraform.PlanResult, error) {
	r.mu.Lock()
	r.wss = append(r.wss, ws)
	r.mu.Unlock()
	return r.Noop.Plan(ctx, ws)
}

// A value interpolated from a SecureString runtime reaches Terraform marked sensitive (so that it
// is passed as a sensitive variable, never written to config.json), and appears in no message.
func TestPlanMarksSecureStringValuesSensitive(t *testing.T) {
	t.Parallel()
	const secret = "vpc-S3CR3T-0a1b2c"
	rec := &recordingRunner{}
	s := newStage(t, rec)
	if _, err := s.params.Put(context.Background(), params.PutInput{Name: "/iac/vpc/core/runtime",
		Value: `{"vpc_id":"` + secret + `"}`, Type: params.TypeSecureString}); err != nil {
		t.Fatal(err)
	}
	out := s.handle(t, s.recorded(t, 40, "prod/ecs-cluster/core", 1))
	if len(out) != 1 || out[0].Type != message.TypeDeploymentPlanned {
		t.Fatalf("got %v, want one deployment.planned", out)
	}
	if len(rec.wss) != 1 {
		t.Fatalf("terraform planned %d times, want 1", len(rec.wss))
	}
	ws := rec.wss[0]
	if !slices.Equal(ws.Sensitive, []string{"/service_discovery_vpc_id"}) || !strings.Contains(string(ws.Config), secret) {
		t.Errorf("workspace config %s sensitive %q; want the value in place, marked sensitive at /service_discovery_vpc_id", ws.Config, ws.Sensitive)
	}
	for _, m := range out {
		body, _ := message.Encode(m)
		if strings.Contains(string(body), secret) {
			t.Errorf("%s holds the secret: %s", m.Type, body)
		}
	}
}

// The plan is made for its deployment (terraform.Workspace.Owner, recorded next to the saved
// plan): once that deployment is over, the plan, which holds its variables' values, is removed.
func TestPlanNamesItsDeployment(t *testing.T) {
	t.Parallel()
	rec := &recordingRunner{}
	s := newStage(t, rec)
	out := s.handle(t, s.recorded(t, 40, "prod/vpc/core", 0))
	if len(out) != 1 || out[0].Type != message.TypeDeploymentPlanned || len(rec.wss) != 1 {
		t.Fatalf("got %v and %d plans, want one deployment.planned", out, len(rec.wss))
	}
	var p message.DeploymentPlanned
	if err := message.Decode(out[0], &p); err != nil {
		t.Fatal(err)
	}
	if got, want := rec.wss[0].Owner, (terraform.PlanOwner{ChangeSetID: p.ChangeSetID, DeploymentID: p.DeploymentID}); got != want || want.DeploymentID == "" {
		t.Fatalf("the plan was made for %+v, want %+v", got, want)
	}
}
