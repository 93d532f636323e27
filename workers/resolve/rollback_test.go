package resolve_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	wt "github.com/usekarma/karma/workers/internal/workertest"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/graph"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/model"
)

// commitGraphs is a repository with a history: a folder per commit, the head being wt.HeadSHA.
type commitGraphs map[string]string

func (g commitGraphs) repo(commit string) wt.RepoGraphs { return wt.RepoGraphs{Root: g[commit]} }

func (g commitGraphs) Build(ctx context.Context, env, commit string, overrides map[string][]byte) (*model.Result, error) {
	return g.repo(commit).Build(ctx, env, commit, overrides)
}
func (g commitGraphs) Environments(ctx context.Context, commit string) ([]string, error) {
	return g.repo(commit).Environments(ctx, commit)
}
func (g commitGraphs) SettingsAt(ctx context.Context, commit string) (model.Settings, error) {
	return g.repo(commit).SettingsAt(ctx, commit)
}

// deployedAt stores a change set of commit whose prod/<component> applied config, and returns
// its deployment id.
func deployedAt(t *testing.T, s *stageEnv, commit, component string, config string, state string) string {
	t.Helper()
	id := "cs-" + commit[:8]
	_, hash := model.Canonical(decodeJSON(t, config))
	n := &changeset.Node{Component: component, Root: true, State: state, DeploymentID: changeset.DeploymentID(id, component),
		Config: json.RawMessage(config), ConfigHash: hash}
	if state == changeset.Applied {
		n.Outcome = &changeset.Outcome{RuntimeVersion: 1, Config: n.Config}
	}
	cs := &changeset.ChangeSet{ID: id, Env: "prod", Commit: commit, Source: message.SourceGit, CreatedAt: wt.FixedTime,
		Nodes: map[string]*changeset.Node{component: n}, Waves: [][]string{{component}}}
	if _, err := s.cs.Create(context.Background(), cs); err != nil {
		t.Fatal(err)
	}
	return n.DeploymentID
}

func decodeJSON(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// rollbackDetected is karma rollback's change.detected for dep of prod/<ref>.
func rollbackDetected(t *testing.T, s *stageEnv, n int, dep string, ref message.ComponentRef) message.Envelope {
	t.Helper()
	all := changeSets(t, s)
	var r *message.Rollback
	for _, cs := range all {
		for _, node := range cs.Nodes {
			if node.DeploymentID == dep {
				r = &message.Rollback{DeploymentID: dep, ChangeSetID: cs.ID, Commit: cs.Commit, ConfigHash: node.ConfigHash}
			}
		}
	}
	p := message.ChangeDetected{ChangeSetID: wt.FixedID(n), Source: message.SourceRollback, Components: []message.ComponentRef{ref},
		Rollback: r}
	e := wt.FixedRoot(t, n, message.TypeChangeDetected, "prod", message.Actor{Kind: "cli", Name: "grace"}, "rollback:"+wt.FixedID(n), p)
	wt.Validate(t, e)
	return e
}

// A rollback's root deploys the target's config with its commit's module; its dependents are
// those of the head's graph, decided as usual once it applies.
func TestRollbackDeploysTheTargetsConfigAndCommit(t *testing.T) {
	t.Parallel()
	s := newStage(t, wt.ExamplesDir, nil)
	old := `{"az_count":2,"cidr":"10.20.0.0/16"}`
	dep := deployedAt(t, s, sha1, "prod/vpc/core", old, changeset.Applied)
	in := rollbackDetected(t, s, 200, dep, message.ComponentRef{Type: "vpc", Nickname: "core"})
	out := s.handle(t, in)
	wt.CheckGolden(t, "rollback_to_an_earlier_deployment", out, names(in.ID, "root"))
	r := wt.PayloadOf[message.ChangeResolved](t, wt.ByType(out, message.TypeChangeResolved)[0])
	if r.Rejected != "" || r.Commit != wt.HeadSHA || !slices.Equal(r.Roots, []string{"prod/vpc/core"}) || len(r.Affected) != 6 {
		t.Fatalf("resolved %+v: want built at the head, rooted at vpc/core with its dependents", r)
	}
	cs, err := s.cs.Get(context.Background(), in.ID)
	if err != nil {
		t.Fatal(err)
	}
	n := cs.Nodes["prod/vpc/core"]
	if string(n.Config) != old || n.Commit != sha1 || cs.ModuleCommit("prod/vpc/core") != sha1 || cs.ModuleCommit("prod/ecs-cluster/core") != wt.HeadSHA {
		t.Errorf("root config %s commit %q; want the target's config and commit (dependents at head)", n.Config, n.Commit)
	}
	head, err := s.w.Graphs.Build(context.Background(), "prod", wt.HeadSHA, nil)
	if err != nil {
		t.Fatal(err)
	}
	if gc := head.Graph.Components[mustIndex(t, head.Graph, "prod/vpc/core")]; n.GitConfigHash != gc.ConfigHash || n.GitConfigHash == n.ConfigHash {
		t.Errorf("root's Git config hash %q, want the head's %q (what the drift check compares with; the rolled-back config's is %q)", n.GitConfigHash, gc.ConfigHash, n.ConfigHash)
	}
	if len(n.Causes) != 1 || n.Causes[0].Kind != message.CauseRollback || n.Causes[0].ID != dep || cs.Rollback == nil || cs.Rollback.DeploymentID != dep {
		t.Errorf("causes %+v, rollback %+v", n.Causes, cs.Rollback)
	}
	// The dependents follow as usual: ecs-service/api consumes private_subnet_ids.
	next := s.handle(t, applied(t, in, 201, "prod", in.ID, "prod/vpc/core", []string{"private_subnet_ids"}))
	if got := components(t, next, message.TypeDeploymentScheduled); !slices.Equal(got, []string{"prod/lambda/handlers", "prod/ecs-service/api"}) {
		t.Errorf("scheduled after the rollback's apply: %v", got)
	}
}

// What can no longer be applied is rejected with its reasons, nothing scheduled.
func TestRollbackRefusals(t *testing.T) {
	t.Parallel()
	vpcSchema := `{"type": "object", "properties": {"az_count": {"type": "integer", "minimum": 4}}}`
	tests := []struct {
		name      string
		atTarget  map[string]string // the target commit's repository
		atHead    map[string]string
		component string
		config    string
		state     string
		want      string
	}{
		{
			name:      "the schema at head refuses the config",
			atTarget:  map[string]string{"iac/prod/vpc/core/config.json": `{"az_count": 3}`},
			atHead:    map[string]string{"iac/prod/vpc/core/config.json": `{"az_count": 4}`, "components/vpc/config.schema.json": vpcSchema},
			component: "prod/vpc/core", config: `{"az_count":3}`, state: changeset.Applied,
			want: "its config no longer validates against the schema of vpc at the head commit 0123456789ab: ",
		},
		{
			name: "an upstream no longer exists",
			atTarget: map[string]string{"iac/prod/app/web/config.json": `{"db_nickname": "main"}`,
				"iac/prod/db/main/config.json": `{}`},
			atHead:    map[string]string{"iac/prod/app/web/config.json": `{}`},
			component: "prod/app/web", config: `{"db_nickname":"main"}`, state: changeset.Applied,
			want: "its config (commit 512423cb3a48) references prod/db/main, which is no longer defined at the head commit 0123456789ab",
		},
		{
			name:      "the component no longer exists",
			atTarget:  map[string]string{"iac/prod/vpc/core/config.json": `{}`},
			atHead:    map[string]string{"iac/prod/vpc/other/config.json": `{}`},
			component: "prod/vpc/core", config: `{}`, state: changeset.Applied,
			want: "prod/vpc/core is no longer defined at the head commit 0123456789ab (its config.json was removed)",
		},
		{
			name:      "the deployment never applied",
			atTarget:  map[string]string{"iac/prod/vpc/core/config.json": `{}`},
			atHead:    map[string]string{"iac/prod/vpc/core/config.json": `{}`},
			component: "prod/vpc/core", config: `{}`, state: changeset.Failed,
			want: "it never applied (it is failed",
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			settings := map[string]string{"karma.json": `{"prefix": "/iac", "modules_dir": "components"}`}
			graphs := commitGraphs{sha1: wt.WriteRepo(t, merged(settings, tt.atTarget)), wt.HeadSHA: wt.WriteRepo(t, merged(settings, tt.atHead))}
			s := newStage(t, graphs[wt.HeadSHA], nil)
			s.w.Graphs = graphs
			dep := deployedAt(t, s, sha1, tt.component, tt.config, tt.state)
			parts := strings.Split(tt.component, "/")
			in := rollbackDetected(t, s, 210+i, dep, message.ComponentRef{Type: parts[1], Nickname: parts[2]})
			out := s.handle(t, in)
			if len(out) != 1 || out[0].Type != message.TypeChangeResolved {
				t.Fatalf("got %v, want only change.resolved", types(out))
			}
			if r := wt.PayloadOf[message.ChangeResolved](t, out[0]); !strings.Contains(r.Rejected, tt.want) || !strings.Contains(r.Rejected, dep) {
				t.Errorf("rejected %q, want it to name %s and say %q", r.Rejected, dep, tt.want)
			}
		})
	}
}

func merged(maps ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range maps {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func mustIndex(t *testing.T, g *graph.Graph, id string) int32 {
	t.Helper()
	v, ok := g.Index(id)
	if !ok {
		t.Fatalf("%s is not in the graph", id)
	}
	return v
}
