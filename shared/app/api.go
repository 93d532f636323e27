package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/usekarma/karma/shared/api"
	"github.com/usekarma/karma/shared/configrepo"
	"github.com/usekarma/karma/shared/gitrepo"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/queue"
)

// APIOptions are what the caller of API chooses: how callers authenticate (a tokens file in
// service mode, IAM behind API Gateway, or an explicit loopback-only local mode), the webhook
// handler to mount, and where to log.
type APIOptions struct {
	Auth     api.Authenticator
	Webhooks http.Handler // nil: no POST /webhooks/git
	Log      *slog.Logger
	// Events streams the progress of the pipeline this process runs (GET /events); nil where
	// none runs here (the API function).
	Events *api.Events
}

// API builds the HTTP API (shared/api) over the App's stores: graphs kept in memory over the
// deploy branch's head (Snapshot; Invalidate it when a push arrives), change sets, lineage,
// audit log, parameter stores, the publisher, proposals turned into commits as Git.Write says
// (none: POST /request-change answers 409 read-only-repository), the repository to check
// rollbacks against, the drift check as a read (GET /drift: parameters only, no terraform;
// DriftReader), and the metrics of the stages built by this App.
func (a *App) API(ctx context.Context, o APIOptions) (http.Handler, *api.Snapshot, error) {
	src, err := a.Source(ctx)
	if err != nil {
		return nil, nil, err
	}
	cfg := api.Config{Auth: o.Auth, Webhooks: o.Webhooks, Log: o.Log, Metrics: a.Metrics(ctx), Events: o.Events}
	snap := &api.Snapshot{Source: &api.HeadGraphs{Repo: src}}
	cfg.Graphs = snap
	if cfg.ChangeSets, err = a.ChangeSets(ctx); err != nil {
		return nil, nil, err
	}
	if cfg.Lineage, err = a.Lineage(ctx); err != nil {
		return nil, nil, err
	}
	if cfg.Audit, err = a.Audit(ctx); err != nil {
		return nil, nil, err
	}
	if cfg.Publisher, err = a.Publisher(ctx); err != nil {
		return nil, nil, err
	}
	cfg.Params = func(env string) (api.ParamReader, error) {
		st, err := a.Params(ctx, env)
		if err != nil {
			return nil, fmt.Errorf("parameter store of %s: %w", env, err)
		}
		if st == nil {
			return nil, nil // params backend none: no runtimes to show
		}
		return st, nil
	}
	if cfg.Drift, err = a.DriftReader(ctx); err != nil {
		return nil, nil, err
	}
	if w := a.writer(src); w != nil {
		cfg.Proposals, cfg.Writer = src, w
	}
	cfg.Rollbacks = src // a rollback is checked at the head and at the target's commit

	h, err := api.New(cfg)
	return h, snap, err
}

// writer is how a proposal becomes a commit here: Git.Write (branch, change-branch) on a cache
// clone; nil (proposals refused) for none, or for a local clone (the CLI commits itself).
func (a *App) writer(src *configrepo.Source) *configrepo.Writer {
	mode := a.Config.Git.Write
	if src.Repo.Local() || mode == "" || mode == configrepo.WriteNone {
		return nil
	}
	return &configrepo.Writer{Repo: src.Repo, Mode: mode, Committer: gitrepo.Signature{Name: "Karma", Email: "karma@localhost"}}
}

// Metrics is the registry of /metrics, made once: queue depths and dead letters (when the queue
// can say them: the embedded queue, or SQS's own counts, read at each scrape) and the stages'
// durations and outcomes (the middleware of every stage this App builds).
func (a *App) Metrics(ctx context.Context) *api.Metrics {
	m, _ := once(a, "metrics", func() (*api.Metrics, error) {
		var stats api.QueueStats
		if q, err := a.Queue(ctx); err == nil {
			if qs, ok := unwrapStats(q); ok {
				stats = qs
			}
		}
		return api.NewMetrics(stats, StageNames), nil
	})
	return m
}

func unwrapStats(q queue.Queue) (api.QueueStats, bool) {
	qs, ok := q.(api.QueueStats)
	return qs, ok
}

var (
	_ api.ParamReader    = params.Store(nil)
	_ pipeline.Publisher = (*App)(nil)
)
