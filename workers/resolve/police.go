package resolve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/policy"
)

// Policies before planning. Every component about to be announced as scheduled is put to the
// policies of the change set's commit (shared/policy, stage "resolve"), with its resolved config
// and the top-level keys that differ from the config deployed now. A denial skips it (reason
// "policy-denied", the detail giving the reasons: deployment.skipped carries them to the
// lineage and the audit log) — the component, not the change set: policies speak of components
// (who may change which), and the rest of the change goes on. Policies that cannot be evaluated
// (they do not compile, or decide nonsense) deny, naming the error: Karma fails closed. A
// requirement of approval withdraws an approval auto-approve alone gave (changeset/policy.go).
// A skip may make dependents ready, which are then put to the policies in turn.

// police applies the policies to cs's unannounced scheduled nodes until none is left to decide,
// and returns the change set as stored.
func (w *Worker) police(ctx context.Context, cs *changeset.ChangeSet) (*changeset.ChangeSet, error) {
	if w.Policies == nil || cs.Commit == "" {
		return cs, nil
	}
	checked := map[string]bool{}
	for range len(cs.Nodes) + 1 {
		decisions := map[string]policy.Decision{}
		for _, n := range cs.Unannounced() {
			if n.State != changeset.Scheduled || checked[n.Component] {
				continue
			}
			checked[n.Component] = true
			d, err := w.decide(ctx, cs, n)
			if err != nil {
				return nil, err
			}
			if d.Denied() || (d.NeedsApproval() && cs.AutoApprovedOnly()) {
				decisions[n.Component] = d
			}
		}
		if len(decisions) == 0 {
			return cs, nil
		}
		var err error
		if cs, err = w.ChangeSets.Update(ctx, cs.ID, func(cs *changeset.ChangeSet) error { return applyDecisions(cs, decisions) }); err != nil {
			return nil, err
		}
	}
	return cs, nil
}

func applyDecisions(cs *changeset.ChangeSet, decisions map[string]policy.Decision) error {
	for id, d := range decisions {
		if n := cs.Nodes[id]; n == nil || n.State != changeset.Scheduled || n.Announced {
			continue // decided meanwhile (a lost race re-runs this on the newer state)
		}
		if d.Denied() {
			if err := cs.DenyByPolicy(id, d.DenyReason()); err != nil {
				return err
			}
			continue
		}
		cs.RequireApproval(d.ApprovalReason())
	}
	return nil
}

// decide asks the policies about node n of cs. Invalid policies deny (fail closed); a failure to
// read them or the deployed config is retried.
func (w *Worker) decide(ctx context.Context, cs *changeset.ChangeSet, n *changeset.Node) (policy.Decision, error) {
	in, err := w.policyInput(ctx, cs, n)
	if err != nil {
		return policy.Decision{}, err
	}
	d, err := w.Policies.Evaluate(ctx, cs.Commit, in)
	switch {
	case errors.Is(err, policy.ErrInvalid):
		return policy.Decision{Deny: []string{err.Error()}}, nil
	case err != nil:
		return policy.Decision{}, pipeline.Transient(err)
	}
	return d, nil
}

// policyInput is what the policies see of node n.
func (w *Worker) policyInput(ctx context.Context, cs *changeset.ChangeSet, n *changeset.Node) (policy.Input, error) {
	in := policy.InputOf(cs, n)
	in.Stage = policy.StageResolve
	var before map[string]any
	if !n.Destroy {
		deployed, err := w.Configs.Config(ctx, cs.Env, n.Component, 0, time.Time{})
		switch {
		case errors.Is(err, params.ErrNotFound):
		case err != nil:
			return in, pipeline.Transient(fmt.Errorf("resolve: the deployed config of %s: %w", n.Component, err))
		default:
			_ = json.Unmarshal(deployed, &before) // not an object: every key is new
		}
	}
	in.Diff = policy.Diff(before, in.Config)
	return in, nil
}
