package resolve_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	wt "github.com/usekarma/karma/workers/internal/workertest"

	"github.com/usekarma/karma/shared/audit"
	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/lineage"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/policy"
	"github.com/usekarma/karma/shared/terraform"
	"github.com/usekarma/karma/shared/trigger"
	"github.com/usekarma/karma/workers/apply"
	auditw "github.com/usekarma/karma/workers/audit"
	"github.com/usekarma/karma/workers/graphwrite"
	"github.com/usekarma/karma/workers/ingest"
	"github.com/usekarma/karma/workers/plan"
	"github.com/usekarma/karma/workers/resolve"
)

// chain is the whole pipeline on one embedded state file, wired as cmd/karma's stack.workers
// wires it, with terraform.Noop.
type chain struct {
	q          *embedded.Queue
	changeSets *embedded.ChangeSets
	lineage    *embedded.Lineage
	audit      *embedded.AuditLog
	runner     *pipeline.Runner
	resolver   *resolve.Worker
	tf         *countingTF

	mu       sync.Mutex
	stores   map[string]*embedded.ParamStore
	db       *embedded.DB
	observed []observation
}

type observation struct {
	stage  string
	in     message.Envelope
	out    []message.Envelope
	action pipeline.Action
	err    error
}

// countingTF counts applies per component.
type countingTF struct {
	terraform.Noop
	mu      sync.Mutex
	applies map[string]int
}

func (c *countingTF) Apply(ctx context.Context, ws terraform.Workspace, p terraform.PlanResult) (terraform.Outputs, error) {
	out, err := c.Noop.Apply(ctx, ws, p)
	if err == nil {
		c.mu.Lock()
		c.applies[ws.ID()]++
		c.mu.Unlock()
	}
	return out, err
}

func (c *chain) params(env string) (params.Store, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.stores[env]; ok {
		return st, nil
	}
	st, err := embedded.NewParamStore(c.db, env)
	if err != nil {
		return nil, err
	}
	c.stores[env] = st
	return st, nil
}

// paramConfigs reads a component's /config parameter (cmd/karma's paramConfigs).
type paramConfigs struct{ c *chain }

func (p paramConfigs) Config(ctx context.Context, env, component string, version int64, writtenAt time.Time) ([]byte, error) {
	st, err := p.c.params(env)
	if err != nil {
		return nil, err
	}
	parts := strings.SplitN(component, "/", 3)
	if len(parts) != 3 {
		return nil, fmt.Errorf("bad component id %q", component)
	}
	v, err := params.GetWritten(ctx, st, model.ConfigParam("/iac", parts[1], parts[2]), version, writtenAt)
	if err != nil {
		return nil, err
	}
	return []byte(v.Value), nil
}

// pushedCommit is the git.pushed of push (modules under components/), as the webhook publishes
// it: published, the ingest stage makes it the change roots[0].CorrelationID.
func pushedCommit(push trigger.Push) ([]message.Envelope, error) {
	e, err := trigger.GitPushed(push, "components", "")
	if err != nil {
		return nil, err
	}
	return []message.Envelope{e}, nil
}

// history reads a parameter's versions from the chain's stores (ingest.ParameterReader).
type history struct{ c *chain }

func (h history) History(ctx context.Context, env, name string) ([]params.Parameter, error) {
	st, err := h.c.params(env)
	if err != nil {
		return nil, err
	}
	return st.(params.Historian).History(ctx, name)
}

func newChain(t *testing.T) *chain {
	t.Helper()
	return newChainAt(t, wt.ExamplesDir)
}

// newChainAt is newChain over the config repository in root.
func newChainAt(t *testing.T, root string) *chain {
	t.Helper()
	return newChainWith(t, root, nil)
}

// newChainWith is newChainAt with policies (nil: none) in resolve and apply.
func newChainWith(t *testing.T, root string, pol policy.Evaluator) *chain {
	t.Helper()
	ctx := context.Background()
	db := wt.NewDB(t)
	c := &chain{db: db, stores: map[string]*embedded.ParamStore{}, tf: &countingTF{applies: map[string]int{}}}
	var err error
	if c.q, err = embedded.NewQueue(ctx, db, embedded.QueueOptions{}); err != nil {
		t.Fatal(err)
	}
	if c.changeSets, err = embedded.NewChangeSets(ctx, db); err != nil {
		t.Fatal(err)
	}
	if c.lineage, err = embedded.NewLineage(ctx, db); err != nil {
		t.Fatal(err)
	}
	if c.audit, err = embedded.NewAuditLog(ctx, db); err != nil {
		t.Fatal(err)
	}
	seen, err := embedded.NewSeen(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	gs, err := embedded.NewGraphStore(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	graphs := wt.RepoGraphs{Root: root, Params: func(env string) params.Store {
		st, err := c.params(env)
		if err != nil {
			t.Error(err)
			return nil
		}
		return st
	}}
	ws := terraform.Workspaces{WorkDir: filepath.Join(t.TempDir(), "work"), Modules: terraform.StaticModules(filepath.Join(root, "components")), Prefix: "/iac"}
	c.resolver = &resolve.Worker{Graphs: graphs, Commits: graphs, ChangeSets: c.changeSets, Configs: paramConfigs{c}, Policies: pol}
	const visibility = 10 * time.Minute
	stage := func(name string, h pipeline.Handler, workers int) pipeline.Stage {
		return pipeline.Stage{Name: name, Workers: workers, Handler: pipeline.Chain(h,
			pipeline.Logging(wt.QuietLog, name), pipeline.Correlation(), pipeline.Idempotency(seen, name, visibility), pipeline.RetryTransient(2*time.Second))}
	}
	c.runner = &pipeline.Runner{Queue: c.q, Log: wt.QuietLog, Visibility: visibility, Observe: c.observe, Stages: []pipeline.Stage{
		stage(pipeline.StageIngest, (&ingest.Worker{Parameters: history{c}, Prefix: "/iac", Records: seen, Seen: seen}).Handle, 1),
		stage(pipeline.StageResolve, c.resolver.Handle, 1),
		stage(pipeline.StageGraphWrite, (&graphwrite.Worker{Graphs: graphs, Store: gs, Lineage: c.lineage}).Handle, 1),
		stage(pipeline.StagePlan, (&plan.Worker{ChangeSets: c.changeSets, Params: c.params, Runner: c.tf, Workspaces: ws}).Handle, 2),
		stage(pipeline.StageApply, (&apply.Worker{ChangeSets: c.changeSets, Params: c.params, Runner: c.tf, Workspaces: ws, Policies: pol}).Handle, 2),
		stage(pipeline.StageAudit, (&auditw.Worker{Log: c.audit}).Handle, 1),
	}}
	return c
}

func (c *chain) observe(stage string, in message.Envelope, out []message.Envelope, action pipeline.Action, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.observed = append(c.observed, observation{stage, in, out, action, err})
}

var stageNames = []string{pipeline.StageIngest, pipeline.StageResolve, pipeline.StageGraphWrite, pipeline.StagePlan, pipeline.StageApply, pipeline.StageAudit}

// runUntilIdle runs every stage until no queue holds a message and nothing is in flight.
func (c *chain) runUntilIdle(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { c.runner.Run(runCtx); close(done) }()
	defer func() { stop(); <-done }()
	quiet := 0
	for quiet < 3 {
		select {
		case <-ctx.Done():
			t.Fatal("pipeline still busy after 60s")
		case <-time.After(30 * time.Millisecond):
		}
		busy := c.runner.InFlight() > 0
		for _, name := range stageNames {
			n, err := c.q.Depth(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			busy = busy || n > 0
		}
		if busy {
			quiet = 0
		} else {
			quiet++
		}
	}
}

// approve approves a change set as `karma apply` and the API do (changeset.Approve) and
// publishes what it releases.
func (c *chain) approve(t *testing.T, id, by string) {
	t.Helper()
	ctx := context.Background()
	a, err := changeset.Approve(ctx, c.changeSets, id, by)
	if err != nil {
		t.Fatal(err)
	}
	wt.ValidateAll(t, a.Messages)
	if err := pipeline.Publish(ctx, c.q, a.Messages...); err != nil {
		t.Fatal(err)
	}
}

// A commit on the vpc base layer, from ingest to audit: dev redeploys vpc -> ecs-cluster ->
// ecs-service (their references consume every key); in prod only vpc/core is deployed, as
// Noop's runtime has none of the keys prod's dependents consume.
func TestWholeChain(t *testing.T) {
	t.Parallel()
	for _, auto := range []bool{true, false} {
		t.Run(fmt.Sprintf("auto-approve=%v", auto), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			c := newChain(t)
			pushed, err := trigger.GitPushed(trigger.Push{SHA: sha1, Author: gitActor.Name, Message: "vpc: enable SSM endpoints",
				Branch: "main", AutoApprove: auto, Files: []trigger.FileChange{{Path: "iac/_base/vpc/core/config.json"}, {Path: "README.md"}}}, "components", "")
			if err != nil {
				t.Fatalf("trigger: %v", err)
			}
			wt.Validate(t, pushed)
			if err := pipeline.Publish(ctx, c.q, pushed); err != nil {
				t.Fatal(err)
			}
			c.runUntilIdle(t)
			change := pushed.CorrelationID // the ingest stage's change.detected
			devID, prodID := change+"/dev", change+"/prod"
			if !auto {
				for _, id := range []string{devID, prodID} {
					cs, err := c.changeSets.Get(ctx, id)
					if err != nil {
						t.Fatal(err)
					}
					n := cs.Nodes[cs.Env+"/vpc/core"]
					if n.State != changeset.Planned || n.Plan == nil {
						t.Fatalf("%s: vpc/core %s, want planned and held for review", id, n.State)
					}
				}
				if len(c.tf.applies) != 0 {
					t.Fatalf("applied before approval: %v", c.tf.applies)
				}
				c.approve(t, devID, "bob")
				c.approve(t, prodID, "bob")
				c.runUntilIdle(t)
			}

			want := map[string]map[string]string{
				devID: {"dev/vpc/core": changeset.Applied, "dev/ecs-cluster/core": changeset.Applied, "dev/ecs-service/api": changeset.Applied},
				prodID: {"prod/vpc/core": changeset.Applied, "prod/ecs-cluster/core": changeset.Skipped, "prod/lambda/handlers": changeset.Skipped,
					"prod/ecs-service/api": changeset.Skipped, "prod/serverless-api/public": changeset.Skipped, "prod/serverless-site/www": changeset.Skipped},
			}
			for id, states := range want {
				cs, err := c.changeSets.Get(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if !cs.Done() {
					t.Errorf("%s not done", id)
				}
				if len(cs.Nodes) != len(states) {
					t.Errorf("%s has %d nodes, want %d", id, len(cs.Nodes), len(states))
				}
				for comp, st := range states {
					if n := cs.Nodes[comp]; n == nil || n.State != st {
						t.Errorf("%s: %s is %v, want %s", id, comp, n, st)
					} else if st == changeset.Applied && n.Outcome == nil {
						t.Errorf("%s: %s applied without an outcome", id, comp)
					}
				}
			}
			wantApplies := map[string]int{"dev/vpc/core": 1, "dev/ecs-cluster/core": 1, "dev/ecs-service/api": 1, "prod/vpc/core": 1}
			if fmt.Sprint(c.tf.applies) != fmt.Sprint(wantApplies) {
				t.Errorf("applies %v, want %v (each component once)", c.tf.applies, wantApplies)
			}
			for _, env := range []string{"dev", "prod"} {
				st, _ := c.params(env)
				if _, err := st.Get(ctx, "/iac/vpc/core/runtime"); err != nil {
					t.Errorf("%s: no vpc runtime: %v", env, err)
				}
			}

			// Every message published validates; nothing was dead-lettered or left to retry.
			c.mu.Lock()
			observed := append([]observation(nil), c.observed...)
			c.mu.Unlock()
			published := map[string]bool{pushed.ID: true}
			for _, o := range observed {
				if o.action != pipeline.Ack && o.action != pipeline.Duplicate {
					t.Errorf("%s %s: %v (%v)", o.stage, o.in.Type, o.action, o.err)
				}
				if o.action == pipeline.Ack {
					wt.ValidateAll(t, o.out)
					for _, m := range o.out {
						published[m.ID] = true
						if m.CorrelationID != change {
							t.Errorf("%s has correlation %s, want the change's", m.Type, m.CorrelationID)
						}
					}
				}
				if o.in.Type == message.TypeDeploymentApproved {
					published[o.in.ID] = true
				}
			}
			for _, name := range stageNames {
				if dead, _ := c.q.ListDead(ctx, name); len(dead) != 0 {
					t.Errorf("%s dead letters: %+v", name, dead)
				}
			}

			// Lineage: dev/ecs-service/api was caused by dev/ecs-cluster/core's deployment.
			svc, err := c.lineage.Deployments(ctx, "dev/ecs-service/api")
			if err != nil || len(svc) != 1 || svc[0].Status != lineage.StatusApplied {
				t.Fatalf("lineage of dev/ecs-service/api: %+v, %v", svc, err)
			}
			causes := map[string]bool{}
			for _, cause := range svc[0].CausedBy {
				causes[cause.ID] = true
			}
			if !causes[changeset.DeploymentID(devID, "dev/ecs-cluster/core")] {
				t.Errorf("dev/ecs-service/api caused by %+v, want the ecs-cluster deployment among them", svc[0].CausedBy)
			}

			// Audit: every message once, every chain verifies.
			recs, err := c.audit.Query(ctx, audit.Query{Correlation: change})
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != len(published) {
				t.Errorf("audit holds %d records of the change, %d messages were published", len(recs), len(published))
			}
			chains, _ := c.audit.Chains(ctx)
			for _, ch := range chains {
				if err := c.audit.Verify(ctx, ch); err != nil {
					t.Error(err)
				}
			}
		})
	}
}
