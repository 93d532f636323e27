package resolve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/policy"
)

// Policies before planning. Every component about to be announced as scheduled is put to the
// policies of the change set's commit (shared/policy, stage "resolve"), with its resolved config
// and the top-level keys that differ from the config deployed now (its deployment applied last,
// as the change sets recorded it: changeset.LastApplied). A denial skips it (reason
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
		var ask []*changeset.Node
		for _, n := range cs.Unannounced() {
			if n.State != changeset.Scheduled || checked[n.Component] {
				continue
			}
			checked[n.Component] = true
			ask = append(ask, n)
		}
		deployed, err := w.deployed(ctx, cs, ask)
		if err != nil {
			return nil, err
		}
		inputs := policy.InputsOf(cs)
		for _, n := range ask {
			d, err := w.decide(ctx, cs, inputs, n, deployed[n.Component].DeployedConfig())
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

// deployed returns what each of nodes runs now: the node of its deployment applied last, as the
// change sets recorded it (absent when none applied it). A failure to read them is retried.
func (w *Worker) deployed(ctx context.Context, cs *changeset.ChangeSet, nodes []*changeset.Node) (map[string]*changeset.Node, error) {
	var ids []string
	for _, n := range nodes {
		ids = append(ids, n.Component)
	}
	last, err := changeset.LastApplied(ctx, w.ChangeSets, cs.Env, ids)
	if err != nil {
		return nil, pipeline.Transient(fmt.Errorf("resolve: the deployed configs of change set %s: %w", cs.ID, err))
	}
	return last, nil
}

// decide asks the policies about node n of cs, whose deployment applied last deployed the config
// deployed (nil: none). Invalid policies deny (fail closed); a failure to read them is retried.
func (w *Worker) decide(ctx context.Context, cs *changeset.ChangeSet, inputs *policy.Inputs, n *changeset.Node, deployed json.RawMessage) (policy.Decision, error) {
	in := policyInput(inputs, n, deployed)
	d, err := w.Policies.Evaluate(ctx, cs.Commit, in)
	switch {
	case errors.Is(err, policy.ErrInvalid):
		return policy.Decision{Deny: []string{err.Error()}}, nil
	case err != nil:
		return policy.Decision{}, pipeline.Transient(err)
	}
	return d, nil
}

// policyInput is what the policies see of node n: the diff is against the config deployed, not
// the component's /config parameter — a change made in Parameter Store has overwritten that
// already, and diffed against itself it would change no key.
func policyInput(inputs *policy.Inputs, n *changeset.Node, deployed json.RawMessage) policy.Input {
	in := inputs.Of(n)
	in.Stage = policy.StageResolve
	in.Diff = policy.DiffFrom(deployed, in.Config)
	return in
}
