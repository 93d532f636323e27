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
	"github.com/usekarma/karma/shared/config"
	"github.com/usekarma/karma/shared/configrepo"
	"github.com/usekarma/karma/shared/dynamo"
	"github.com/usekarma/karma/shared/gitrepo"
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
	// Repo is the config repository read at commits: a cache clone of KARMA_GIT_URL under
	// /tmp, fetched on demand (graphs, diffs, each commit's Terraform modules).
	Repo      func(context.Context) (*configrepo.Source, error)
	Params    func(context.Context) (params.Store, error)     // SSM Parameter Store
	Terraform func(context.Context) (terraform.Runner, error) // the terraform binary (KARMA_TERRAFORM or PATH)

	// Settings of the stages.
	ParamPrefix string // Parameter Store prefix of Karma's parameters (KARMA_PARAM_PREFIX)
	ModulesDir  string // Terraform modules outside the config repository, if any (KARMA_MODULES_DIR)
	WorkDir     string // component workspaces (KARMA_WORK_DIR, default /tmp/karma/work)
	CacheDir    string // the repository cache and modules (KARMA_CACHE_DIR, default /tmp/karma)
	Visibility  time.Duration
	Log         *slog.Logger
}

// newBackends wires every backend from the environment (docs/configuration.md):
//   - SSM Parameter Store and Terraform (KARMA_TERRAFORM or PATH);
//   - DynamoDB tables KARMA_AUDIT_TABLE, KARMA_CHANGE_SET_TABLE, KARMA_IDEMPOTENCY_TABLE
//     (AWS_ENDPOINT_URL_DYNAMODB honoured by the SDK);
//   - Neptune at KARMA_NEPTUNE_ENDPOINT (KARMA_NEPTUNE_IAM=true signs the handshake);
//   - the config repository: a cache clone of KARMA_GIT_URL (KARMA_GIT_* in docs/configuration.md)
//     under /tmp, fetching the commit a change names on demand (no EFS).
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
	b.CacheDir = getenv("KARMA_CACHE_DIR")
	if b.CacheDir == "" {
		b.CacheDir = "/tmp/karma"
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
	var source *configrepo.Source
	var sourceMu sync.Mutex
	b.Repo = func(context.Context) (*configrepo.Source, error) {
		sourceMu.Lock()
		defer sourceMu.Unlock()
		if source != nil {
			return source, nil
		}
		gc, err := config.Load(getenv)
		if err != nil {
			return nil, err
		}
		if gc.Git.URL == "" {
			return nil, fmt.Errorf("KARMA_GIT_URL is not set (the config repository, fetched into %s on demand)", b.CacheDir)
		}
		remote := gitrepo.Remote{URL: gc.Git.URL, TokenFile: gc.Git.TokenFile, TokenUser: gc.Git.TokenUser, SSHKeyFile: gc.Git.SSHKeyFile,
			KnownHostsFile: gc.Git.KnownHostsFile, Branch: gc.Git.Branch}
		repo, err := gitrepo.OpenCache(filepath.Join(b.CacheDir, "git"), remote, gc.Git.Subdir)
		if err != nil {
			return nil, err
		}
		source = &configrepo.Source{Repo: repo, Settings: model.Settings{Prefix: b.ParamPrefix, ModulesDir: b.ModulesDir},
			ModulesRoot: filepath.Join(b.CacheDir, "modules")}
		return source, nil
	}
	return b
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
			if err := b.need(pipeline.StageResolve, "Repo", "ChangeSets", "Seen", "Params"); err != nil {
				return pipeline.Stage{}, err
			}
			var w resolve.Worker
			var seen pipeline.Seen
			var store params.Store
			err := b.open(ctx, pipeline.StageResolve,
				func(ctx context.Context) (err error) {
					w.Graphs, err = b.Repo(ctx)
					w.Commits = w.Graphs.(resolve.Commits)
					return
				},
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
			if err := b.need(pipeline.StageGraphWrite, "Repo", "GraphStore", "Lineage", "Seen"); err != nil {
				return pipeline.Stage{}, err
			}
			var w graphwrite.Worker
			var seen pipeline.Seen
			err := b.open(ctx, pipeline.StageGraphWrite,
				func(ctx context.Context) (err error) { w.Graphs, err = b.Repo(ctx); return },
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
		"GraphStore": b.GraphStore != nil, "Lineage": b.Lineage != nil, "Repo": b.Repo != nil,
		"Params": b.Params != nil, "Terraform": b.Terraform != nil,
	}
	what := map[string]string{
		"AuditLog":   "the audit log (DynamoDB)",
		"ChangeSets": "change set state (DynamoDB)",
		"Seen":       "idempotency records (DynamoDB)",
		"GraphStore": "the graph store (Neptune)",
		"Lineage":    "the lineage store (Neptune)",
		"Repo":       "the config repository (KARMA_GIT_URL)",
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
	ws         terraform.Workspaces
}

// terraformStage opens what plan and apply need.
func (b *backends) terraformStage(ctx context.Context, stage string) (terraformDeps, pipeline.Seen, error) {
	var d terraformDeps
	if err := b.need(stage, "ChangeSets", "Seen", "Params", "Terraform", "Repo"); err != nil {
		return d, nil, err
	}
	var seen pipeline.Seen
	var store params.Store
	var src *configrepo.Source
	err := b.open(ctx, stage,
		func(ctx context.Context) (err error) { src, err = b.Repo(ctx); return },
		func(ctx context.Context) (err error) { d.changeSets, err = b.ChangeSets(ctx); return },
		func(ctx context.Context) (err error) { seen, err = b.Seen(ctx); return },
		func(ctx context.Context) (err error) { store, err = b.Params(ctx); return },
		func(ctx context.Context) (err error) { d.runner, err = b.Terraform(ctx); return })
	if err != nil {
		return d, nil, err
	}
	// One account per environment: every env's parameters are in this account's store.
	d.params = func(string) (params.Store, error) { return store, nil }
	d.ws = terraform.Workspaces{WorkDir: b.WorkDir, Modules: src, Prefix: b.ParamPrefix}
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
