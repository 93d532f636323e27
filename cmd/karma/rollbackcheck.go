package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/configrepo"
	"github.com/usekarma/karma/shared/graph"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/rollback"
	"github.com/usekarma/karma/workers/ingest"
)

// What `karma rollback` checks before it queues anything (resolve checks again): the target can
// be returned to (shared/rollback: Find, Check at the deploy branch's head), and no unfinished
// change set of the environment shares a component with the rollback — it would be queued behind
// it and deploy its old config over whatever that one deploys.

// rollbackPlan is a rollback that may be queued.
type rollbackPlan struct {
	target   rollback.Target
	replaces string   // the component's deployment applied last
	head     string   // the head commit checked against
	affected []string // the component and its dependents at head
}

// planRollback checks that deployment id can be rolled back to now.
func planRollback(ctx context.Context, src *configrepo.Source, all []*changeset.ChangeSet, id string) (rollbackPlan, error) {
	target, replaces, err := rollback.Find(all, id)
	if err != nil {
		return rollbackPlan{}, err
	}
	env, comp := target.ChangeSet.Env, target.Node.Component
	head, err := src.Head(ctx)
	if err != nil {
		return rollbackPlan{}, fmt.Errorf("the deploy branch's head: %w", err)
	}
	headRes, err := src.Build(ctx, env, head, nil)
	if err != nil {
		return rollbackPlan{}, fmt.Errorf("loading %s at the head commit %.12s: %w", env, head, err)
	}
	if errs := headRes.Diagnostics.Errors(); len(errs) > 0 {
		return rollbackPlan{}, fmt.Errorf("cannot roll back %s to %s: %s is invalid at the head commit %.12s (its dependents are built from it): %s",
			comp, id, env, head, someDiagnostics(errs, 5))
	}
	at, err := src.Build(ctx, env, target.Commit(), nil)
	if err != nil {
		return rollbackPlan{}, fmt.Errorf("loading %s at commit %.12s (of %s): %w", env, target.Commit(), id, err)
	}
	if err := rollback.Check(target, headRes, at, head); err != nil {
		return rollbackPlan{}, err
	}
	v, _ := headRes.Graph.Index(comp)
	imp, err := headRes.Graph.Downstream([]int32{v}, graph.ImpactOptions{})
	if err != nil {
		return rollbackPlan{}, err
	}
	var affected []string
	for _, wave := range imp.Waves {
		affected = append(affected, headRes.Graph.IDs(wave)...)
	}
	if pending := rollback.Pending(all, env, affected); len(pending) > 0 {
		return rollbackPlan{}, pendingRefusal(comp, id, pending)
	}
	return rollbackPlan{target: target, replaces: replaces, head: head, affected: affected}, nil
}

// pendingRefusal names the unfinished change sets a rollback would be queued behind.
func pendingRefusal(comp, id string, pending []*changeset.ChangeSet) error {
	var names []string
	for _, cs := range pending {
		names = append(names, fmt.Sprintf("%s (commit %.12s, %s)", cs.ID, cs.Commit, changeState(cs)))
	}
	return &rollback.RefusedError{Deployment: id, Component: comp, Reasons: []string{fmt.Sprintf(
		"change sets of %s that are not done deploy some of the same components: %s. A rollback would wait behind them and then deploy "+
			"its old config over what they deploy: finish them first (karma apply <change>), or replace what is left of them "+
			"(karma supersede), then roll back", pending[0].Env, strings.Join(names, "; "))}}
}

// someDiagnostics lists the first n diagnostics on one line.
func someDiagnostics(ds model.Diagnostics, n int) string {
	var out []string
	for i, d := range ds {
		if i == n {
			out = append(out, fmt.Sprintf("… and %d more", len(ds)-n))
			break
		}
		out = append(out, d.String())
	}
	return strings.Join(out, "; ")
}

// rollbackMessage is the rollback's change.detected, asked by by.
func (p rollbackPlan) message(by message.Actor) (message.Envelope, error) {
	return ingest.FromRollback(ingest.RollbackRequest{Env: p.target.ChangeSet.Env, Component: p.target.Node.Component,
		Target: *p.target.Message(p.replaces), Actor: by})
}
