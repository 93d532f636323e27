package resolve_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	wt "github.com/usekarma/karma/workers/internal/workertest"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/workers/resolve"
)

const (
	sha1 = "512423cb3a4857a38f472862b51e4ab1a1730f06"
	sha2 = "d5e0ba2d9b813fa5d15023d7aa615534cda694ac"
)

var (
	gitActor = message.Actor{Kind: "git", Name: "Ada Lovelace <ada@example.com>"}
	iamActor = message.Actor{Kind: "iam", Name: "arn:aws:iam::123456789012:user/ada"}
)

// stageEnv is a resolve worker on an embedded state file.
type stageEnv struct {
	q  *embedded.Queue
	cs *embedded.ChangeSets
	w  *resolve.Worker
}

// configs is a ConfigReader over a map "<env>/<type>/<nickname>" -> /config value.
type configs map[string]string

func (c configs) Config(_ context.Context, env, component string, _ int64, _ time.Time) ([]byte, error) {
	v, ok := c[component]
	if !ok {
		return nil, fmt.Errorf("no config parameter for %s", component)
	}
	return []byte(v), nil
}

func newStage(t *testing.T, repo string, cfg configs) *stageEnv {
	t.Helper()
	db := wt.NewDB(t)
	ctx := context.Background()
	q, err := embedded.NewQueue(ctx, db, embedded.QueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cs, err := embedded.NewChangeSets(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	w := &resolve.Worker{Graphs: wt.RepoGraphs{Root: repo}, Commits: wt.RepoGraphs{Root: repo}, ChangeSets: cs, Configs: cfg, Now: func() time.Time { return wt.FixedTime }}
	return &stageEnv{q: q, cs: cs, w: w}
}

// commitDetected is a change.detected of a commit touching files (env "", as ingest makes it).
func commitDetected(t *testing.T, n int, sha string, files []string, removed ...message.ComponentRef) message.Envelope {
	t.Helper()
	p := message.ChangeDetected{ChangeSetID: wt.FixedID(n), Source: message.SourceGit, Components: []message.ComponentRef{}, Files: files, Removed: removed,
		Commit: &message.Commit{SHA: sha, Author: gitActor.Name, Message: "change", Branch: "main"}}
	e := wt.FixedRoot(t, n, message.TypeChangeDetected, "", gitActor, "git:"+sha, p)
	wt.Validate(t, e)
	return e
}

// runtimeDetected is a change.detected of a /runtime parameter written outside Karma.
func runtimeDetected(t *testing.T, n int, env string, ref message.ComponentRef, keys []string) message.Envelope {
	t.Helper()
	name := "/iac/" + ref.Type + "/" + ref.Nickname + "/runtime"
	p := message.ChangeDetected{ChangeSetID: wt.FixedID(n), Source: message.SourceRuntime, Components: []message.ComponentRef{ref},
		Parameter: &message.ParameterWrite{Name: name, Version: 8}, ChangedKeys: keys}
	e := wt.FixedRoot(t, n, message.TypeChangeDetected, env, iamActor, "runtime:"+name+"@8", p)
	wt.Validate(t, e)
	return e
}

// outcome is a deployment.applied or deployment.failed of component in change set csID, caused
// by cause, with a fixed id n.
func applied(t *testing.T, cause message.Envelope, n int, env, csID, component string, keys []string) message.Envelope {
	t.Helper()
	dep := changeset.DeploymentID(csID, component)
	p := message.DeploymentApplied{ChangeSetID: csID, DeploymentID: dep, Component: component, RuntimeVersion: 3, ChangedKeys: keys,
		RuntimeHash: strings.Repeat("ab", 32)}
	e := wt.FixedDerive(t, cause, n, message.TypeDeploymentApplied, "deployment.applied:"+dep, p)
	e.Env = env
	wt.Validate(t, e)
	return e
}

func failed(t *testing.T, cause message.Envelope, n int, env, csID, component string) message.Envelope {
	t.Helper()
	dep := changeset.DeploymentID(csID, component)
	p := message.DeploymentFailed{ChangeSetID: csID, DeploymentID: dep, Component: component, Wave: 1, Stage: "apply", Error: "terraform apply: quota exceeded"}
	e := wt.FixedDerive(t, cause, n, message.TypeDeploymentFailed, "deployment.failed:"+dep, p)
	e.Env = env
	wt.Validate(t, e)
	return e
}

// handle runs the worker through the runtime harness and requires an ack.
func (s *stageEnv) handle(t *testing.T, in message.Envelope) []message.Envelope {
	t.Helper()
	out, action, err := wt.Process(t, s.q, s.w.Handle, in)
	if action != pipeline.Ack || err != nil {
		t.Fatalf("%s: action %v, err %v", in.Type, action, err)
	}
	wt.ValidateAll(t, out)
	for _, o := range out {
		if o.CorrelationID != in.CorrelationID || o.CausationID != in.ID {
			t.Errorf("%s: correlation %s causation %s, want %s and %s", o.Type, o.CorrelationID, o.CausationID, in.CorrelationID, in.ID)
		}
	}
	return out
}

// components lists the component of each scheduled / skipped message.
func components(t *testing.T, msgs []message.Envelope, typ string) []string {
	t.Helper()
	var out []string
	for _, m := range wt.ByType(msgs, typ) {
		switch typ {
		case message.TypeDeploymentScheduled:
			out = append(out, wt.PayloadOf[message.DeploymentScheduled](t, m).Component)
		case message.TypeDeploymentSkipped:
			out = append(out, wt.PayloadOf[message.DeploymentSkipped](t, m).Component)
		}
	}
	return out
}

func names(ids ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(ids); i += 2 {
		m[ids[i]] = ids[i+1]
	}
	return m
}

func TestCommitOnExamples(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		files         []string
		wantEnvs      []string // one change.resolved each, in this order
		wantScheduled []string
		wantRoots     map[string][]string // env -> roots
	}{
		{
			name:          "prod vpc env file",
			files:         []string{"iac/prod/vpc/core/config.json"},
			wantEnvs:      []string{"prod"},
			wantScheduled: []string{"prod/vpc/core"},
			wantRoots:     map[string][]string{"prod": {"prod/vpc/core"}},
		},
		{
			name:          "base layer of vpc",
			files:         []string{"iac/_base/vpc/core/config.json"},
			wantEnvs:      []string{"dev", "prod"},
			wantScheduled: []string{"dev/vpc/core", "prod/vpc/core"},
			wantRoots:     map[string][]string{"dev": {"dev/vpc/core"}, "prod": {"prod/vpc/core"}},
		},
		{
			name:          "extends template",
			files:         []string{"iac/_base/serverless-site/site-defaults/config.json"},
			wantEnvs:      []string{"dev", "prod"},
			wantScheduled: []string{"prod/serverless-site/www"},
			wantRoots:     map[string][]string{"dev": {}, "prod": {"prod/serverless-site/www"}},
		},
		{
			name:          "module of ecs-cluster",
			files:         []string{"components/ecs-cluster/main.tf"},
			wantEnvs:      []string{"dev", "prod"},
			wantScheduled: []string{"dev/ecs-cluster/core", "prod/ecs-cluster/core"},
			wantRoots:     map[string][]string{"dev": {"dev/ecs-cluster/core"}, "prod": {"prod/ecs-cluster/core"}},
		},
		{
			name:          "dev account settings",
			files:         []string{"account_environments/dev.json"},
			wantEnvs:      []string{"dev", "prod"},
			wantScheduled: []string{"dev/s3-bucket/assets", "dev/vpc/core"},
			wantRoots:     map[string][]string{"dev": {"dev/s3-bucket/assets", "dev/vpc/core", "dev/ecs-cluster/core", "dev/ecs-service/api"}, "prod": {}},
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStage(t, wt.ExamplesDir, nil)
			in := commitDetected(t, 1+i, sha1, tt.files)
			out := s.handle(t, in)
			resolved := wt.ByType(out, message.TypeChangeResolved)
			if len(resolved) != len(tt.wantEnvs) {
				t.Fatalf("%d change.resolved, want %d", len(resolved), len(tt.wantEnvs))
			}
			for j, r := range resolved {
				p := wt.PayloadOf[message.ChangeResolved](t, r)
				env := tt.wantEnvs[j]
				if r.Env != env || p.ChangeSetID != in.ID+"/"+env || r.IdempotencyKey != "resolved:"+p.ChangeSetID {
					t.Errorf("resolved %d: env %q change set %q key %q", j, r.Env, p.ChangeSetID, r.IdempotencyKey)
				}
				if !slices.Equal(p.Roots, tt.wantRoots[env]) && !(len(p.Roots) == 0 && len(tt.wantRoots[env]) == 0) {
					t.Errorf("%s roots %v, want %v", env, p.Roots, tt.wantRoots[env])
				}
				if p.Rejected != "" {
					t.Errorf("%s rejected: %s", env, p.Rejected)
				}
				if len(p.RootCauses) != 1 || p.RootCauses[0].Kind != message.CauseCommit || p.RootCauses[0].ID != sha1 || p.RootCauses[0].Keys != nil {
					t.Errorf("root causes %v", p.RootCauses)
				}
				stored, err := s.cs.Get(context.Background(), p.ChangeSetID)
				if err != nil {
					t.Fatalf("change set %s not stored: %v", p.ChangeSetID, err)
				}
				if stored.Env != env || stored.CorrelationID != in.ID || stored.Approved {
					t.Errorf("stored change set: env %q correlation %q approved %v", stored.Env, stored.CorrelationID, stored.Approved)
				}
			}
			if got := components(t, out, message.TypeDeploymentScheduled); !slices.Equal(got, tt.wantScheduled) {
				t.Errorf("scheduled %v, want %v", got, tt.wantScheduled)
			}
			for _, m := range wt.ByType(out, message.TypeDeploymentScheduled) {
				p := wt.PayloadOf[message.DeploymentScheduled](t, m)
				if m.Env != strings.Split(p.Component, "/")[0] || p.DeploymentID != changeset.DeploymentID(p.ChangeSetID, p.Component) ||
					m.IdempotencyKey != "deployment.scheduled:"+p.DeploymentID {
					t.Errorf("scheduled %s: env %q deployment %q key %q", p.Component, m.Env, p.DeploymentID, m.IdempotencyKey)
				}
			}
			if len(wt.ByType(out, message.TypeDeploymentSkipped)) != 0 {
				t.Errorf("nothing is skipped before any apply")
			}
			wt.CheckGolden(t, "commit_"+goldenName(tt.name), out, names(in.ID, "root"))
		})
	}
}

func TestCommitRemovingAComponentIsAHeldDestroy(t *testing.T) {
	t.Parallel()
	repo := wt.WriteRepo(t, map[string]string{
		"karma.json":                    `{"prefix": "/iac", "modules_dir": "components"}`,
		"iac/prod/vpc/core/config.json": `{"cidr": "10.0.0.0/16"}`,
	})
	s := newStage(t, repo, nil)
	in := commitDetected(t, 1, sha2, []string{"iac/prod/route53-zone/main/config.json"}, message.ComponentRef{Type: "route53-zone", Nickname: "main"})
	out := s.handle(t, in)
	skipped := wt.ByType(out, message.TypeDeploymentSkipped)
	if len(skipped) != 1 || len(wt.ByType(out, message.TypeDeploymentScheduled)) != 0 {
		t.Fatalf("want one skipped destroy and nothing scheduled, got %d messages", len(out))
	}
	if p := wt.PayloadOf[message.DeploymentSkipped](t, skipped[0]); p.Component != "prod/route53-zone/main" || p.Reason != changeset.ReasonDestroyHeld {
		t.Errorf("skipped %+v", p)
	}
	wt.CheckGolden(t, "commit_removed_component", out, names(in.ID, "root"))
}

func TestRuntimeChangeSchedulesOnlyConsumers(t *testing.T) {
	t.Parallel()
	vpc := message.ComponentRef{Type: "vpc", Nickname: "core"}
	tests := []struct {
		name          string
		keys          []string
		wantRoots     []string
		wantScheduled []string
		wantAffected  []string
	}{
		{"vpc_id", []string{"vpc_id"}, []string{"prod/ecs-cluster/core"}, []string{"prod/ecs-cluster/core"},
			[]string{"prod/ecs-cluster/core", "prod/ecs-service/api"}},
		{"private_subnet_ids", []string{"private_subnet_ids"}, []string{"prod/ecs-service/api", "prod/lambda/handlers"},
			[]string{"prod/ecs-service/api", "prod/lambda/handlers"}, // no upstream inside the set: both at once
			[]string{"prod/lambda/handlers", "prod/ecs-service/api", "prod/serverless-api/public", "prod/serverless-site/www"}},
		{"flow_log_group consumed by no one", []string{"flow_log_group"}, nil, nil, nil},
		{"nothing changed", []string{}, nil, nil, nil},
		{"unknown keys reach every dependent", nil, []string{"prod/ecs-cluster/core", "prod/ecs-service/api", "prod/lambda/handlers"},
			[]string{"prod/ecs-cluster/core", "prod/lambda/handlers"},
			[]string{"prod/ecs-cluster/core", "prod/lambda/handlers", "prod/ecs-service/api", "prod/serverless-api/public", "prod/serverless-site/www"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStage(t, wt.ExamplesDir, nil)
			in := runtimeDetected(t, 10+i, "prod", vpc, tt.keys)
			out := s.handle(t, in)
			resolved := wt.ByType(out, message.TypeChangeResolved)
			if len(resolved) != 1 {
				t.Fatalf("%d change.resolved, want 1", len(resolved))
			}
			p := wt.PayloadOf[message.ChangeResolved](t, resolved[0])
			if p.ChangeSetID != in.ID {
				t.Errorf("change set %q, want the root id (the root had an env)", p.ChangeSetID)
			}
			if !sameSet(p.Roots, tt.wantRoots) {
				t.Errorf("roots %v, want %v", p.Roots, tt.wantRoots)
			}
			if !slices.Equal(flatten(p.Waves), p.Affected) || !sameSet(p.Affected, tt.wantAffected) {
				t.Errorf("affected %v (waves %v), want %v", p.Affected, p.Waves, tt.wantAffected)
			}
			if got := components(t, out, message.TypeDeploymentScheduled); !slices.Equal(got, tt.wantScheduled) {
				t.Errorf("scheduled %v, want %v", got, tt.wantScheduled)
			}
			for _, c := range p.RootCauses {
				if c.Kind != message.CauseParameter || c.ID != "/iac/vpc/core/runtime@8" || !slices.Equal(c.Keys, tt.keys) {
					t.Errorf("root cause %+v", c)
				}
			}
			wt.CheckGolden(t, "runtime_"+goldenName(tt.name), out, names(in.ID, "root"))
		})
	}
}

// TestACoalescedRuntimeChangeNamesEveryVersionItCarries: a runtime change that also carries
// earlier versions written by others (ingest's covers) has one root cause per version, oldest
// first, each with the keys that version changed; its scheduled deployments carry them all.
func TestACoalescedRuntimeChangeNamesEveryVersionItCarries(t *testing.T) {
	t.Parallel()
	vpc := message.ComponentRef{Type: "vpc", Nickname: "core"}
	const name = "/iac/vpc/core/runtime"
	p := message.ChangeDetected{ChangeSetID: wt.FixedID(30), Source: message.SourceRuntime, Components: []message.ComponentRef{vpc},
		Parameter: &message.ParameterWrite{Name: name, Version: 8, ModifiedBy: "dee"}, Covers: []message.CoveredVersion{
			{Version: 6, ModifiedBy: "bob", ChangedKeys: []string{"vpc_id"}}, {Version: 7, ModifiedBy: "cy"}},
		ChangedKeys: []string{"private_subnet_ids", "vpc_id"}}
	in := wt.FixedRoot(t, 30, message.TypeChangeDetected, "prod", iamActor, "runtime:"+name+"@8", p)
	wt.Validate(t, in)
	out := newStage(t, wt.ExamplesDir, nil).handle(t, in)
	resolved := wt.ByType(out, message.TypeChangeResolved)
	if len(resolved) != 1 {
		t.Fatalf("%d change.resolved, want 1", len(resolved))
	}
	want := []message.Cause{
		{Kind: message.CauseParameter, ID: name + "@6", Keys: []string{"vpc_id"}},
		{Kind: message.CauseParameter, ID: name + "@7"}, // keys unknown
		{Kind: message.CauseParameter, ID: name + "@8", Keys: []string{"private_subnet_ids", "vpc_id"}},
	}
	if got := wt.PayloadOf[message.ChangeResolved](t, resolved[0]).RootCauses; !reflect.DeepEqual(got, want) {
		t.Errorf("root causes %+v, want %+v", got, want)
	}
	scheduled := wt.ByType(out, message.TypeDeploymentScheduled)
	if len(scheduled) == 0 {
		t.Fatal("nothing scheduled")
	}
	for _, e := range scheduled {
		if got := wt.PayloadOf[message.DeploymentScheduled](t, e).CausedBy; !reflect.DeepEqual(got, want) {
			t.Errorf("%s: causes %+v, want %+v", e.IdempotencyKey, got, want)
		}
	}
}

func TestCycleIsRejected(t *testing.T) {
	t.Parallel()
	repo := wt.WriteRepo(t, map[string]string{
		"karma.json":                      `{"prefix": "/iac", "modules_dir": "components"}`,
		"iac/prod/app/a/config.json":      `{"karma": {"depends_on": ["app/b"]}}`,
		"iac/prod/app/b/config.json":      `{"karma": {"depends_on": ["app/c"]}}`,
		"iac/prod/app/c/config.json":      `{"karma": {"depends_on": ["app/a"]}}`,
		"iac/prod/vpc/core/config.json":   `{"cidr": "10.0.0.0/16"}`,
		"iac/prod/app/other/config.json":  `{"vpc_nickname": "core"}`,
		"iac/_base/vpc/core/config.json":  `{"az_count": 2}`,
		"account_environments/prod.json":  `{"name": "prod", "environment": "prod"}`,
		"components/vpc/main.tf":          `# module`,
		"components/app/main.tf":          `# module`,
		"iac/prod/app/other/README.md":    `not config`,
		"iac/prod/app/a/notes/extra.json": `{}`,
	})
	tests := []struct {
		name  string
		files []string
	}{
		{"commit on the cycle", []string{"iac/prod/app/a/config.json"}},
		{"commit elsewhere in the same env", []string{"iac/prod/vpc/core/config.json"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStage(t, repo, nil)
			in := commitDetected(t, 20+i, sha1, tt.files)
			out := s.handle(t, in)
			if len(out) != 1 || out[0].Type != message.TypeChangeResolved {
				t.Fatalf("got %d messages (%v), want only change.resolved", len(out), types(out))
			}
			p := wt.PayloadOf[message.ChangeResolved](t, out[0])
			if !strings.Contains(p.Rejected, "dependency cycle: prod/app/a -> prod/app/b -> prod/app/c -> prod/app/a") {
				t.Errorf("rejected %q does not name the cycle path", p.Rejected)
			}
			if len(p.Roots) != 0 || len(p.Affected) != 0 || len(p.Waves) != 0 {
				t.Errorf("a rejected change set deploys nothing: roots %v affected %v waves %v", p.Roots, p.Affected, p.Waves)
			}
			cs, err := s.cs.Get(context.Background(), p.ChangeSetID)
			if err != nil || cs.Rejected != p.Rejected || len(cs.Nodes) != 0 {
				t.Errorf("stored change set %+v, %v", cs, err)
			}
			wt.CheckGolden(t, "cycle_"+goldenName(tt.name), out, names(in.ID, "root"))
		})
	}
}

func TestRequestUsesTheProposedConfig(t *testing.T) {
	t.Parallel()
	s := newStage(t, wt.ExamplesDir, nil)
	proposed := `{"cidr":"10.99.0.0/16","az_count":3}`
	p := message.ChangeDetected{ChangeSetID: wt.FixedID(30), Source: message.SourceRequest, Components: []message.ComponentRef{{Type: "vpc", Nickname: "core"}},
		Request: &message.ChangeRequest{ID: "cr-42", Configs: map[string]string{"vpc/core": proposed}}, AutoApprove: true}
	in := wt.FixedRoot(t, 30, message.TypeChangeDetected, "prod", message.Actor{Kind: "cli", Name: "ada"}, "request:cr-42", p)
	out := s.handle(t, in)
	sched := wt.ByType(out, message.TypeDeploymentScheduled)
	if len(sched) != 1 {
		t.Fatalf("scheduled %d, want 1", len(sched))
	}
	// The repository's own config gives another hash.
	res, err := wt.RepoGraphs{Root: wt.ExamplesDir}.Build(context.Background(), "prod", wt.HeadSHA, nil)
	if err != nil {
		t.Fatal(err)
	}
	var repoHash string
	for _, c := range res.Repo.Components {
		if c.ID() == "prod/vpc/core" {
			repoHash = c.Hash
		}
	}
	sp := wt.PayloadOf[message.DeploymentScheduled](t, sched[0])
	if sp.ConfigHash == repoHash || sp.ConfigHash == "" {
		t.Errorf("config hash %s is the repository's: the proposed config was not used", sp.ConfigHash)
	}
	cs, err := s.cs.Get(context.Background(), in.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !cs.AutoApprove || !cs.Approved || cs.ApprovedBy != "auto-approve" {
		t.Errorf("auto-approved change set: %+v", cs)
	}
	if !strings.Contains(string(cs.Nodes["prod/vpc/core"].Config), `"10.99.0.0/16"`) {
		t.Errorf("node config %s lacks the proposal", cs.Nodes["prod/vpc/core"].Config)
	}
	wt.CheckGolden(t, "request_proposed_config", out, names(in.ID, "root"))
}

func TestParameterChangeDeploysTheStoredConfig(t *testing.T) {
	t.Parallel()
	stored := `{"cidr":"10.77.0.0/16","az_count":2}`
	s := newStage(t, wt.ExamplesDir, configs{"prod/vpc/core": stored})
	p := message.ChangeDetected{ChangeSetID: wt.FixedID(31), Source: message.SourceParameter, Components: []message.ComponentRef{{Type: "vpc", Nickname: "core"}},
		Parameter: &message.ParameterWrite{Name: "/iac/vpc/core/config", Version: 12}}
	in := wt.FixedRoot(t, 31, message.TypeChangeDetected, "prod", iamActor, "parameter:/iac/vpc/core/config@12", p)
	out := s.handle(t, in)
	cs, err := s.cs.Get(context.Background(), in.ID)
	if err != nil {
		t.Fatal(err)
	}
	n := cs.Nodes["prod/vpc/core"]
	if string(n.Config) != stored {
		t.Errorf("node config %s, want the parameter's %s", n.Config, stored)
	}
	if _, h := model.Canonical(map[string]any{"cidr": "10.77.0.0/16", "az_count": 2}); n.ConfigHash != h {
		t.Errorf("config hash %s, want the canonical hash of the parameter %s", n.ConfigHash, h)
	}
	wt.CheckGolden(t, "parameter_config", out, names(in.ID, "root"))

	// Unreadable parameter: retried.
	s2 := newStage(t, wt.ExamplesDir, configs{})
	_, action, err := wt.Process(t, s2.q, s2.w.Handle, in)
	if action != pipeline.Retry || !pipeline.IsTransient(err) {
		t.Errorf("unreadable /config: action %v, err %v; want a transient retry", action, err)
	}
}

// A corrective change set (source drift) deploys Git's resolved config at the deploy branch's
// head — never the drifted /config (the ConfigReader is empty) — for the drifted components, its
// root causes are the drift events, and an orphan the commit does not define is a held destroy.
func TestDriftCorrectionDeploysGitsIntent(t *testing.T) {
	t.Parallel()
	s := newStage(t, wt.ExamplesDir, configs{})
	karma := message.Actor{Kind: "karma", Name: "drift check"}
	drifts := []string{"drift-4f1c9e20b7a35d68", "drift-0a1b2c3d4e5f6071"}
	p := message.ChangeDetected{ChangeSetID: wt.FixedID(41), Source: message.SourceDrift, Components: []message.ComponentRef{{Type: "vpc", Nickname: "core"}},
		Removed: []message.ComponentRef{{Type: "s3-bucket", Nickname: "gone"}}, Drift: drifts}
	in := wt.FixedRoot(t, 41, message.TypeChangeDetected, "prod", karma, "drift:"+message.DriftSetKey(drifts), p)
	wt.Validate(t, in)
	out := s.handle(t, in)
	cs, err := s.cs.Get(context.Background(), in.ID)
	if err != nil {
		t.Fatal(err)
	}
	if cs.Commit != wt.HeadSHA || cs.Source != message.SourceDrift {
		t.Errorf("change set commit %s source %s; want the head %s, source drift", cs.Commit, cs.Source, wt.HeadSHA)
	}
	want := []message.Cause{{Kind: message.CauseDrift, ID: drifts[0]}, {Kind: message.CauseDrift, ID: drifts[1]}}
	if !slices.EqualFunc(cs.RootCauses, want, func(a, b message.Cause) bool { return a.Kind == b.Kind && a.ID == b.ID }) {
		t.Errorf("root causes %+v, want the drift events %+v", cs.RootCauses, want)
	}
	vpc := cs.Nodes["prod/vpc/core"]
	res, err := (wt.RepoGraphs{Root: wt.ExamplesDir}).Build(context.Background(), "prod", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	gi, _ := res.Graph.Index("prod/vpc/core")
	if vpc == nil || !vpc.Root || vpc.ConfigHash != res.Graph.Components[gi].ConfigHash {
		t.Errorf("prod/vpc/core node %+v: want a root deploying the config of the commit", vpc)
	}
	if got := components(t, out, message.TypeDeploymentScheduled); !slices.Equal(got, []string{"prod/vpc/core"}) {
		t.Errorf("scheduled %v, want prod/vpc/core", got)
	}
	skipped := wt.ByType(out, message.TypeDeploymentSkipped)
	if len(skipped) != 1 || wt.PayloadOf[message.DeploymentSkipped](t, skipped[0]).Reason != changeset.ReasonDestroyHeld {
		t.Errorf("the orphan: %d skipped, want one held destroy", len(skipped))
	}
	sched := wt.PayloadOf[message.DeploymentScheduled](t, wt.ByType(out, message.TypeDeploymentScheduled)[0])
	if len(sched.CausedBy) != 2 || sched.CausedBy[0].Kind != message.CauseDrift {
		t.Errorf("deployment caused by %+v, want the drift events", sched.CausedBy)
	}
}

func TestChangeDetectedV1IsUpcast(t *testing.T) {
	t.Parallel()
	s := newStage(t, wt.ExamplesDir, configs{"prod/vpc/core": `{"cidr":"10.0.0.0/16"}`})
	v1 := message.ChangeDetectedV1{Source: message.SourceParameter, Component: message.ComponentRef{Type: "vpc", Nickname: "core"},
		Parameter: &message.ParameterVersion{Name: "/iac/vpc/core/config", Version: 3}}
	in := wt.FixedRoot(t, 32, message.TypeChangeDetected, "prod", iamActor, "parameter:/iac/vpc/core/config@3", v1)
	in.Version = 1
	wt.Validate(t, in)
	out := s.handle(t, in)
	if got := components(t, out, message.TypeDeploymentScheduled); !slices.Equal(got, []string{"prod/vpc/core"}) {
		t.Errorf("scheduled %v", got)
	}
	if _, err := s.cs.Get(context.Background(), in.CorrelationID); err != nil {
		t.Errorf("change set id of an upcast v1 must be its correlation id: %v", err)
	}
}

func TestDeploymentOutcomesDecideDependents(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		keys          []string
		wantScheduled []string
		wantSkipped   []string
	}{
		{"vpc_id changed", []string{"vpc_id"}, []string{"prod/ecs-cluster/core"},
			[]string{"prod/lambda/handlers", "prod/serverless-api/public", "prod/serverless-site/www"}},
		// ecs-service/api reads private_subnet_ids itself: once ecs-cluster/core is skipped, it is scheduled.
		{"private_subnet_ids changed", []string{"private_subnet_ids"}, []string{"prod/lambda/handlers", "prod/ecs-service/api"},
			[]string{"prod/ecs-cluster/core"}},
		{"only flow_log_group changed", []string{"flow_log_group"}, nil,
			[]string{"prod/ecs-cluster/core", "prod/lambda/handlers", "prod/ecs-service/api", "prod/serverless-api/public", "prod/serverless-site/www"}},
		{"nothing changed", []string{}, nil,
			[]string{"prod/ecs-cluster/core", "prod/lambda/handlers", "prod/ecs-service/api", "prod/serverless-api/public", "prod/serverless-site/www"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStage(t, wt.ExamplesDir, nil)
			root := commitDetected(t, 40+i, sha1, []string{"iac/prod/vpc/core/config.json"})
			s.handle(t, root)
			csID := root.ID + "/prod"
			in := applied(t, root, 100, "prod", csID, "prod/vpc/core", tt.keys)
			out := s.handle(t, in)
			if len(wt.ByType(out, message.TypeChangeResolved)) != 0 {
				t.Error("change.resolved is announced once, at the start")
			}
			if got := components(t, out, message.TypeDeploymentScheduled); !slices.Equal(got, tt.wantScheduled) {
				t.Errorf("scheduled %v, want %v", got, tt.wantScheduled)
			}
			if got := components(t, out, message.TypeDeploymentSkipped); !slices.Equal(got, tt.wantSkipped) {
				t.Errorf("skipped %v, want %v", got, tt.wantSkipped)
			}
			vpcDep := changeset.DeploymentID(csID, "prod/vpc/core")
			for _, m := range wt.ByType(out, message.TypeDeploymentScheduled) {
				p := wt.PayloadOf[message.DeploymentScheduled](t, m)
				if len(p.CausedBy) != 1 || p.CausedBy[0].Kind != message.CauseDeployment || p.CausedBy[0].ID != vpcDep || len(p.CausedBy[0].Keys) == 0 {
					t.Errorf("%s caused by %+v, want the vpc deployment and the keys it consumes", p.Component, p.CausedBy)
				}
			}
			for _, m := range wt.ByType(out, message.TypeDeploymentSkipped) {
				if p := wt.PayloadOf[message.DeploymentSkipped](t, m); p.Reason != changeset.ReasonNoConsumedKey {
					t.Errorf("%s skipped for %q", p.Component, p.Reason)
				}
			}
			wt.CheckGolden(t, "applied_"+goldenName(tt.name), out, names(root.ID, "root", in.ID, "applied"))
		})
	}
}

func TestFailureBlocksDependents(t *testing.T) {
	t.Parallel()
	s := newStage(t, wt.ExamplesDir, nil)
	root := commitDetected(t, 50, sha1, []string{"iac/prod/vpc/core/config.json"})
	s.handle(t, root)
	csID := root.ID + "/prod"
	a := applied(t, root, 101, "prod", csID, "prod/vpc/core", []string{"vpc_id"})
	s.handle(t, a)
	f := failed(t, root, 102, "prod", csID, "prod/ecs-cluster/core")
	out := s.handle(t, f)
	if len(out) != 1 || out[0].Type != message.TypeDeploymentSkipped {
		t.Fatalf("got %v, want one deployment.skipped", types(out))
	}
	p := wt.PayloadOf[message.DeploymentSkipped](t, out[0])
	if p.Component != "prod/ecs-service/api" || p.Reason != changeset.ReasonUpstreamFailed || !strings.Contains(p.Detail, "prod/ecs-cluster/core") {
		t.Errorf("skipped %+v, want ecs-service/api blocked by ecs-cluster/core", p)
	}
	cs, err := s.cs.Get(context.Background(), csID)
	if err != nil {
		t.Fatal(err)
	}
	if !cs.Done() || cs.Nodes["prod/ecs-service/api"].State != changeset.Blocked || cs.Nodes["prod/ecs-cluster/core"].State != changeset.Failed {
		t.Errorf("change set not settled as expected: done %v", cs.Done())
	}
	if got := cs.FailedComponents(); !slices.Equal(got, []string{"prod/ecs-cluster/core"}) {
		t.Errorf("failed components %v", got)
	}
	wt.CheckGolden(t, "failed_blocks_dependents", out, names(root.ID, "root", f.ID, "failed"))

	// A failure of a root with no dependents in the set decides nothing more.
	root2 := commitDetected(t, 51, sha2, []string{"iac/prod/route53-zone/main/config.json"})
	s.handle(t, root2)
	// route53-zone/main's dependents (serverless-api, serverless-site) are in the set: both blocked.
	out = s.handle(t, failed(t, root2, 103, "prod", root2.ID+"/prod", "prod/route53-zone/main"))
	if got := components(t, out, message.TypeDeploymentSkipped); !slices.Equal(got, []string{"prod/serverless-api/public", "prod/serverless-site/www"}) {
		t.Errorf("blocked %v", got)
	}
}

func TestRedeliveredChangeDetected(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("after its decisions were announced", func(t *testing.T) {
		t.Parallel()
		s := newStage(t, wt.ExamplesDir, nil)
		in := commitDetected(t, 60, sha1, []string{"iac/_base/vpc/core/config.json"})
		first := s.handle(t, in)
		again := s.handle(t, in)
		if got := types(again); !slices.Equal(got, []string{message.TypeChangeResolved, message.TypeChangeResolved}) {
			t.Errorf("redelivery produced %v, want only the change.resolved of each env (decisions already announced)", got)
		}
		for i, r := range wt.ByType(again, message.TypeChangeResolved) {
			if r.IdempotencyKey != wt.ByType(first, message.TypeChangeResolved)[i].IdempotencyKey ||
				string(r.Payload) != string(wt.ByType(first, message.TypeChangeResolved)[i].Payload) {
				t.Errorf("re-announced change.resolved differs from the first")
			}
		}
		if all, err := s.cs.List(ctx); err != nil || len(all) != 2 {
			t.Errorf("%d change sets, want 2 (one per env, not one per delivery): %v", len(all), err)
		}
	})

	t.Run("before its decisions were marked announced", func(t *testing.T) {
		t.Parallel()
		s := newStage(t, wt.ExamplesDir, nil)
		in := commitDetected(t, 61, sha1, []string{"iac/prod/vpc/core/config.json"})
		// Outside the runtime nothing is marked announced: as if the process died after handling.
		first, err := s.w.Handle(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		wt.ValidateAll(t, first)
		again, err := s.w.Handle(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(types(first), types(again)) || len(first) != 2 {
			t.Fatalf("first %v, again %v: the unannounced decision must be announced again", types(first), types(again))
		}
		for i := range first {
			if first[i].IdempotencyKey != again[i].IdempotencyKey || string(first[i].Payload) != string(again[i].Payload) {
				t.Errorf("%s re-announced differently:\n%s\n%s", first[i].Type, first[i].Payload, again[i].Payload)
			}
		}
		// Now through the runtime: announced and marked, then only change.resolved again.
		s.handle(t, in)
		if got := types(s.handle(t, in)); !slices.Equal(got, []string{message.TypeChangeResolved}) {
			t.Errorf("after announcing: %v", got)
		}
		if all, _ := s.cs.List(ctx); len(all) != 1 {
			t.Errorf("%d change sets, want 1", len(all))
		}
	})

	t.Run("redelivered outcome decides nothing twice", func(t *testing.T) {
		t.Parallel()
		s := newStage(t, wt.ExamplesDir, nil)
		root := commitDetected(t, 62, sha1, []string{"iac/prod/vpc/core/config.json"})
		s.handle(t, root)
		a := applied(t, root, 104, "prod", root.ID+"/prod", "prod/vpc/core", []string{"vpc_id"})
		first, err := s.w.Handle(ctx, a) // not marked announced
		if err != nil {
			t.Fatal(err)
		}
		again := s.handle(t, a) // redelivery through the runtime: same decisions, now marked
		if !slices.Equal(types(first), types(again)) {
			t.Fatalf("first %v, again %v", types(first), types(again))
		}
		for i := range first {
			if first[i].IdempotencyKey != again[i].IdempotencyKey || string(first[i].Payload) != string(again[i].Payload) {
				t.Errorf("decision changed on redelivery:\n%s\n%s", first[i].Payload, again[i].Payload)
			}
		}
		if third := s.handle(t, a); len(third) != 0 {
			t.Errorf("third delivery produced %v, want nothing", types(third))
		}
		// An outcome arriving after its node settled changes nothing.
		if out := s.handle(t, failed(t, root, 105, "prod", root.ID+"/prod", "prod/vpc/core")); len(out) != 0 {
			t.Errorf("a late failure of an applied node produced %v", types(out))
		}
	})
}

func TestResolveErrors(t *testing.T) {
	t.Parallel()
	s := newStage(t, wt.ExamplesDir, nil)
	root := commitDetected(t, 70, sha1, []string{"iac/prod/vpc/core/config.json"})
	unknown := message.ChangeDetected{ChangeSetID: wt.FixedID(71), Source: message.SourceRequest, Components: []message.ComponentRef{{Type: "vpc", Nickname: "nowhere"}},
		Request: &message.ChangeRequest{ID: "cr-x", Configs: map[string]string{"vpc/nowhere": `{}`}}}
	badPayload := root
	badPayload.Payload = []byte(`{"change_set_id":"` + root.ID + `","source":"git","components":[],"commit":{"sha":"` + sha1 + `","author":"a"},"auto_approve":false,"surprise":1}`)
	recorded := wt.FixedDerive(t, root, 72, message.TypeDeploymentRecorded, "deployment.recorded:dep-0000000000000001", message.DeploymentRecorded{})
	tests := []struct {
		name string
		in   message.Envelope
		want pipeline.Action
	}{
		{"request for an undefined component", wt.FixedRoot(t, 71, message.TypeChangeDetected, "prod", message.Actor{Kind: "cli", Name: "ada"}, "request:cr-x", unknown), pipeline.DeadLetter},
		{"payload with an unknown field", badPayload, pipeline.DeadLetter},
		{"a type resolve does not consume", recorded, pipeline.DeadLetter},
		// Not acknowledged; retried until dead-lettered (Classify sorts unknown errors as retry).
		{"outcome of an unknown change set", applied(t, root, 106, "prod", wt.FixedID(999)+"/prod", "prod/vpc/core", []string{"vpc_id"}), pipeline.Retry},
		{"outcome of a component outside the change set", func() message.Envelope {
			s.handle(t, root)
			return applied(t, root, 107, "prod", root.ID+"/prod", "prod/s3-bucket/assets", nil)
		}(), pipeline.Retry},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, action, err := wt.Process(t, s.q, s.w.Handle, tt.in)
			if action != tt.want || err == nil {
				t.Errorf("action %v (%v), want %v", action, err, tt.want)
			}
			if len(out) != 0 {
				t.Errorf("outputs %v with an error", types(out))
			}
		})
	}
	if _, err := s.w.Handle(context.Background(), recorded); !errors.As(err, new(*pipeline.PermanentError)) {
		t.Errorf("unexpected type: %v, want a permanent error", err)
	}
}

func types(msgs []message.Envelope) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, m.Type)
	}
	return out
}

func flatten(waves [][]string) []string {
	out := []string{}
	for _, w := range waves {
		out = append(out, w...)
	}
	return out
}

func sameSet(a, b []string) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

func goldenName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	return string(b)
}

// A commit removing prod's config.json and editing a dev file concerns both envs; the removal
// is prod's only. message.ChangeDetected.Removed carries no env (a git change.detected has
// none), so resolve must tell by the removed file's path (in Files) which env it belongs to.
func TestRemovalConcernsOnlyItsEnv(t *testing.T) {
	t.Parallel()
	repo := wt.WriteRepo(t, map[string]string{
		"karma.json":                    `{"prefix": "/iac", "modules_dir": "components"}`,
		"iac/prod/vpc/core/config.json": `{"cidr": "10.0.0.0/16"}`,
		"iac/dev/vpc/core/config.json":  `{"cidr": "10.1.0.0/16"}`,
	})
	s := newStage(t, repo, nil)
	in := commitDetected(t, 80, sha2, []string{"iac/dev/vpc/core/config.json", "iac/prod/route53-zone/main/config.json"},
		message.ComponentRef{Type: "route53-zone", Nickname: "main"})
	out := s.handle(t, in)
	for _, m := range wt.ByType(out, message.TypeDeploymentSkipped) {
		if p := wt.PayloadOf[message.DeploymentSkipped](t, m); p.Component != "prod/route53-zone/main" {
			t.Errorf("%s %s: %s was never removed (nor defined) in %s", p.Reason, p.Component, p.Component, m.Env)
		}
	}
	cs, err := s.cs.Get(context.Background(), in.ID+"/dev")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cs.Nodes["dev/route53-zone/main"]; ok {
		t.Error("the dev change set holds a destroy of dev/route53-zone/main")
	}
}

// storeConfigs is a ConfigReader over a parameter store (as shared/app's): versions included.
type storeConfigs struct{ st params.Store }

func (c storeConfigs) Config(ctx context.Context, env, component string, version int64, writtenAt time.Time) ([]byte, error) {
	parts := strings.SplitN(component, "/", 3)
	p, err := params.GetWritten(ctx, c.st, model.ConfigParam("/iac", parts[1], parts[2]), version, writtenAt)
	return []byte(p.Value), err
}

// A parameter change deploys the version it names, not one written after it (which is a change
// of its own); a version no longer kept is a permanent failure, not a retry.
func TestParameterChangeDeploysTheVersionItNames(t *testing.T) {
	t.Parallel()
	s := newStage(t, wt.ExamplesDir, nil)
	ps, err := embedded.NewParamStore(wt.NewDB(t), "prod")
	if err != nil {
		t.Fatal(err)
	}
	s.w.Configs = storeConfigs{ps}
	for _, v := range []string{`{"cidr":"10.5.0.0/16","az_count":2}`, `{"cidr":"10.6.0.0/16","az_count":2}`} {
		if _, err := ps.Put(context.Background(), params.PutInput{Name: "/iac/vpc/core/config", Value: v}); err != nil {
			t.Fatal(err)
		}
	}
	detected := func(n int, version int64) message.Envelope {
		p := message.ChangeDetected{ChangeSetID: wt.FixedID(n), Source: message.SourceParameter, Components: []message.ComponentRef{{Type: "vpc", Nickname: "core"}},
			Parameter: &message.ParameterWrite{Name: "/iac/vpc/core/config", Version: version}}
		return wt.FixedRoot(t, n, message.TypeChangeDetected, "prod", iamActor, fmt.Sprintf("parameter:/iac/vpc/core/config@%d", version), p)
	}
	in := detected(41, 1)
	s.handle(t, in)
	cs, err := s.cs.Get(context.Background(), in.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(cs.Nodes["prod/vpc/core"].Config); got != `{"cidr":"10.5.0.0/16","az_count":2}` {
		t.Errorf("the change of version 1 deploys %s, want version 1's config", got)
	}
	if _, action, err := wt.Process(t, s.q, s.w.Handle, detected(42, 9)); action != pipeline.DeadLetter || !errors.Is(err, params.ErrVersionGone) {
		t.Errorf("a version no longer kept: action %v, err %v; want a dead letter", action, err)
	}
}
