// Package app is Karma's one composition root: from one configuration (shared/config) it opens
// every store on the backend the configuration names — the embedded SQLite file or its AWS
// service, each store on its own, so mixes work — the queue and publisher, the config
// repository, and builds the pipeline's stages with their middleware. The CLI, `karma serve` and
// the Lambda functions (cmd/karma, cmd/lambda) only choose what to run.
//
// Everything is opened on first use and kept: a command that only reads the audit log never
// connects to Neptune, and a stage whose backend cannot be opened fails naming it.
//
// | store            | embedded (one SQLite file)      | aws                                   |
// |------------------|---------------------------------|---------------------------------------|
// | parameters       | a namespace per environment     | SSM Parameter Store (one account)     |
// | queue, publisher | the embedded queue (outbox)     | SQS queues; EventBridge bus (or SQS)  |
// | graph, lineage   | SQLite tables                   | Neptune (Gremlin)                     |
// | audit log        | SQLite tables                   | DynamoDB                              |
// | state            | change sets, idempotency: SQLite| DynamoDB                              |
// | config repo      | the CLI's local clone; serve and Lambda: a cache clone of KARMA_GIT_URL |
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"

	"github.com/usekarma/karma/shared/awscount"
	"github.com/usekarma/karma/shared/config"
	"github.com/usekarma/karma/shared/configrepo"
	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/governance"
	"github.com/usekarma/karma/shared/neptune"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/policy"
	"github.com/usekarma/karma/shared/queue"
	"github.com/usekarma/karma/shared/terraform"
)

// Repository modes: where the config repository is read from.
const (
	// RepoLocal reads the local clone the configuration's Repo is in (the CLI).
	RepoLocal = "local"
	// RepoCache keeps a cache clone of Git.URL (or, without one, of the local clone) under the
	// cache folder, fetched on demand (karma serve, Lambda).
	RepoCache = "cache"
)

// Options are what the caller chooses beyond the configuration.
type Options struct {
	// Repo is RepoLocal (default) or RepoCache.
	Repo string
	// RemoteOnly: in RepoCache mode, the configuration must name Git.URL (Lambda has no local
	// clone to fall back to).
	RemoteOnly bool
	// Log receives the stages' logs (default: discarded).
	Log *slog.Logger
	// Terraform is the runner plan and apply use (default: the binary, FindTerraform, looked up
	// when such a stage is built).
	Terraform terraform.Runner
	// Transport wraps the queue the runtime sends and receives through (tests).
	Transport func(queue.Queue) queue.Queue
	// Parallelism is how many plans and applies run at once in-process (default 1).
	Parallelism int
	// Visibility is how long a received message stays hidden (default 10 minutes; Lambda: 16).
	Visibility time.Duration
	// RetryBase is the first retry delay of a failed message (default 1 s).
	RetryBase time.Duration
	// AWS is the AWS configuration (default: loaded from the environment when first needed).
	AWS *aws.Config
	// Count, when set, counts every request made to AWS by service and operation: the AWS
	// clients' attempts (its middleware is added to the AWS configuration) and the Gremlin
	// requests sent to Neptune (shared/awscount).
	Count *awscount.Counter
}

// App holds what has been opened; Close releases it.
type App struct {
	Config config.Config
	opts   Options

	mu      sync.Mutex
	aws     *aws.Config
	db      *embedded.DB
	nep     *neptune.Client
	params  map[string]params.Store
	src     *configrepo.Source
	pol     *policy.Engine
	tf      terraform.Runner
	opened  map[string]any // stores by name, opened once
	closers []func() error

	floorOnce sync.Once
	floor     *governance.Settings
	floorErr  error
}

// New returns an App for cfg; nothing is opened yet.
func New(cfg config.Config, opts Options) *App {
	if opts.Repo == "" {
		opts.Repo = RepoLocal
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Visibility <= 0 {
		opts.Visibility = 10 * time.Minute
	}
	a := &App{Config: cfg, opts: opts, params: map[string]params.Store{}, opened: map[string]any{}}
	if opts.AWS != nil {
		c := a.instrument(*opts.AWS)
		a.aws = &c
	}
	return a
}

// Log is the App's logger.
func (a *App) Log() *slog.Logger { return a.opts.Log }

// Close releases every connection and file the App opened.
func (a *App) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	var errs []error
	for i := len(a.closers) - 1; i >= 0; i-- {
		errs = append(errs, a.closers[i]())
	}
	a.closers = nil
	return errors.Join(errs...)
}

// once opens the store named name with open, the first time it is asked for. Called without
// a.mu held; open may call other accessors.
func once[T any](a *App, name string, open func() (T, error)) (T, error) {
	a.mu.Lock()
	if v, ok := a.opened[name]; ok {
		a.mu.Unlock()
		return v.(T), nil
	}
	a.mu.Unlock()
	v, err := open()
	if err != nil {
		var zero T
		return zero, fmt.Errorf("%s: %w", name, err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if prev, ok := a.opened[name]; ok {
		return prev.(T), nil // opened meanwhile by another goroutine
	}
	a.opened[name] = v
	return v, nil
}

// awsConfig loads the AWS configuration once.
func (a *App) awsConfig(ctx context.Context) (aws.Config, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.aws != nil {
		return *a.aws, nil
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return aws.Config{}, fmt.Errorf("AWS configuration: %w", err)
	}
	cfg = a.instrument(cfg)
	a.aws = &cfg
	return cfg, nil
}

// instrument makes the clients of cfg count their requests into Options.Count, if set.
func (a *App) instrument(cfg aws.Config) aws.Config {
	if a.opts.Count == nil {
		return cfg
	}
	return a.opts.Count.Instrument(cfg)
}

// DB opens the embedded state file (<state dir>/karma.db) once.
func (a *App) DB() (*embedded.DB, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.db != nil {
		return a.db, nil
	}
	path := filepath.Join(a.Config.StateDir, "karma.db")
	db, err := embedded.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening embedded state %s: %w", path, err)
	}
	// The runtime's stages, workers and commits use the file from many goroutines at once: keep
	// their connections open between uses.
	db.SQL.SetMaxIdleConns(32)
	if a.embeddedParams() {
		// Now, not when a stage first reads an environment's parameters: a stage may do so
		// inside a transaction of the file (embedded/join.go), where this would wait for it.
		if err := embedded.CreateParamTables(db); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("opening embedded state %s: %w", path, err)
		}
	}
	a.db = db
	a.closers = append(a.closers, db.Close)
	return db, nil
}
