package app

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/config"
	"github.com/usekarma/karma/shared/configrepo"
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
	build, ok := map[string]func(context.Context) (pipeline.Stage, error){
		pipeline.StageIngest:     a.ingestStage,
		pipeline.StageResolve:    a.resolveStage,
		pipeline.StageGraphWrite: a.graphWriteStage,
		pipeline.StagePlan:       a.planStage,
		pipeline.StageApply:      a.applyStage,
		pipeline.StageAudit:      nil,
	}[name]
	if !ok {
		return pipeline.Stage{}, fmt.Errorf("stage %q: want one of %s", name, strings.Join(StageNames, ", "))
	}
	if name == pipeline.StageAudit {
		return a.auditStage(ctx, ro)
	}
	st, err := build(ctx) // its Handler (and Prepare)
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
	st.Name, st.Workers, st.Seen, st.Lease, st.Handler = name, workers, seen, a.opts.Visibility, a.chain(ctx, ro.Log, name, st.Handler)
	if st.Joined = a.joins(name); !st.Joined {
		st.Prepare = nil // (only a joined stage's handler runs holding the file's write lock)
	}
	return st, nil
}

// joins reports whether stage name is handled in the transaction that settles its messages
// (pipeline.Stage.Joined): when the queue and every store the stage writes or reads are the
// embedded ones, on the one state file. Plan and apply never are: they run Terraform, and the
// transaction would hold the file's write lock for as long as Terraform runs.
func (a *App) joins(name string) bool {
	c := a.Config
	if c.Queue == config.AWS || c.Params == config.AWS {
		return false
	}
	switch name {
	case pipeline.StageResolve:
		return c.State != config.AWS
	case pipeline.StageGraphWrite:
		return c.Graph != config.AWS
	case pipeline.StageAudit:
		return c.Audit != config.AWS && c.State != config.AWS
	}
	return false
}

// chain is the middleware every stage runs with: the stage's metrics, logs, correlation,
// in-process retries of transient errors — but for a joined stage (joins), whose handler holds
// the file's write lock and whose failed message has its writes undone anyway: the runner puts
// that message back with its backoff instead.
func (a *App) chain(ctx context.Context, log *slog.Logger, name string, h pipeline.Handler) pipeline.Handler {
	mw := []pipeline.Middleware{a.Metrics(ctx).Middleware(name), pipeline.Logging(log, name), pipeline.Correlation()}
	if !a.joins(name) {
		mw = append(mw, pipeline.RetryTransient(2*time.Second))
	}
	return pipeline.Chain(h, mw...)
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
// outbox), or SQS pollers publishing to the event bus. A process that asks for one runs the
// pipeline: its garbage collector is tuned for that (tuneGC) unless GOGC is set.
func (a *App) Runner(ctx context.Context, ro RunOptions) (*pipeline.Runner, error) {
	tuneGC()
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

func (a *App) ingestStage(ctx context.Context) (pipeline.Stage, error) {
	prefix, err := a.Prefix()
	if err != nil {
		return pipeline.Stage{}, err
	}
	seen, err := a.Seen(ctx)
	if err != nil {
		return pipeline.Stage{}, err
	}
	records, _ := seen.(pipeline.Records) // both Seen stores are
	return pipeline.Stage{Handler: (&ingest.Worker{Parameters: paramHistory{params: a.ParamsFor(ctx)}, Prefix: prefix, Records: records, Seen: seen}).Handle}, nil
}

// The repository lists a truncated push's authors for resolve (resolve.Authors).
var _ resolve.Authors = (*configrepo.Source)(nil)

// It reads versions of files for resolve's holds, which compare resolved configs (resolve.FileVersions).
var _ resolve.FileVersions = (*configrepo.Source)(nil)

func (a *App) resolveStage(ctx context.Context) (pipeline.Stage, error) {
	src, err := a.Source(ctx)
	if err != nil {
		return pipeline.Stage{}, err
	}
	cs, err := a.ChangeSets(ctx)
	if err != nil {
		return pipeline.Stage{}, err
	}
	prefix, err := a.Prefix()
	if err != nil {
		return pipeline.Stage{}, err
	}
	pol, err := a.Policies(ctx)
	if err != nil {
		return pipeline.Stage{}, err
	}
	floor, err := a.GovernanceFloor()
	if err != nil {
		return pipeline.Stage{}, err
	}
	w := &resolve.Worker{Graphs: src, Commits: src, ChangeSets: cs, Configs: paramConfigs{params: a.ParamsFor(ctx), prefix: prefix}, Policies: pol,
		Floor: floor}
	return pipeline.Stage{Handler: w.Handle, Prepare: w.Prepare}, nil
}

func (a *App) graphWriteStage(ctx context.Context) (pipeline.Stage, error) {
	src, err := a.Source(ctx)
	if err != nil {
		return pipeline.Stage{}, err
	}
	gs, err := a.GraphStore(ctx)
	if err != nil {
		return pipeline.Stage{}, err
	}
	lin, err := a.Lineage(ctx)
	if err != nil {
		return pipeline.Stage{}, err
	}
	w := &graphwrite.Worker{Graphs: src, Store: gs, Lineage: lin}
	if a.Config.Graph == config.AWS {
		// Neptune's check and write are many requests, not one transaction: writes of one
		// environment take turns, holding a lease in the idempotency store (graphwrite/lock.go).
		if w.Lock, err = a.Seen(ctx); err != nil {
			return pipeline.Stage{}, err
		}
	}
	return pipeline.Stage{Handler: w.Handle, Prepare: w.Prepare}, nil
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
	spent, err := a.planSpent(ctx)
	if err != nil {
		return nil, terraform.Workspaces{}, err
	}
	return tf, terraform.Workspaces{WorkDir: a.Config.Work(), Modules: src, Prefix: prefix, Spent: spent}, nil
}

// SweepPlans removes from every workspace the saved plans that can no longer be applied (stale,
// or their deployment over: terraform.SweepPlans), for a long-running process to call now and
// then: a plan held for review whose change set is then rejected, expired or superseded
// otherwise stays until the component is next planned.
func (a *App) SweepPlans(ctx context.Context) (int, error) {
	spent, err := a.planSpent(ctx)
	if err != nil {
		return 0, err
	}
	return terraform.SweepPlans(ctx, a.Config.Work(), spent)
}

// planSpent says, from the change sets, when a saved plan's deployment will never apply it: the
// plan, which holds the values of its variables, is then removed from its workspace.
func (a *App) planSpent(ctx context.Context) (terraform.SpentFunc, error) {
	cs, err := a.ChangeSets(ctx)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, component string, o terraform.PlanOwner) bool {
		return changeset.PlanSpent(ctx, cs, o.ChangeSetID, component, o.DeploymentID)
	}, nil
}

func (a *App) planStage(ctx context.Context) (pipeline.Stage, error) {
	tf, ws, err := a.terraformDeps(ctx)
	if err != nil {
		return pipeline.Stage{}, err
	}
	cs, err := a.ChangeSets(ctx)
	if err != nil {
		return pipeline.Stage{}, err
	}
	return pipeline.Stage{Handler: (&plan.Worker{ChangeSets: cs, Params: a.ParamsFor(ctx), Runner: tf, Workspaces: ws}).Handle}, nil
}

func (a *App) applyStage(ctx context.Context) (pipeline.Stage, error) {
	tf, ws, err := a.terraformDeps(ctx)
	if err != nil {
		return pipeline.Stage{}, err
	}
	cs, err := a.ChangeSets(ctx)
	if err != nil {
		return pipeline.Stage{}, err
	}
	pol, err := a.Policies(ctx)
	if err != nil {
		return pipeline.Stage{}, err
	}
	w := &apply.Worker{ChangeSets: cs, Params: a.ParamsFor(ctx), Runner: tf, Workspaces: ws, Policies: pol}
	if a.appliesAtomically() {
		db, err := a.DB()
		if err != nil {
			return pipeline.Stage{}, err
		}
		w.Atomic = db.Atomically
	}
	return pipeline.Stage{Handler: w.Handle}, nil
}

// appliesAtomically reports whether apply publishes an outcome in one transaction of the state
// file (apply.Worker.Atomic): when parameters and change sets are both on it. With either on AWS
// there is nothing to join, and the file's write lock must not be held across Parameter Store's
// requests. An empty backend is the embedded default, as everywhere in this package.
func (a *App) appliesAtomically() bool {
	return a.Config.State != config.AWS && a.embeddedParams()
}

// auditStage appends a whole batch at once (one transaction on the embedded log). It keeps no
// idempotency records on any backend: both audit logs ignore a message id they already have,
// checked in the transaction that appends (a mark per message would only repeat that check,
// and cost a row written per message: 6 of an event's 13 deliveries are audit copies).
func (a *App) auditStage(ctx context.Context, ro RunOptions) (pipeline.Stage, error) {
	log, err := a.Audit(ctx)
	if err != nil {
		return pipeline.Stage{}, fmt.Errorf("stage audit: %w", err)
	}
	w := &auditw.Worker{Log: log}
	st := pipeline.Stage{Name: pipeline.StageAudit, Workers: 1, Lease: a.opts.Visibility, Handler: a.chain(ctx, ro.Log, pipeline.StageAudit, w.Handle), Batch: w.HandleBatch,
		Joined: a.joins(pipeline.StageAudit)}
	if st.Joined {
		st.Prepare = w.Prepare // records sealed before the transaction that appends them
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

// paramConfigs reads a component's /config parameter (resolve.ConfigReader): the version named,
// written when the change says (params.GetWritten).
type paramConfigs struct {
	params func(env string) (params.Store, error)
	prefix string
}

func (p paramConfigs) Config(ctx context.Context, env, component string, version int64, writtenAt time.Time) ([]byte, error) {
	parts := strings.SplitN(component, "/", 3)
	if len(parts) != 3 {
		return nil, fmt.Errorf("bad component id %q", component)
	}
	st, err := p.params(env)
	if err != nil {
		return nil, err
	}
	v, err := params.GetWritten(ctx, st, model.ConfigParam(p.prefix, parts[1], parts[2]), version, writtenAt)
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
