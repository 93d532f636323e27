package app

import (
	"context"
	"fmt"

	"github.com/usekarma/karma/shared/drift"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/terraform"
)

// DriftChecker is the drift check over the configuration's stores: the config repository's
// head, the parameter store of each environment, the change sets and — for the environments
// that set drift_refresh — terraform (refresh-only plans in the workspaces under the work
// folder, with the modules of each deployment's commit). When no terraform can be found the
// checker has no refresher, and such an environment reports that its infrastructure was not
// compared.
func (a *App) DriftChecker(ctx context.Context) (*drift.Checker, error) {
	src, err := a.Source(ctx)
	if err != nil {
		return nil, fmt.Errorf("drift: %w", err)
	}
	cs, err := a.ChangeSets(ctx)
	if err != nil {
		return nil, fmt.Errorf("drift: %w", err)
	}
	c := &drift.Checker{Source: src, ChangeSets: cs, Params: a.ParamsFor(ctx), Parallelism: max(a.opts.Parallelism, 1)}
	if tf, err := a.Terraform(); err == nil {
		if r, ok := tf.(terraform.Refresher); ok {
			prefix, err := a.Prefix()
			if err != nil {
				return nil, err
			}
			spent, err := a.planSpent(ctx)
			if err != nil {
				return nil, err
			}
			c.Refresher, c.Workspaces = r, terraform.Workspaces{WorkDir: a.Config.Work(), Modules: src, Prefix: prefix, Spent: spent}
		}
	}
	return c, nil
}

// DriftReader is the drift check as a read (GET /drift): the parameter comparisons only — a
// read runs no terraform — with the drifts earlier runs recorded marked as such.
func (a *App) DriftReader(ctx context.Context) (drift.ReadOnly, error) {
	src, err := a.Source(ctx)
	if err != nil {
		return drift.ReadOnly{}, fmt.Errorf("drift: %w", err)
	}
	cs, err := a.ChangeSets(ctx)
	if err != nil {
		return drift.ReadOnly{}, fmt.Errorf("drift: %w", err)
	}
	recs, err := a.records(ctx)
	if err != nil {
		return drift.ReadOnly{}, err
	}
	return drift.ReadOnly{Checker: &drift.Checker{Source: src, ChangeSets: cs, Params: a.ParamsFor(ctx), SkipRefresh: true}, Records: recs}, nil
}

// records are the idempotency store's records, where each drift's publication is remembered.
func (a *App) records(ctx context.Context) (pipeline.Records, error) {
	seen, err := a.Seen(ctx)
	if err != nil {
		return nil, fmt.Errorf("drift: %w", err)
	}
	recs, ok := seen.(pipeline.Records)
	if !ok {
		return nil, fmt.Errorf("drift: the idempotency store (%T) keeps no records of what was published", seen)
	}
	return recs, nil
}

// DriftRecorder publishes what a drift check found (drift.detected, corrective change sets) to
// the pipeline, remembering each drift in the idempotency store's records.
func (a *App) DriftRecorder(ctx context.Context, actor message.Actor, autoApprove bool) (*drift.Recorder, error) {
	recs, err := a.records(ctx)
	if err != nil {
		return nil, err
	}
	return &drift.Recorder{Records: recs, Publisher: a, Actor: actor, AutoApprove: autoApprove}, nil
}
