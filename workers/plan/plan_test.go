package plan_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	wt "github.com/usekarma/karma/workers/internal/workertest"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/terraform"
	"github.com/usekarma/karma/workers/plan"
)

const sha1 = "512423cb3a4857a38f472862b51e4ab1a1730f06"

var gitActor = message.Actor{Kind: "git", Name: "Ada Lovelace <ada@example.com>"}

const (
	vpcConfig = `{"az_count":3,"cidr":"10.20.0.0/16","tags":{"Environment":"prod"}}`
	ecsConfig = `{"service_discovery_vpc_id":"${vpc/core.runtime.vpc_id}","tags":{"Environment":"prod"}}`
)

type stageEnv struct {
	q      *embedded.Queue
	cs     *embedded.ChangeSets
	params *embedded.ParamStore
	noop   *terraform.Noop
	w      *plan.Worker
	root   message.Envelope
	csID   string
}

// newStage stores a change set of prod/vpc/core (root) and prod/ecs-cluster/core (interpolates
// vpc/core's vpc_id), both scheduled.
func newStage(t *testing.T, runner terraform.Runner) *stageEnv {
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
	noop := &terraform.Noop{}
	if runner == nil {
		runner = noop
	}
	p := message.ChangeDetected{ChangeSetID: wt.FixedID(1), Source: message.SourceGit, Components: []message.ComponentRef{},
		Files: []string{"iac/prod/vpc/core/config.json"}, Commit: &message.Commit{SHA: sha1, Author: gitActor.Name}}
	root := wt.FixedRoot(t, 1, message.TypeChangeDetected, "", gitActor, "git:"+sha1, p)
	csID := root.ID + "/prod"
	set := &changeset.ChangeSet{ID: csID, Env: "prod", CorrelationID: root.ID, Source: message.SourceGit, Actor: gitActor,
		RootCauses: []message.Cause{{Kind: message.CauseCommit, ID: sha1}}, CreatedAt: wt.FixedTime,
		Waves: [][]string{{"prod/vpc/core"}, {"prod/ecs-cluster/core"}}, Nodes: map[string]*changeset.Node{
			"prod/vpc/core": {Component: "prod/vpc/core", Wave: 0, Root: true, State: changeset.Scheduled, Config: json.RawMessage(vpcConfig),
				DeploymentID: changeset.DeploymentID(csID, "prod/vpc/core"), Dependents: []string{"prod/ecs-cluster/core"}},
			"prod/ecs-cluster/core": {Component: "prod/ecs-cluster/core", Wave: 1, State: changeset.Scheduled, Config: json.RawMessage(ecsConfig),
				DeploymentID: changeset.DeploymentID(csID, "prod/ecs-cluster/core"),
				Upstreams:    []changeset.Upstream{{Component: "prod/vpc/core", Consumes: []string{"vpc_id"}}}},
		}}
	if _, err := cs.Create(ctx, set); err != nil {
		t.Fatal(err)
	}
	w := &plan.Worker{ChangeSets: cs, Params: func(env string) (params.Store, error) {
		if env != "prod" {
			t.Errorf("params of env %q", env)
		}
		return ps, nil
	}, Runner: runner, Workspaces: terraform.Workspaces{WorkDir: filepath.Join(t.TempDir(), "work"), Modules: terraform.StaticModules(filepath.Join(wt.ExamplesDir, "components")), Prefix: "/iac"}}
	return &stageEnv{q: q, cs: cs, params: ps, noop: noop, w: w, root: root, csID: csID}
}

// recorded is the deployment.recorded of component, with a fixed id n.
func (s *stageEnv) recorded(t *testing.T, n int, component string, wave int) message.Envelope {
	t.Helper()
	dep := changeset.DeploymentID(s.csID, component)
	sched := message.DeploymentScheduled{ChangeSetID: s.csID, DeploymentID: dep, Component: component, Wave: wave,
		CausedBy: []message.Cause{{Kind: message.CauseCommit, ID: sha1}}, ConfigHash: strings.Repeat("c8", 32)}
	e := wt.FixedDerive(t, s.root, n, message.TypeDeploymentRecorded, "deployment.recorded:"+dep, message.DeploymentRecorded{DeploymentScheduled: sched})
	e.Env = "prod"
	wt.Validate(t, e)
	return e
}

func (s *stageEnv) putRuntime(t *testing.T, ref, value string) {
	t.Helper()
	typ, nick, _ := strings.Cut(ref, "/")
	if _, err := s.params.Put(context.Background(), params.PutInput{Name: "/iac/" + typ + "/" + nick + "/runtime", Value: value}); err != nil {
		t.Fatal(err)
	}
}

func (s *stageEnv) handle(t *testing.T, in message.Envelope) []message.Envelope {
	t.Helper()
	out, action, err := wt.Process(t, s.q, s.w.Handle, in)
	if action != pipeline.Ack || err != nil {
		t.Fatalf("%s: action %v, err %v", in.Type, action, err)
	}
	wt.ValidateAll(t, out)
	for _, o := range out {
		if o.CausationID != in.ID || o.CorrelationID != in.CorrelationID || o.Env != "prod" {
			t.Errorf("%s: causation %s correlation %s env %s", o.Type, o.CausationID, o.CorrelationID, o.Env)
		}
	}
	return out
}

// noopPlan is what terraform.Noop plans for component with config.
func noopPlan(t *testing.T, s *stageEnv, component, config string) terraform.PlanResult {
	t.Helper()
	ws, err := s.w.Workspaces.For(context.Background(), component, "", json.RawMessage(config))
	if err != nil {
		t.Fatal(err)
	}
	res, err := (&terraform.Noop{}).Plan(context.Background(), ws)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestPlan(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		component string
		wave      int
		runtime   string // vpc/core's runtime, "" = none
		want      string // message type
		wantCfg   string // the config the plan is of (planned)
		wantError string // in deployment.failed
	}{
		{name: "root", component: "prod/vpc/core", want: message.TypeDeploymentPlanned, wantCfg: vpcConfig},
		{name: "interpolated from upstream runtime", component: "prod/ecs-cluster/core", wave: 1,
			runtime: `{"vpc_id":"vpc-0a1b2c","private_subnet_ids":["subnet-1"]}`, want: message.TypeDeploymentPlanned,
			wantCfg: `{"service_discovery_vpc_id":"vpc-0a1b2c","tags":{"Environment":"prod"}}`},
		{name: "upstream has no runtime yet", component: "prod/ecs-cluster/core", wave: 1, want: message.TypeDeploymentFailed,
			wantError: "resolving references: "},
		{name: "upstream runtime lacks the key", component: "prod/ecs-cluster/core", wave: 1, runtime: `{"private_subnet_ids":[]}`,
			want: message.TypeDeploymentFailed, wantError: "vpc_id"},
		{name: "upstream runtime not an object", component: "prod/ecs-cluster/core", wave: 1, runtime: `"vpc-0a1b2c"`,
			want: message.TypeDeploymentFailed, wantError: "runtime is not a JSON object"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStage(t, nil)
			if tt.runtime != "" {
				s.putRuntime(t, "vpc/core", tt.runtime)
			}
			in := s.recorded(t, 10+i, tt.component, tt.wave)
			out := s.handle(t, in)
			if len(out) != 1 || out[0].Type != tt.want {
				t.Fatalf("got %d messages, want one %s", len(out), tt.want)
			}
			dep := changeset.DeploymentID(s.csID, tt.component)
			if out[0].IdempotencyKey != tt.want+":"+dep {
				t.Errorf("idempotency key %q", out[0].IdempotencyKey)
			}
			switch tt.want {
			case message.TypeDeploymentPlanned:
				p := wt.PayloadOf[message.DeploymentPlanned](t, out[0])
				rec := wt.PayloadOf[message.DeploymentRecorded](t, in)
				if b1, b2 := mustJSON(t, p.DeploymentScheduled), mustJSON(t, rec.DeploymentScheduled); b1 != b2 {
					t.Errorf("planned carries %s, want the recorded deployment %s", b1, b2)
				}
				want := noopPlan(t, s, tt.component, tt.wantCfg)
				if p.Plan != (message.PlanSummary{Add: 1}) || p.PlanFile != want.PlanFile || p.PlanHash != want.PlanHash {
					t.Errorf("plan %+v %s %s, want {add 1} %s %s (the plan of %s)", p.Plan, p.PlanFile, p.PlanHash, want.PlanFile, want.PlanHash, tt.wantCfg)
				}
			case message.TypeDeploymentFailed:
				p := wt.PayloadOf[message.DeploymentFailed](t, out[0])
				if p.Stage != "plan" || p.Component != tt.component || p.DeploymentID != dep || p.Wave != tt.wave || !strings.Contains(p.Error, tt.wantError) {
					t.Errorf("failed %+v, want stage plan and an error containing %q", p, tt.wantError)
				}
			}
			wt.CheckGolden(t, goldenName(tt.name), out, map[string]string{s.root.ID: "root", in.ID: "recorded"})
		})
	}
}

func TestPlanOfTheAppliedConfigIsNoOp(t *testing.T) {
	t.Parallel()
	s := newStage(t, nil)
	res := noopPlan(t, s, "prod/vpc/core", vpcConfig)
	ws, _ := s.w.Workspaces.For(context.Background(), "prod/vpc/core", "", json.RawMessage(vpcConfig))
	if _, err := s.noop.Apply(context.Background(), ws, res); err != nil {
		t.Fatal(err)
	}
	out := s.handle(t, s.recorded(t, 20, "prod/vpc/core", 0))
	if p := wt.PayloadOf[message.DeploymentPlanned](t, out[0]); p.Plan != (message.PlanSummary{NoOp: 1}) {
		t.Errorf("plan %+v, want {no_op 1}", p.Plan)
	}
}

// failingRunner fails Plan with err.
type failingRunner struct {
	err   error
	calls atomic.Int32
}

func (f *failingRunner) Plan(ctx context.Context, ws terraform.Workspace) (terraform.PlanResult, error) {
	f.calls.Add(1)
	return terraform.PlanResult{}, f.err
}

func (f *failingRunner) Apply(context.Context, terraform.Workspace, terraform.PlanResult) (terraform.Outputs, error) {
	return nil, errors.New("not used")
}

func TestPlanRunnerErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		err        error
		wantAction pipeline.Action
		wantFailed bool
	}{
		{"terraform failure is an outcome", &terraform.Error{Op: terraform.OpPlan, Component: "prod/vpc/core", Err: errors.New("Invalid value for variable")}, pipeline.Ack, true},
		{"interrupted plan is retried", &terraform.Error{Op: terraform.OpPlan, Component: "prod/vpc/core", Err: context.Canceled}, pipeline.Retry, false},
		{"unknown error is retried", errors.New("fork/exec: resource temporarily unavailable"), pipeline.Retry, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := &failingRunner{err: tt.err}
			s := newStage(t, r)
			out, action, err := wt.Process(t, s.q, s.w.Handle, s.recorded(t, 30, "prod/vpc/core", 0))
			if action != tt.wantAction {
				t.Errorf("action %v (%v), want %v", action, err, tt.wantAction)
			}
			if tt.wantFailed {
				wt.ValidateAll(t, out)
				if len(out) != 1 || out[0].Type != message.TypeDeploymentFailed {
					t.Fatalf("outputs %d, want one deployment.failed", len(out))
				}
				if p := wt.PayloadOf[message.DeploymentFailed](t, out[0]); !strings.Contains(p.Error, "Invalid value for variable") {
					t.Errorf("error %q", p.Error)
				}
			} else {
				if len(out) != 0 || !pipeline.IsTransient(err) {
					t.Errorf("outputs %d, err %v: want none and a transient error", len(out), err)
				}
			}
		})
	}
}

func TestPlanErrors(t *testing.T) {
	t.Parallel()
	s := newStage(t, nil)
	notInSet := s.recorded(t, 40, "prod/s3-bucket/assets", 0)
	unknownSet := s.recorded(t, 41, "prod/vpc/core", 0)
	unknownSet.Payload = []byte(strings.ReplaceAll(string(unknownSet.Payload), s.csID, wt.FixedID(999)+"/prod"))
	planned := wt.FixedDerive(t, s.root, 42, message.TypeDeploymentPlanned, "deployment.planned:dep-1", message.DeploymentPlanned{})
	bad := s.recorded(t, 43, "prod/vpc/core", 0)
	bad.Payload = []byte(`{"deployment_id":"x","extra":true}`)
	tests := []struct {
		name string
		in   message.Envelope
		want pipeline.Action
	}{
		{"component not in the change set", notInSet, pipeline.DeadLetter},
		{"a type plan does not consume", planned, pipeline.DeadLetter},
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
}

func TestReadRuntime(t *testing.T) {
	t.Parallel()
	s := newStage(t, nil)
	ctx := context.Background()
	if _, err := model.ReadRuntime(ctx, s.params, "/iac", "vpc/core"); err == nil || !strings.Contains(err.Error(), "/iac/vpc/core/runtime") {
		t.Errorf("missing runtime: %v, want an error naming the parameter", err)
	}
	s.putRuntime(t, "vpc/core", `{"az_count": 3, "big": 12345678901234567890}`)
	rt, err := model.ReadRuntime(ctx, s.params, "/iac", "vpc/core")
	if err != nil {
		t.Fatal(err)
	}
	if rt.Values["big"] != json.Number("12345678901234567890") || rt.Sensitive {
		t.Errorf("numbers must stay exact, a String is not sensitive: %#v", rt)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
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
