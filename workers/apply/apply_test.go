package apply_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	wt "github.com/usekarma/karma/workers/internal/workertest"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/terraform"
	"github.com/usekarma/karma/workers/apply"
)

const sha1 = "512423cb3a4857a38f472862b51e4ab1a1730f06"

var gitActor = message.Actor{Kind: "git", Name: "Ada Lovelace <ada@example.com>"}

const (
	vpcConfig = `{"az_count":3,"cidr":"10.20.0.0/16","tags":{"Environment":"prod"}}`
	ecsConfig = `{"service_discovery_vpc_id":"${vpc/core.runtime.vpc_id}","tags":{"Environment":"prod"}}`
)

// countingRunner counts the calls to a Runner.
type countingRunner struct {
	terraform.Runner
	plans, applies atomic.Int32
}

func (c *countingRunner) Plan(ctx context.Context, ws terraform.Workspace) (terraform.PlanResult, error) {
	c.plans.Add(1)
	return c.Runner.Plan(ctx, ws)
}

func (c *countingRunner) Apply(ctx context.Context, ws terraform.Workspace, p terraform.PlanResult) (terraform.Outputs, error) {
	c.applies.Add(1)
	return c.Runner.Apply(ctx, ws, p)
}

type stageEnv struct {
	db     *embedded.DB
	q      *embedded.Queue
	cs     *embedded.ChangeSets
	params *embedded.ParamStore
	runner *countingRunner
	w      *apply.Worker
	root   message.Envelope
	csID   string
	ws     terraform.Workspaces
}

type setup struct {
	approved, auto bool
	runner         terraform.Runner // nil: terraform.Noop
}

// newStage stores a change set of prod/vpc/core (root) and prod/ecs-cluster/core (interpolates
// vpc/core's vpc_id), both scheduled.
func newStage(t *testing.T, o setup) *stageEnv {
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
	ps, err := embedded.NewParamStore(db, "prod")
	if err != nil {
		t.Fatal(err)
	}
	if o.runner == nil {
		o.runner = &terraform.Noop{}
	}
	p := message.ChangeDetected{ChangeSetID: wt.FixedID(1), Source: message.SourceGit, Components: []message.ComponentRef{},
		Files: []string{"iac/prod/vpc/core/config.json"}, Commit: &message.Commit{SHA: sha1, Author: gitActor.Name}, AutoApprove: o.auto}
	root := wt.FixedRoot(t, 1, message.TypeChangeDetected, "", gitActor, "git:"+sha1, p)
	csID := root.ID + "/prod"
	set := &changeset.ChangeSet{ID: csID, Env: "prod", CorrelationID: root.ID, Source: message.SourceGit, Actor: gitActor,
		RootCauses: []message.Cause{{Kind: message.CauseCommit, ID: sha1}}, CreatedAt: wt.FixedTime, AutoApprove: o.auto, Approved: o.approved || o.auto,
		Waves: [][]string{{"prod/vpc/core"}, {"prod/ecs-cluster/core"}}, Nodes: map[string]*changeset.Node{
			"prod/vpc/core": {Component: "prod/vpc/core", Wave: 0, Root: true, State: changeset.Scheduled, Config: json.RawMessage(vpcConfig),
				DeploymentID: changeset.DeploymentID(csID, "prod/vpc/core"), Dependents: []string{"prod/ecs-cluster/core"}},
			"prod/ecs-cluster/core": {Component: "prod/ecs-cluster/core", Wave: 1, State: changeset.Scheduled, Config: json.RawMessage(ecsConfig),
				DeploymentID: changeset.DeploymentID(csID, "prod/ecs-cluster/core"),
				Upstreams:    []changeset.Upstream{{Component: "prod/vpc/core", Consumes: []string{"vpc_id"}}}},
		}}
	if o.auto {
		set.ApprovedBy = "auto-approve"
	}
	if _, err := cs.Create(ctx, set); err != nil {
		t.Fatal(err)
	}
	counting := &countingRunner{Runner: o.runner}
	ws := terraform.Workspaces{WorkDir: filepath.Join(t.TempDir(), "work"), Modules: terraform.StaticModules(filepath.Join(wt.ExamplesDir, "components")), Prefix: "/iac"}
	s := &stageEnv{db: db, q: q, cs: cs, params: ps, runner: counting, root: root, csID: csID, ws: ws}
	s.w = s.worker(counting)
	return s
}

// worker is an apply worker on s's stores with runner.
func (s *stageEnv) worker(runner terraform.Runner) *apply.Worker {
	return &apply.Worker{ChangeSets: s.cs, Params: func(env string) (params.Store, error) {
		if env != "prod" {
			return nil, fmt.Errorf("params of env %q", env)
		}
		return s.params, nil
	}, Runner: runner, Workspaces: s.ws}
}

// planned is the deployment.planned of component as the plan stage makes it (terraform.Noop's
// plan of config), with a fixed id n.
func (s *stageEnv) planned(t *testing.T, n int, component string, wave int, config string) message.Envelope {
	t.Helper()
	ws, err := s.ws.For(context.Background(), component, "", json.RawMessage(config))
	if err != nil {
		t.Fatal(err)
	}
	res, err := (&terraform.Noop{}).Plan(context.Background(), ws)
	if err != nil {
		t.Fatal(err)
	}
	dep := changeset.DeploymentID(s.csID, component)
	p := message.DeploymentPlanned{DeploymentScheduled: message.DeploymentScheduled{ChangeSetID: s.csID, DeploymentID: dep, Component: component,
		Wave: wave, CausedBy: []message.Cause{{Kind: message.CauseCommit, ID: sha1}}, ConfigHash: strings.Repeat("c8", 32)},
		Plan: res.Summary, PlanFile: res.PlanFile, PlanHash: res.PlanHash}
	e := wt.FixedDerive(t, s.root, n, message.TypeDeploymentPlanned, "deployment.planned:"+dep, p)
	e.Env = "prod"
	wt.Validate(t, e)
	return e
}

// approved is the deployment.approved the approval step (cmd/karma stack.approve) publishes for
// a held plan, after marking the change set approved.
func (s *stageEnv) approve(t *testing.T, n int, component, by string) message.Envelope {
	t.Helper()
	var held *message.DeploymentPlanned
	var cause string
	cs, err := s.cs.Update(context.Background(), s.csID, func(cs *changeset.ChangeSet) error {
		cs.Approved, cs.ApprovedBy = true, by
		node := cs.Nodes[component]
		if node.State != changeset.Planned || node.Plan == nil {
			return fmt.Errorf("%s is not held (state %s)", component, node.State)
		}
		held, cause = node.Plan, node.PlanMessageID
		node.State = changeset.Scheduled
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	e := wt.FixedRoot(t, n, message.TypeDeploymentApproved, cs.Env, cs.Actor, apply.ApprovalKey(*held),
		message.DeploymentApproved{DeploymentPlanned: *held, ApprovedBy: by})
	e.CorrelationID, e.CausationID = cs.CorrelationID, cause
	wt.Validate(t, e)
	return e
}

func (s *stageEnv) handle(t *testing.T, in message.Envelope) []message.Envelope {
	t.Helper()
	out, action, err := wt.Process(t, s.q, s.w.Handle, in)
	if action != pipeline.Ack || err != nil {
		t.Fatalf("%s: action %v, err %v", in.Type, action, err)
	}
	wt.ValidateAll(t, out)
	causes := map[string]bool{in.ID: true} // in, or an output before (a plan made again causes its outcome)
	for _, o := range out {
		if !causes[o.CausationID] || o.CorrelationID != in.CorrelationID || o.Env != "prod" {
			t.Errorf("%s: causation %s correlation %s env %s", o.Type, o.CausationID, o.CorrelationID, o.Env)
		}
		causes[o.ID] = true
	}
	return out
}

func (s *stageEnv) param(t *testing.T, name string) (params.Parameter, bool) {
	t.Helper()
	p, err := s.params.Get(context.Background(), name)
	if errors.Is(err, params.ErrNotFound) {
		return p, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return p, true
}

func (s *stageEnv) node(t *testing.T, component string) *changeset.Node {
	t.Helper()
	cs, err := s.cs.Get(context.Background(), s.csID)
	if err != nil {
		t.Fatal(err)
	}
	return cs.Nodes[component]
}

// noopOutputs is what terraform.Noop's apply of config outputs, as the canonical runtime document.
func noopOutputs(t *testing.T, s *stageEnv, component, config string) (string, map[string]json.RawMessage) {
	t.Helper()
	ws, _ := s.ws.For(context.Background(), component, "", json.RawMessage(config))
	n := &terraform.Noop{}
	res, err := n.Plan(context.Background(), ws)
	if err != nil {
		t.Fatal(err)
	}
	out, err := n.Apply(context.Background(), ws, res)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := model.Canonical(map[string]json.RawMessage(out))
	return string(body), out
}

func TestApplyPublishesRuntimeAndConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		previous    string // vpc/core's runtime before, "" = none
		wantKeys    []string
		wantVersion int64
	}{
		{"first apply", "", []string{"cfg_az_count", "cfg_cidr", "cfg_tags", "id"}, 1},
		{"some keys changed", `{"cfg_az_count":2,"cfg_cidr":"10.20.0.0/16","cfg_tags":{"Environment":"prod"},"stale":true}`,
			[]string{"cfg_az_count", "id", "stale"}, 2},
		{"same document", "<same>", []string{}, 1}, // Put of an identical value: no new version
		{"same values in another layout", "<relayout>", []string{}, 2},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStage(t, setup{approved: true})
			want, outputs := noopOutputs(t, s, "prod/vpc/core", vpcConfig)
			prev := tt.previous
			switch prev {
			case "<same>":
				prev = want
			case "<relayout>": // the same values, indented and in another key order
				keys := []string{"id", "cfg_tags", "cfg_cidr", "cfg_az_count"}
				var parts []string
				for _, k := range keys {
					parts = append(parts, fmt.Sprintf("  %q: %s", k, outputs[k]))
				}
				prev = "{\n" + strings.Join(parts, ",\n") + "\n}"
			}
			if prev != "" {
				if _, err := s.params.Put(context.Background(), params.PutInput{Name: "/iac/vpc/core/runtime", Value: prev}); err != nil {
					t.Fatal(err)
				}
			}
			in := s.planned(t, 10+i, "prod/vpc/core", 0, vpcConfig)
			out := s.handle(t, in)
			if len(out) != 1 || out[0].Type != message.TypeDeploymentApplied {
				t.Fatalf("got %d messages, want one deployment.applied", len(out))
			}
			p := wt.PayloadOf[message.DeploymentApplied](t, out[0])
			dep := changeset.DeploymentID(s.csID, "prod/vpc/core")
			if out[0].IdempotencyKey != "deployment.applied:"+dep || p.DeploymentID != dep || p.ChangeSetID != s.csID || p.Component != "prod/vpc/core" {
				t.Errorf("applied %+v key %s", p, out[0].IdempotencyKey)
			}
			if p.ChangedKeys == nil || !slices.Equal(p.ChangedKeys, tt.wantKeys) {
				t.Errorf("changed keys %#v, want %#v", p.ChangedKeys, tt.wantKeys)
			}
			var raw map[string]json.RawMessage
			_ = json.Unmarshal(out[0].Payload, &raw)
			if len(tt.wantKeys) == 0 && string(raw["changed_keys"]) != "[]" {
				t.Errorf("changed_keys on the wire = %s, want []", raw["changed_keys"])
			}

			rt, ok := s.param(t, "/iac/vpc/core/runtime")
			if !ok {
				t.Fatal("no runtime parameter published")
			}
			if rt.Value != want {
				t.Errorf("runtime %s, want %s", rt.Value, want)
			}
			if rt.Version != tt.wantVersion || p.RuntimeVersion != tt.wantVersion {
				t.Errorf("runtime version %d, announced %d, want %d", rt.Version, p.RuntimeVersion, tt.wantVersion)
			}
			if _, hash := model.Canonical(outputs); p.RuntimeHash != hash {
				t.Errorf("runtime hash %s, want %s", p.RuntimeHash, hash)
			}
			if tt.previous == "" {
				if !strings.HasPrefix(rt.Description, "karma: deployment="+dep+" change="+s.csID+" sha256=") || !params.IsKarmaWrite(rt.Description, rt.Value) ||
					rt.LastModifiedUser != "karma:"+gitActor.Name {
					t.Errorf("provenance %q by %q", rt.Description, rt.LastModifiedUser)
				}
			}
			cfg, ok := s.param(t, "/iac/vpc/core/config")
			if !ok || cfg.Value != vpcConfig || !strings.HasPrefix(cfg.Description, "karma: ") {
				t.Errorf("config parameter %+v, want the deployed config with karma provenance", cfg)
			}
			n := s.node(t, "prod/vpc/core")
			if n.Outcome == nil || n.Outcome.RuntimeVersion != p.RuntimeVersion || !slices.Equal(n.Outcome.ChangedKeys, p.ChangedKeys) || n.Outcome.RuntimeHash != p.RuntimeHash {
				t.Errorf("outcome %+v not recorded in the change set", n.Outcome)
			}
			if s.runner.applies.Load() != 1 || s.runner.plans.Load() != 0 {
				t.Errorf("runner: %d applies, %d plans; want 1, 0", s.runner.applies.Load(), s.runner.plans.Load())
			}
			wt.CheckGolden(t, "applied_"+goldenName(tt.name), out, map[string]string{s.root.ID: "root", in.ID: "planned"})
		})
	}
}

func TestApplyInterpolatesUpstreamRuntime(t *testing.T) {
	t.Parallel()
	s := newStage(t, setup{approved: true})
	if _, err := s.params.Put(context.Background(), params.PutInput{Name: "/iac/vpc/core/runtime", Value: `{"vpc_id":"vpc-0a1b2c"}`}); err != nil {
		t.Fatal(err)
	}
	resolved := `{"service_discovery_vpc_id":"vpc-0a1b2c","tags":{"Environment":"prod"}}`
	out := s.handle(t, s.planned(t, 20, "prod/ecs-cluster/core", 1, resolved))
	if len(out) != 1 || out[0].Type != message.TypeDeploymentApplied {
		t.Fatalf("got %v", out)
	}
	rt, ok := s.param(t, "/iac/ecs-cluster/core/runtime")
	if !ok || !strings.Contains(rt.Value, `"cfg_service_discovery_vpc_id":"vpc-0a1b2c"`) {
		t.Errorf("runtime %q: the interpolated config was not applied", rt.Value)
	}
	// The published config is the resolved one, references kept (what the repository says).
	if cfg, _ := s.param(t, "/iac/ecs-cluster/core/config"); cfg.Value != ecsConfig {
		t.Errorf("config parameter %q, want %q", cfg.Value, ecsConfig)
	}

	// With the upstream runtime gone, apply fails as an outcome.
	s2 := newStage(t, setup{approved: true})
	out = s2.handle(t, s2.planned(t, 21, "prod/ecs-cluster/core", 1, resolved))
	if len(out) != 1 || out[0].Type != message.TypeDeploymentFailed {
		t.Fatalf("got %v, want deployment.failed", out)
	}
	if p := wt.PayloadOf[message.DeploymentFailed](t, out[0]); p.Stage != "apply" || !strings.Contains(p.Error, "vpc/core has no runtime yet") {
		t.Errorf("failed %+v", p)
	}
}

func TestApplyHeldUntilApproved(t *testing.T) {
	t.Parallel()
	s := newStage(t, setup{})
	in := s.planned(t, 30, "prod/vpc/core", 0, vpcConfig)
	if out := s.handle(t, in); len(out) != 0 {
		t.Fatalf("an unapproved plan produced %d messages, want none (held)", len(out))
	}
	n := s.node(t, "prod/vpc/core")
	if n.State != changeset.Planned || n.Plan == nil || n.PlanMessageID != in.ID || n.Plan.PlanHash != wt.PayloadOf[message.DeploymentPlanned](t, in).PlanHash {
		t.Errorf("node %+v: want planned, holding the plan and its message id", n)
	}
	if s.runner.applies.Load() != 0 {
		t.Error("the runner ran for a held plan")
	}
	if _, ok := s.param(t, "/iac/vpc/core/runtime"); ok {
		t.Error("runtime published for a held plan")
	}

	approved := s.approve(t, 31, "prod/vpc/core", "bob")
	out := s.handle(t, approved)
	if len(out) != 1 || out[0].Type != message.TypeDeploymentApplied {
		t.Fatalf("approval produced %d messages, want one deployment.applied", len(out))
	}
	if out[0].CorrelationID != s.root.ID {
		t.Errorf("correlation %s, want the change's %s", out[0].CorrelationID, s.root.ID)
	}
	if s.runner.applies.Load() != 1 {
		t.Errorf("applies = %d, want 1", s.runner.applies.Load())
	}
	if _, ok := s.param(t, "/iac/vpc/core/runtime"); !ok {
		t.Error("no runtime after the approved apply")
	}
	wt.CheckGolden(t, "approved", out, map[string]string{s.root.ID: "root", approved.ID: "approved"})

	// The approval redelivered: announced again, not applied again.
	again := s.handle(t, approved)
	if len(again) != 1 || string(again[0].Payload) != string(out[0].Payload) || s.runner.applies.Load() != 1 {
		t.Errorf("redelivered approval: %d messages, %d applies", len(again), s.runner.applies.Load())
	}
}

func TestApplyAutoApprovedAppliesAtOnce(t *testing.T) {
	t.Parallel()
	s := newStage(t, setup{auto: true})
	out := s.handle(t, s.planned(t, 35, "prod/vpc/core", 0, vpcConfig))
	if len(out) != 1 || out[0].Type != message.TypeDeploymentApplied || s.runner.applies.Load() != 1 {
		t.Errorf("auto-approved: %d messages, %d applies", len(out), s.runner.applies.Load())
	}
}

// A planned message delivered again while its plan waits for review must stay held.
func TestApplyRedeliveredPlannedStaysHeld(t *testing.T) {
	t.Parallel()
	s := newStage(t, setup{})
	in := s.planned(t, 36, "prod/vpc/core", 0, vpcConfig)
	s.handle(t, in)
	out := s.handle(t, in) // e.g. the process died after holding, before the idempotency mark
	if len(out) != 0 || s.runner.applies.Load() != 0 {
		t.Errorf("redelivered unapproved plan: %d messages, %d applies; want 0 and 0 (still held)", len(out), s.runner.applies.Load())
	}
	if _, ok := s.param(t, "/iac/vpc/core/runtime"); ok {
		t.Error("runtime published without approval")
	}
}

func TestApplyRedeliveredAfterSuccessRunsOnce(t *testing.T) {
	t.Parallel()
	s := newStage(t, setup{approved: true})
	in := s.planned(t, 40, "prod/vpc/core", 0, vpcConfig)
	first := s.handle(t, in)
	rt1, _ := s.param(t, "/iac/vpc/core/runtime")
	second := s.handle(t, in)
	if got := s.runner.applies.Load(); got != 1 {
		t.Errorf("runner applied %d times, want 1", got)
	}
	if len(first) != 1 || len(second) != 1 {
		t.Fatalf("first %d, second %d messages; want 1 and 1", len(first), len(second))
	}
	if first[0].IdempotencyKey != second[0].IdempotencyKey || string(first[0].Payload) != string(second[0].Payload) {
		t.Errorf("re-announced deployment.applied differs:\n%s\n%s", first[0].Payload, second[0].Payload)
	}
	if rt2, _ := s.param(t, "/iac/vpc/core/runtime"); rt2.Version != rt1.Version {
		t.Errorf("runtime version %d -> %d on redelivery", rt1.Version, rt2.Version)
	}
}

// blockingRunner's Apply blocks until its context is cancelled, then returns a non-permanent
// error (as terraform-exec reports an interrupted command).
type blockingRunner struct {
	entered chan struct{}
}

func (b *blockingRunner) Plan(context.Context, terraform.Workspace) (terraform.PlanResult, error) {
	return terraform.PlanResult{}, errors.New("plan not expected")
}

func (b *blockingRunner) Apply(ctx context.Context, ws terraform.Workspace, p terraform.PlanResult) (terraform.Outputs, error) {
	close(b.entered)
	<-ctx.Done()
	return nil, fmt.Errorf("terraform apply %s: signal: interrupt: %w", ws.ID(), ctx.Err())
}

// A stage cancelled mid-apply leaves nothing half-recorded and completes on redelivery.
func TestApplyCancelledMidApply(t *testing.T) {
	t.Parallel()
	for _, auto := range []bool{false, true} {
		t.Run(fmt.Sprintf("auto-approve=%v", auto), func(t *testing.T) {
			t.Parallel()
			s := newStage(t, setup{approved: true, auto: auto})
			seen, err := embedded.NewSeen(context.Background(), s.db)
			if err != nil {
				t.Fatal(err)
			}
			mw := []pipeline.Middleware{pipeline.Correlation(), pipeline.Idempotency(seen, pipeline.StageApply, time.Minute), pipeline.RetryTransient(2 * time.Second)}
			in := s.planned(t, 50, "prod/vpc/core", 0, vpcConfig)

			blocking := &blockingRunner{entered: make(chan struct{})}
			h := pipeline.Chain(s.worker(blocking).Handle, mw...)
			ctx, cancel := context.WithCancel(context.Background())
			type result struct {
				out []message.Envelope
				err error
			}
			done := make(chan result, 1)
			go func() {
				out, err := h(ctx, in)
				done <- result{out, err}
			}()
			select {
			case <-blocking.entered:
			case <-time.After(10 * time.Second):
				t.Fatal("apply never started")
			}
			cancel()
			var r result
			select {
			case r = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("the handler did not return after cancel")
			}
			if r.err == nil || pipeline.Classify(r.err) != pipeline.Retry {
				t.Fatalf("cancelled apply: err %v classified %v, want retry", r.err, pipeline.Classify(r.err))
			}
			if len(r.out) != 0 {
				t.Errorf("cancelled apply produced %d messages", len(r.out))
			}
			if _, ok := s.param(t, "/iac/vpc/core/runtime"); ok {
				t.Error("runtime parameter written by a cancelled apply")
			}
			if _, ok := s.param(t, "/iac/vpc/core/config"); ok {
				t.Error("config parameter written by a cancelled apply")
			}
			if n := s.node(t, "prod/vpc/core"); n.Outcome != nil || n.State != changeset.Scheduled {
				t.Errorf("node after a cancelled apply: state %s outcome %+v", n.State, n.Outcome)
			}

			// Redelivered to a healthy worker: applied exactly once.
			working := &countingRunner{Runner: &terraform.Noop{}}
			h = pipeline.Chain(s.worker(working).Handle, mw...)
			out, action, err := wt.Process(t, s.q, h, in)
			if action != pipeline.Ack || err != nil {
				t.Fatalf("redelivery: action %v, err %v (the cancelled attempt kept its claim?)", action, err)
			}
			wt.ValidateAll(t, out)
			if len(out) != 1 || out[0].Type != message.TypeDeploymentApplied {
				t.Fatalf("redelivery produced %d messages", len(out))
			}
			if working.applies.Load() != 1 || working.plans.Load() != 0 {
				t.Errorf("redelivery: %d applies, %d plans; want 1, 0", working.applies.Load(), working.plans.Load())
			}
			if rt, ok := s.param(t, "/iac/vpc/core/runtime"); !ok || rt.Version != 1 {
				t.Errorf("runtime %+v, want version 1", rt)
			}
			if n := s.node(t, "prod/vpc/core"); n.Outcome == nil {
				t.Error("no outcome recorded after the redelivery")
			}
			// And once more (the runtime marked the key): a duplicate.
			if _, action, _ := wt.Process(t, s.q, h, in); action != pipeline.Duplicate || working.applies.Load() != 1 {
				t.Errorf("third delivery: %v, %d applies", action, working.applies.Load())
			}
		})
	}
}

func TestApplyErrors(t *testing.T) {
	t.Parallel()
	s := newStage(t, setup{approved: true})
	notInSet := s.planned(t, 70, "prod/s3-bucket/assets", 0, `{}`)
	recorded := wt.FixedDerive(t, s.root, 71, message.TypeDeploymentRecorded, "deployment.recorded:dep-1", message.DeploymentRecorded{})
	bad := s.planned(t, 72, "prod/vpc/core", 0, vpcConfig)
	bad.Payload = []byte(`{"plan_hash": 1}`)
	unknownSet := s.planned(t, 73, "prod/vpc/core", 0, vpcConfig)
	unknownSet.Payload = []byte(strings.ReplaceAll(string(unknownSet.Payload), s.csID, wt.FixedID(999)+"/prod"))
	tests := []struct {
		name string
		in   message.Envelope
		want pipeline.Action
	}{
		{"component not in the change set", notInSet, pipeline.DeadLetter},
		{"a type apply does not consume", recorded, pipeline.DeadLetter},
		{"payload of the wrong shape", bad, pipeline.DeadLetter},
		{"unknown change set", unknownSet, pipeline.Retry},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, action, err := wt.Process(t, s.q, s.w.Handle, tt.in)
			if action != tt.want || err == nil || len(out) != 0 {
				t.Errorf("action %v (%v), %d outputs; want %v", action, err, len(out), tt.want)
			}
		})
	}
	if s.runner.applies.Load() != 0 {
		t.Errorf("runner ran %d times", s.runner.applies.Load())
	}
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

// failOutcome is a change set store whose first update recording a runtime version fails, as if
// the process died right after publishing the runtime: apply recorded the outcome (on its own,
// or in the failed transaction that also publishes it, then on its own again).
type failOutcome struct {
	changeset.Store
	failed atomic.Bool
}

func (f *failOutcome) Update(ctx context.Context, id string, fn func(*changeset.ChangeSet) error) (*changeset.ChangeSet, error) {
	return f.Store.Update(ctx, id, func(cs *changeset.ChangeSet) error {
		if err := fn(cs); err != nil {
			return err
		}
		for _, n := range cs.Nodes {
			if n.Outcome != nil && n.Outcome.RuntimeVersion > 0 && f.failed.CompareAndSwap(false, true) {
				return pipeline.Transient(errors.New("database is locked"))
			}
		}
		return nil
	})
}

// countingUpdates counts a change set store's updates.
type countingUpdates struct {
	changeset.Store
	n atomic.Int32
}

func (c *countingUpdates) Update(ctx context.Context, id string, fn func(*changeset.ChangeSet) error) (*changeset.ChangeSet, error) {
	c.n.Add(1)
	return c.Store.Update(ctx, id, fn)
}

// Apply records a successful outcome before it announces it: on AWS on its own and then with
// its runtime version, once published; on the embedded file (Atomic) in the one transaction
// that publishes the runtime, so a deployment's apply costs one write transaction, not two.
func TestApplyRecordsTheOutcomeWithItsPublication(t *testing.T) {
	t.Parallel()
	for _, atomically := range []bool{false, true} {
		t.Run(fmt.Sprintf("atomic=%v", atomically), func(t *testing.T) {
			t.Parallel()
			s := newStage(t, setup{approved: true})
			w := s.worker(s.runner)
			counted := &countingUpdates{Store: s.cs}
			w.ChangeSets = counted
			var atomics atomic.Int32
			if atomically {
				w.Atomic = func(ctx context.Context, fn func(ctx context.Context) error) error {
					atomics.Add(1)
					return s.db.Atomically(ctx, fn)
				}
			}
			in := s.planned(t, 80, "prod/vpc/core", 0, vpcConfig)
			out, action, err := wt.Process(t, s.q, w.Handle, in)
			if action != pipeline.Ack || len(out) != 1 || out[0].Type != message.TypeDeploymentApplied {
				t.Fatalf("action %v (%v), %d messages; want one deployment.applied", action, err, len(out))
			}
			n := s.node(t, "prod/vpc/core")
			rt, ok := s.param(t, "/iac/vpc/core/runtime")
			if n.Outcome == nil || !ok || n.Outcome.RuntimeVersion != rt.Version {
				t.Fatalf("outcome %+v, runtime %+v (%v); want the outcome recorded with the published runtime's version", n.Outcome, rt, ok)
			}
			// The planned message's own update (the node is approved and scheduled) changes nothing.
			want := int32(3) // planned (no change), the outcome, its runtime version
			if atomically {
				want = 2 // planned (no change), the outcome with its runtime version
				if got := atomics.Load(); got != 1 {
					t.Errorf("%d atomic writes, want 1", got)
				}
			}
			if got := counted.n.Load(); got != want {
				t.Errorf("%d change set updates, want %d", got, want)
			}
		})
	}
}

// A retry after the runtime was published but before the outcome was recorded must announce
// the keys this deployment changed, not "nothing changed" (which would skip every dependent).
func TestApplyRetryAfterRuntimePublishedKeepsChangedKeys(t *testing.T) {
	t.Parallel()
	s := newStage(t, setup{})
	in := s.planned(t, 80, "prod/vpc/core", 0, vpcConfig)
	s.handle(t, in) // held
	approved := s.approve(t, 81, "prod/vpc/core", "bob")

	w := s.worker(s.runner)
	w.ChangeSets = &failOutcome{Store: s.cs}
	if _, action, err := wt.Process(t, s.q, w.Handle, approved); action != pipeline.Retry {
		t.Fatalf("first attempt: action %v (%v), want retry", action, err)
	}
	if _, ok := s.param(t, "/iac/vpc/core/runtime"); !ok {
		t.Fatal("the first attempt should have published the runtime before failing")
	}
	before := s.runner.applies.Load()
	out, action, err := wt.Process(t, s.q, w.Handle, approved)
	if s.runner.applies.Load() != before {
		t.Error("the retry ran terraform again although the outcome was recorded")
	}
	if action != pipeline.Ack || len(out) != 1 {
		t.Fatalf("retry: action %v (%v), %d messages", action, err, len(out))
	}
	p := wt.PayloadOf[message.DeploymentApplied](t, out[0])
	if want := []string{"cfg_az_count", "cfg_cidr", "cfg_tags", "id"}; !slices.Equal(p.ChangedKeys, want) {
		t.Errorf("changed keys %v after a retry, want %v (what this deployment changed)", p.ChangedKeys, want)
	}
}

// With the stores' writes made atomic (the embedded file: Atomic), a failure to record the
// runtime version takes back the runtime just published and the outcome recorded with it:
// nothing half-published stays; the outcome is then recorded on its own, and the retry
// publishes, records and announces what this deployment changed, without Terraform again.
func TestApplyPublishesTheOutcomeAtomically(t *testing.T) {
	t.Parallel()
	s := newStage(t, setup{})
	in := s.planned(t, 80, "prod/vpc/core", 0, vpcConfig)
	s.handle(t, in) // held
	approved := s.approve(t, 81, "prod/vpc/core", "bob")

	w := s.worker(s.runner)
	w.ChangeSets = &failOutcome{Store: s.cs}
	w.Atomic = s.db.Atomically
	if _, action, err := wt.Process(t, s.q, w.Handle, approved); action != pipeline.Retry {
		t.Fatalf("first attempt: action %v (%v), want retry", action, err)
	}
	if p, ok := s.param(t, "/iac/vpc/core/runtime"); ok {
		t.Fatalf("the runtime stayed published (version %d) although recording its version failed", p.Version)
	}
	if n := s.node(t, "prod/vpc/core"); n.Outcome == nil || n.Outcome.RuntimeVersion != 0 {
		t.Fatalf("outcome after the first attempt: %+v; want recorded (after the failed publication, on its own), no runtime version", n.Outcome)
	}
	before := s.runner.applies.Load()
	out, action, err := wt.Process(t, s.q, w.Handle, approved)
	if s.runner.applies.Load() != before {
		t.Error("the retry ran terraform again although the outcome was recorded")
	}
	if action != pipeline.Ack || len(out) != 1 {
		t.Fatalf("retry: action %v (%v), %d messages", action, err, len(out))
	}
	rt, ok := s.param(t, "/iac/vpc/core/runtime")
	if !ok || rt.Version != 1 {
		t.Fatalf("runtime after the retry: %+v (%v); want published once, version 1", rt, ok)
	}
	if n := s.node(t, "prod/vpc/core"); n.Outcome == nil || n.Outcome.RuntimeVersion != 1 {
		t.Errorf("outcome after the retry: %+v; want runtime version 1", n.Outcome)
	}
	p := wt.PayloadOf[message.DeploymentApplied](t, out[0])
	if want := []string{"cfg_az_count", "cfg_cidr", "cfg_tags", "id"}; !slices.Equal(p.ChangedKeys, want) {
		t.Errorf("changed keys %v after a retry, want %v", p.ChangedKeys, want)
	}
}
