package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsdynamodb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	awsssm "github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/usekarma/karma/shared/audit"
	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/dynamo"
	"github.com/usekarma/karma/shared/graph"
	"github.com/usekarma/karma/shared/lineage"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/neptune"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/params/ssm"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/terraform"
	"github.com/usekarma/karma/workers/apply"
	auditw "github.com/usekarma/karma/workers/audit"
	"github.com/usekarma/karma/workers/graphwrite"
	"github.com/usekarma/karma/workers/plan"
	"github.com/usekarma/karma/workers/resolve"
)

// backends are the stores and tools the stages need, each with what backs it in AWS. A nil
// field is a backend that is not wired into this binary yet: every stage that needs it refuses
// to start with an error naming it. Wiring an adapter is setting its field in newBackends.
type backends struct {
	AuditLog   func(context.Context) (audit.Log, error)       // DynamoDB (shared/dynamo)
	ChangeSets func(context.Context) (changeset.Store, error) // DynamoDB (shared/dynamo)
	Seen       func(context.Context) (pipeline.Seen, error)   // DynamoDB (shared/dynamo): idempotency records
	GraphStore func(context.Context) (graph.Store, error)     // Neptune (shared/neptune)
	Lineage    func(context.Context) (lineage.Store, error)   // Neptune (shared/neptune)
	// Graphs builds an environment's graph from the config repository (a checkout of the commit).
	Graphs    func(context.Context) (resolve.Graphs, error)
	Params    func(context.Context) (params.Store, error)     // SSM Parameter Store
	Terraform func(context.Context) (terraform.Runner, error) // the terraform binary (KARMA_TERRAFORM or PATH)

	// Settings of the stages.
	ParamPrefix string // Parameter Store prefix of Karma's parameters (KARMA_PARAM_PREFIX)
	ModulesDir  string // Terraform modules, one folder per component type (KARMA_MODULES_DIR)
	WorkDir     string // component workspaces (KARMA_WORK_DIR, default /tmp/karma/work)
	Visibility  time.Duration
	Log         *slog.Logger
}

// newBackends wires every backend from the environment (docs/configuration.md):
//   - SSM Parameter Store and Terraform (KARMA_TERRAFORM or PATH);
//   - DynamoDB tables KARMA_AUDIT_TABLE, KARMA_CHANGE_SET_TABLE, KARMA_IDEMPOTENCY_TABLE
//     (AWS_ENDPOINT_URL_DYNAMODB honoured by the SDK);
//   - Neptune at KARMA_NEPTUNE_ENDPOINT (KARMA_NEPTUNE_IAM=true signs the handshake);
//   - the config repository checked out at KARMA_REPO (bundled with the function or on EFS).
//
// Connections are opened when a stage is built, so a stage only needs what it uses.
func newBackends(cfg aws.Config, getenv func(string) string, log *slog.Logger) *backends {
	b := &backends{
		ParamPrefix: getenv("KARMA_PARAM_PREFIX"),
		ModulesDir:  getenv("KARMA_MODULES_DIR"),
		WorkDir:     getenv("KARMA_WORK_DIR"),
		Visibility:  16 * time.Minute, // ≥ the longest function timeout (15 min, plan and apply), as the queues' visibility (terraform/)
		Log:         log,
	}
	if b.ParamPrefix == "" {
		b.ParamPrefix = model.DefaultPrefix
	}
	if b.WorkDir == "" {
		b.WorkDir = "/tmp/karma/work" // Lambda's only writable place
	}
	store := ssm.New(awsssm.NewFromConfig(cfg))
	b.Params = func(context.Context) (params.Store, error) { return store, nil }
	b.Terraform = func(context.Context) (terraform.Runner, error) {
		path, err := terraform.FindTerraform()
		if err != nil {
			return nil, err
		}
		return terraform.NewTFExec(path), nil
	}
	table := func(key, def string) string {
		if v := getenv(key); v != "" {
			return v
		}
		return def
	}
	ddb := awsdynamodb.NewFromConfig(cfg)
	b.AuditLog = func(context.Context) (audit.Log, error) {
		return dynamo.NewAuditLog(ddb, table("KARMA_AUDIT_TABLE", "karma-audit"), dynamo.AuditOptions{}), nil
	}
	b.ChangeSets = func(context.Context) (changeset.Store, error) {
		return dynamo.NewChangeSets(ddb, table("KARMA_CHANGE_SET_TABLE", "karma-change-sets"), dynamo.ChangeSetOptions{}), nil
	}
	b.Seen = func(context.Context) (pipeline.Seen, error) {
		return dynamo.NewSeen(ddb, table("KARMA_IDEMPOTENCY_TABLE", "karma-idempotency"), dynamo.SeenOptions{}), nil
	}
	var nep *neptune.Client
	openNeptune := func(ctx context.Context) (*neptune.Client, error) {
		if nep != nil {
			return nep, nil
		}
		endpoint := getenv("KARMA_NEPTUNE_ENDPOINT")
		if endpoint == "" {
			return nil, fmt.Errorf("KARMA_NEPTUNE_ENDPOINT is not set (the Neptune cluster's wss://…:8182/gremlin)")
		}
		c, err := neptune.Open(ctx, neptune.Options{Endpoint: endpoint, IAM: getenv("KARMA_NEPTUNE_IAM") == "true", Region: cfg.Region, Credentials: cfg.Credentials})
		if err != nil {
			return nil, err
		}
		nep = c
		return c, nil
	}
	b.GraphStore = func(ctx context.Context) (graph.Store, error) {
		c, err := openNeptune(ctx)
		if err != nil {
			return nil, err
		}
		return neptune.NewGraphStore(c, neptune.StoreOptions{}), nil
	}
	b.Lineage = func(ctx context.Context) (lineage.Store, error) {
		c, err := openNeptune(ctx)
		if err != nil {
			return nil, err
		}
		return neptune.NewLineageStore(c, neptune.StoreOptions{}), nil
	}
	b.Graphs = func(context.Context) (resolve.Graphs, error) {
		repo := getenv("KARMA_REPO")
		if repo == "" {
			return nil, fmt.Errorf("KARMA_REPO is not set (a checkout of the config repository)")
		}
		return &repoGraphs{root: repo, prefix: b.ParamPrefix}, nil
	}
	return b
}

// repoGraphs builds an environment's graph from the config repository checkout, once per
// function instance (an instance serves one deployed revision of the configuration).
type repoGraphs struct {
	root, prefix string
	mu           sync.Mutex
	cache        map[string]*model.Result
}

func (r *repoGraphs) Build(ctx context.Context, env string, overrides map[string][]byte) (*model.Result, error) {
	opts := model.BuildOptions{LoadOptions: model.LoadOptions{Env: env, Settings: model.Settings{Prefix: r.prefix}, Overrides: overrides}}
	if len(overrides) > 0 {
		return model.Build(ctx, r.root, opts)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if res, ok := r.cache[env]; ok {
		return res, nil
	}
	res, err := model.Build(ctx, r.root, opts)
	if err != nil {
		return nil, err
	}
	if r.cache == nil {
		r.cache = map[string]*model.Result{}
	}
	r.cache[env] = res
	return res, nil
}

func (r *repoGraphs) Environments(ctx context.Context) ([]string, error) {
	repo, err := model.Load(r.root, model.LoadOptions{Settings: model.Settings{Prefix: r.prefix}})
	if err != nil {
		return nil, err
	}
	return repo.Environments, nil
}

// stageBuilders returns the constructor of every stage KARMA_STAGE may name.
func stageBuilders(b *backends) map[string]func(context.Context) (pipeline.Stage, error) {
	return map[string]func(context.Context) (pipeline.Stage, error){
		pipeline.StageAudit: func(ctx context.Context) (pipeline.Stage, error) {
			if err := b.need(pipeline.StageAudit, "AuditLog"); err != nil {
				return pipeline.Stage{}, err
			}
			log, err := b.AuditLog(ctx)
			if err != nil {
				return pipeline.Stage{}, fmt.Errorf("stage audit: audit log: %w", err)
			}
			// No idempotency records: the audit log ignores a message id it already has.
			return b.stage(pipeline.StageAudit, (&auditw.Worker{Log: log}).Handle, nil), nil
		},
		pipeline.StageResolve: func(ctx context.Context) (pipeline.Stage, error) {
			if err := b.need(pipeline.StageResolve, "Graphs", "ChangeSets", "Seen", "Params"); err != nil {
				return pipeline.Stage{}, err
			}
			var w resolve.Worker
			var seen pipeline.Seen
			var store params.Store
			err := b.open(ctx, pipeline.StageResolve,
				func(ctx context.Context) (err error) { w.Graphs, err = b.Graphs(ctx); return },
				func(ctx context.Context) (err error) { w.ChangeSets, err = b.ChangeSets(ctx); return },
				func(ctx context.Context) (err error) { seen, err = b.Seen(ctx); return },
				func(ctx context.Context) (err error) { store, err = b.Params(ctx); return })
			if err != nil {
				return pipeline.Stage{}, err
			}
			w.Configs = paramConfigs{store: store, prefix: b.ParamPrefix}
			return b.stage(pipeline.StageResolve, w.Handle, seen), nil
		},
		pipeline.StageGraphWrite: func(ctx context.Context) (pipeline.Stage, error) {
			if err := b.need(pipeline.StageGraphWrite, "Graphs", "GraphStore", "Lineage", "Seen"); err != nil {
				return pipeline.Stage{}, err
			}
			var w graphwrite.Worker
			var seen pipeline.Seen
			err := b.open(ctx, pipeline.StageGraphWrite,
				func(ctx context.Context) (err error) { w.Graphs, err = b.Graphs(ctx); return },
				func(ctx context.Context) (err error) { w.Store, err = b.GraphStore(ctx); return },
				func(ctx context.Context) (err error) { w.Lineage, err = b.Lineage(ctx); return },
				func(ctx context.Context) (err error) { seen, err = b.Seen(ctx); return })
			if err != nil {
				return pipeline.Stage{}, err
			}
			return b.stage(pipeline.StageGraphWrite, w.Handle, seen), nil
		},
		pipeline.StagePlan: func(ctx context.Context) (pipeline.Stage, error) {
			p, seen, err := b.terraformStage(ctx, pipeline.StagePlan)
			if err != nil {
				return pipeline.Stage{}, err
			}
			return b.stage(pipeline.StagePlan, (&plan.Worker{ChangeSets: p.changeSets, Params: p.params, Runner: p.runner, Workspaces: p.ws}).Handle, seen), nil
		},
		pipeline.StageApply: func(ctx context.Context) (pipeline.Stage, error) {
			p, seen, err := b.terraformStage(ctx, pipeline.StageApply)
			if err != nil {
				return pipeline.Stage{}, err
			}
			return b.stage(pipeline.StageApply, (&apply.Worker{ChangeSets: p.changeSets, Params: p.params, Runner: p.runner, Workspaces: p.ws}).Handle, seen), nil
		},
		pipeline.StageIngest: func(context.Context) (pipeline.Stage, error) {
			return pipeline.Stage{}, fmt.Errorf("stage ingest is not a pipeline handler: it is served by KARMA_STAGE=ingest " +
				"(Parameter Store events from SQS), reconcile (scheduled) and webhook (API Gateway)")
		},
	}
}

// need fails naming every backend of names that is not wired.
func (b *backends) need(stage string, names ...string) error {
	wired := map[string]bool{
		"AuditLog": b.AuditLog != nil, "ChangeSets": b.ChangeSets != nil, "Seen": b.Seen != nil,
		"GraphStore": b.GraphStore != nil, "Lineage": b.Lineage != nil, "Graphs": b.Graphs != nil,
		"Params": b.Params != nil, "Terraform": b.Terraform != nil,
	}
	what := map[string]string{
		"AuditLog":   "the audit log (DynamoDB)",
		"ChangeSets": "change set state (DynamoDB)",
		"Seen":       "idempotency records (DynamoDB)",
		"GraphStore": "the graph store (Neptune)",
		"Lineage":    "the lineage store (Neptune)",
		"Graphs":     "the config repository (a checkout of the change's commit)",
		"Params":     "SSM Parameter Store",
		"Terraform":  "the terraform binary",
	}
	var missing []string
	for _, n := range names {
		if !wired[n] {
			missing = append(missing, what[n])
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("stage %s cannot start: backend not wired into this binary yet: %s", stage, strings.Join(missing, ", "))
	}
	return nil
}

// open runs the constructors of a stage's backends.
func (b *backends) open(ctx context.Context, stage string, fns ...func(context.Context) error) error {
	for _, fn := range fns {
		if err := fn(ctx); err != nil {
			return fmt.Errorf("stage %s: %w", stage, err)
		}
	}
	return nil
}

type terraformDeps struct {
	changeSets changeset.Store
	params     func(env string) (params.Store, error)
	runner     terraform.Runner
	ws         plan.Workspaces
}

// terraformStage opens what plan and apply need.
func (b *backends) terraformStage(ctx context.Context, stage string) (terraformDeps, pipeline.Seen, error) {
	var d terraformDeps
	if err := b.need(stage, "ChangeSets", "Seen", "Params", "Terraform"); err != nil {
		return d, nil, err
	}
	if b.ModulesDir == "" {
		return d, nil, fmt.Errorf("stage %s: KARMA_MODULES_DIR (the Terraform modules, one folder per component type) is not set", stage)
	}
	var seen pipeline.Seen
	var store params.Store
	err := b.open(ctx, stage,
		func(ctx context.Context) (err error) { d.changeSets, err = b.ChangeSets(ctx); return },
		func(ctx context.Context) (err error) { seen, err = b.Seen(ctx); return },
		func(ctx context.Context) (err error) { store, err = b.Params(ctx); return },
		func(ctx context.Context) (err error) { d.runner, err = b.Terraform(ctx); return })
	if err != nil {
		return d, nil, err
	}
	// One account per environment: every env's parameters are in this account's store.
	d.params = func(string) (params.Store, error) { return store, nil }
	d.ws = plan.Workspaces{WorkDir: b.WorkDir, ModulesDir: filepath.Clean(b.ModulesDir), Prefix: b.ParamPrefix}
	return d, seen, nil
}

// stage wraps a handler in the middleware every stage runs with (as cmd/karma does).
func (b *backends) stage(name string, h pipeline.Handler, seen pipeline.Seen) pipeline.Stage {
	log := b.Log
	if log == nil {
		log = slog.Default()
	}
	mw := []pipeline.Middleware{pipeline.Logging(log, name), pipeline.Correlation()}
	if seen != nil {
		mw = append(mw, pipeline.Idempotency(seen, name, b.Visibility))
	}
	mw = append(mw, pipeline.RetryTransient(2*time.Second))
	return pipeline.Stage{Name: name, Handler: pipeline.Chain(h, mw...)}
}

// paramConfigs reads a component's /config parameter (resolve.ConfigReader).
type paramConfigs struct {
	store  params.Store
	prefix string
}

func (p paramConfigs) Config(ctx context.Context, _ string, component string) ([]byte, error) {
	parts := strings.SplitN(component, "/", 3)
	if len(parts) != 3 {
		return nil, fmt.Errorf("bad component id %q", component)
	}
	v, err := p.store.Get(ctx, model.ConfigParam(p.prefix, parts[1], parts[2]))
	if err != nil {
		return nil, err
	}
	return []byte(v.Value), nil
}
