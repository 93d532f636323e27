package app

import (
	"context"
	"fmt"

	awsdynamodb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	awsssm "github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/usekarma/karma/shared/audit"
	"github.com/usekarma/karma/shared/awscount"
	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/config"
	"github.com/usekarma/karma/shared/dynamo"
	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/graph"
	"github.com/usekarma/karma/shared/lineage"
	"github.com/usekarma/karma/shared/neptune"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/params/ssm"
	"github.com/usekarma/karma/shared/pipeline"
)

// The stores. On the embedded backend, writes of the stores the stages share take the state
// file's write lock in Go (embedded.DB.Serialize*), so that every writer of the process waits
// its turn there instead of in SQLite's busy handler.

// ChangeSets is the change set state (embedded, or DynamoDB).
func (a *App) ChangeSets(ctx context.Context) (changeset.Store, error) {
	return once(a, "change sets", func() (changeset.Store, error) {
		if a.Config.State == config.AWS {
			ddb, err := a.dynamo(ctx)
			if err != nil {
				return nil, err
			}
			return dynamo.NewChangeSets(ddb, a.Config.ChangeSetTable, dynamo.ChangeSetOptions{}), nil
		}
		db, err := a.DB()
		if err != nil {
			return nil, err
		}
		cs, err := embedded.NewChangeSets(ctx, db)
		if err != nil {
			return nil, err
		}
		return db.SerializeChangeSets(cs), nil
	})
}

// Seen is the idempotency record (embedded, or DynamoDB).
func (a *App) Seen(ctx context.Context) (pipeline.Seen, error) {
	return once(a, "idempotency records", func() (pipeline.Seen, error) {
		if a.Config.State == config.AWS {
			ddb, err := a.dynamo(ctx)
			if err != nil {
				return nil, err
			}
			return dynamo.NewSeen(ddb, a.Config.IdempotencyTable, dynamo.SeenOptions{}), nil
		}
		db, err := a.DB()
		if err != nil {
			return nil, err
		}
		return embedded.NewSeen(ctx, db)
	})
}

// Audit is the audit log (embedded, or DynamoDB).
func (a *App) Audit(ctx context.Context) (audit.Log, error) {
	return once(a, "audit log", func() (audit.Log, error) {
		if a.Config.Audit == config.AWS {
			ddb, err := a.dynamo(ctx)
			if err != nil {
				return nil, err
			}
			return dynamo.NewAuditLog(ddb, a.Config.AuditTable, dynamo.AuditOptions{}), nil
		}
		db, err := a.DB()
		if err != nil {
			return nil, err
		}
		return embedded.NewAuditLog(ctx, db)
	})
}

// Lineage is the lineage store (embedded, or Neptune).
func (a *App) Lineage(ctx context.Context) (lineage.Store, error) {
	return once(a, "lineage store", func() (lineage.Store, error) {
		if a.Config.Graph == config.AWS {
			c, err := a.neptune(ctx)
			if err != nil {
				return nil, err
			}
			return neptune.NewLineageStore(c, neptune.StoreOptions{Namespace: a.Config.NeptuneNamespace}), nil
		}
		db, err := a.DB()
		if err != nil {
			return nil, err
		}
		l, err := embedded.NewLineage(ctx, db)
		if err != nil {
			return nil, err
		}
		return db.SerializeLineage(l), nil
	})
}

// GraphStore is where the live graph is written (embedded, or Neptune).
func (a *App) GraphStore(ctx context.Context) (graph.Store, error) {
	return once(a, "graph store", func() (graph.Store, error) {
		if a.Config.Graph == config.AWS {
			c, err := a.neptune(ctx)
			if err != nil {
				return nil, err
			}
			return neptune.NewGraphStore(c, neptune.StoreOptions{Namespace: a.Config.NeptuneNamespace}), nil
		}
		db, err := a.DB()
		if err != nil {
			return nil, err
		}
		g, err := embedded.NewGraphStore(ctx, db)
		if err != nil {
			return nil, err
		}
		return db.SerializeGraph(g), nil
	})
}

// embeddedParams reports whether the parameter stores are the embedded ones, on the state file:
// every backend but aws and none (an empty one is the default, embedded, as for the other
// stores).
func (a *App) embeddedParams() bool {
	return a.Config.Params != config.AWS && a.Config.Params != "none"
}

// Params is the parameter store of env's account: on the embedded backend a namespace per
// environment (standing in for one account each); with SSM the one account of the credentials,
// whatever env; nil with backend "none".
func (a *App) Params(ctx context.Context, env string) (params.Store, error) {
	switch a.Config.Params {
	case "none":
		return nil, nil
	case config.AWS:
		return once(a, "parameter store", func() (params.Store, error) {
			cfg, err := a.awsConfig(ctx)
			if err != nil {
				return nil, err
			}
			return ssm.New(awsssm.NewFromConfig(cfg)), nil
		})
	}
	return once(a, "parameter store of "+env, func() (params.Store, error) {
		db, err := a.DB()
		if err != nil {
			return nil, err
		}
		ps, err := embedded.NewParamStore(db, env)
		if err != nil {
			return nil, err
		}
		return db.SerializeParams(ps), nil
	})
}

// ParamsFor is Params as the stages take it.
func (a *App) ParamsFor(ctx context.Context) func(env string) (params.Store, error) {
	return func(env string) (params.Store, error) {
		st, err := a.Params(ctx, env)
		if err == nil && st == nil {
			err = fmt.Errorf("no parameter store (params backend none) for %s", env)
		}
		return st, err
	}
}

func (a *App) dynamo(ctx context.Context) (*awsdynamodb.Client, error) {
	return once(a, "dynamodb", func() (*awsdynamodb.Client, error) {
		cfg, err := a.awsConfig(ctx)
		if err != nil {
			return nil, err
		}
		return awsdynamodb.NewFromConfig(cfg), nil
	})
}

func (a *App) neptune(ctx context.Context) (*neptune.Client, error) {
	return once(a, "neptune", func() (*neptune.Client, error) {
		if a.Config.NeptuneEndpoint == "" {
			return nil, fmt.Errorf("KARMA_NEPTUNE_ENDPOINT is not set (the Neptune cluster's wss://…:8182/gremlin)")
		}
		o := neptune.Options{Endpoint: a.Config.NeptuneEndpoint, IAM: a.Config.NeptuneIAM}
		if a.opts.Count != nil {
			o.Observe = a.opts.Count.Observe(awscount.Neptune)
		}
		if a.Config.NeptuneIAM {
			cfg, err := a.awsConfig(ctx)
			if err != nil {
				return nil, err
			}
			o.Region, o.Credentials = cfg.Region, cfg.Credentials
		}
		c, err := neptune.Open(ctx, o)
		if err != nil {
			return nil, err
		}
		a.mu.Lock()
		a.closers = append(a.closers, func() error { c.Close(); return nil })
		a.mu.Unlock()
		return c, nil
	})
}
