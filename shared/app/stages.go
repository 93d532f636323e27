package app

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/usekarma/karma/shared/config"
	"github.com/usekarma/karma/shared/governance"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/terraform"
	"github.com/usekarma/karma/workers/apply"
	auditw "github.com/usekarma/karma/workers/audit"
	"github.com/usekarma/karma/workers/graphwrite"
	"github.com/usekarma/karma/workers/ingest"
	"github.com/usekarma/karma/workers/plan"
	"github.com/usekarma/karma/workers/resolve"
)

// StageNames are the pipeline stages Stage builds, in pipeline order.
var StageNames = []string{pipeline.StageIngest, pipeline.StageResolve, pipeline.StageGraphWrite, pipeline.StagePlan, pipeline.StageApply, pipeline.StageAudit}

// Prefix is the Parameter Store prefix: the configuration's, else the local clone's karma.json
// (RepoLocal), else the default /iac.
func (a *App) Prefix() (string, error) {
	if a.Config.Prefix != "" {
		return a.Config.Prefix, nil
	}
	if a.opts.Repo == RepoLocal {
		st, err := model.LoadSettings(a.Config.Repo, model.Settings{})
		if err != nil {
			return "", err
		}
		return st.Prefix, nil
	}
	return model.DefaultPrefix, nil
}

// RunOptions tune the stages of one run (a command, a service).
type RunOptions struct {
	// Parallelism is how many plans and applies run at once (default: Options.Parallelism, 1).
	Parallelism int
	// Log receives the stages' logs (default: Options.Log).
	Log *slog.Logger
	// Observe is called after each message is handled (progress views).
	Observe func(stage string, in message.Envelope, out []message.Envelope, action pipeline.Action, err error)
}

func (a *App) runOptions(ro RunOptions) RunOptions {
	if ro.Parallelism <= 0 {
		ro.Parallelism = max(a.opts.Parallelism, 1)
	}
	if ro.Log == nil {
		ro.Log = a.opts.Log
	}
	return ro
}

// Stage builds the named pipeline stage with the middleware every stage runs with — logs,
// correlation, in-process retries of transient errors — and idempotency records (Stage.Seen).
func (a *App) Stage(ctx context.Context, name string) (pipeline.Stage, error) {
	return a.stage(ctx, name, a.runOptions(RunOptions{}))
}

func (a *App) stage(ctx context.Context, name string, ro RunOptions) (pipeline.Stage, error) {
	build, ok := map[string]func(context.Context) (pipeline.Handler, error){
		pipeline.StageIngest:     a.ingestHandler,
		pipeline.StageResolve:    a.resolveHandler,
		pipeline.StageGraphWrite: a.graphWriteHandler,
		pipeline.StagePlan:       a.planHandler,
		pipeline.StageApply:      a.applyHandler,
		pipeline.StageAudit:      nil,
	}[name]
	if !ok {
		return pipeline.Stage{}, fmt.Errorf("stage %q: want one of %s", name, strings.Join(StageNames, ", "))
	}
	if name == pipeline.StageAudit {
		return a.auditStage(ctx, ro)
	}
	h, err := build(ctx)
	if err != nil {
		return pipeline.Stage{}, fmt.Errorf("stage %s: %w", name, err)
	}
	seen, err := a.Seen(ctx)
	if err != nil {
		return pipeline.Stage{}, fmt.Errorf("stage %s: %w", name, err)
	}
	workers := 1
	if name == pipeline.StagePlan || name == pipeline.StageApply {
		workers = ro.Parallelism
	}
	return pipeline.Stage{Name: name, Workers: workers, Seen: seen, Lease: a.opts.Visibility, Handler: a.chain(ctx, ro.Log, name, h)}, nil
}

// chain is the middleware every stage runs with: the stage's metrics, logs, correlation,
// in-process retries of transient errors.
func (a *App) chain(ctx context.Context, log *slog.Logger, name string, h pipeline.Handler) pipeline.Handler {
	return pipeline.Chain(h, a.Metrics(ctx).Middleware(name), pipeline.Logging(log, name), pipeline.Correlation(), pipeline.RetryTransient(2*time.Second))
}

// Stages builds every stage.
func (a *App) Stages(ctx context.Context) ([]pipeline.Stage, error) {
	return a.stages(ctx, a.runOptions(RunOptions{}))
}

func (a *App) stages(ctx context.Context, ro RunOptions) ([]pipeline.Stage, error) {
	var out []pipeline.Stage
	for _, name := range StageNames {
		st, err := a.stage(ctx, name, ro)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// Runner is the in-process runtime over every stage: the embedded queue (batches through its
// outbox), or SQS pollers publishing to the event bus.
func (a *App) Runner(ctx context.Context, ro RunOptions) (*pipeline.Runner, error) {
	ro = a.runOptions(ro)
	stages, err := a.stages(ctx, ro)
	if err != nil {
		return nil, err
	}
	q, err := a.Queue(ctx)
	if err != nil {
		return nil, err
	}
	r := &pipeline.Runner{Queue: q, Stages: stages, Log: ro.Log, Observe: ro.Observe, Visibility: a.opts.Visibility, RetryBase: a.opts.RetryBase}
	if a.Config.Queue == config.AWS && a.Config.EventBus != "" {
		if r.Publisher, err = a.Publisher(ctx); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func (a *App) ingestHandler(ctx context.Context) (pipeline.Handler, error) {
	prefix, err := a.Prefix()
	if err != nil {
		return nil, err
	}
	return (&ingest.Worker{Parameters: paramHistory{params: a.ParamsFor(ctx)}, Prefix: prefix}).Handle, nil
}

func (a *App) resolveHandler(ctx context.Context) (pipeline.Handler, error) {
	src, err := a.Source(ctx)
	if err != nil {
		return nil, err
	}
	cs, err := a.ChangeSets(ctx)
	if err != nil {
		return nil, err
	}
	prefix, err := a.Prefix()
	if err != nil {
		return nil, err
	}
	pol, err := a.Policies(ctx)
	if err != nil {
		return nil, err
	}
	floor, err := a.GovernanceFloor()
	if err != nil {
		return nil, err
	}
	w := &resolve.Worker{Graphs: src, Commits: src, ChangeSets: cs, Configs: paramConfigs{params: a.ParamsFor(ctx), prefix: prefix}, Policies: pol,
		Floor: floor}
	return w.Handle, nil
}

func (a *App) graphWriteHandler(ctx context.Context) (pipeline.Handler, error) {
	src, err := a.Source(ctx)
	if err != nil {
		return nil, err
	}
	gs, err := a.GraphStore(ctx)
	if err != nil {
		return nil, err
	}
	lin, err := a.Lineage(ctx)
	if err != nil {
		return nil, err
	}
	return (&graphwrite.Worker{Graphs: src, Store: gs, Lineage: lin}).Handle, nil
}

// terraformDeps are what plan and apply share.
func (a *App) terraformDeps(ctx context.Context) (terraform.Runner, terraform.Workspaces, error) {
	src, err := a.Source(ctx)
	if err != nil {
		return nil, terraform.Workspaces{}, err
	}
	prefix, err := a.Prefix()
	if err != nil {
		return nil, terraform.Workspaces{}, err
	}
	tf, err := a.Terraform()
	if err != nil {
		return nil, terraform.Workspaces{}, err
	}
	return tf, terraform.Workspaces{WorkDir: a.Config.Work(), Modules: src, Prefix: prefix}, nil
}

func (a *App) planHandler(ctx context.Context) (pipeline.Handler, error) {
	tf, ws, err := a.terraformDeps(ctx)
	if err != nil {
		return nil, err
	}
	cs, err := a.ChangeSets(ctx)
	if err != nil {
		return nil, err
	}
	return (&plan.Worker{ChangeSets: cs, Params: a.ParamsFor(ctx), Runner: tf, Workspaces: ws}).Handle, nil
}

func (a *App) applyHandler(ctx context.Context) (pipeline.Handler, error) {
	tf, ws, err := a.terraformDeps(ctx)
	if err != nil {
		return nil, err
	}
	cs, err := a.ChangeSets(ctx)
	if err != nil {
		return nil, err
	}
	pol, err := a.Policies(ctx)
	if err != nil {
		return nil, err
	}
	return (&apply.Worker{ChangeSets: cs, Params: a.ParamsFor(ctx), Runner: tf, Workspaces: ws, Policies: pol}).Handle, nil
}

// auditStage appends a whole batch at once (one transaction on the embedded log). On DynamoDB
// it keeps no idempotency records: the audit log ignores a message id it already has.
func (a *App) auditStage(ctx context.Context, ro RunOptions) (pipeline.Stage, error) {
	log, err := a.Audit(ctx)
	if err != nil {
		return pipeline.Stage{}, fmt.Errorf("stage audit: %w", err)
	}
	w := &auditw.Worker{Log: log}
	st := pipeline.Stage{Name: pipeline.StageAudit, Workers: 1, Lease: a.opts.Visibility, Handler: a.chain(ctx, ro.Log, pipeline.StageAudit, w.Handle), Batch: w.HandleBatch}
	if a.Config.State != config.AWS {
		if st.Seen, err = a.Seen(ctx); err != nil {
			return pipeline.Stage{}, fmt.Errorf("stage audit: %w", err)
		}
	}
	return st, nil
}

// Terraform is the runner plan and apply use: Options.Terraform, else the binary.
func (a *App) Terraform() (terraform.Runner, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.opts.Terraform != nil {
		return a.opts.Terraform, nil
	}
	if a.tf == nil {
		path, err := terraform.FindTerraform()
		if err != nil {
			return nil, err
		}
		a.tf = terraform.NewTFExec(path)
	}
	return a.tf, nil
}

// paramHistory reads a parameter's versions from its environment's store (ingest.ParameterReader).
type paramHistory struct {
	params func(env string) (params.Store, error)
}

func (p paramHistory) History(ctx context.Context, env, name string) ([]params.Parameter, error) {
	st, err := p.params(env)
	if err != nil {
		return nil, err
	}
	h, ok := st.(params.Historian)
	if !ok {
		return nil, fmt.Errorf("the parameter store of %s (%T) keeps no history", env, st)
	}
	return h.History(ctx, name)
}

// paramConfigs reads a component's /config parameter (resolve.ConfigReader).
type paramConfigs struct {
	params func(env string) (params.Store, error)
	prefix string
}

func (p paramConfigs) Config(ctx context.Context, env, component string) ([]byte, error) {
	parts := strings.SplitN(component, "/", 3)
	if len(parts) != 3 {
		return nil, fmt.Errorf("bad component id %q", component)
	}
	st, err := p.params(env)
	if err != nil {
		return nil, err
	}
	v, err := st.Get(ctx, model.ConfigParam(p.prefix, parts[1], parts[2]))
	if err != nil {
		return nil, err
	}
	return []byte(v.Value), nil
}

// GovernanceFloor is the operator's floor of governance rules (KARMA_GOVERNANCE), read once; nil
// when none is configured.
func (a *App) GovernanceFloor() (*governance.Settings, error) {
	a.floorOnce.Do(func() {
		if a.Config.Governance == "" {
			return
		}
		s, err := governance.LoadFloor(a.Config.Governance)
		a.floor, a.floorErr = &s, err
	})
	if a.floorErr != nil {
		return nil, a.floorErr
	}
	return a.floor, nil
}
