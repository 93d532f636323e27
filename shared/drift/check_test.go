package drift

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/terraform"
)

// dirSource is the config repository as a directory, its "head" a fixed sha.
type dirSource struct{ dir string }

func (s dirSource) Head(context.Context) (string, error) { return head, nil }
func (s dirSource) Build(ctx context.Context, env, _ string, _ map[string][]byte) (*model.Result, error) {
	return model.Build(ctx, s.dir, model.BuildOptions{LoadOptions: model.LoadOptions{Env: env}})
}
func (s dirSource) Environments(ctx context.Context, _ string) ([]string, error) {
	r, err := model.Load(s.dir, model.LoadOptions{})
	if err != nil {
		return nil, err
	}
	return r.Environments, nil
}

func writeRepo(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for rel, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// checker is a Checker over a directory and an embedded state file (parameters per environment,
// change sets).
func checker(t *testing.T, files map[string]string) (*Checker, map[string]params.Store) {
	t.Helper()
	db, err := embedded.Open(filepath.Join(t.TempDir(), "karma.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	sets, err := embedded.NewChangeSets(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	stores := map[string]params.Store{}
	for _, env := range []string{"dev", "prod"} {
		if stores[env], err = embedded.NewParamStore(db, env); err != nil {
			t.Fatal(err)
		}
	}
	c := &Checker{Source: dirSource{writeRepo(t, files)}, ChangeSets: sets,
		Params: func(env string) (params.Store, error) { return stores[env], nil }}
	return c, stores
}

var repoFiles = map[string]string{
	"karma.json":                     `{"prefix": "/iac"}`,
	"account_environments/prod.json": `{"environment": "prod", "allow_drift": true, "drift_refresh": true}`,
	"account_environments/dev.json":  `{"environment": "dev"}`,
	"iac/prod/vpc/core/config.json":  `{"cidr": "10.0.0.0/16"}`,
	"iac/dev/vpc/core/config.json":   `{"cidr": "10.1.0.0/16"}`,
	"iac/dev/app/api/config.json":    `{"vpc_nickname": "core"}`,
}

func TestCheckEnvironments(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, stores := checker(t, repoFiles)
	put := func(env, name, value string) {
		t.Helper()
		if _, err := stores[env].Put(ctx, params.PutInput{Name: name, Value: value, Description: params.Provenance("commit=x", value)}); err != nil {
			t.Fatal(err)
		}
	}
	put("dev", "/iac/vpc/core/config", `{"cidr":"10.1.0.0/16"}`)
	put("dev", "/iac/app/api/config", `{"vpc_nickname":"core"}`)
	put("prod", "/iac/vpc/core/config", `{"cidr":"10.9.0.0/16"}`)

	rep, err := c.Check(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Commit != head || len(rep.Envs) != 2 || rep.Envs[0].Env != "dev" || rep.Envs[1].Env != "prod" {
		t.Fatalf("report %+v", rep)
	}
	dev, prod := rep.Envs[0], rep.Envs[1]
	if dev.Compared != 2 || len(dev.Findings) != 0 || dev.AllowDrift || dev.Refresh || len(dev.Errors) != 0 {
		t.Errorf("dev: %+v", dev)
	}
	if prod.Compared != 1 || len(prod.Findings) != 1 || !prod.AllowDrift || !prod.Refresh {
		t.Errorf("prod: %+v", prod)
	}
	if len(prod.Errors) != 1 || !strings.Contains(prod.Errors[0], "drift_refresh") {
		t.Errorf("prod opts in to refreshes this checker cannot run: errors %v", prod.Errors)
	}
	if !rep.Drifted() || !rep.Failed() {
		t.Errorf("drifted %v failed %v", rep.Drifted(), rep.Failed())
	}

	c.Refresher = &refresher{seen: map[string]terraform.Workspace{}}
	c.Workspaces = terraform.Workspaces{WorkDir: t.TempDir(), Modules: terraform.StaticModules(t.TempDir()), Prefix: "/iac"}
	one, err := c.Check(ctx, Options{Component: "prod/vpc/core"})
	if err != nil || len(one.Envs) != 1 || len(one.Envs[0].Errors) != 0 || len(one.Envs[0].Findings) != 1 {
		t.Errorf("one component, with a refresher: %+v %v", one, err)
	}
}

func TestCheckWaitsForWhatIsBeingDeployed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, _ := checker(t, repoFiles)
	cs := &changeset.ChangeSet{ID: "cs-1", Env: "dev", Commit: head, Nodes: map[string]*changeset.Node{
		"dev/vpc/core": {Component: "dev/vpc/core", State: changeset.Scheduled, DeploymentID: "dep-1"}}}
	if _, err := c.ChangeSets.(*embedded.ChangeSets).Create(ctx, cs); err != nil {
		t.Fatal(err)
	}
	rep, err := c.Check(ctx, Options{Env: "dev"})
	if err != nil {
		t.Fatal(err)
	}
	dev := rep.Envs[0]
	if len(dev.Busy) != 1 || dev.Busy[0].Component != "dev/vpc/core" || dev.Compared != 1 || len(dev.Findings) != 1 || dev.Findings[0].Component != "dev/app/api" {
		t.Errorf("dev: busy %+v, compared %d, findings %+v; want vpc/core left to its change set, app/api's missing config found", dev.Busy, dev.Compared, dev.Findings)
	}
}

func TestCheckRefusesWhatDoesNotExist(t *testing.T) {
	t.Parallel()
	c, _ := checker(t, repoFiles)
	for _, o := range []Options{{Env: "staging"}, {Component: "prod/vpc/nope"}, {Env: "dev", Component: "prod/vpc/core"}} {
		_, err := c.Check(context.Background(), o)
		if !IsNotFound(err) {
			t.Errorf("%+v: %v, want a *NotFoundError", o, err)
		}
	}
}

func TestCheckReportsARepositoryWithErrors(t *testing.T) {
	t.Parallel()
	files := map[string]string{"karma.json": `{"prefix": "/iac"}`, "iac/dev/vpc/core/config.json": `{"cidr": `}
	c, _ := checker(t, files)
	rep, err := c.Check(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if e := rep.Envs[0]; len(e.Errors) != 1 || !strings.Contains(e.Errors[0], "Git's intent is unknown") || e.Compared != 0 {
		t.Errorf("dev: %+v", e)
	}
}

// A read (SkipRefresh) runs no terraform, and says so where the environment opts in.
func TestCheckSkipsRefreshesWhenAsked(t *testing.T) {
	t.Parallel()
	c, _ := checker(t, repoFiles)
	r := &refresher{seen: map[string]terraform.Workspace{}}
	c.Refresher, c.SkipRefresh = r, true
	c.Workspaces = terraform.Workspaces{WorkDir: t.TempDir(), Modules: terraform.StaticModules(t.TempDir()), Prefix: "/iac"}
	rep, err := c.Check(context.Background(), Options{Env: "prod"})
	if err != nil {
		t.Fatal(err)
	}
	if e := rep.Envs[0]; !e.Refresh || !e.RefreshSkipped || len(e.Errors) != 0 || len(r.seen) != 0 {
		t.Errorf("prod: %+v, refreshed %v", e, r.seen)
	}
}

// The infrastructure drift of a component whose rollback stands names the rollback too (it is
// reported, not corrected: Recorder).
func TestInfrastructureDriftUnderAStandingRollbackNamesIt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, stores := checker(t, repoFiles)
	res, err := c.Source.Build(ctx, "prod", head, nil)
	if err != nil {
		t.Fatal(err)
	}
	gitHash := res.Repo.Components[0].Hash
	old := component("prod", "vpc", "core", `{"cidr":"10.5.0.0/16"}`)
	n := &changeset.Node{Component: "prod/vpc/core", Root: true, State: changeset.Applied, DeploymentID: "dep-r", Config: old.Resolved,
		ConfigHash: old.Hash, GitConfigHash: gitHash, Commit: "c0", Outcome: &changeset.Outcome{RuntimeVersion: 2, RuntimeHash: "h", Config: old.Resolved}}
	cs := &changeset.ChangeSet{ID: "cs-r", Env: "prod", Commit: head, Nodes: map[string]*changeset.Node{n.Component: n}, Waves: [][]string{{n.Component}},
		Rollback: &message.Rollback{DeploymentID: "dep-first", ChangeSetID: "cs-first", Commit: "c0", ConfigHash: old.Hash}}
	if _, err := c.ChangeSets.(changeset.Store).Create(ctx, cs); err != nil {
		t.Fatal(err)
	}
	if _, err := stores["prod"].Put(ctx, params.PutInput{Name: "/iac/vpc/core/config", Value: string(old.Resolved)}); err != nil {
		t.Fatal(err)
	}
	c.Refresher = &refresher{seen: map[string]terraform.Workspace{}, results: map[string]terraform.RefreshResult{
		"prod/vpc/core": {Deployed: true, Changed: true, Serial: 3, Lineage: "l"}}}
	c.Workspaces = terraform.Workspaces{WorkDir: t.TempDir(), Modules: terraform.StaticModules(t.TempDir()), Prefix: "/iac"}
	rep, err := c.Check(ctx, Options{Env: "prod"})
	if err != nil {
		t.Fatal(err)
	}
	prod := rep.Envs[0]
	var infra *Finding
	for i, f := range prod.Findings {
		if f.Kind == message.DriftInfrastructure {
			infra = &prod.Findings[i]
		}
	}
	if len(prod.RolledBack) != 1 || infra == nil || infra.Rollback == nil || infra.Rollback.DeploymentID != "dep-r" {
		t.Fatalf("rolled back %+v, findings %+v: want the infrastructure drift naming the standing rollback dep-r", prod.RolledBack, prod.Findings)
	}
}
