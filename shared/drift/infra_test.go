package drift

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/terraform"
)

// refresher is a terraform.Refresher answering per component; it records the workspaces.
type refresher struct {
	mu      sync.Mutex
	results map[string]terraform.RefreshResult
	errs    map[string]error
	seen    map[string]terraform.Workspace
}

func (r *refresher) Refresh(_ context.Context, ws terraform.Workspace) (terraform.RefreshResult, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen[ws.ID()] = ws
	return r.results[ws.ID()], r.errs[ws.ID()]
}

var _ terraform.Refresher = (*refresher)(nil)

func paramStore(t *testing.T) params.Store {
	t.Helper()
	db, err := embedded.Open(t.TempDir() + "/karma.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := embedded.NewParamStore(db, "prod")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRefreshRunsTheLastDeployment(t *testing.T) {
	t.Parallel()
	store := paramStore(t)
	if _, err := store.Put(context.Background(), params.PutInput{Name: "/iac/vpc/core/runtime", Value: `{"vpc_id":"vpc-7"}`}); err != nil {
		t.Fatal(err)
	}
	comps := []*model.Component{vpc(), component("prod", "app", "api", `{"vpc":"${vpc/core.runtime.vpc_id}"}`),
		component("prod", "app", "new", `{}`), component("prod", "app", "busy", `{}`), component("prod", "app", "broken", `{}`)}
	st := State{Busy: map[string]string{"prod/app/busy": "cs-9"}, Last: map[string]Deployment{
		"prod/vpc/core":   {ID: "dep-v", Commit: "c1", Config: json.RawMessage(`{"cidr":"10.0.0.0/16"}`)},
		"prod/app/api":    {ID: "dep-a", Commit: "c2", Config: json.RawMessage(`{"vpc":"${vpc/core.runtime.vpc_id}"}`)},
		"prod/app/busy":   {ID: "dep-b", Commit: "c2", Config: json.RawMessage(`{}`)},
		"prod/app/broken": {ID: "dep-x", Commit: "c2", Config: json.RawMessage(`{}`)},
	}}
	r := &refresher{seen: map[string]terraform.Workspace{}, errs: map[string]error{"prod/app/broken": errors.New("terraform refresh: exit status 1")},
		results: map[string]terraform.RefreshResult{
			"prod/vpc/core": {Deployed: true, Changed: true, Serial: 4, Lineage: "l-1", Outputs: []string{"vpc_id"},
				Resources: []terraform.ResourceDrift{{Address: "module.component.aws_vpc.this", Actions: []string{"update"}}}},
			"prod/app/api": {Deployed: true},
		}}
	ws := terraform.Workspaces{WorkDir: t.TempDir(), Modules: terraform.StaticModules(t.TempDir()), Prefix: "/iac"}
	out := Refresh{Refresher: r, Workspaces: ws, Params: store, Prefix: "/iac", Parallelism: 2}.Run(context.Background(),
		Inputs{Env: "prod", Prefix: "/iac", Commit: head, Components: comps, State: st})
	if out.Refreshed != 2 || len(out.Findings) != 1 || len(out.Errors) != 1 || !strings.HasPrefix(out.Errors[0], "prod/app/broken: ") {
		t.Fatalf("refreshed %d, findings %+v, errors %v: want 2 refreshed (never deployed and busy left out), one drift, one error", out.Refreshed, out.Findings, out.Errors)
	}
	if len(r.seen) != 3 {
		t.Errorf("refreshed workspaces %v", r.seen)
	}
	if got := string(r.seen["prod/app/api"].Config); got != `{"vpc":"vpc-7"}` {
		t.Errorf("app/api refreshed with config %s: want its last deployment's config, references substituted", got)
	}
	f := out.Findings[0]
	if f.Kind != message.DriftInfrastructure || f.Reason != message.DriftRefreshed || f.State == nil || f.State.Serial != 4 ||
		len(f.Resources) != 1 || f.Resources[0].Address != "module.component.aws_vpc.this" || f.Outputs[0] != "vpc_id" {
		t.Errorf("finding %+v", f)
	}
	if !strings.Contains(f.Detail, "1 resource(s) changed outside Terraform (module.component.aws_vpc.this: update); outputs vpc_id changed") {
		t.Errorf("detail %q", f.Detail)
	}
	res := r.results["prod/vpc/core"]
	if again := InfraFinding("prod", "prod/vpc/core", head, "dep-v", res); again.DriftID != f.DriftID {
		t.Errorf("the same refresh seen twice: %s then %s", f.DriftID, again.DriftID)
	}
	res.Serial = 5
	if other := InfraFinding("prod", "prod/vpc/core", head, "dep-v", res); other.DriftID == f.DriftID {
		t.Error("another state serial gave the same drift id")
	}
}

// A component Karma deployed whose workspace has no state (the work folder lost, moved, or not
// the one its applies used) cannot be compared: the run says so, it does not count it as
// refreshed, and it never reports it as without drift.
func TestRefreshOfADeployedComponentWithoutStateIsAnError(t *testing.T) {
	t.Parallel()
	comps := []*model.Component{vpc()}
	st := State{Busy: map[string]string{}, Last: map[string]Deployment{
		"prod/vpc/core": {ID: "dep-v", Commit: "c1", Config: json.RawMessage(`{"cidr":"10.0.0.0/16"}`)},
	}}
	r := &refresher{seen: map[string]terraform.Workspace{}, results: map[string]terraform.RefreshResult{"prod/vpc/core": {Deployed: false}}}
	ws := terraform.Workspaces{WorkDir: t.TempDir(), Modules: terraform.StaticModules(t.TempDir()), Prefix: "/iac"}
	out := Refresh{Refresher: r, Workspaces: ws, Params: paramStore(t), Prefix: "/iac"}.Run(context.Background(),
		Inputs{Env: "prod", Prefix: "/iac", Commit: head, Components: comps, State: st})
	if out.Refreshed != 0 || len(out.Findings) != 0 || len(out.Errors) != 1 ||
		!strings.HasPrefix(out.Errors[0], "prod/vpc/core: ") || !strings.Contains(out.Errors[0], "dep-v") || !strings.Contains(out.Errors[0], "no Terraform state") {
		t.Fatalf("refreshed %d, findings %+v, errors %q: want one error naming the component, its deployment and the missing state", out.Refreshed, out.Findings, out.Errors)
	}
}
