package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/message"
)

// What `karma retry` runs again, decided from the change sets alone (no I/O): a failed
// deployment runs again inside its own change set — same commit, same change, same approval
// rules — under a new deployment id caused by "retry of <the failed one>", and the components
// its failure blocked are decided again, as usual, once it settles.

// errUnknownID: neither a deployment nor a change Karma knows.
var errUnknownID = errors.New("unknown id")

// retryTarget is a failed deployment to run again.
type retryTarget struct {
	cs        *changeset.ChangeSet
	component string
	failed    string // the failed deployment's id
}

// retryTargets finds the failed deployment named by id (dep-…), or every failed deployment of
// the change named by id (a change set id, or the root id of a change that concerned several
// environments), and refuses — with what to do instead — what cannot be run again.
func retryTargets(all []*changeset.ChangeSet, id string) ([]retryTarget, error) {
	var targets []retryTarget
	var err error
	if strings.HasPrefix(id, "dep-") {
		targets, err = deploymentTarget(all, id)
	} else {
		targets, err = changeTargets(all, id)
	}
	if err != nil {
		return nil, err
	}
	var refusals []string
	for _, t := range targets {
		if reason := refusal(all, t); reason != "" {
			refusals = append(refusals, reason)
		}
	}
	if len(refusals) > 0 {
		return nil, fmt.Errorf("nothing retried: %s", strings.Join(refusals, "; "))
	}
	return targets, nil
}

func deploymentTarget(all []*changeset.ChangeSet, id string) ([]retryTarget, error) {
	for _, cs := range all {
		for comp, n := range cs.Nodes {
			switch {
			case n.DeploymentID == id && n.State == changeset.Failed:
				return []retryTarget{{cs: cs, component: comp, failed: id}}, nil
			case n.DeploymentID == id:
				return nil, fmt.Errorf("deployment %s (%s, change %s) did not fail: it is %s; only a failed deployment is run again", id, comp, cs.ID, describe(n))
			case retriedFrom(n) == id:
				return nil, fmt.Errorf("deployment %s (%s) was run again already, as %s, which is %s%s", id, comp, n.DeploymentID, describe(n), retryHint(n))
			}
		}
	}
	return nil, fmt.Errorf("deployment %s: %w: no change set has it (karma lineage <type>/<nickname> lists a component's deployments)", id, errUnknownID)
}

func changeTargets(all []*changeset.ChangeSet, id string) ([]retryTarget, error) {
	var targets []retryTarget
	var found []*changeset.ChangeSet
	for _, cs := range all {
		if cs.ID != id && cs.CorrelationID != id {
			continue
		}
		found = append(found, cs)
		for _, comp := range cs.FailedComponents() {
			targets = append(targets, retryTarget{cs: cs, component: comp, failed: cs.Nodes[comp].DeploymentID})
		}
	}
	switch {
	case len(found) == 0:
		return nil, fmt.Errorf("change %s: %w: no change set has this id (karma apply lists the changes it runs)", id, errUnknownID)
	case len(targets) == 0:
		var states []string
		for _, cs := range found {
			states = append(states, fmt.Sprintf("%s: %s", cs.ID, changeState(cs)))
		}
		return nil, fmt.Errorf("change %s has no failed deployment (%s): nothing to run again", id, strings.Join(states, "; "))
	}
	return targets, nil
}

// refusal says why t must not run again, or "".
func refusal(all []*changeset.ChangeSet, t retryTarget) string {
	if t.cs.SupersededBy != "" {
		return fmt.Sprintf("change %s was superseded by %s, which deploys what it left", t.cs.ID, t.cs.SupersededBy)
	}
	for _, later := range all {
		if later.Env != t.cs.Env || later.ID == t.cs.ID || !later.CreatedAt.After(t.cs.CreatedAt) {
			continue
		}
		n := later.Nodes[t.component]
		if n == nil {
			continue
		}
		at := fmt.Sprintf("the later change %s (commit %.12s)", later.ID, later.Commit)
		switch n.State {
		case changeset.Skipped, changeset.Blocked:
			continue // it did not deploy it
		case changeset.Applied:
			return fmt.Sprintf("%s deployed %s since (%s): running %s again would deploy commit %.12s over it; to change %s now, commit the fix and ingest it",
				at, t.component, n.DeploymentID, t.failed, t.cs.Commit, t.component)
		case changeset.Failed:
			return fmt.Sprintf("%s failed %s too (%s): run that one again instead: karma retry %s", at, t.component, n.DeploymentID, n.DeploymentID)
		default:
			return fmt.Sprintf("%s is deploying %s (%s, %s): let it finish (karma apply); if it fails, run it again", at, t.component, n.DeploymentID, n.State)
		}
	}
	return ""
}

// retriedFrom is the failed deployment a node runs again, or "".
func retriedFrom(n *changeset.Node) string {
	for _, c := range n.Causes {
		if c.Kind == message.CauseRetry {
			return c.ID
		}
	}
	return ""
}

func retryHint(n *changeset.Node) string {
	if n.State == changeset.Failed {
		return ": karma retry " + n.DeploymentID
	}
	return ""
}

// describe is a node's state for people.
func describe(n *changeset.Node) string {
	switch {
	case n.State == changeset.Failed && n.Detail != "":
		return "failed (" + firstLine(n.Detail) + ")"
	case n.Reason != "":
		return n.State + " (" + n.Reason + ")"
	}
	return n.State
}

// retryDeploymentID is the id of the deployment that runs failed again: derived from it, so a
// retry of a retry gets its own id and the same retry always the same one.
func retryDeploymentID(failed string) string { return changeset.DeploymentID(failed, "retry") }

// reopen runs the targets of cs again: each failed node is scheduled under a new deployment id,
// caused by the retry of the failed one; the nodes its failure blocked are pending again, to be
// decided as usual once it settles. A change set not auto-approved needs a new approval (its new
// plans are reviewed). It fails, changing nothing, when a target is no longer failed.
func reopen(cs *changeset.ChangeSet, targets []retryTarget) (retried []*changeset.Node, reopened []string, err error) {
	for _, t := range targets {
		n := cs.Nodes[t.component]
		if n == nil || n.State != changeset.Failed || n.DeploymentID != t.failed {
			return nil, nil, fmt.Errorf("deployment %s of %s changed meanwhile: nothing retried", t.failed, t.component)
		}
	}
	for _, t := range targets {
		n := cs.Nodes[t.component]
		// What the node deploys stays as it was — its config and hash, the commit whose module
		// it deploys (a rollback's root: the commit it returns to), its place in the graph; only
		// what described the failed run is reset (TestReopenKeepsWhatTheNodeDeploys).
		n.State, n.DeploymentID = changeset.Scheduled, retryDeploymentID(t.failed)
		n.Causes = []message.Cause{{Kind: message.CauseRetry, ID: t.failed}}
		n.ChangedKeys, n.Reason, n.Detail, n.Announced = nil, "", "", true
		n.Plan, n.PlanMessageID, n.Outcome = nil, "", nil
		retried = append(retried, n)
		reopened = append(reopened, unblock(cs, n.Dependents)...)
	}
	if !cs.AutoApprove {
		// The new plans are reviewed afresh: approvals of the failed ones count for nothing.
		cs.WithdrawApproval()
	}
	return retried, reopened, nil
}

// unblock makes the blocked nodes among ids, and those blocked below them, pending again.
func unblock(cs *changeset.ChangeSet, ids []string) []string {
	var out []string
	for _, id := range ids {
		n := cs.Nodes[id]
		if n.State != changeset.Blocked {
			continue
		}
		n.State, n.Reason, n.Detail, n.Announced = changeset.Pending, "", "", false
		out = append(out, id)
		out = append(out, unblock(cs, n.Dependents)...)
	}
	return out
}
